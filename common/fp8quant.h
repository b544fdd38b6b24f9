/* fp8quant.h: the arithmetic of FP8 E4M3 W8A8 (TensorRT-LLM's FP8 recipe on Hopper), shared by the ref's
 * emulation and the GPU kernels' tests, as smoothquant.h is for int8. e4m3() is dtype.h's
 * duet_f32_to_f8e4m3 (round to nearest even, saturating at +-448, NaN kept); every division is one IEEE
 * fp32 division.
 *   weights      per output row: scale_i = max_j |W_ij| / 448, code = e4m3(W_ij / scale_i);
 *                or per tensor: one scale = max |W| / 448 for every row;
 *   activations  per token, dynamic: scale_t = max_j |x_tj| / 448, code = e4m3(x_tj / scale_t);
 *                or per tensor, static: a calibrated scale = max |x| / 448 for every token (values beyond
 *                the calibrated range saturate at +-448);
 *   product      acc_ti = sum_j f32(xcode_tj) f32(wcode_ij), fp32 accumulation: each product of two E4M3
 *                values is exact in fp32 (4-bit significands), the sum's rounding depends on its order
 *                (the GPU's tensor cores are held to a bound on it, not bit equality);
 *                y_ti = acc_ti * scale_t * scale_i (two fp32 multiplies, in that order).
 * A zero row, token or tensor gets scale 0 and codes 0 (y = 0). Row-major everywhere. */
#ifndef DUET_FP8QUANT_H
#define DUET_FP8QUANT_H

#include <stdint.h>

#define DUET_F8_MAX 448.0f /* E4M3's largest finite value */

/* codes (N, K) and scales[N] of W (N, K), per row. */
void duet_f8_quant_rows(const float *W, int64_t N, int64_t K, uint8_t *codes, float *scales);
/* The same with one scale for the whole tensor, written to every scales[i]. */
void duet_f8_quant_tensor(const float *W, int64_t N, int64_t K, uint8_t *codes, float *scales);
/* Activations x (T, K) per token: what the GPU's fused quantizing kernels must produce. */
void duet_f8_quant_tokens(const float *x, int64_t T, int64_t K, uint8_t *codes, float *scales);
/* x (T, K) with a fixed scale (per tensor, static); scale 0 gives codes 0. */
void duet_f8_quant_static(const float *x, int64_t T, int64_t K, float scale, uint8_t *codes);
/* y (T, N) = acc * xscales[t] * wscales[i] (two fp32 multiplies, in that order). */
void duet_f8_dequant(const float *acc, const float *xscales, const float *wscales, int64_t T, int64_t N, float *y);
/* The static scale of a calibrated maximum: max / 448 (0 for 0). */
float duet_f8_scale(float max);

#endif
