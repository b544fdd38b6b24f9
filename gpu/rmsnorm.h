/* rmsnorm.h: the fused residual add + RMSNorm (HF LlamaRMSNorm), fp32 math. */
#ifndef DUET_GPU_RMSNORM_H
#define DUET_GPU_RMSNORM_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
/* x (T, D) fp32 += delta (T, D) dt (skipped when delta is NULL); then
 * out (T, D) dt = x / sqrt(mean(x^2) + eps) * w, w (D) dt. */
int gpu_add_rmsnorm(void *out, float *x, const void *delta, const void *w, float eps, int T, int D, gpu_dtype dt,
                    gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
