/* fp8quant.c: FP8 E4M3 W8A8's codes and scales (fp8quant.h). */
#include "fp8quant.h"

#include "dtype.h"

#include <math.h>

float duet_f8_scale(float max) { return max / DUET_F8_MAX; }

static void quant_with(const float *x, int64_t n, float scale, uint8_t *codes)
{
    for (int64_t j = 0; j < n; j++) codes[j] = scale > 0.0f ? duet_f32_to_f8e4m3(x[j] / scale) : 0;
}

static float amax_of(const float *x, int64_t n)
{
    float a = 0.0f;
    for (int64_t j = 0; j < n; j++) a = fmaxf(a, fabsf(x[j]));
    return a;
}

void duet_f8_quant_rows(const float *W, int64_t N, int64_t K, uint8_t *codes, float *scales)
{
    for (int64_t i = 0; i < N; i++) {
        scales[i] = duet_f8_scale(amax_of(W + i * K, K));
        quant_with(W + i * K, K, scales[i], codes + i * K);
    }
}

void duet_f8_quant_tensor(const float *W, int64_t N, int64_t K, uint8_t *codes, float *scales)
{
    const float s = duet_f8_scale(amax_of(W, N * K));
    for (int64_t i = 0; i < N; i++) scales[i] = s;
    quant_with(W, N * K, s, codes);
}

void duet_f8_quant_tokens(const float *x, int64_t T, int64_t K, uint8_t *codes, float *scales)
{
    duet_f8_quant_rows(x, T, K, codes, scales);
}

void duet_f8_quant_static(const float *x, int64_t T, int64_t K, float scale, uint8_t *codes)
{
    quant_with(x, T * K, scale, codes);
}

void duet_f8_dequant(const float *acc, const float *xscales, const float *wscales, int64_t T, int64_t N, float *y)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < N; i++) y[t * N + i] = acc[t * N + i] * xscales[t] * wscales[i];
}
