/* test_synth.c: `duet synth` models are deterministic (same options, same bytes; one sha256 pinned so a
 * different machine or compiler that changes a single bit is caught), loadable, scaled as promised,
 * and their spec string round-trips. */
#include "test_util.h"

#include "error.h"
#include "model.h"
#include "synth.h"
#include "tapfile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sha256 of model.safetensors for the defaults (seed 1, dim 64, ffn 172, 2 layers, 8/4 heads, head_dim
 * 8, vocab 512, f32), as written on x86-64 Linux (gcc 12, glibc 2.36). If this changes, either the
 * generator changed (bump SYNTH_VERSION in synth.c and run `make golden`) or the platform differs. */
#define PINNED_DEFAULT_SHA256 "c53a9130b71d440bd716d297ed7010d6f4b967d73199352f78c991c1b0a46a67"

static char tmpdir[256];

static void setup(void)
{
    ck_assert_int_eq(test_tmpdir(tmpdir, sizeof tmpdir, "synth"), 0);
}

static void teardown(void) { ck_assert_int_eq(test_rmtree(tmpdir), 0); }

static void synth_sha(const duet_synth_opts *o, const char *name, char hex[65])
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    ck_assert_msg(duet_synth_write(o, dir) == 0, "%s", duet_error());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(duet_sha256_file(path, hex) == 0, "%s", duet_error());
}

START_TEST(test_deterministic)
{
    duet_synth_opts o;
    duet_synth_defaults(&o);
    char a[65], b[65], c[65];
    synth_sha(&o, "a", a);
    synth_sha(&o, "b", b);
    ck_assert_str_eq(a, b);
    ck_assert_msg(!strcmp(a, PINNED_DEFAULT_SHA256), "default synth model sha256 %s, pinned %s", a,
                  PINNED_DEFAULT_SHA256);
    o.seed = 2;
    synth_sha(&o, "c", c);
    ck_assert_str_ne(a, c);
}
END_TEST

START_TEST(test_sha256_known)
{
    /* Nettle's sha256 on a known input: sha256("abc"). */
    char path[512], hex[65];
    snprintf(path, sizeof path, "%s/abc", tmpdir);
    FILE *fp = fopen(path, "wb");
    fputs("abc", fp);
    fclose(fp);
    ck_assert_int_eq(duet_sha256_file(path, hex), 0);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

static float *load_f32(const duet_model *m, const st_tensor *t)
{
    float *x = malloc((size_t)t->numel * sizeof *x);
    ck_assert_int_eq(st_to_f32(t, x), 0);
    (void)m;
    return x;
}

static void stats(const float *x, int64_t n, double *mean, double *std)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    *mean = s / n;
    *std = sqrt(s2 / n - *mean * *mean);
}

START_TEST(test_loads_and_scales)
{
    duet_synth_opts o;
    duet_synth_defaults(&o);
    o.cfg.dim = 128;
    o.cfg.n_heads = 8;
    o.cfg.n_kv_heads = 2;
    o.cfg.head_dim = 16;
    o.cfg.ffn_dim = 384;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/m", tmpdir);
    ck_assert_msg(duet_synth_write(&o, dir) == 0, "%s", duet_error());
    duet_model *m = duet_model_open(dir);
    ck_assert_msg(m != NULL, "%s", duet_error());
    ck_assert_int_eq(m->cfg.n_kv_heads, 2);
    double mean, std;
    float *x = load_f32(m, m->embed);
    stats(x, m->embed->numel, &mean, &std);
    ck_assert_msg(fabs(mean) < 0.02 && fabs(std - 1) < 0.02, "embed mean %g std %g", mean, std);
    free(x);
    x = load_f32(m, m->layers[1].w_down); /* (D, F): std 1/sqrt(F) */
    stats(x, m->layers[1].w_down->numel, &mean, &std);
    ck_assert_msg(fabs(std * sqrt(384.0) - 1) < 0.03, "down_proj std %g, want %g", std, 1 / sqrt(384.0));
    free(x);
    x = load_f32(m, m->layers[0].attn_norm);
    stats(x, 128, &mean, &std);
    ck_assert_msg(fabs(mean - 1) < 0.05 && std > 0.05 && std < 0.15, "norm weight mean %g std %g", mean, std);
    free(x);
    duet_model_close(m);
}
END_TEST

START_TEST(test_normal)
{
    double s = 0, s2 = 0, s4 = 0, mx = 0;
    const int n = 1 << 20;
    for (int i = 0; i < n; i++) {
        double v = duet_synth_normal(12345, (uint64_t)i);
        s += v;
        s2 += v * v;
        s4 += v * v * v * v;
        if (fabs(v) > mx) mx = fabs(v);
    }
    double mean = s / n, var = s2 / n, kurt = s4 / n / (var * var);
    ck_assert_msg(fabs(mean) < 0.005 && fabs(var - 1) < 0.01, "mean %g var %g", mean, var);
    ck_assert_msg(fabs(kurt - 2.7) < 0.05, "kurtosis %g (Irwin-Hall n=4: 2.7)", kurt);
    ck_assert_msg(mx <= 3.4642, "max %g beyond sqrt(12)", mx);
    /* Pinned values: bit-exact on every machine (integer sum, one IEEE multiply). */
    const uint32_t pinned[3] = {0x3f0a1fd1, 0x3f649dff, 0x401bd1ff};
    for (int i = 0; i < 3; i++) {
        float v = duet_synth_normal(0, (uint64_t)i);
        uint32_t bits;
        memcpy(&bits, &v, 4);
        ck_assert_msg(bits == pinned[i], "duet_synth_normal(0, %d) = %a (0x%08x), pinned 0x%08x", i, (double)v, bits,
                      pinned[i]);
    }
}
END_TEST

START_TEST(test_layer_independent_and_tied)
{
    duet_synth_opts o;
    duet_synth_defaults(&o);
    char d2[512], d3[512];
    snprintf(d2, sizeof d2, "%s/l2", tmpdir);
    snprintf(d3, sizeof d3, "%s/l3", tmpdir);
    ck_assert_int_eq(duet_synth_write(&o, d2), 0);
    o.cfg.n_layers = 3;
    o.cfg.tie_embeddings = 1;
    ck_assert_int_eq(duet_synth_write(&o, d3), 0);
    duet_model *a = duet_model_open(d2), *b = duet_model_open(d3);
    ck_assert_ptr_nonnull(a);
    ck_assert_msg(b != NULL, "%s", duet_error());
    ck_assert_int_eq(memcmp(a->layers[1].wq->data, b->layers[1].wq->data, a->layers[1].wq->nbytes), 0);
    ck_assert_int_eq(memcmp(a->embed->data, b->embed->data, a->embed->nbytes), 0);
    ck_assert_ptr_eq(b->lm_head, b->embed);
    ck_assert_ptr_null(st_set_find(b->st, "lm_head.weight"));
    ck_assert_ptr_nonnull(st_set_find(a->st, "lm_head.weight"));
    duet_model_close(a);
    duet_model_close(b);
}
END_TEST

START_TEST(test_dtypes_and_outliers)
{
    duet_synth_opts o;
    duet_synth_defaults(&o);
    o.n_outliers = 3;
    o.outlier_scale = 20;
    const st_dtype dts[3] = {ST_F32, ST_F16, ST_BF16};
    duet_model *m[3];
    for (int i = 0; i < 3; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/d%d", tmpdir, i);
        o.dtype = dts[i];
        ck_assert_int_eq(duet_synth_write(&o, dir), 0);
        m[i] = duet_model_open(dir);
        ck_assert_msg(m[i] != NULL, "%s", duet_error());
        ck_assert_int_eq(m[i]->embed->dtype, dts[i]);
    }
    /* f16/bf16 hold the f32 values rounded to nearest even */
    const st_tensor *t32 = m[0]->layers[0].wk, *t16 = m[1]->layers[0].wk, *tb = m[2]->layers[0].wk;
    const float *v = t32->data;
    const uint16_t *h = t16->data, *b = tb->data;
    for (int64_t i = 0; i < t32->numel; i++) {
        ck_assert_uint_eq(h[i], duet_f32_to_f16(v[i]));
        ck_assert_uint_eq(b[i], duet_f32_to_bf16(v[i]));
    }
    /* the outlier channels: what the metadata says, and the layer-norm weights there ~S */
    int ch[3];
    duet_synth_outlier_channels(o.seed, o.cfg.dim, 3, ch);
    ck_assert(ch[0] < ch[1] && ch[1] < ch[2]);
    char want[64];
    snprintf(want, sizeof want, "%d,%d,%d", ch[0], ch[1], ch[2]);
    char path[600];
    snprintf(path, sizeof path, "%s/d0/model.safetensors", tmpdir);
    st_file *f = st_open(path);
    ck_assert_str_eq(st_meta(f, "duet_synth_outlier_channels"), want);
    const float *w = m[0]->layers[1].ffn_norm->data, *fn = m[0]->final_norm->data;
    for (int c = 0, k = 0; c < o.cfg.dim; c++) {
        int is = k < 3 && ch[k] == c;
        if (is) k++;
        ck_assert_msg(is ? (w[c] > 20 * 0.6f && w[c] < 20 * 1.4f) : (w[c] > 0.6f && w[c] < 1.4f),
                      "ffn_norm[%d] = %g (outlier %d)", c, (double)w[c], is);
        ck_assert_msg(fn[c] > 0.6f && fn[c] < 1.4f, "model.norm[%d] = %g: the final norm has no outliers", c,
                      (double)fn[c]);
    }
    st_close(f);
    for (int i = 0; i < 3; i++) duet_model_close(m[i]);
}
END_TEST

START_TEST(test_spec_roundtrip)
{
    duet_synth_opts o, r;
    duet_synth_defaults(&o);
    o.seed = 18446744073709551615ull;
    o.cfg.dim = 96;
    o.cfg.rope_theta = 500000;
    o.cfg.norm_eps = 1e-6f;
    o.cfg.tie_embeddings = 1;
    o.n_outliers = 2;
    o.outlier_scale = 12.5f;
    o.dtype = ST_BF16;
    char spec[512], again[512];
    ck_assert_int_eq(duet_synth_spec_format(&o, spec, sizeof spec), 0);
    ck_assert_msg(duet_synth_spec_parse(&r, spec) == 0, "%s", duet_error());
    ck_assert_int_eq(duet_synth_spec_format(&r, again, sizeof again), 0);
    ck_assert_str_eq(spec, again);
    ck_assert(r.seed == o.seed && r.cfg.norm_eps == o.cfg.norm_eps && r.outlier_scale == o.outlier_scale &&
              r.dtype == ST_BF16 && r.cfg.tie_embeddings == 1);
    ck_assert_int_eq(duet_synth_spec_parse(&r, "v=1 dim=x"), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "dim=x"));
    ck_assert_int_eq(duet_synth_spec_parse(&r, "v=1 colour=red"), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "colour"));
    ck_assert_int_eq(duet_synth_spec_parse(&r, "v=0 dim=64"), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "make golden"));
    /* invalid shapes are refused before anything is written */
    duet_synth_defaults(&o);
    o.cfg.n_kv_heads = 3;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad", tmpdir);
    ck_assert_int_eq(duet_synth_write(&o, dir), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "multiple"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_sha256_known);
    tcase_add_test(tc, test_loads_and_scales);
    tcase_add_test(tc, test_normal);
    tcase_add_test(tc, test_layer_independent_and_tied);
    tcase_add_test(tc, test_dtypes_and_outliers);
    tcase_add_test(tc, test_spec_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(suite()); }
