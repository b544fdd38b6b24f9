/* sampling.h: token selection on the GPU: greedy argmax per row (lowest id on ties, as duet_argmax). */
#ifndef DUET_GPU_SAMPLING_H
#define DUET_GPU_SAMPLING_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
/* ids (R) = argmax over each row of logits (R, V) fp32. */
int gpu_argmax(int *ids, const float *logits, int R, int V, gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
