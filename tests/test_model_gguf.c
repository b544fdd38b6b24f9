/* test_model_gguf.c: opening a llama model from GGUF (common/model_gguf.c) on small files this test
 * writes with the GGUF writer: the config the llama.* metadata gives, and every way the metadata or the
 * tensors can fail to describe a llama model, each an error naming the key or tensor (missing
 * metadata, other architectures, rope scaling, partial RoPE, heads that do not divide the hidden
 * size, q/k shapes that do not fit the head counts, a tensor of a layer the model does not have, a
 * non-weight tensor type). Always runs (no data needed). */
#include "test_util.h"

#include "error.h"
#include "gguf.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[128];
static void setup(void) { ck_assert_int_eq(test_tmpdir(tmpdir, sizeof tmpdir, "model_gguf"), 0); }
static void teardown(void) { test_rmtree(tmpdir); }

/* The tiny model: D 64, F 96, L 2, H 4, Hk 2, d 16, V 40; F32 weights. */
enum { D = 64, F = 96, L = 2, H = 4, HK = 2, HD = 16, V = 40 };

/* What to break in the file the builder writes. */
typedef struct spoil {
    const char *drop_key;      /* leave this metadata key out */
    const char *arch;          /* general.architecture (default llama) */
    const char *rope_scaling;  /* llama.rope.scaling.type, NULL: absent */
    int heads;                 /* head_count (default H) */
    int rope_dim;              /* rope.dimension_count (default HD) */
    int q_rows;                /* rows of blk.*.attn_q (default H*HD) */
    int extra_layer;           /* add blk.L.attn_norm.weight */
    int output;                /* write output.weight (untied) */
    int norm_as_i32;           /* attn_norm of layer 0 as I32 */
} spoil;

static void set_u32(gguf_writer *w, const spoil *sp, const char *key, uint32_t v)
{
    if (sp->drop_key && !strcmp(sp->drop_key, key)) return;
    ck_assert_int_eq(gguf_writer_set_u32(w, key, v), 0);
}

static void add(gguf_writer *w, const char *name, int ndim, int64_t d0, int64_t d1, float seed)
{
    int64_t shape[2] = {d0, d1}, n = ndim == 1 ? d0 : d0 * d1;
    float *x = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] = seed + 0.001f * (float)(i % 97);
    ck_assert_msg(gguf_writer_add_tensor(w, name, ST_F32, ndim, shape, x) == 0, "%s", duet_error());
    free(x);
}

static char *write_model(const char *file, const spoil *sp)
{
    gguf_writer *w = gguf_writer_new();
    const char *arch = sp->arch ? sp->arch : "llama";
    if (!(sp->drop_key && !strcmp(sp->drop_key, "general.architecture")))
        ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", arch, strlen(arch)), 0);
    int heads = sp->heads ? sp->heads : H;
    set_u32(w, sp, "llama.embedding_length", D);
    set_u32(w, sp, "llama.feed_forward_length", F);
    set_u32(w, sp, "llama.block_count", L);
    set_u32(w, sp, "llama.attention.head_count", heads);
    set_u32(w, sp, "llama.attention.head_count_kv", HK);
    set_u32(w, sp, "llama.context_length", 128);
    set_u32(w, sp, "llama.rope.dimension_count", sp->rope_dim ? sp->rope_dim : HD);
    set_u32(w, sp, "llama.vocab_size", V);
    if (!(sp->drop_key && !strcmp(sp->drop_key, "llama.attention.layer_norm_rms_epsilon")))
        ck_assert_int_eq(gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f), 0);
    ck_assert_int_eq(gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f), 0);
    if (sp->rope_scaling)
        ck_assert_int_eq(gguf_writer_set_str(w, "llama.rope.scaling.type", sp->rope_scaling, strlen(sp->rope_scaling)), 0);
    add(w, "token_embd.weight", 2, V, D, 0.1f);
    add(w, "output_norm.weight", 1, D, 0, 1.0f);
    if (sp->output) add(w, "output.weight", 2, V, D, 0.2f);
    for (int l = 0; l < L + (sp->extra_layer ? 1 : 0); l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
        if (l == 0 && sp->norm_as_i32) {
            int32_t v[D] = {0};
            int64_t shape[1] = {D};
            ck_assert_int_eq(gguf_writer_add_tensor(w, n, ST_I32, 1, shape, v), 0);
        } else {
            add(w, n, 1, D, 0, 1.0f);
        }
        if (l == L) break; /* the extra layer holds only its norm */
        snprintf(n, sizeof n, "blk.%d.attn_q.weight", l);
        add(w, n, 2, sp->q_rows ? sp->q_rows : H * HD, D, 0.3f);
        snprintf(n, sizeof n, "blk.%d.attn_k.weight", l);
        add(w, n, 2, HK * HD, D, 0.4f);
        snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
        add(w, n, 2, HK * HD, D, 0.5f);
        snprintf(n, sizeof n, "blk.%d.attn_output.weight", l);
        add(w, n, 2, D, H * HD, 0.6f);
        snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", l);
        add(w, n, 1, D, 0, 1.0f);
        snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", l);
        add(w, n, 2, F, D, 0.7f);
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
        add(w, n, 2, F, D, 0.8f);
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
        add(w, n, 2, D, F, 0.9f);
    }
    char *path = malloc(256);
    snprintf(path, 256, "%s/%s", tmpdir, file);
    ck_assert_msg(gguf_writer_save(w, path) == 0, "%s", duet_error());
    gguf_writer_free(w);
    return path;
}

/* Opening must fail with a message holding every string in want (NULL-terminated). */
static void expect_error(const spoil *sp, const char *const *want)
{
    char *path = write_model("bad.gguf", sp);
    duet_model *m = duet_model_open(path);
    ck_assert_msg(m == NULL, "opened a model that should have been refused");
    for (int i = 0; want[i]; i++)
        ck_assert_msg(strstr(duet_error(), want[i]), "message '%s' lacks '%s'", duet_error(), want[i]);
    ck_assert_msg(strstr(duet_error(), "bad.gguf"), "message '%s' does not name the file", duet_error());
    free(path);
}

START_TEST(test_good_model)
{
    char *path = write_model("good.gguf", &(spoil){0});
    duet_model *m = duet_model_open(path);
    ck_assert_msg(m != NULL, "%s", duet_error());
    const duet_config *c = &m->cfg;
    ck_assert_int_eq(c->dim, D);
    ck_assert_int_eq(c->ffn_dim, F);
    ck_assert_int_eq(c->n_layers, L);
    ck_assert_int_eq(c->n_heads, H);
    ck_assert_int_eq(c->n_kv_heads, HK);
    ck_assert_int_eq(c->head_dim, HD);
    ck_assert_int_eq(c->vocab_size, V);
    ck_assert_int_eq(c->max_pos, 128);
    ck_assert(c->tie_embeddings);
    ck_assert_ptr_eq(m->lm_head, m->embed);
    ck_assert_int_eq(m->layers[1].w_down->shape[0], D);
    duet_model_close(m);
    free(path);
    path = write_model("untied.gguf", &(spoil){.output = 1});
    ck_assert_ptr_nonnull(m = duet_model_open(path));
    ck_assert(!m->cfg.tie_embeddings);
    ck_assert_ptr_ne(m->lm_head, m->embed);
    duet_model_close(m);
    free(path);
}
END_TEST

START_TEST(test_missing_metadata)
{
    static const char *keys[] = {"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                                 "llama.attention.head_count", "llama.context_length",
                                 "llama.attention.layer_norm_rms_epsilon", "general.architecture"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        expect_error(&(spoil){.drop_key = keys[i]}, (const char *[]){"missing required metadata", keys[i], NULL});
}
END_TEST

START_TEST(test_refused_by_name)
{
    expect_error(&(spoil){.arch = "qwen2"}, (const char *[]){"unsupported architecture 'qwen2'", NULL});
    expect_error(&(spoil){.rope_scaling = "yarn"}, (const char *[]){"rope scaling type 'yarn'", NULL});
    expect_error(&(spoil){.rope_dim = 8}, (const char *[]){"rope.dimension_count 8", "partial RoPE", NULL});
    expect_error(&(spoil){.heads = 5}, (const char *[]){"embedding_length 64 is not divisible", "head_count 5", NULL});
}
END_TEST

START_TEST(test_tensor_errors)
{
    /* q with rows for 3 heads of 16 while the metadata says 4 */
    expect_error(&(spoil){.q_rows = 48}, (const char *[]){"blk.0.attn_q.weight", "48", "64", NULL});
    expect_error(&(spoil){.extra_layer = 1}, (const char *[]){"blk.2.attn_norm.weight", "block_count 2", NULL});
    expect_error(&(spoil){.norm_as_i32 = 1}, (const char *[]){"blk.0.attn_norm.weight", "I32", NULL});
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_gguf");
    TCase *tc = tcase_create("gguf models");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_good_model);
    tcase_add_test(tc, test_missing_metadata);
    tcase_add_test(tc, test_refused_by_name);
    tcase_add_test(tc, test_tensor_errors);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
