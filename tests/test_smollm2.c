/* test_smollm2.c: the CPU reference on the default model, SmolLM2-135M-Instruct Q4_1 GGUF (`make
 * model`), against Hugging Face transformers loading the same GGUF (fp32, TF32 off; numbers committed
 * in tests/data/hf/smollm2_* by scripts/hf_smollm2_reference.py, input ids made by duet's tokenizer):
 * hidden states and last-token logits, greedy continuations, and the summarize protocol's greedy
 * summaries of cnn_dailymail items 0-19. Also: the model's config and tensors as loaded from GGUF.
 * Skips (77) when the model is absent. */
#include "test_util.h"

#include "backend.h"
#include "error.h"
#include "engine/registry.h"
#include "eval/cnn_dailymail.h"
#include "eval/summarize.h"
#include "generate.h"
#include "gguf.h"
#include "model.h"
#include "safetensors.h"
#include "sampler.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static duet_model *model;
static duet_tokenizer *tok;
static st_file *hf;
static json_t *greedy; /* smollm2_greedy.json */

/* ref vs HF fp32, per the issue: relative L2 <= 1e-5 (the printed values are the measured ones). */
#define HF_REL_BOUND 1e-5


/* HF hidden_states[i]: [0] embeddings, [i] output of layer i-1, [L] after the final norm. */
typedef struct capture {
    int L;
    float **rows; /* [L+1] copies of the tap, all tokens */
    int64_t T, D;
} capture;

static int hidden_index(const char *name, int L)
{
    int l;
    if (!strcmp(name, "embed")) return 0;
    if (!strcmp(name, "final_norm")) return L;
    char tail[16];
    if (sscanf(name, "layers.%d.%15s", &l, tail) == 2 && !strcmp(tail, "out") && l < L - 1) return l + 1;
    return -1;
}

static void on_tap(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    capture *c = ctx;
    int i = hidden_index(name, c->L);
    if (i < 0) return;
    free(c->rows[i]);
    c->rows[i] = malloc(sizeof(float) * rows * cols);
    memcpy(c->rows[i], data, sizeof(float) * rows * cols);
    c->T = rows;
    c->D = cols;
}

static duet_backend *make_ref(int max_ctx)
{
    duet_backend_opts o = {.max_seqs = 1, .max_ctx = max_ctx, .dtype = "fp32"};
    duet_backend *b = duet_backend_create("ref", model, &o);
    ck_assert_msg(b != NULL, "ref backend: %s", duet_error());
    return b;
}

static const char *prompt_name(int i)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(greedy, "prompts"), i), "name"));
}

START_TEST(test_config_from_gguf)
{
    const duet_config *c = &model->cfg;
    ck_assert_int_eq(c->dim, 576);
    ck_assert_int_eq(c->ffn_dim, 1536);
    ck_assert_int_eq(c->n_layers, 30);
    ck_assert_int_eq(c->n_heads, 9);
    ck_assert_int_eq(c->n_kv_heads, 3);
    ck_assert_int_eq(c->head_dim, 64);
    ck_assert_int_eq(c->vocab_size, 49152);
    ck_assert_int_eq(c->max_pos, 8192);
    ck_assert_int_eq(c->tie_embeddings, 1);
    ck_assert(c->rope_theta == 100000.0f);
    ck_assert(c->norm_eps == 1e-5f);
    ck_assert_int_eq(model->embed->dtype, ST_Q8_0);
    ck_assert_int_eq(model->layers[0].wq->dtype, ST_Q4_1);
    ck_assert_int_eq(model->layers[0].attn_norm->dtype, ST_F32);
    ck_assert_ptr_eq(model->lm_head, model->embed);
}
END_TEST

/* Un-permuting q/k moves whole rows: every row of duet's q is some row of the file's, and the map is
 * the inverse of llama.cpp's permutation. */
START_TEST(test_qk_rows_unpermuted)
{
    const st_tensor *file_q = gguf_find_tensor(model->gguf, "blk.3.attn_q.weight"), *q = model->layers[3].wq;
    const st_tensor *file_k = gguf_find_tensor(model->gguf, "blk.3.attn_k.weight"), *k = model->layers[3].wk;
    ck_assert_ptr_nonnull(file_q);
    ck_assert_ptr_ne(q->data, file_q->data);
    size_t row = q->nbytes / (size_t)q->shape[0];
    int d = model->cfg.head_dim;
    for (int pass = 0; pass < 2; pass++) {
        const st_tensor *f = pass ? file_k : file_q, *t = pass ? k : q;
        int heads = pass ? model->cfg.n_kv_heads : model->cfg.n_heads;
        for (int h = 0; h < heads; h++)
            for (int r = 0; r < d; r++) {
                int j = r / (d / 2), i = r % (d / 2);
                ck_assert_msg(!memcmp((const char *)t->data + ((size_t)h * d + r) * row,
                                      (const char *)f->data + ((size_t)h * d + 2 * i + j) * row, row),
                              "head %d row %d", h, r);
            }
    }
}
END_TEST

START_TEST(test_hidden_states_match_hf)
{
    const char *p = prompt_name(_i);
    ck_assert_ptr_nonnull(p);
    char key[160];
    snprintf(key, sizeof key, "%s.ids", p);
    const st_tensor *ids_t = st_find(hf, key);
    ck_assert_ptr_nonnull(ids_t);
    const int T = (int)ids_t->numel, L = model->cfg.n_layers, V = model->cfg.vocab_size;
    const int *ids = ids_t->data;
    capture cap = {L, calloc(L + 1, sizeof(float *)), 0, 0};
    duet_backend *b = make_ref(T);
    duet_backend_set_tap(b, on_tap, &cap);
    int *pos = malloc(sizeof(int) * T), *seq = calloc(T, sizeof(int));
    for (int t = 0; t < T; t++) pos[t] = t;
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    duet_batch batch = {T, ids, pos, seq, NULL};
    ck_assert_msg(b->forward(b, &batch, logits) == 0, "%s", duet_error());
    double worst = 0;
    for (int i = 0; i <= L; i++) {
        ck_assert_ptr_nonnull(cap.rows[i]);
        snprintf(key, sizeof key, "%s.hidden.%d", p, i);
        const st_tensor *h = st_find(hf, key);
        ck_assert_ptr_nonnull(h);
        ck_assert_int_eq(h->numel, cap.D);
        double e = test_rel_l2(cap.rows[i] + (T - 1) * cap.D, h->data, cap.D);
        worst = e > worst ? e : worst;
        ck_assert_msg(e <= HF_REL_BOUND, "%s: last-token hidden_states[%d] rel_l2 %.3e > %.0e", p, i, e, HF_REL_BOUND);
        snprintf(key, sizeof key, "%s.hidden_all.%d", p, i);
        if ((h = st_find(hf, key))) { /* every token's row, for the first prompt */
            ck_assert_int_eq(h->numel, (int64_t)T * cap.D);
            e = test_rel_l2(cap.rows[i], h->data, h->numel);
            worst = e > worst ? e : worst;
            ck_assert_msg(e <= HF_REL_BOUND, "%s: hidden_states[%d] (all tokens) rel_l2 %.3e", p, i, e);
        }
    }
    snprintf(key, sizeof key, "%s.logits", p);
    const st_tensor *hl = st_find(hf, key);
    ck_assert_ptr_nonnull(hl);
    ck_assert_int_eq(hl->numel, V);
    double e = test_rel_l2(logits + (int64_t)(T - 1) * V, hl->data, V);
    printf("%-8s %3d tokens: worst hidden-state rel_l2 %.2e, last-token logits rel_l2 %.2e\n", p, T, worst, e);
    ck_assert_msg(e <= HF_REL_BOUND, "%s: logits rel_l2 %.3e > %.0e", p, e, HF_REL_BOUND);
    ck_assert_int_eq(duet_argmax(logits + (int64_t)(T - 1) * V, V), duet_argmax(hl->data, V));
    for (int i = 0; i <= L; i++) free(cap.rows[i]);
    free(cap.rows);
    free(pos);
    free(seq);
    free(logits);
    duet_backend_free(b);
}
END_TEST

/* The prompt ids the HF run used are what duet's tokenizer makes of the prompt text today. */
START_TEST(test_greedy_matches_hf)
{
    json_t *pr = json_array_get(json_object_get(greedy, "prompts"), _i);
    json_t *want = json_object_get(pr, "ids"), *pids = json_object_get(pr, "prompt_ids");
    int n = (int)json_array_size(want), np = (int)json_array_size(pids);
    ck_assert_int_gt(n, 0);
    int *prompt = malloc(sizeof(int) * np), *out = malloc(sizeof(int) * n);
    for (int i = 0; i < np; i++) prompt[i] = (int)json_integer_value(json_array_get(pids, i));
    duet_backend *b = make_ref(np + n);
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, model->cfg.vocab_size, 0.0f, 0, 1.0f, 0), 0);
    duet_gen_opts go = {.max_new = n, .eos_id = -1, .seq = 0, .sampler = &s};
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = np + n};
    duet_gen_stats st;
    ck_assert_msg(duet_generate(b, &bo, prompt, np, &go, out, &st) == 0, "%s", duet_error());
    ck_assert_int_eq(st.n_generated, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(out[i] == json_integer_value(json_array_get(want, i)), "%s token %d: got %d, HF %lld",
                      json_string_value(json_object_get(pr, "name")), i, out[i],
                      (long long)json_integer_value(json_array_get(want, i)));
    printf("%-8s greedy %d tokens equal HF's\n", json_string_value(json_object_get(pr, "name")), n);
    free(prompt);
    free(out);
    duet_sampler_free(&s);
    duet_backend_free(b);
}
END_TEST

/* summarize.py's protocol on items 0-19: duet's prompt ids equal the ones HF was given (made by duet's
 * tokenizer when the vectors were recorded), and duet's greedy summary ids equal HF's greedy ids. */
START_TEST(test_summaries_match_hf)
{
    char *path = test_src_path("tests/data/hf/smollm2_summaries.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    ck_assert_msg(root != NULL, "%s: %s", path, jerr.text);
    char *data = test_data_path("cnn_dailymail/test_100.jsonl");
    if (!data) {
        printf("cnn_dailymail data absent: summaries not checked\n");
        json_decref(root);
        free(path);
        return;
    }
    json_t *items = json_object_get(root, "items");
    int max_input = (int)json_integer_value(json_object_get(root, "max_input"));
    int max_output = (int)json_integer_value(json_object_get(root, "max_output"));
    size_t n_items = json_array_size(items), n_loaded = 0;
    cnn_item *arts = NULL;
    ck_assert_msg(cnn_load(data, n_items, &arts, &n_loaded) == 0, "%s", duet_error());
    ck_assert_uint_eq(n_loaded, n_items);
    duet_backend *b = make_ref(max_input + max_output);
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, model->cfg.vocab_size, 0.0f, 0, 1.0f, 0), 0);
    int *out = malloc(sizeof(int) * max_output), equal = 0;
    for (size_t k = 0; k < n_items; k++) {
        json_t *it = json_array_get(items, k), *in = json_object_get(it, "input_ids"), *want = json_object_get(it, "output_ids");
        ck_assert_str_eq(json_string_value(json_object_get(it, "id")), arts[k].id);
        int *ids = NULL;
        size_t n = 0;
        ck_assert_msg(summarize_prompt_ids(tok, arts[k].article, arts[k].article_len, max_input, &ids, &n) == 0, "%s",
                      duet_error());
        ck_assert_uint_eq(n, json_array_size(in));
        for (size_t i = 0; i < n; i++) ck_assert_int_eq(ids[i], json_integer_value(json_array_get(in, i)));
        duet_gen_opts go = {.max_new = max_output, .eos_id = model->cfg.eos_id, .seq = 0, .sampler = &s};
        duet_backend_opts bo = {.max_seqs = 1, .max_ctx = max_input + max_output};
        duet_gen_stats st;
        ck_assert_msg(duet_generate(b, &bo, ids, (int)n, &go, out, &st) == 0, "%s", duet_error());
        int same = st.n_generated == (int)json_array_size(want);
        for (int i = 0; same && i < st.n_generated; i++) same = out[i] == json_integer_value(json_array_get(want, i));
        ck_assert_msg(same, "item %zu (%s): duet's greedy summary differs from HF's", k, arts[k].id);
        equal += same;
        free(ids);
    }
    printf("summaries: %d of %zu items equal HF's greedy ids (max_input %d, max_output %d)\n", equal, n_items, max_input,
           max_output);
    free(out);
    duet_sampler_free(&s);
    duet_backend_free(b);
    cnn_free(arts, n_loaded);
    json_decref(root);
    free(data);
    free(path);
}
END_TEST

int main(void)
{
    char *mp = test_model_path();
    test_skip_unless(mp, "the default model (run `make model`)");
    if (!(model = duet_model_open(mp)) || !(tok = duet_model_tokenizer(model))) {
        fprintf(stderr, "cannot open %s: %s\n", mp, duet_error());
        return TEST_EXIT_HARD;
    }
    char *hf_path = test_src_path("tests/data/hf/smollm2_states.safetensors");
    char *g_path = test_src_path("tests/data/hf/smollm2_greedy.json");
    json_error_t jerr;
    if (!(hf = st_open(hf_path)) || !(greedy = json_load_file(g_path, 0, &jerr))) {
        fprintf(stderr, "%s / %s: %s\n", hf_path, g_path, hf ? jerr.text : duet_error());
        return TEST_EXIT_HARD;
    }
    int n_prompts = (int)json_array_size(json_object_get(greedy, "prompts"));
    Suite *s = suite_create("smollm2");
    TCase *tc = tcase_create("SmolLM2-135M-Instruct vs HF");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, test_config_from_gguf);
    tcase_add_test(tc, test_qk_rows_unpermuted);
    tcase_add_loop_test(tc, test_hidden_states_match_hf, 0, n_prompts);
    tcase_add_loop_test(tc, test_greedy_matches_hf, 0, n_prompts);
    tcase_add_test(tc, test_summaries_match_hf);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    st_close(hf);
    json_decref(greedy);
    duet_tokenizer_free(tok);
    duet_model_close(model);
    free(hf_path);
    free(g_path);
    free(mp);
    return rc;
}
