/* ops.c: the fp32 reference ops (see ops.h). Readable first: plain loops, double accumulators where a
 * long reduction would otherwise round, OpenBLAS sgemm for the matmul when configured. */
#include "build_config.h"
#include "ops.h"

#include <math.h>
#include <string.h>
#ifdef DUET_HAVE_OPENBLAS
#include <cblas.h>
#endif

void ref_embedding(float *out, const float *table, const int *tokens, int T, int D)
{
    for (int t = 0; t < T; t++) memcpy(out + (int64_t)t * D, table + (int64_t)tokens[t] * D, sizeof(float) * D);
}

void ref_rmsnorm(float *out, const float *x, const float *w, float eps, int T, int D)
{
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * D;
        float *o = out + (int64_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float inv = 1.0f / sqrtf((float)(ss / D) + eps);
        for (int i = 0; i < D; i++) o[i] = w[i] * (xr[i] * inv);
    }
}

void ref_matmul(float *y, const float *x, const float *W, int T, int N, int K)
{
#ifdef DUET_HAVE_OPENBLAS
    /* Row-major y = x . W^T: W is (N, K) row-major, i.e. op(B) = W transposed. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, K, W, K, 0.0f, y, N);
#else
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * K;
        for (int n = 0; n < N; n++) {
            const float *wr = W + (int64_t)n * K;
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc += xr[k] * wr[k];
            y[(int64_t)t * N + n] = acc;
        }
    }
#endif
}

void ref_matmul_i8(int32_t *acc, const float *xc, const float *wc, int T, int N, int K, float *tmp)
{
    const int64_t TN = (int64_t)T * N;
    for (int64_t i = 0; i < TN; i++) acc[i] = 0;
    for (int k0 = 0; k0 < K; k0 += REF_I8_CHUNK) {
        const int kc = K - k0 < REF_I8_CHUNK ? K - k0 : REF_I8_CHUNK;
#ifdef DUET_HAVE_OPENBLAS
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, kc, 1.0f, xc + k0, K, wc + k0, K, 0.0f, tmp, N);
#else
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) {
                float a = 0.0f;
                for (int k = 0; k < kc; k++) a += xc[(int64_t)t * K + k0 + k] * wc[(int64_t)n * K + k0 + k];
                tmp[(int64_t)t * N + n] = a;
            }
#endif
        for (int64_t i = 0; i < TN; i++) acc[i] += (int32_t)tmp[i];
    }
}

void ref_matmul_rows(float *y, const float *x, const float *W, int T, int N, int K)
{
#ifdef DUET_HAVE_OPENBLAS
    /* One sgemv per row: y[t] = W . x[t], W (N, K) row-major. The same call for a row whatever T. */
    for (int t = 0; t < T; t++)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, W, K, x + (int64_t)t * K, 1, 0.0f, y + (int64_t)t * N, 1);
#else
    ref_matmul(y, x, W, T, N, K); /* the plain loop already sums each row on its own, in k order */
#endif
}

void ref_rope(float *x, const int *pos, float theta, int T, int n_heads, int d)
{
    int half = d / 2;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            /* As HF: inv_freq = 1 / theta^(2i/d) in fp32, angle = pos * inv_freq in fp32. */
            float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)d);
            float angle = (float)pos[t] * inv_freq;
            float c = cosf(angle), s = sinf(angle);
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (int64_t)t * n_heads * d + (int64_t)h * d;
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

void ref_attention(float *out, const float *q, const ref_kv_view *kv, const int *pos, const int *seq, float *scratch,
                   int T, int H, int Hk, int d)
{
    int group = H / Hk;
    float scale = 1.0f / sqrtf((float)d);
    for (int t = 0; t < T; t++) {
        int n = pos[t] + 1; /* causal: positions 0..pos[t] */
        for (int h = 0; h < H; h++) {
            const float *qh = q + (int64_t)t * H * d + (int64_t)h * d;
            int kh = h / group;
            float mx = -INFINITY;
            for (int p = 0; p < n; p++) {
                const float *kp = kv->k + ref_kv_row(kv, seq[t], p) + (int64_t)kh * d;
                float s = 0.0f;
                for (int i = 0; i < d; i++) s += qh[i] * kp[i];
                scratch[p] = s * scale;
                if (scratch[p] > mx) mx = scratch[p];
            }
            double sum = 0;
            for (int p = 0; p < n; p++) {
                scratch[p] = expf(scratch[p] - mx);
                sum += scratch[p];
            }
            float inv = (float)(1.0 / sum);
            float *o = out + (int64_t)t * H * d + (int64_t)h * d;
            for (int i = 0; i < d; i++) o[i] = 0.0f;
            for (int p = 0; p < n; p++) {
                const float *vp = kv->v + ref_kv_row(kv, seq[t], p) + (int64_t)kh * d;
                float w = scratch[p] * inv;
                for (int i = 0; i < d; i++) o[i] += w * vp[i];
            }
        }
    }
}

void ref_swiglu(float *act, const float *gate, const float *up, int T, int F)
{
    for (int64_t i = 0; i < (int64_t)T * F; i++) {
        float g = gate[i];
        act[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void ref_add(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
