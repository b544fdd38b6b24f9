/* test_ref.c: the CPU reference on the real stories260K model against Hugging Face transformers (fp32,
 * numbers committed in tests/data/hf by scripts/hf_reference.py), and against itself: prefill vs
 * one-token decode, packed multi-sequence batches vs single sequences, greedy ids vs HF generate.
 * Skips (77) without ../shared/data/stories260K. */
#include "test_util.h"

#include "backend.h"
#include "error.h"
#include "engine/registry.h"
#include "generate.h"
#include "model.h"
#include "safetensors.h"
#include "sampler.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static duet_model *model;
static st_file *hf;
static char *model_dir;

/* Bound for ref vs HF fp32, per the issue: relative L2 error <= 1e-5. Measured: see the test output
 * (printed per tensor); ~1e-7 on stories260K. */
#define HF_REL_BOUND 1e-5
/* Prefill vs decode and packed vs single: the same math in another order (sgemm blocking differs with
 * T), so only fp32 rounding differs. Measured ~1e-7. */
#define SELF_REL_BOUND 1e-5


/* Captures the taps named in `want` (copies). */
typedef struct capture {
    const char **names;
    int n;
    float **data;
    int64_t *rows, *cols;
} capture;

static void on_tap(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    capture *c = ctx;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) {
            free(c->data[i]);
            c->data[i] = malloc(sizeof(float) * rows * cols);
            memcpy(c->data[i], data, sizeof(float) * rows * cols);
            c->rows[i] = rows;
            c->cols[i] = cols;
        }
}

static duet_backend *make_ref(int max_seqs)
{
    duet_backend_opts o = {.max_seqs = max_seqs, .max_ctx = model->cfg.max_pos, .dtype = "fp32"};
    duet_backend *b = duet_backend_create("ref", model, &o);
    ck_assert_msg(b != NULL, "ref backend: %s", duet_error());
    return b;
}

static const char *prompts[] = {"bos", "story", "ids13"};

START_TEST(test_hidden_states_match_hf)
{
    const char *p = prompts[_i];
    char key[128];
    snprintf(key, sizeof key, "%s.ids", p);
    const st_tensor *ids_t = st_find(hf, key);
    ck_assert_ptr_nonnull(ids_t);
    int T = (int)ids_t->numel, L = model->cfg.n_layers, V = model->cfg.vocab_size;
    const int *ids = ids_t->data;
    /* HF hidden_states[0] = embeddings, [i+1] = output of layer i, except [L] which HF takes after the
     * final norm; so [L] is compared with the final_norm tap. */
    const char **names = calloc(L + 2, sizeof *names);
    char (*buf)[64] = calloc(L + 2, 64);
    names[0] = "embed";
    for (int l = 0; l < L - 1; l++) {
        snprintf(buf[l + 1], 64, "layers.%d.out", l);
        names[l + 1] = buf[l + 1];
    }
    names[L] = "final_norm";
    capture cap = {names, L + 1, calloc(L + 1, sizeof(float *)), calloc(L + 1, 8), calloc(L + 1, 8)};
    duet_backend *b = make_ref(1);
    duet_backend_set_tap(b, on_tap, &cap);
    int *pos = malloc(sizeof(int) * T), *seq = calloc(T, sizeof(int));
    for (int t = 0; t < T; t++) pos[t] = t;
    float *logits = malloc(sizeof(float) * T * V);
    duet_batch batch = {T, ids, pos, seq, NULL};
    ck_assert_msg(b->forward(b, &batch, logits) == 0, "%s", duet_error());
    for (int i = 0; i <= L; i++) {
        snprintf(key, sizeof key, "%s.hidden.%d", p, i);
        const st_tensor *h = st_find(hf, key);
        ck_assert_ptr_nonnull(h);
        ck_assert_ptr_nonnull(cap.data[i]);
        ck_assert_int_eq(h->numel, cap.rows[i] * cap.cols[i]);
        double e = test_rel_l2(cap.data[i], h->data, h->numel);
        printf("%-6s hidden_states[%d] (%s) rel_l2 %.2e\n", p, i, names[i], e);
        ck_assert_msg(e <= HF_REL_BOUND, "%s: hidden_states[%d] (%s) rel_l2 %.3e > %.0e", p, i, names[i], e,
                      HF_REL_BOUND);
    }
    snprintf(key, sizeof key, "%s.logits", p);
    const st_tensor *hl = st_find(hf, key);
    ck_assert_int_eq(hl->numel, (int64_t)T * V);
    double e = test_rel_l2(logits, hl->data, hl->numel);
    printf("%-6s logits rel_l2 %.2e\n", p, e);
    ck_assert_msg(e <= HF_REL_BOUND, "%s: logits rel_l2 %.3e > %.0e", p, e, HF_REL_BOUND);
    for (int t = 0; t < T; t++)
        ck_assert_int_eq(duet_argmax(logits + (int64_t)t * V, V), duet_argmax((const float *)hl->data + (int64_t)t * V, V));
    for (int i = 0; i <= L; i++) free(cap.data[i]);
    free(cap.data);
    free(cap.rows);
    free(cap.cols);
    free(names);
    free(buf);
    free(pos);
    free(seq);
    free(logits);
    duet_backend_free(b);
}
END_TEST

/* The logits of a token are the same whether it came in the prompt (prefill) or one step at a time. */
START_TEST(test_prefill_equals_decode)
{
    const st_tensor *ids_t = st_find(hf, "ids13.ids");
    int T = (int)ids_t->numel, V = model->cfg.vocab_size;
    const int *ids = ids_t->data;
    duet_backend *pre = make_ref(1), *dec = make_ref(1);
    int *pos = malloc(sizeof(int) * T), *seq = calloc(T, sizeof(int));
    for (int t = 0; t < T; t++) pos[t] = t;
    float *lp = malloc(sizeof(float) * T * V), *ld = malloc(sizeof(float) * T * V);
    duet_batch all = {T, ids, pos, seq, NULL};
    ck_assert_int_eq(pre->forward(pre, &all, lp), 0);
    for (int t = 0; t < T; t++) {
        duet_batch one = {1, ids + t, pos + t, seq, NULL};
        ck_assert_int_eq(dec->forward(dec, &one, ld + (int64_t)t * V), 0);
    }
    double e = test_rel_l2(ld, lp, (int64_t)T * V);
    printf("prefill vs decode logits rel_l2 %.2e\n", e);
    ck_assert_msg(e <= SELF_REL_BOUND, "prefill vs decode rel_l2 %.3e", e);
    free(pos);
    free(seq);
    free(lp);
    free(ld);
    duet_backend_free(pre);
    duet_backend_free(dec);
}
END_TEST

/* Two sequences of different lengths packed in one batch (no padding), then a decode step of both in
 * one batch, give the same logits as each run alone. */
START_TEST(test_packed_batch_equals_single)
{
    const st_tensor *a_t = st_find(hf, "ids13.ids"), *b_t = st_find(hf, "story.ids");
    const int *a = a_t->data, *bb = b_t->data;
    int na = (int)a_t->numel, nb = (int)b_t->numel, V = model->cfg.vocab_size, T = na + nb;
    int *tok = malloc(sizeof(int) * T), *pos = malloc(sizeof(int) * T), *seq = malloc(sizeof(int) * T);
    for (int t = 0; t < na; t++) tok[t] = a[t], pos[t] = t, seq[t] = 1; /* slot 1 first: order is free */
    for (int t = 0; t < nb; t++) tok[na + t] = bb[t], pos[na + t] = t, seq[na + t] = 0;
    float *lpack = malloc(sizeof(float) * T * V), *lsingle = malloc(sizeof(float) * T * V);
    duet_backend *packed = make_ref(2), *single = make_ref(1);
    duet_batch pb = {T, tok, pos, seq, NULL};
    ck_assert_int_eq(packed->forward(packed, &pb, lpack), 0);
    int zero[64] = {0};
    duet_batch sa = {na, tok, pos, zero, NULL};
    ck_assert_int_eq(single->forward(single, &sa, lsingle), 0);
    duet_backend_free(single);
    single = make_ref(1);
    duet_batch sb = {nb, tok + na, pos + na, zero, NULL};
    ck_assert_int_eq(single->forward(single, &sb, lsingle + (int64_t)na * V), 0);
    double e = test_rel_l2(lpack, lsingle, (int64_t)T * V);
    printf("packed vs single logits rel_l2 %.2e\n", e);
    ck_assert_msg(e <= SELF_REL_BOUND, "packed vs single rel_l2 %.3e", e);
    /* one decode step of both sequences in one batch, only logits of the second asked for */
    int dtok[2] = {5, 7}, dpos[2] = {na, nb}, dseq[2] = {1, 0};
    unsigned char want[2] = {0, 1};
    duet_batch step = {2, dtok, dpos, dseq, want};
    float *lstep = malloc(sizeof(float) * V), *lone = malloc(sizeof(float) * V);
    ck_assert_int_eq(packed->forward(packed, &step, lstep), 0);
    duet_batch one = {1, dtok + 1, dpos + 1, zero, NULL};
    ck_assert_int_eq(single->forward(single, &one, lone), 0);
    e = test_rel_l2(lstep, lone, V);
    ck_assert_msg(e <= SELF_REL_BOUND, "packed decode step vs single rel_l2 %.3e", e);
    free(tok);
    free(pos);
    free(seq);
    free(lpack);
    free(lsingle);
    free(lstep);
    free(lone);
    duet_backend_free(packed);
    duet_backend_free(single);
}
END_TEST

/* Greedy generation from BOS gives the ids HF's generate() gives (199 new tokens). */
START_TEST(test_greedy_matches_hf_generate)
{
    char *path = test_src_path("tests/data/hf/stories260K_greedy.json");
    json_error_t jerr;
    json_t *g = json_load_file(path, 0, &jerr);
    ck_assert_msg(g != NULL, "%s: %s", path, jerr.text);
    json_t *want = json_object_get(g, "ids");
    int n = (int)json_array_size(want);
    ck_assert_int_eq(n, 199);
    duet_backend *b = make_ref(1);
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, model->cfg.vocab_size, 0.0f, 0, 1.0f, 0), 0);
    duet_gen_opts go = {.max_new = n, .eos_id = -1, .seq = 0, .sampler = &s};
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = model->cfg.max_pos};
    int bos = 1, *out = malloc(sizeof(int) * n);
    duet_gen_stats st;
    ck_assert_msg(duet_generate(b, &bo, &bos, 1, &go, out, &st) == 0, "%s", duet_error());
    ck_assert_int_eq(st.n_generated, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(out[i] == json_integer_value(json_array_get(want, i)), "token %d: got %d, HF %lld", i, out[i],
                      (long long)json_integer_value(json_array_get(want, i)));
    free(out);
    duet_sampler_free(&s);
    duet_backend_free(b);
    json_decref(g);
    free(path);
}
END_TEST

/* A prompt longer than the context is an error naming both sizes, not a crash. */
START_TEST(test_prompt_longer_than_context)
{
    duet_backend *b = make_ref(1);
    int n = model->cfg.max_pos + 1;
    int *ids = calloc(n, sizeof(int)), out[4];
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, model->cfg.vocab_size, 0.0f, 0, 1.0f, 0), 0);
    duet_gen_opts go = {.max_new = 4, .eos_id = -1, .sampler = &s};
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = model->cfg.max_pos};
    duet_gen_stats st;
    ck_assert_int_eq(duet_generate(b, &bo, ids, n, &go, out, &st), -1);
    ck_assert_msg(strstr(duet_error(), "513 tokens") && strstr(duet_error(), "512"), "message: %s", duet_error());
    /* and a batch position outside the cache is rejected by the backend itself */
    int pos = model->cfg.max_pos, seq = 0, tok = 1;
    float *logits = malloc(sizeof(float) * model->cfg.vocab_size);
    duet_batch bad = {1, &tok, &pos, &seq, NULL};
    ck_assert_int_eq(b->forward(b, &bad, logits), -1);
    ck_assert_msg(strstr(duet_error(), "position 512"), "message: %s", duet_error());
    free(logits);
    free(ids);
    duet_sampler_free(&s);
    duet_backend_free(b);
}
END_TEST

int main(void)
{
    model_dir = test_data_path("stories260K");
    test_skip_unless(model_dir, "stories260K model");
    model = duet_model_open(model_dir);
    if (!model) {
        fprintf(stderr, "cannot open %s: %s\n", model_dir, duet_error());
        return TEST_EXIT_HARD;
    }
    char *hf_path = test_src_path("tests/data/hf/stories260K_states.safetensors");
    hf = st_open(hf_path);
    if (!hf) {
        fprintf(stderr, "%s\n", duet_error());
        return TEST_EXIT_HARD;
    }
    Suite *s = suite_create("ref");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_hidden_states_match_hf, 0, 3);
    tcase_add_test(tc, test_prefill_equals_decode);
    tcase_add_test(tc, test_packed_batch_equals_single);
    tcase_add_test(tc, test_greedy_matches_hf_generate);
    tcase_add_test(tc, test_prompt_longer_than_context);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    st_close(hf);
    duet_model_close(model);
    free(hf_path);
    free(model_dir);
    return rc;
}
