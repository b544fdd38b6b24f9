/* w8a8.h: SmoothQuant W8A8's kernels, common/smoothquant.h's arithmetic on the device (its codes, scales
 * and integer products bit for bit; tests/test_gpu_w8a8.c holds them to it):
 *   gpu_sq_quant_tokens  activations x (T, K) in dt -> int8 codes (T, K) and scales (T) per token:
 *                        scale_t = max_j |x_tj| / 127, code = rint(x_tj / scale_t) clamped to +-127 (IEEE
 *                        division), a zero row scale 0 and codes 0; x is read as its dt values, exactly;
 *   gpu_sq_gemm_i32      acc (T, N) int32 = xcodes (T, K) . wcodes (N, K)^T on the int8 tensor cores
 *                        (cuBLASLt, CUBLAS_COMPUTE_32I: exact for K < 133144); K a multiple of 4;
 *   gpu_sq_dequant       y (T, N) = (float)acc * xs[t] * ws[n] (two fp32 multiplies in that order), stored
 *                        in dt or fp32.
 * Row-major everywhere; device pointers, 16-byte aligned. */
#ifndef DUET_GPU_W8A8_H
#define DUET_GPU_W8A8_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_i8_gemm gpu_i8_gemm; /* a cuBLASLt handle, its workspace and the last shapes' plans */
gpu_i8_gemm *gpu_i8_gemm_create(void);
void gpu_i8_gemm_free(gpu_i8_gemm *g);

int gpu_sq_quant_tokens(int8_t *codes, float *scales, const void *x, int T, int K, gpu_dtype dt, gpu_stream s);
int gpu_sq_gemm_i32(gpu_i8_gemm *g, int32_t *acc, const int8_t *xcodes, const int8_t *wcodes, int T, int N, int K,
                    gpu_stream s);
int gpu_sq_dequant(void *y, int y_f32, const int32_t *acc, const float *xs, const float *ws, int T, int N,
                   gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
