/* smoothquant.h: the arithmetic of SmoothQuant W8A8 (Xiao et al. 2023; TensorRT-LLM's per-channel +
 * per-token recipe), shared by the ref's emulation and the GPU kernels' tests: one definition of every
 * code and scale, so a kernel is checked against the same integers.
 *   smoothing    s_j = max|X_j|^alpha / max_i |W_ij|^(1 - alpha) per input channel j of a product (W the
 *                matrices that read the same input, stacked: q/k/v, gate/up), clamped below at 1e-5 on
 *                both maxima as the paper's code does; X' = X / s is folded into what makes X (the RMSNorm
 *                weights, v_proj's rows for o_proj, up_proj's rows for down_proj), W' = W diag(s);
 *   weights      int8 per output channel: scale_i = max_j |W'_ij| / 127, code = round(W'_ij / scale_i);
 *   activations  int8 per token, dynamic: scale_t = max_j |x_tj| / 127, code = round(x_tj / scale_t);
 *   product      acc_ti = sum_j xcode_tj wcode_ij in int32 (exact: |acc| <= 127^2 K < 2^31 for K < 133144),
 *                y_ti = (float)acc_ti * scale_t * scale_i (two fp32 multiplies, in that order).
 * Every division above is one IEEE fp32 division (not a multiply by the reciprocal; the GPU's __fdiv_rn)
 * and round() is to nearest, ties to even (rintf in the default rounding mode; the GPU's __float2int_rn),
 * clamped to [-127, 127]; a zero row or token gets scale 0 and codes 0 (y = 0). Row-major everywhere. */
#ifndef DUET_SMOOTHQUANT_H
#define DUET_SMOOTHQUANT_H

#include <stdint.h>

#define DUET_SQ_MIN_MAX 1e-5f /* the floor of both maxima in the smoothing factor */

/* The int8 code of y, a value already divided by its scale: round to nearest, ties to even, clamped to
 * [-127, 127]; NaN gives 0. The one rounding of every int8 code (SmoothQuant's, the KV cache's). */
int8_t duet_i8_code(float y);

/* s[K] for a product whose input channels saw act_max[K] (calibration) and whose stacked weights are
 * W (N, K) fp32; alpha in [0, 1] (0.5: the paper's default). -1 + duet_error() for alpha outside [0, 1]
 * or a non-finite or negative act_max. */
int duet_sq_factors(const float *act_max, const float *W, int64_t N, int64_t K, float alpha, float *s);
/* The same from the weights' column maxima w_max[K] (s may be w_max). */
int duet_sq_factors_max(const float *act_max, const float *w_max, int64_t K, float alpha, float *s);

/* int8 per output row: codes (N, K), scales[N] of W (N, K) fp32. */
void duet_sq_quant_rows(const float *W, int64_t N, int64_t K, int8_t *codes, float *scales);

/* The same per token, for activations x (T, K): what the fused RMSNorm / SwiGLU kernels must produce. */
void duet_sq_quant_tokens(const float *x, int64_t T, int64_t K, int8_t *codes, float *scales);

/* acc (T, N) int32 = xcodes (T, K) . wcodes (N, K)^T, exact. */
void duet_sq_gemm_i32(const int8_t *xcodes, const int8_t *wcodes, int64_t T, int64_t N, int64_t K, int32_t *acc);

/* y (T, N) = (float)acc * xscales[t] * wscales[i]. */
void duet_sq_dequant(const int32_t *acc, const float *xscales, const float *wscales, int64_t T, int64_t N, float *y);

#endif
