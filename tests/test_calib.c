/* test_calib.c: calib/calib.h on a synthetic model (common/synth.h's defaults: 2 layers, dim 64, ffn 172,
 * 8 heads, 4 kv heads x 8; no data needed):
 *  - the tap sink's maxima equal those computed here from the full tap tensors of the same ref runs
 *    (per channel for the projections' inputs, per kv head for K after RoPE and V);
 *  - write then read gives the same floats bit for bit, samples, tokens and source;
 *  - bad files are refused with the file and field named: another model's shapes, the same shapes with
 *    other weights (the fingerprint), a missing layer, an array of the wrong length, a negative value, a
 *    string value, a missing field, another format or version, malformed JSON, no samples. */
#include "test_util.h"

#include "backend.h"
#include "calib/calib.h"
#include "engine/registry.h"
#include "error.h"
#include "file.h"
#include "model.h"
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[128], dir2[128];
static duet_model *model, *other;

static void setup(void)
{
    duet_synth_opts so;
    ck_assert_int_eq(test_tmpdir(dir, sizeof dir, "calib"), 0);
    duet_synth_defaults(&so);
    ck_assert_msg(duet_synth_write(&so, dir) == 0, "%s", duet_error());
    ck_assert_msg((model = duet_model_open(dir)) != NULL, "%s", duet_error());
    ck_assert_int_eq(test_tmpdir(dir2, sizeof dir2, "calib2"), 0);
    so.seed = 2; /* same shapes, other weights */
    ck_assert_msg(duet_synth_write(&so, dir2) == 0, "%s", duet_error());
    ck_assert_msg((other = duet_model_open(dir2)) != NULL, "%s", duet_error());
}

static void teardown(void)
{
    duet_model_close(model);
    duet_model_close(other);
    test_rmtree(dir);
    test_rmtree(dir2);
}

/* The maxima recomputed from whole tap tensors: [layer][array] as in calib.h. */
typedef struct direct {
    const duet_config *c;
    float m[2][6][256];
} direct;

static void direct_tap(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    direct *d = ctx;
    static const char *const tap[6] = {"attn_norm", "attn", "ffn_norm", "act", "k_rope", "v"};
    int l;
    char what[32];
    if (sscanf(name, "layers.%d.%31s", &l, what) != 2) return;
    for (int a = 0; a < 6; a++)
        if (!strcmp(what, tap[a]))
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < cols; j++) {
                    const int slot = a >= 4 ? (int)(j / d->c->head_dim) : (int)j;
                    const float x = fabsf(data[r * cols + j]);
                    if (x > d->m[l][a][slot]) d->m[l][a][slot] = x;
                }
}

static void both_taps(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    void **p = ctx;
    duet_calib_tap(p[0], name, data, rows, cols);
    direct_tap(p[1], name, data, rows, cols);
}

/* Three prompts through the ref with both sinks. */
static duet_calib *observe(direct *d)
{
    const duet_config *c = &model->cfg;
    duet_calib *cal = duet_calib_new(c, duet_calib_fingerprint(model));
    ck_assert_msg(cal != NULL, "%s", duet_error());
    memset(d, 0, sizeof *d);
    d->c = c;
    duet_backend_opts o = {.max_seqs = 1, .max_ctx = 64, .dtype = "fp32", .threads = 1};
    duet_backend *b = duet_backend_create("ref", model, &o);
    ck_assert_msg(b != NULL, "%s", duet_error());
    void *ctx[2] = {cal, d};
    duet_backend_set_tap(b, both_taps, ctx);
    int ids[40], pos[40], seq[40] = {0};
    float *logits = malloc(sizeof(float) * 40 * (size_t)c->vocab_size);
    for (int p = 0; p < 3; p++) {
        const int T = 10 + 15 * p;
        for (int i = 0; i < T; i++) ids[i] = (int)((7u * (unsigned)i + 31u * (unsigned)p + 1u) % (unsigned)c->vocab_size), pos[i] = i;
        duet_batch batch = {T, ids, pos, seq, NULL};
        ck_assert_msg(b->forward(b, &batch, logits) == 0, "%s", duet_error());
        ck_assert_int_eq(b->release(b, 0), 0);
        cal->samples++, cal->tokens += T;
    }
    free(logits);
    duet_backend_free(b);
    snprintf(cal->source, sizeof cal->source, "test_calib");
    return cal;
}

static float *arr(duet_calib *c, int l, int a)
{
    duet_calib_layer *L = &c->layers[l];
    float *p[6] = {L->qkv_in, L->o_in, L->gate_up_in, L->down_in, L->k, L->v};
    return p[a];
}

static int len_of(const duet_config *c, int a)
{
    const int n[6] = {c->dim, c->n_heads * c->head_dim, c->dim, c->ffn_dim, c->n_kv_heads, c->n_kv_heads};
    return n[a];
}

START_TEST(tap_maxima_equal_direct)
{
    direct d;
    duet_calib *cal = observe(&d);
    const duet_config *c = &model->cfg;
    for (int l = 0; l < c->n_layers; l++)
        for (int a = 0; a < 6; a++) {
            const float *v = arr(cal, l, a);
            for (int j = 0; j < len_of(c, a); j++) {
                ck_assert_msg(v[j] == d.m[l][a][j], "layer %d array %d [%d]: %g vs %g", l, a, j, v[j], d.m[l][a][j]);
                ck_assert_msg(v[j] > 0.0f, "layer %d array %d [%d] never observed", l, a, j);
            }
        }
    ck_assert_int_eq(cal->samples, 3);
    ck_assert_int_eq(cal->tokens, 10 + 25 + 40);
    duet_calib_free(cal);
}
END_TEST

static char path[256];

static duet_calib *written(void)
{
    direct d;
    duet_calib *cal = observe(&d);
    snprintf(path, sizeof path, "%s/calib.json", dir);
    ck_assert_msg(duet_calib_write(cal, path) == 0, "%s", duet_error());
    return cal;
}

START_TEST(write_read_round_trip)
{
    duet_calib *cal = written();
    duet_calib *back = duet_calib_read(path, model);
    ck_assert_msg(back != NULL, "%s", duet_error());
    const duet_config *c = &model->cfg;
    for (int l = 0; l < c->n_layers; l++)
        for (int a = 0; a < 6; a++)
            ck_assert(!memcmp(arr(cal, l, a), arr(back, l, a), sizeof(float) * (size_t)len_of(c, a)));
    ck_assert_int_eq(back->samples, cal->samples);
    ck_assert_int_eq(back->tokens, cal->tokens);
    ck_assert_str_eq(back->source, "test_calib");
    duet_calib_free(back);
    duet_calib_free(cal);
}
END_TEST

/* The written file with its first `from` replaced by `to`, read back against `m`: the error must hold `want`. */
static void refused(const duet_model *m, const char *from, const char *to, const char *want)
{
    size_t n = 0;
    char *s = duet_read_file(path, &n);
    ck_assert_ptr_nonnull(s);
    char *at = from ? strstr(s, from) : s;
    ck_assert_msg(at != NULL, "'%s' not in the file", from);
    size_t lf = from ? strlen(from) : n, lt = strlen(to);
    char *t = malloc(n - lf + lt + 1);
    memcpy(t, s, (size_t)(at - s));
    memcpy(t + (at - s), to, lt);
    memcpy(t + (at - s) + lt, at + lf, n - (size_t)(at - s) - lf + 1);
    duet_calib *c = duet_calib_parse(t, strlen(t), "bad.json", &m->cfg, duet_calib_fingerprint(m));
    ck_assert_msg(c == NULL, "accepted: %s -> %s", from ? from : "(all)", to);
    ck_assert_msg(strstr(duet_error(), want) && strstr(duet_error(), "bad.json"), "error '%s' lacks '%s'", duet_error(),
                  want);
    free(t);
    free(s);
}

START_TEST(bad_files_refused)
{
    duet_calib *cal = written();
    duet_calib_free(cal);
    /* the same shapes, other weights */
    duet_calib *c = duet_calib_read(path, other);
    ck_assert(c == NULL);
    ck_assert_msg(strstr(duet_error(), "model.fingerprint") && strstr(duet_error(), "another model"), "%s", duet_error());
    refused(model, "\"dim\": 64", "\"dim\": 128", "model.dim");
    refused(model, "\"n_layers\": 2", "\"n_layers\": 3", "model.n_layers");
    refused(model, "\"format\": \"duet-calibration\"", "\"format\": \"other\"", "format");
    refused(model, "\"version\": 1", "\"version\": 2", "version");
    refused(model, "\"samples\": 3", "\"samples\": 0", "samples");
    refused(model, "\"tokens\"", "\"tokenz\"", "'tokens': missing");
    refused(model, "\"qkv_in\": [", "\"qkv_in\": [\"x\", ", "layers[0].qkv_in");
    refused(model, "\"down_in\": [", "\"down_in\": [0.5, ", "layers[0].down_in': 173 values");
    refused(model, "\"k\": [", "\"k\": [-1.0, ", "layers[0].k");
    refused(model, "\"v\": [", "\"w\": [", "layers[0].v': missing");
    refused(model, NULL, "{\"format\": ", "malformed JSON");
    refused(model, NULL, "[1, 2]", "not a JSON object");
    /* a missing layer: the second layer object cut out (the file ends "...]\n  }\n ]\n}") */
    size_t n = 0;
    char *s = duet_read_file(path, &n);
    char *second = strstr(strstr(s, "\"layers\""), "},");
    ck_assert_ptr_nonnull(second);
    char *end = strrchr(s, ']');
    memmove(second + 1, end, strlen(end) + 1);
    c = duet_calib_parse(s, strlen(s), "bad.json", &model->cfg, duet_calib_fingerprint(model));
    ck_assert(c == NULL);
    ck_assert_msg(strstr(duet_error(), "'layers': 1 layers, the model has 2"), "%s", duet_error());
    free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("calib");
    TCase *tc = tcase_create("synthetic model");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tap_maxima_equal_direct);
    tcase_add_test(tc, write_read_round_trip);
    tcase_add_test(tc, bad_files_refused);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
