/* gemm_fixed.h: the batch-invariant dense product of gemm.h's invariant mode. Row-major y (T, N) = x (T, K)
 * . W (N, K)^T, x and W in dt, y in dt or fp32, fp32 accumulation, through cuBLASLt with one algorithm per
 * (N, K, dt, output type): chosen once by cuBLASLt's heuristic at T = GEMM_FIXED_T_REF among those that
 * reduce over K inside one CTA (reduction scheme none, split-K 1), checked to run at T = 1 as well, and
 * then used for every T. A tile kernel walks K in the same order for every output element whatever the
 * other rows of its tile are, so row t of y does not depend on T or on the other rows of x. A T the
 * pinned algorithm cannot run is an error naming the shape (never a silent other algorithm). */
#ifndef DUET_GPU_GEMM_FIXED_H
#define DUET_GPU_GEMM_FIXED_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif

#define GEMM_FIXED_T_REF 256

typedef struct gpu_gemm_fixed gpu_gemm_fixed;
/* ws: device workspace of ws_bytes the products may use (shared with the caller's cuBLAS calls on the
 * same stream). NULL + duet_error() when cuBLASLt cannot start. */
gpu_gemm_fixed *gpu_gemm_fixed_create(void *ws, size_t ws_bytes);
void gpu_gemm_fixed_free(gpu_gemm_fixed *f);
/* y (T, N), leading dimension ldy = x (T, K) . W (N, K)^T; the first call of a shape picks its algorithm
 * (host work only: callable while a CUDA graph is being captured). 0 or -1 + duet_error(). */
int gpu_gemm_fixed_nt(gpu_gemm_fixed *f, void *y, int y_f32, int ldy, const void *x, const void *W, int T, int N, int K,
                      gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
