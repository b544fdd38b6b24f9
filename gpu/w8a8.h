/* w8a8.h: the W8A8 kernels, the host's arithmetic on the device (tests/test_gpu_w8a8.c holds them to it):
 * SmoothQuant (common/smoothquant.h: codes, scales and int32 products bit for bit) and FP8 E4M3
 * (common/fp8quant.h: codes and scales bit for bit, fp32 products within the accumulation bound).
 *   gpu_sq_quant_tokens  activations x (T, K) in dt -> int8 codes (T, K) and scales (T) per token:
 *                        scale_t = max_j |x_tj| / 127, code = rint(x_tj / scale_t) clamped to +-127 (IEEE
 *                        division), a zero row scale 0 and codes 0; x is read as its dt values, exactly;
 *   gpu_f8_quant_tokens  the same to E4M3 codes: scale_t = max_j |x_tj| / 448, code = e4m3(x_tj / scale_t)
 *                        (satfinite); or, with x_scale > 0 (fp8-tensor's static scale), scale_t = x_scale
 *                        for every token (values beyond the calibrated range saturate);
 *   gpu_sq_gemm_i32      acc (T, N) int32 = xcodes (T, K) . wcodes (N, K)^T on the int8 tensor cores
 *                        (cuBLASLt, CUBLAS_COMPUTE_32I: exact for K < 133144); K a multiple of 4;
 *   gpu_f8_gemm_f32      acc (T, N) fp32 = the same over E4M3 codes on the FP8 tensor cores (cuBLASLt,
 *                        CUBLAS_COMPUTE_32F, unit scales, fast accumulation off: each product is exact, the
 *                        sum's order and partial-sum rounding are the library's); K a multiple of 16, N of
 *                        4; compute capability 8.9 or newer (gpu_f8_supported);
 *   gpu_sq_dequant       y (T, N) = (float)acc * xs[t] * ws[n] (two fp32 multiplies in that order), stored
 *                        in dt or fp32; gpu_f8_dequant the same from fp32 accumulators.
 * Row-major everywhere; device pointers, 16-byte aligned. */
#ifndef DUET_GPU_W8A8_H
#define DUET_GPU_W8A8_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif

/* a cuBLASLt handle, its workspace, the int8 and FP8 descriptors and the last shapes' plans */
typedef struct gpu_w8a8_gemm gpu_w8a8_gemm;
gpu_w8a8_gemm *gpu_w8a8_gemm_create(void);
void gpu_w8a8_gemm_free(gpu_w8a8_gemm *g);

/* 1 when the current device has FP8 tensor cores (compute capability >= 8.9); 0 with duet_error() naming
 * the device and its capability. */
int gpu_f8_supported(void);

/* 0 when cuBLASLt's layout takes an (N, K) product of the mode (int8: K a positive multiple of 4; FP8,
 * fp8 = 1: K of 16 and N of 4), else -1 with duet_error() giving the shape and the rule: the one statement
 * of it, for gpu_sq_gemm_i32 / gpu_f8_gemm_f32 and for gpu_w8a8_model_upload's check before any upload. */
int gpu_w8a8_shape_check(int fp8, int64_t N, int64_t K);

int gpu_sq_quant_tokens(int8_t *codes, float *scales, const void *x, int T, int K, gpu_dtype dt, gpu_stream s);
int gpu_f8_quant_tokens(uint8_t *codes, float *scales, const void *x, int T, int K, float x_scale, gpu_dtype dt,
                        gpu_stream s);
int gpu_sq_gemm_i32(gpu_w8a8_gemm *g, int32_t *acc, const int8_t *xcodes, const int8_t *wcodes, int T, int N, int K,
                    gpu_stream s);
int gpu_f8_gemm_f32(gpu_w8a8_gemm *g, float *acc, const uint8_t *xcodes, const uint8_t *wcodes, int T, int N, int K,
                    gpu_stream s);
int gpu_sq_dequant(void *y, int y_f32, const int32_t *acc, const float *xs, const float *ws, int T, int N,
                   gpu_dtype dt, gpu_stream s);
int gpu_f8_dequant(void *y, int y_f32, const float *acc, const float *xs, const float *ws, int T, int N, gpu_dtype dt,
                   gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
