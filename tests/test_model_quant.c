/* test_model_quant.c: a model's quantized weights (common/model_quant.c, common/model_planar.c):
 *  - duet_model_quantize on a synthetic model (dims multiples of 128, so every mode fits) in each mode:
 *    every layer's linear tensor has the mode's storage and dequantizes exactly to duet_qweight_to_f32 of
 *    duet_quantize of the original weights; requantizing a quantized model works; a row length the mode
 *    does not fit is an error naming the tensor (stories260K's down_proj, K = 172, in q4_0; a synthetic
 *    model's, K = 200, in every mode whose block or group does not divide it);
 *  - the planar loader: a folder written here with st_writer in model_planar.c's layout loads with the
 *    same tensors and its mode in m->weights; every inconsistency of a crafted file is refused, naming the
 *    file, the tensor or metadata key and what is wrong;
 *  - a GGUF whose linear weights are all Q4_1 (the default model, when present) has m->weights q4_1. */
#include "test_util.h"
#include "error.h"
#include "model.h"
#include "model_quant.h"
#include "quant.h"
#include "safetensors.h"
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[256];

static const char *const hf_linear[DUET_N_LINEAR] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                     "mlp.down_proj"};

/* A synthetic model (2 layers, dim 128, ffn 256, 4 heads of 32, 2 kv heads) in <tmpdir>/<name>. */
static char *synth_model(const char *name, int dim, int ffn)
{
    duet_synth_opts o;
    duet_synth_defaults(&o);
    o.cfg.dim = dim;
    o.cfg.ffn_dim = ffn;
    o.cfg.n_heads = 4;
    o.cfg.n_kv_heads = 2;
    o.cfg.head_dim = dim / 4;
    o.cfg.vocab_size = 64;
    o.cfg.max_pos = 64;
    o.seed = 11;
    char *dir = malloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(dir, "%s/%s", tmpdir, name);
    ck_assert_msg(duet_synth_write(&o, dir) == 0, "%s", duet_error());
    return dir;
}

static float *to_f32(const st_tensor *t)
{
    float *f = malloc(sizeof(float) * (size_t)t->numel);
    ck_assert_msg(st_to_f32(t, f) == 0, "%s", duet_error());
    return f;
}

/* Every linear tensor of q (quantized in `mode`) against the quantizer run on orig's weights. */
static void check_exact(const duet_model *orig, duet_model *q, duet_qmode mode)
{
    const duet_qmode_info *info = duet_qmode_get(mode);
    int64_t checked = 0;
    for (int l = 0; l < q->cfg.n_layers; l++)
        for (int k = 0; k < DUET_N_LINEAR; k++) {
            const st_tensor *a = *duet_layer_linear(&orig->layers[l], k), *b = *duet_layer_linear(&q->layers[l], k);
            ck_assert_int_eq(b->dtype, info->dtype);
            ck_assert_int_eq(duet_qmode_of(b), mode);
            ck_assert(b->shape[0] == a->shape[0] && b->shape[1] == a->shape[1] && b->numel == a->numel);
            float *w = to_f32(a), *got = to_f32(b), *want = malloc(sizeof(float) * (size_t)a->numel);
            duet_qweight qw;
            ck_assert_msg(duet_quantize(mode, w, a->shape[0], a->shape[1], a->name, &qw) == 0, "%s", duet_error());
            duet_qweight_to_f32(&qw, want);
            ck_assert_msg(!memcmp(got, want, sizeof(float) * (size_t)a->numel), "%s layer %d tensor %d: dequantized "
                          "values differ from duet_qweight_to_f32(duet_quantize(W))", info->name, l, k);
            /* and the stored form is the quantizer's, byte for byte */
            size_t nb = st_dtype_bytes(info->dtype, a->numel);
            void *blocks = malloc(nb);
            ck_assert(duet_qweight_to_blocks(&qw, blocks) == 0);
            ck_assert_uint_eq(b->nbytes, nb);
            ck_assert(!memcmp(blocks, b->data, nb));
            checked += a->numel;
            free(blocks);
            duet_qweight_free(&qw);
            free(w), free(got), free(want);
        }
    ck_assert_int_eq(q->weights, mode);
    ck_assert(checked > 0);
}

START_TEST(quantize_each_mode)
{
    char *dir = synth_model("synth128", 128, 256);
    duet_model *orig = duet_model_open(dir);
    ck_assert_msg(orig != NULL, "%s", duet_error());
    ck_assert_int_eq(orig->weights, DUET_Q_NONE);
    for (int mode = DUET_Q_NONE + 1; mode < DUET_Q_N_MODES; mode++) {
        duet_model *m = duet_model_open(dir);
        ck_assert(m != NULL);
        ck_assert_msg(duet_model_quantize(m, (duet_qmode)mode, NULL, NULL) == 0, "%s", duet_error());
        check_exact(orig, m, (duet_qmode)mode);
        /* embeddings and norms keep their type */
        ck_assert_int_eq(m->embed->dtype, ST_F32);
        ck_assert_int_eq(m->layers[0].attn_norm->dtype, ST_F32);
        char desc[160];
        duet_model_weights_describe(m, desc, sizeof desc);
        char want[64];
        snprintf(want, sizeof want, "%s (quantized on load)", duet_qmode_get((duet_qmode)mode)->name);
        ck_assert_str_eq(desc, want);
        duet_model_close(m);
    }
    duet_model_close(orig);
    free(dir);
}
END_TEST

static void count_progress(void *ctx, int done, int total)
{
    int *n = ctx;
    ck_assert_int_eq(done, *n + 1);
    ck_assert_int_eq(total, 2);
    (*n)++;
}

/* A quantized model requantized: the second mode's quantizer runs on the first's dequantized values. */
START_TEST(requantize)
{
    char *dir = synth_model("synth_re", 128, 256);
    duet_model *a = duet_model_open(dir), *b = duet_model_open(dir);
    ck_assert(a && b);
    int n = 0;
    ck_assert(duet_model_quantize(a, DUET_Q_INT8, count_progress, &n) == 0);
    ck_assert_int_eq(n, 2);
    ck_assert(duet_model_quantize(b, DUET_Q_INT8, NULL, NULL) == 0);
    ck_assert_msg(duet_model_quantize(b, DUET_Q_Q4_1, NULL, NULL) == 0, "%s", duet_error());
    check_exact(a, b, DUET_Q_Q4_1); /* a holds the int8 weights b was requantized from */
    ck_assert(duet_model_quantize(b, DUET_Q_NONE, NULL, NULL) == 0);
    ck_assert_int_eq(b->weights, DUET_Q_Q4_1); /* none does nothing */
    duet_model_close(a);
    duet_model_close(b);
    free(dir);
}
END_TEST

START_TEST(row_length_error)
{
    char *p = test_data_path("stories260K/config.json");
    if (!p) {
        printf("row_length_error: no shared data (stories260K); not run\n");
        return;
    }
    free(p);
    char *dir = test_data_path("stories260K");
    duet_model *m = duet_model_open(dir);
    ck_assert(m != NULL);
    ck_assert(duet_model_quantize(m, DUET_Q_Q4_0, NULL, NULL) != 0);
    const char *e = duet_error();
    ck_assert_msg(strstr(e, "model.layers.0.mlp.down_proj.weight") && strstr(e, "K = 172") && strstr(e, "32"), "%s", e);
    ck_assert_int_eq(m->weights, DUET_Q_NONE); /* nothing was replaced */
    ck_assert_int_eq(m->layers[0].wq->dtype, ST_F32);
    /* int4 (per row) fits K = 172 */
    ck_assert_msg(duet_model_quantize(m, DUET_Q_INT4, NULL, NULL) == 0, "%s", duet_error());
    ck_assert_int_eq(m->layers[0].w_down->dtype, ST_QU4);
    duet_model_close(m);
    free(dir);
}
END_TEST

/* The same with no data: a synthetic model of ffn 200 (down_proj K = 200) in each mode whose block or group
 * does not divide 200; the model is left as it was, and per-row int4 then fits. */
START_TEST(row_length_error_synth)
{
    char *dir = synth_model("synth200", 128, 200);
    duet_model *m = duet_model_open(dir);
    ck_assert_msg(m != NULL, "%s", duet_error());
    const duet_qmode bad[] = {DUET_Q_Q8_0, DUET_Q_Q4_0, DUET_Q_Q4_1, DUET_Q_INT4_G64, DUET_Q_INT4_G128};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const duet_qmode_info *info = duet_qmode_get(bad[i]);
        ck_assert_int_eq(duet_model_quantize(m, bad[i], NULL, NULL), -1);
        const char *e = duet_error();
        char want[160];
        snprintf(want, sizeof want, "mode %s needs rows whose length is a multiple of its group of %d (K = 200)",
                 info->name, info->group);
        ck_assert_msg(strstr(e, dir) && strstr(e, "'model.layers.0.mlp.down_proj.weight'") && strstr(e, want), "%s", e);
        ck_assert_int_eq(m->weights, DUET_Q_NONE);
        ck_assert_int_eq(m->layers[0].wq->dtype, ST_F32); /* q_proj (K = 128) fits, but nothing was replaced */
    }
    ck_assert_msg(duet_model_quantize(m, DUET_Q_INT4, NULL, NULL) == 0, "%s", duet_error());
    ck_assert_int_eq(m->layers[1].w_down->dtype, ST_QU4);
    duet_model_close(m);
    free(dir);
}
END_TEST

/* ---- crafted planar files ------------------------------------------------------------------------ */

enum mutation {
    MUT_NONE, MUT_NO_SCALES, MUT_SCALES_SHAPE, MUT_SCALES_DTYPE, MUT_NO_ZEROS, MUT_ZERO_RANGE, MUT_ZEROS_EXTRA,
    MUT_MODE_UNKNOWN, MUT_MODE_GGUF, MUT_NO_MODE, MUT_NO_GROUP, MUT_GROUP_WRONG, MUT_CODES_DTYPE, MUT_CODES_SHAPE,
    MUT_FAKE_MODE_G64,
};

/* Writes <dst>/config.json (src's) and <dst>/model.safetensors: the model src quantized in `mode` in
 * model_planar.c's layout, with one mutation (on layer 0's q_proj or the metadata). */
static void write_planar(const char *src, const char *dst, duet_qmode mode, enum mutation mut)
{
    duet_model *m = duet_model_open(src);
    ck_assert_msg(m != NULL, "%s", duet_error());
    ck_assert_msg(duet_model_quantize(m, mode, NULL, NULL) == 0, "%s", duet_error());
    const duet_qmode_info *info = duet_qmode_get(mut == MUT_FAKE_MODE_G64 ? DUET_Q_INT4_G64 : mode);
    char path[512];
    ck_assert(mkdir(dst, 0777) == 0);
    snprintf(path, sizeof path, "%s/config.json", dst);
    ck_assert(duet_config_write(&m->cfg, path) == 0);
    st_writer *w = st_writer_new();
    st_writer_meta(w, "format", "pt");
    const char *mode_name = mut == MUT_MODE_UNKNOWN ? "int3" : mut == MUT_MODE_GGUF ? "q4_0" : info->name;
    char g[16];
    snprintf(g, sizeof g, info->group ? "%d" : "row", info->group);
    if (mut != MUT_NO_MODE) st_writer_meta(w, "duet.weights", mode_name);
    if (mut == MUT_GROUP_WRONG) st_writer_meta(w, "duet.group_size", info->group == 64 ? "128" : "64");
    else if (mut != MUT_NO_GROUP) st_writer_meta(w, "duet.group_size", mut == MUT_MODE_GGUF ? "32" : g);
    const st_tensor *plain[] = {m->embed, m->final_norm, m->lm_head};
    for (int i = 0; i < 3; i++)
        ck_assert(st_writer_add(w, plain[i]->name, plain[i]->dtype, plain[i]->ndim, plain[i]->shape, plain[i]->data) == 0);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const st_tensor *norms[2] = {m->layers[l].attn_norm, m->layers[l].ffn_norm};
        for (int i = 0; i < 2; i++)
            ck_assert(st_writer_add(w, norms[i]->name, norms[i]->dtype, 1, norms[i]->shape, norms[i]->data) == 0);
        for (int k = 0; k < DUET_N_LINEAR; k++) {
            const st_tensor *t = *duet_layer_linear(&m->layers[l], k);
            int target = l == 0 && k == 0;
            int64_t N = t->shape[0], K = t->shape[1], G = K / t->q.group;
            int64_t qs[2] = {N, t->dtype == ST_QU4 ? K / 2 : K}, ss[2] = {N, G};
            st_dtype cd = t->dtype == ST_QU4 ? ST_U8 : ST_I8;
            char n[160];
            snprintf(n, sizeof n, "model.layers.%d.%s.qweight", l, hf_linear[k]);
            if (target && mut == MUT_CODES_DTYPE) cd = cd == ST_U8 ? ST_I8 : ST_U8;
            if (target && mut == MUT_CODES_SHAPE) qs[0] = N / 2, qs[1] *= 2;
            ck_assert(st_writer_add(w, n, cd, 2, qs, t->data) == 0);
            snprintf(n, sizeof n, "model.layers.%d.%s.scales", l, hf_linear[k]);
            if (!(target && mut == MUT_NO_SCALES)) {
                if (target && mut == MUT_SCALES_SHAPE) ss[1] = G / 2; /* a group twice as long */
                st_dtype sd = target && mut == MUT_SCALES_DTYPE ? ST_BF16 : ST_F16;
                ck_assert(st_writer_add(w, n, sd, 2, ss, t->q.scales) == 0);
                ss[1] = G;
            }
            snprintf(n, sizeof n, "model.layers.%d.%s.zeros", l, hf_linear[k]);
            uint8_t *z = calloc((size_t)(N * G), 1);
            if (t->q.zeros) memcpy(z, t->q.zeros, (size_t)(N * G));
            if (target && mut == MUT_ZERO_RANGE) z[N * G - 1] = 16;
            int want_zeros = t->q.zeros || mut == MUT_FAKE_MODE_G64 || (target && mut == MUT_ZEROS_EXTRA);
            if (want_zeros && !(target && mut == MUT_NO_ZEROS)) ck_assert(st_writer_add(w, n, ST_U8, 2, ss, z) == 0);
            free(z);
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    ck_assert_msg(st_writer_save(w, path) == 0, "%s", duet_error());
    st_writer_free(w);
    duet_model_close(m);
}

START_TEST(planar_roundtrip)
{
    char *src = synth_model("synth_pl", 128, 256);
    const duet_qmode planar[] = {DUET_Q_INT8, DUET_Q_INT4, DUET_Q_INT4_G128, DUET_Q_INT4_G64};
    for (size_t i = 0; i < sizeof planar / sizeof *planar; i++) {
        char dst[512];
        snprintf(dst, sizeof dst, "%s/planar_%s", tmpdir, duet_qmode_get(planar[i])->name);
        write_planar(src, dst, planar[i], MUT_NONE);
        duet_model *orig = duet_model_open(src), *mq = duet_model_open(dst);
        ck_assert_msg(orig && mq, "%s", duet_error());
        ck_assert_int_eq(mq->weights, planar[i]);
        check_exact(orig, mq, planar[i]); /* the file's codes are the quantizer's */
        char desc[160], want[96];
        duet_model_weights_describe(mq, desc, sizeof desc);
        snprintf(want, sizeof want, "(linear weights %s)", duet_qmode_get(planar[i])->name);
        ck_assert_msg(strstr(desc, want) && strstr(desc, "stored as"), "%s", desc);
        /* requantizing a loaded planar model: the loaded tensors are replaced and freed with the model */
        ck_assert(duet_model_quantize(mq, DUET_Q_Q8_0, NULL, NULL) == 0);
        ck_assert_int_eq(mq->layers[1].w_down->dtype, ST_Q8_0);
        duet_model_close(orig);
        duet_model_close(mq);
    }
    free(src);
}
END_TEST

/* The crafted file with mutation `mut` fails to open; the error holds every string of `want`. */
static void refused(const char *src, duet_qmode mode, enum mutation mut, const char *tag, const char *const *want)
{
    char dst[512];
    snprintf(dst, sizeof dst, "%s/bad_%s", tmpdir, tag);
    write_planar(src, dst, mode, mut);
    duet_model *m = duet_model_open(dst);
    ck_assert_msg(m == NULL, "%s: opened", tag);
    const char *e = duet_error();
    printf("%s: %s\n", tag, e);
    ck_assert_msg(strstr(e, dst) != NULL, "%s: error does not name the file: %s", tag, e);
    for (int i = 0; want[i]; i++) ck_assert_msg(strstr(e, want[i]) != NULL, "%s: '%s' not in: %s", tag, want[i], e);
}

#define Q0 "model.layers.0.self_attn.q_proj"
#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

START_TEST(planar_errors)
{
    char *src = synth_model("synth_err", 128, 256);
    refused(src, DUET_Q_INT4_G64, MUT_NO_SCALES, "no_scales", WANT("missing tensor '" Q0 ".scales'"));
    refused(src, DUET_Q_INT4_G64, MUT_SCALES_SHAPE, "scales_shape",
            WANT(Q0 ".scales", "shape [128, 1], expected [128, 2]", "groups of 64"));
    refused(src, DUET_Q_INT8, MUT_SCALES_DTYPE, "scales_dtype", WANT(Q0 ".scales", "dtype BF16, expected F16"));
    refused(src, DUET_Q_INT4_G128, MUT_NO_ZEROS, "no_zeros", WANT("missing tensor '" Q0 ".zeros'", "zero points"));
    refused(src, DUET_Q_INT4_G64, MUT_ZERO_RANGE, "zero_range", WANT(Q0 ".zeros", "zero point 16", "out of range 0..15"));
    refused(src, DUET_Q_INT4, MUT_ZEROS_EXTRA, "zeros_extra", WANT(Q0 ".zeros", "fixed zero point"));
    refused(src, DUET_Q_INT4, MUT_MODE_UNKNOWN, "mode_unknown", WANT("duet.weights", "'int3' is not a mode", "int4-g64"));
    refused(src, DUET_Q_INT4, MUT_MODE_GGUF, "mode_gguf", WANT("duet.weights", "'q4_0'", "GGUF block mode"));
    refused(src, DUET_Q_INT8, MUT_NO_MODE, "no_mode", WANT(Q0 ".qweight", "no 'duet.weights'"));
    refused(src, DUET_Q_INT8, MUT_NO_GROUP, "no_group", WANT("no 'duet.group_size'", "expected 'row'"));
    refused(src, DUET_Q_INT4_G64, MUT_GROUP_WRONG, "group_wrong", WANT("'duet.group_size' = '128'", "int4-g64"));
    refused(src, DUET_Q_INT4, MUT_CODES_DTYPE, "codes_dtype", WANT(Q0 ".qweight", "dtype I8", "int4", "U8"));
    refused(src, DUET_Q_INT8, MUT_CODES_DTYPE, "codes_dtype8", WANT(Q0 ".qweight", "dtype U8", "int8", "I8"));
    refused(src, DUET_Q_INT4, MUT_CODES_SHAPE, "codes_shape", WANT(Q0 ".qweight", "shape [64, 128], expected [128, 64]"));
    free(src);
    /* K not a multiple of the group: a model of dim 96 (K = 96 for q/k/v/gate/up) in int4-g64 */
    char *src96 = synth_model("synth96", 96, 256);
    refused(src96, DUET_Q_INT4, MUT_FAKE_MODE_G64, "k_not_multiple",
            WANT(Q0 ".qweight", "multiple of its group of 64", "K = 96"));
    free(src96);
}
END_TEST

/* A planar tensor is only taken when <name>.weight is absent: a folder with neither names the .weight. */
START_TEST(missing_linear)
{
    char *src = synth_model("synth_miss", 128, 256);
    char dst[512], path[600];
    snprintf(dst, sizeof dst, "%s/miss", tmpdir);
    write_planar(src, dst, DUET_Q_INT8, MUT_NONE);
    /* rewrite without layer 1's v_proj.qweight */
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    st_file *f = st_open(path);
    ck_assert(f != NULL);
    st_writer *w = st_writer_new();
    st_writer_meta(w, "duet.weights", "int8");
    st_writer_meta(w, "duet.group_size", "row");
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!strcmp(t->name, "model.layers.1.self_attn.v_proj.qweight")) continue;
        ck_assert(st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data) == 0);
    }
    st_close(f);
    ck_assert(st_writer_save(w, path) == 0);
    st_writer_free(w);
    ck_assert(duet_model_open(dst) == NULL);
    const char *e = duet_error();
    ck_assert_msg(strstr(e, "missing tensor 'model.layers.1.self_attn.v_proj.weight'") && strstr(e, ".qweight"), "%s", e);
    free(src);
}
END_TEST

START_TEST(gguf_mode)
{
    char *path = test_model_path();
    if (!path) {
        printf("gguf_mode: no default model (make model); not run\n");
        return;
    }
    duet_model *m = duet_model_open(path);
    ck_assert_msg(m != NULL, "%s", duet_error());
    ck_assert_int_eq(m->weights, DUET_Q_Q4_1); /* every linear weight of SmolLM2 Q4_1 is Q4_1 (token_embd: Q8_0) */
    char desc[160];
    duet_model_weights_describe(m, desc, sizeof desc);
    ck_assert_str_eq(desc, "stored as Q8_0, F32, Q4_1 (linear weights q4_1)");
    duet_model_close(m);
    free(path);
}
END_TEST

int main(void)
{
    if (test_tmpdir(tmpdir, sizeof tmpdir, "model_quant")) return TEST_EXIT_HARD;
    Suite *s = suite_create("model_quant");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, quantize_each_mode);
    tcase_add_test(tc, requantize);
    tcase_add_test(tc, row_length_error);
    tcase_add_test(tc, row_length_error_synth);
    tcase_add_test(tc, planar_roundtrip);
    tcase_add_test(tc, planar_errors);
    tcase_add_test(tc, missing_linear);
    tcase_add_test(tc, gguf_mode);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    test_rmtree(tmpdir);
    return rc;
}
