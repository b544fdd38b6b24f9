/* test_kv_quant.c: the quantized KV cache (common/kvquant.h) and the ref's emulation of it, on a synthetic
 * model (common/synth.h's defaults: 2 layers, 8 heads, 4 kv heads x 8; no data needed):
 *  - codes: int8 ties to even and clamps at +-127, fp8 is E4M3 of x / scale, a zero maximum gets scale 1,
 *    NaN gives the int8 code 0;
 *  - the ref's attention with an int8 / fp8 cache equals attention recomputed here (double) from its own
 *    q/k/v taps with K and V replaced by their codes' values (rel L2 <= 1e-5), and differs measurably from
 *    attention over the unquantized K and V, so the codes are what it reads;
 *  - the cost against the fp32 cache, logits rel L2 over a 40-token prompt, is printed and bounded:
 *    measured 2026-12-01 (x86-64, OpenBLAS, 1 thread) int8 5.7e-3, fp8 2.1e-2; bounds 1.5e-2 and 6e-2;
 *  - bad options: an unknown mode, no scales, a scale that is 0 or NaN. */
#include "test_util.h"

#include "backend.h"
#include "calib/calib.h"
#include "engine/registry.h"
#include "error.h"
#include "kvquant.h"
#include "model.h"
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T 40

static char dir[128];
static duet_model *model;
static float *scales[3]; /* per kv mode: [L][2][Hk] */
static int ids[T], pos[T], seq[T];

START_TEST(codes)
{
    ck_assert_int_eq((int8_t)duet_kv_encode(DUET_KV_INT8, 2.5f, 1.0f), 2);
    ck_assert_int_eq((int8_t)duet_kv_encode(DUET_KV_INT8, -3.5f, 1.0f), -4);
    ck_assert_int_eq((int8_t)duet_kv_encode(DUET_KV_INT8, 1000.0f, 1.0f), 127);
    ck_assert_int_eq((int8_t)duet_kv_encode(DUET_KV_INT8, -1000.0f, 1.0f), -127);
    ck_assert_int_eq(duet_kv_encode(DUET_KV_INT8, NAN, 1.0f), 0);
    ck_assert_float_eq(duet_kv_decode(DUET_KV_INT8, (uint8_t)(int8_t)-5, 0.5f), -2.5f);
    ck_assert_float_eq(duet_kv_scale(DUET_KV_INT8, 254.0f), 2.0f);
    ck_assert_float_eq(duet_kv_scale(DUET_KV_FP8, 896.0f), 2.0f);
    ck_assert_float_eq(duet_kv_scale(DUET_KV_FP8, 0.0f), 1.0f);
    for (int i = 0; i < 1000; i++) {
        const float x = (float)(i - 500) * 0.0137f, s = 0.031f;
        ck_assert_int_eq(duet_kv_encode(DUET_KV_FP8, x, s), duet_f32_to_f8e4m3(x / s));
        ck_assert_float_eq(duet_kv_decode(DUET_KV_FP8, duet_kv_encode(DUET_KV_FP8, x, s), s),
                           duet_f8e4m3_to_f32(duet_f32_to_f8e4m3(x / s)) * s);
    }
    duet_kv_mode m;
    ck_assert_int_eq(duet_kv_mode_parse("fp8", &m), 0);
    ck_assert_int_eq(m, DUET_KV_FP8);
    ck_assert_int_eq(duet_kv_mode_parse("fp4", &m), -1);
    ck_assert_msg(strstr(duet_error(), "'fp4'"), "%s", duet_error());
}
END_TEST

/* the layer-0 taps of one run */
typedef struct taps {
    float q[T * 64], k[T * 32], v[T * 32], attn[T * 64];
} taps;

static void grab(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    taps *t = ctx;
    float *dst = !strcmp(name, "layers.0.q_rope") ? t->q
                 : !strcmp(name, "layers.0.k_rope") ? t->k
                 : !strcmp(name, "layers.0.v")      ? t->v
                 : !strcmp(name, "layers.0.attn")   ? t->attn
                                                    : NULL;
    if (dst) memcpy(dst, data, sizeof(float) * (size_t)(rows * cols));
}

static duet_backend *make(int kv_mode, const float *kv_scales)
{
    duet_backend_opts o = {.max_seqs = 1, .max_ctx = 64, .dtype = "fp32", .threads = 1, .kv_mode = kv_mode,
                           .kv_scales = kv_scales};
    return duet_backend_create("ref", model, &o);
}

/* forward of the prompt: its logits (T, V) and layer-0 taps */
static void run(int kv_mode, float *logits, taps *tp)
{
    duet_backend *b = make(kv_mode, scales[kv_mode]);
    ck_assert_msg(b != NULL, "%s", duet_error());
    duet_backend_set_tap(b, grab, tp);
    duet_batch batch = {T, ids, pos, seq, NULL};
    ck_assert_msg(b->forward(b, &batch, logits) == 0, "%s", duet_error());
    duet_backend_free(b);
}

/* causal GQA attention (double) of layer 0 from q and K/V replaced by f(K), f(V) */
static void attention(const taps *tp, int kv_mode, double *out)
{
    const duet_config *c = &model->cfg;
    const int H = c->n_heads, Hk = c->n_kv_heads, d = c->head_dim;
    float k[T * 32], v[T * 32];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < Hk * d; j++) {
            const int h = j / d;
            const float ks = kv_mode ? scales[kv_mode][h] : 1.0f, vs = kv_mode ? scales[kv_mode][Hk + h] : 1.0f;
            const float x = tp->k[t * Hk * d + j], y = tp->v[t * Hk * d + j];
            k[t * Hk * d + j] = kv_mode ? duet_kv_decode(kv_mode, duet_kv_encode(kv_mode, x, ks), ks) : x;
            v[t * Hk * d + j] = kv_mode ? duet_kv_decode(kv_mode, duet_kv_encode(kv_mode, y, vs), vs) : y;
        }
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const int g = h / (H / Hk);
            double sc[T], mx = -INFINITY, sum = 0.0;
            for (int p = 0; p <= t; p++) {
                double s = 0.0;
                for (int i = 0; i < d; i++) s += (double)tp->q[t * H * d + h * d + i] * k[p * Hk * d + g * d + i];
                sc[p] = s / sqrt((double)d);
                if (sc[p] > mx) mx = sc[p];
            }
            for (int p = 0; p <= t; p++) sum += sc[p] = exp(sc[p] - mx);
            for (int i = 0; i < d; i++) {
                double o = 0.0;
                for (int p = 0; p <= t; p++) o += sc[p] / sum * v[p * Hk * d + g * d + i];
                out[t * H * d + h * d + i] = o;
            }
        }
}

static double rel_l2_d(const float *a, const double *b, int n)
{
    double e = 0.0, r = 0.0;
    for (int i = 0; i < n; i++) e += (a[i] - b[i]) * (a[i] - b[i]), r += b[i] * b[i];
    return sqrt(e / r);
}

START_TEST(ref_reads_the_codes)
{
    const duet_config *c = &model->cfg;
    ck_assert_int_le(c->n_heads * c->head_dim, 64);
    const int V = c->vocab_size, n = T * c->n_heads * c->head_dim;
    float *l0 = malloc(sizeof(float) * T * V), *lq = malloc(sizeof(float) * T * V);
    static taps t0, tq;
    static double att[T * 64], raw[T * 64];
    run(0, l0, &t0);
    const double bound[3] = {0, 1.5e-2, 6e-2}; /* logits rel L2 against the fp32 cache: see the header */
    for (int m = DUET_KV_INT8; m <= DUET_KV_FP8; m++) {
        run(m, lq, &tq);
        attention(&tq, m, att);
        attention(&tq, 0, raw);
        const double e_q = rel_l2_d(tq.attn, att, n), e_raw = rel_l2_d(tq.attn, raw, n);
        const double e_logits = test_rel_l2(lq, l0, (int64_t)T * V);
        printf("# kv %s: attention vs the codes' values %.2e, vs unquantized K/V %.2e; logits vs fp32 cache %.2e\n",
               duet_kv_mode_name(m), e_q, e_raw, e_logits);
        ck_assert_msg(e_q <= 1e-5, "%s: the ref's attention is not over the codes' values (%.2e)", duet_kv_mode_name(m),
                      e_q);
        ck_assert_msg(e_raw > 10 * e_q && e_raw > 1e-4, "%s: quantization left no trace (%.2e vs %.2e)",
                      duet_kv_mode_name(m), e_raw, e_q);
        ck_assert_msg(e_logits <= bound[m], "%s: logits rel L2 %.2e > %.0e", duet_kv_mode_name(m), e_logits, bound[m]);
    }
    free(l0);
    free(lq);
}
END_TEST

START_TEST(bad_options)
{
    ck_assert_ptr_null(make(DUET_KV_INT8, NULL));
    ck_assert_msg(strstr(duet_error(), "none given"), "%s", duet_error());
    ck_assert_ptr_null(make(7, scales[1]));
    ck_assert_msg(strstr(duet_error(), "mode 7"), "%s", duet_error());
    const duet_config *c = &model->cfg;
    const int n = 2 * c->n_layers * c->n_kv_heads;
    float *s = malloc(sizeof(float) * (size_t)n);
    memcpy(s, scales[1], sizeof(float) * (size_t)n);
    s[3] = 0.0f;
    ck_assert_ptr_null(make(DUET_KV_FP8, s));
    ck_assert_msg(strstr(duet_error(), "at 3"), "%s", duet_error());
    s[3] = NAN;
    ck_assert_ptr_null(make(DUET_KV_FP8, s));
    free(s);
}
END_TEST

static void setup(void)
{
    /* the scales: a calibration over the same prompt (so nothing saturates) */
    duet_calib *cal;
    model = test_synth_calibrated(dir, sizeof dir, "kv_quant", ids, T, &cal);
    const duet_config *c = &model->cfg;
    for (int t = 0; t < T; t++) pos[t] = t, seq[t] = 0;
    const int L = c->n_layers, Hk = c->n_kv_heads;
    for (int m = 1; m <= 2; m++) {
        scales[m] = malloc(sizeof(float) * 2 * (size_t)L * Hk);
        duet_calib_kv_scales(cal, (duet_kv_mode)m, scales[m]);
    }
    duet_calib_free(cal);
}

static void teardown(void)
{
    free(scales[1]);
    free(scales[2]);
    duet_model_close(model);
    test_rmtree(dir);
}

int main(void)
{
    Suite *s = suite_create("kv_quant");
    TCase *tc = tcase_create("synthetic model");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, codes);
    tcase_add_test(tc, ref_reads_the_codes);
    tcase_add_test(tc, bad_options);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
