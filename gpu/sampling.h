/* sampling.h: token selection on the GPU: greedy argmax per row (lowest id on ties, as duet_argmax), and
 * gpu_sample, which reproduces the host sampler (common/sampler.c: duet_sample) draw for draw. */
#ifndef DUET_GPU_SAMPLING_H
#define DUET_GPU_SAMPLING_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
/* ids (R) = argmax over each row of logits (R, V) fp32. */
int gpu_argmax(int *ids, const float *logits, int R, int V, gpu_stream s);

/* One row's sampler settings, as duet_sampler_init takes them (the same ranges: temperature >= 0, top_k >= 0,
 * top_p in (0, 1]; outside them the result is unspecified but stays an id in [0, V)). */
typedef struct gpu_sample_params {
    float temperature; /* 0: greedy */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    uint64_t seed;
} gpu_sample_params;

/* Bytes of device scratch gpu_sample needs for R rows of V logits. */
size_t gpu_sample_ws_bytes(int R, int V);

/* ids (R) = one draw per row of logits (R, V) fp32 row-major, row r with params[r] (device array, R entries)
 * and draw counter steps[r] (device array of R uint64): the id duet_sample returns for a sampler with
 * those settings, seed and step == steps[r], given the same logits row; steps[r] advances as the host's
 * s->step does (+1 per draw; temperature 0 leaves it). ws: gpu_sample_ws_bytes(R, V) bytes of device
 * memory, not shared with another call in flight. Asynchronous on s, no allocation, no host sync:
 * capturable in a CUDA graph. 0, or -1 + duet_error(). */
int gpu_sample(int *ids, const float *logits, int R, int V, const gpu_sample_params *params, uint64_t *steps,
               void *ws, gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
