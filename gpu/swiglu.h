/* swiglu.h: act = silu(gate) * up from the fused gate/up projection, fp32 math. */
#ifndef DUET_GPU_SWIGLU_H
#define DUET_GPU_SWIGLU_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
/* act (T, F) dt = silu(gu[:, :F]) * gu[:, F:], gu (T, 2F) dt (rows [gate | up]); silu(x) = x / (1 + e^-x). */
int gpu_swiglu(void *act, const void *gu, int T, int F, gpu_dtype dt, gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
