/* gemm.h: the fp16/bf16 matrix products of the forward pass (a GEMV-like kernel for a few tokens,
 * cuBLAS otherwise), fp32 accumulation. */
#ifndef DUET_GPU_GEMM_H
#define DUET_GPU_GEMM_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct gpu_gemm_ctx gpu_gemm_ctx;
gpu_gemm_ctx *gpu_gemm_create(void);
void gpu_gemm_free(gpu_gemm_ctx *g);
/* Largest T that uses the weight-streaming GEMV kernel (0: cuBLAS for every T; at most 8). Default 2 (the
 * measured crossover on an H100),
 * or $DUET_GEMV_MAX_T. */
void gpu_gemm_set_small_t(gpu_gemm_ctx *g, int t);
/* y (T, N) = x (T, K) . W^T, W (N, K) row-major (nn.Linear's out x in); x and W in dt; y in dt, or in
 * fp32 when y_f32 is nonzero (the logits). fp32 accumulation. */
int gpu_gemm(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const void *W, int T, int N, int K, gpu_dtype dt,
             gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
