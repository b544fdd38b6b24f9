/* smoothquant.c: SmoothQuant W8A8's codes, scales and integer product (smoothquant.h). */
#include "smoothquant.h"

#include "error.h"

#include <math.h>

int duet_sq_factors_max(const float *act_max, const float *w_max, int64_t K, float alpha, float *s)
{
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return duet_errorf("smoothquant: alpha %g is outside [0, 1]", (double)alpha);
    for (int64_t j = 0; j < K; j++)
        if (!(act_max[j] >= 0.0f) || !isfinite(act_max[j]))
            return duet_errorf("smoothquant: activation max %g of channel %lld is not a finite number >= 0",
                               (double)act_max[j], (long long)j);
    for (int64_t j = 0; j < K; j++) {
        const float x = fmaxf(act_max[j], DUET_SQ_MIN_MAX), w = fmaxf(w_max[j], DUET_SQ_MIN_MAX);
        s[j] = powf(x, alpha) / powf(w, 1.0f - alpha);
    }
    return 0;
}

int duet_sq_factors(const float *act_max, const float *W, int64_t N, int64_t K, float alpha, float *s)
{
    for (int64_t j = 0; j < K; j++) s[j] = 0.0f; /* the weights' column maxima first, in s */
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < K; j++) {
            const float a = fabsf(W[i * K + j]);
            if (a > s[j]) s[j] = a;
        }
    return duet_sq_factors_max(act_max, s, K, alpha, s);
}

int8_t duet_i8_code(float y)
{
    if (isnan(y)) return 0;
    const float q = rintf(y);
    return (int8_t)(q > 127.0f ? 127 : q < -127.0f ? -127 : (int)q);
}

/* codes of one row of n values and its scale */
static void quant_row(const float *x, int64_t n, int8_t *codes, float *scale)
{
    float amax = 0.0f;
    for (int64_t j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float sc = amax / 127.0f;
    *scale = sc;
    for (int64_t j = 0; j < n; j++) codes[j] = sc > 0.0f ? duet_i8_code(x[j] / sc) : 0;
}

void duet_sq_quant_rows(const float *W, int64_t N, int64_t K, int8_t *codes, float *scales)
{
    for (int64_t i = 0; i < N; i++) quant_row(W + i * K, K, codes + i * K, &scales[i]);
}

void duet_sq_quant_tokens(const float *x, int64_t T, int64_t K, int8_t *codes, float *scales)
{
    duet_sq_quant_rows(x, T, K, codes, scales);
}

void duet_sq_gemm_i32(const int8_t *xcodes, const int8_t *wcodes, int64_t T, int64_t N, int64_t K, int32_t *acc)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < N; i++) {
            int32_t a = 0;
            const int8_t *xr = xcodes + t * K, *wr = wcodes + i * K;
            for (int64_t j = 0; j < K; j++) a += (int32_t)xr[j] * (int32_t)wr[j];
            acc[t * N + i] = a;
        }
}

void duet_sq_dequant(const int32_t *acc, const float *xscales, const float *wscales, int64_t T, int64_t N, float *y)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < N; i++) y[t * N + i] = (float)acc[t * N + i] * xscales[t] * wscales[i];
}
