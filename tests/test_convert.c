/* test_convert.c: `duet convert` (common/convert.h) and GGUF "llama" tokenizers. Built twice:
 *  - tests/test_convert: stories260K HF -> GGUF -> duet gives the same logits bit for bit as the HF
 *    folder (ref backend), the converted GGUF's tokenizer gives the committed vectors' ids
 *    (tests/data/tokenizer/stories260K.json), the Llama-2 tokenizer.json carried as GGUF "llama"
 *    metadata does too (llama2.json), HF -> GGUF -> HF gives the weights back bit for bit, --type
 *    f16, a GGUF with SentencePiece's own scores (tests/data/gguf/stories260K_spm.gguf, made by
 *    scripts/make_spm_gguf.py from tokenizer.model as llama.cpp writes it), and the errors;
 *    exits 77 without the shared data.
 *  - tests/test_convert_smollm2 (-DCONVERT_SMOLLM2): the default model's GGUF (DUET_MODEL) -> HF
 *    folder -> duet gives the same logits bit for bit as the GGUF, and its tokenizer.json the
 *    committed SmolLM2 vectors' ids (tests/data/tokenizer/smollm2_bpe.jsonl); exits 77 without it. */
#include "test_util.h"
#include "backend.h"
#include "convert.h"
#include "error.h"
#include "engine/registry.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"
#include "tokenizer_export.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[256];

static char *tmp_path(const char *name)
{
    char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

/* The logits of every position of `ids` with the ref backend; caller frees. */
static float *run_logits(const duet_model *m, const int *ids, int T)
{
    duet_backend_opts o = {.max_seqs = 1, .max_ctx = T, .dtype = "fp32", .threads = 1};
    duet_backend *b = duet_backend_create("ref", m, &o);
    ck_assert_msg(b != NULL, "ref backend: %s", duet_error());
    int *pos = malloc(sizeof(int) * T), *seq = calloc(T, sizeof(int));
    for (int t = 0; t < T; t++) pos[t] = t;
    float *logits = malloc(sizeof(float) * (size_t)T * m->cfg.vocab_size);
    duet_batch batch = {T, ids, pos, seq, NULL};
    ck_assert_msg(b->forward(b, &batch, logits) == 0, "%s", duet_error());
    duet_backend_free(b);
    free(pos);
    free(seq);
    return logits;
}

/* Both models run `prompt` (tokenized by a's tokenizer; b's must give the same ids): logits equal
 * byte for byte. */
static void same_logits(const char *a_path, const char *b_path, const char *prompt)
{
    duet_model *a = duet_model_open(a_path), *b = duet_model_open(b_path);
    ck_assert_msg(a && b, "open: %s", duet_error());
    duet_tokenizer *ta = duet_model_tokenizer(a), *tb = duet_model_tokenizer(b);
    ck_assert_msg(ta && tb, "tokenizer: %s", duet_error());
    int *ia, *ib;
    size_t na, nb;
    ck_assert(duet_tokenizer_encode_opts(ta, prompt, strlen(prompt), 1, 0, &ia, &na) == 0);
    ck_assert(duet_tokenizer_encode_opts(tb, prompt, strlen(prompt), 1, 0, &ib, &nb) == 0);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(na >= 4, "prompt of %zu tokens", na);
    ck_assert(!memcmp(ia, ib, na * sizeof *ia));
    ck_assert_int_eq(a->cfg.vocab_size, b->cfg.vocab_size);
    float *la = run_logits(a, ia, (int)na), *lb = run_logits(b, ib, (int)nb);
    size_t n = na * (size_t)a->cfg.vocab_size, diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&la[i], &lb[i], sizeof(float)) != 0;
    printf("%s vs %s: %zu tokens, %zu logits, %zu differ\n", a_path, b_path, na, n, diff);
    ck_assert_msg(diff == 0 && !memcmp(la, lb, n * sizeof(float)), "%zu of %zu logits differ", diff, n);
    free(la), free(lb), free(ia), free(ib);
    duet_tokenizer_free(ta), duet_tokenizer_free(tb);
    duet_model_close(a), duet_model_close(b);
}

static int *json_ids(json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) ids[i] = (int)json_integer_value(json_array_get(a, i));
    return ids;
}

/* One vector case: encode (add_special, parse_special) gives want_ids; decode of decode_ids gives
 * want_text (skip_special). Returns 1 on a mismatch (printed). */
static int check_case(const duet_tokenizer *t, const char *label, json_t *text, int add_special, int parse_special,
                      json_t *want_ids)
{
    int *ids;
    size_t n, wn;
    ck_assert(duet_tokenizer_encode_opts(t, json_string_value(text), json_string_length(text), add_special,
                                         parse_special, &ids, &n) == 0);
    int *w = json_ids(want_ids, &wn);
    int bad = n != wn || memcmp(ids, w, n * sizeof *ids);
    if (bad) fprintf(stderr, "%s: \"%.50s\" (add %d, parse %d): ids differ\n", label, json_string_value(text), add_special, parse_special);
    free(ids), free(w);
    return bad;
}

static int check_decode(const duet_tokenizer *t, const char *label, json_t *ids_j, int skip, json_t *want)
{
    size_t n, len;
    int *ids = json_ids(ids_j, &n);
    char *s;
    ck_assert_msg(duet_tokenizer_decode(t, ids, n, skip, &s, &len) == 0, "%s", duet_error());
    int bad = len != json_string_length(want) || memcmp(s, json_string_value(want), len);
    if (bad) fprintf(stderr, "%s: decode(skip %d) \"%s\" != \"%s\"\n", label, skip, s, json_string_value(want));
    free(s), free(ids);
    return bad;
}

static const duet_convert_opts quiet = {.type = -1};

#ifndef CONVERT_SMOLLM2
/* Vectors of scripts/make_tokenizer_vectors.py (stories260K.json, llama2.json): HF's default
 * encode (special tokens in the text parsed), with and without BOS, and decode both ways. */
static int check_spm_vectors(const duet_tokenizer *t, const char *file)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/tokenizer/%s", file);
    char *path = test_src_path(rel);
    json_t *v = json_load_file(path, JSON_ALLOW_NUL, NULL);
    ck_assert_msg(v != NULL, "%s", path);
    json_t *cases = json_object_get(v, "cases");
    ck_assert(json_array_size(cases) > 0);
    int bad = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i), *text = json_object_get(c, "text");
        bad += check_case(t, file, text, 0, 1, json_object_get(c, "ids"));
        bad += check_case(t, file, text, 1, 1, json_object_get(c, "ids_special"));
        bad += check_decode(t, file, json_object_get(c, "ids_special"), 1, json_object_get(c, "decoded"));
        bad += check_decode(t, file, json_object_get(c, "ids_special"), 0, json_object_get(c, "decoded_special"));
    }
    printf("%s: %zu cases, %d mismatches\n", file, json_array_size(cases), bad);
    json_decref(v);
    free(path);
    return bad;
}

/* ---- stories260K and the Llama-2 tokenizer (shared data) ------------------------------------ */

static char *stories;     /* the HF folder */
static char *stories_gguf; /* converted once, in the fixture */

/* Check runs each test in its own process: the first to need the file writes it. */
static void convert_once(void)
{
    struct stat sb;
    if (!stories_gguf) stories_gguf = tmp_path("stories260K.gguf");
    if (stat(stories_gguf, &sb) == 0) return;
    ck_assert_msg(duet_convert(stories, stories_gguf, &quiet) == 0, "%s", duet_error());
}

START_TEST(stories_logits)
{
    convert_once();
    same_logits(stories, stories_gguf, "Once upon a time, there was a little girl named Lily.");
    /* the GGUF is in llama.cpp's layout: tied, so no output.weight */
    gguf_file *f = gguf_open(stories_gguf);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_null(gguf_find_tensor(f, "output.weight"));
    ck_assert_ptr_nonnull(gguf_find_tensor(f, "blk.4.ffn_down.weight"));
    ck_assert_int_eq(gguf_n_tensors(f), 2 + 9 * 5);
    gguf_str model;
    ck_assert_int_eq(gguf_get_str(f, "tokenizer.ggml.model", &model), 0);
    ck_assert(model.len == 5 && !memcmp(model.s, "llama", 5));
    gguf_close(f);
}
END_TEST

START_TEST(stories_tokenizer)
{
    convert_once();
    duet_tokenizer *t = duet_tokenizer_load_gguf(stories_gguf), *j = duet_tokenizer_load(stories);
    ck_assert_msg(t && j, "%s", duet_error());
    char why[512];
    ck_assert_msg(duet_tokenizer_compare(j, t, why, sizeof why) == 0, "%s", why);
    ck_assert_int_eq(check_spm_vectors(t, "stories260K.json"), 0);
    duet_tokenizer_free(t), duet_tokenizer_free(j);
}
END_TEST

/* The Llama-2 tokenizer.json (no model) as GGUF "llama" metadata, loaded back. */
START_TEST(llama2_tokenizer)
{
    char *tj = test_data_path("llama2-tokenizer/tokenizer.json"), *out = tmp_path("llama2_tok.gguf");
    duet_tokenizer *j = duet_tokenizer_load(tj);
    ck_assert_msg(j != NULL, "%s", duet_error());
    gguf_writer *w = gguf_writer_new();
    ck_assert_msg(duet_tokenizer_to_gguf(j, w, tj) == 0, "%s", duet_error());
    ck_assert_msg(gguf_writer_save(w, out) == 0, "%s", duet_error());
    gguf_writer_free(w);
    duet_tokenizer *t = duet_tokenizer_load_gguf(out);
    ck_assert_msg(t != NULL, "%s", duet_error());
    char why[512];
    ck_assert_msg(duet_tokenizer_compare(j, t, why, sizeof why) == 0, "%s", why);
    int *pairs, n;
    ck_assert_int_eq(duet_tokenizer_merges(t, &pairs, &n), 0);
    ck_assert_int_eq(n, 61249); /* tokenizer.json's merges, rebuilt from the scores */
    free(pairs);
    ck_assert_int_eq(check_spm_vectors(t, "llama2.json"), 0);
    duet_tokenizer_free(t), duet_tokenizer_free(j);
    free(tj), free(out);
}
END_TEST

/* SentencePiece's own scores (as llama.cpp's converter writes them from tokenizer.model) rebuild the
 * tokenizer.json's merges too. */
START_TEST(spm_scores_fixture)
{
    char *fx = test_src_path("tests/data/gguf/stories260K_spm.gguf");
    duet_tokenizer *t = duet_tokenizer_load_gguf(fx), *j = duet_tokenizer_load(stories);
    ck_assert_msg(t && j, "%s", duet_error());
    char why[512];
    ck_assert_msg(duet_tokenizer_compare(j, t, why, sizeof why) == 0, "%s", why);
    ck_assert_int_eq(check_spm_vectors(t, "stories260K.json"), 0);
    duet_tokenizer_free(t), duet_tokenizer_free(j);
    free(fx);
}
END_TEST

/* HF -> GGUF -> HF: every weight back bit for bit (F32 stays F32), the config too. */
START_TEST(round_trip)
{
    convert_once();
    char *hf = tmp_path("stories_back");
    ck_assert_msg(duet_convert(stories_gguf, hf, &quiet) == 0, "%s", duet_error());
    duet_model *a = duet_model_open(stories), *b = duet_model_open(hf);
    ck_assert_msg(a && b, "%s", duet_error());
    ck_assert_int_eq(b->cfg.tie_embeddings, 1);
    ck_assert_ptr_null(st_set_find(b->st, "lm_head.weight"));
    int n = 0;
    for (int f = 0; f < st_set_nfiles(a->st); f++)
        for (int i = 0; i < st_count(st_set_file(a->st, f)); i++) {
            const st_tensor *x = st_at(st_set_file(a->st, f), i), *y = st_set_find(b->st, x->name);
            ck_assert_msg(y != NULL, "%s missing", x->name);
            ck_assert_int_eq(x->dtype, y->dtype);
            ck_assert_msg(x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes), "%s differs", x->name);
            n++;
        }
    ck_assert_int_eq(n, 2 + 9 * 5);
    duet_model_close(a), duet_model_close(b);
    free(hf);
}
END_TEST

START_TEST(type_f16)
{
    char *out = tmp_path("stories_f16.gguf");
    duet_convert_opts o = {.type = ST_F16};
    ck_assert_msg(duet_convert(stories, out, &o) == 0, "%s", duet_error());
    duet_model *a = duet_model_open(stories), *b = duet_model_open(out);
    ck_assert_msg(a && b, "%s", duet_error());
    ck_assert_int_eq(b->embed->dtype, ST_F16);
    ck_assert_int_eq(b->layers[0].wq->dtype, ST_F16);
    ck_assert_int_eq(b->final_norm->dtype, ST_F32); /* norms stay F32, as llama.cpp keeps them */
    ck_assert(!memcmp(b->final_norm->data, a->final_norm->data, a->final_norm->nbytes));
    const float *x = a->embed->data;
    const uint16_t *h = b->embed->data;
    for (int64_t i = 0; i < a->embed->numel; i++) ck_assert_uint_eq(h[i], duet_f32_to_f16(x[i]));
    /* q and k rows come back in HF order (permuted in the file, un-permuted on load) */
    for (int l = 0; l < a->cfg.n_layers; l++) {
        const st_tensor *qa[2] = {a->layers[l].wq, a->layers[l].wk}, *qb[2] = {b->layers[l].wq, b->layers[l].wk};
        for (int k = 0; k < 2; k++) {
            const float *q = qa[k]->data;
            const uint16_t *qh = qb[k]->data;
            for (int64_t i = 0; i < qa[k]->numel; i++) ck_assert_uint_eq(qh[i], duet_f32_to_f16(q[i]));
        }
    }
    duet_model_close(a), duet_model_close(b);
    free(out);
}
END_TEST

START_TEST(errors)
{
    convert_once();
    duet_convert_opts o = {.type = ST_Q4_1};
    char *out = tmp_path("x.gguf");
    ck_assert_int_eq(duet_convert(stories, out, &o), -1);
    ck_assert_msg(strstr(duet_error(), "F32, F16 or BF16"), "%s", duet_error());
    /* an existing output: refused without force, replaced with it */
    ck_assert_int_eq(duet_convert(stories, stories_gguf, &quiet), -1);
    ck_assert_msg(strstr(duet_error(), "already exists") && strstr(duet_error(), "--force"), "%s", duet_error());
    o = (duet_convert_opts){.type = -1, .force = 1};
    ck_assert_msg(duet_convert(stories, stories_gguf, &o) == 0, "%s", duet_error());
    /* not a model: a text file, a folder without config.json, nothing */
    char *txt = tmp_path("notes.txt"), *empty = tmp_path("empty");
    FILE *f = fopen(txt, "w");
    fputs("hello\n", f);
    fclose(f);
    mkdir(empty, 0777);
    ck_assert_int_eq(duet_convert(txt, out, &quiet), -1);
    ck_assert_msg(strstr(duet_error(), "not a model") && strstr(duet_error(), "notes.txt"), "%s", duet_error());
    ck_assert_int_eq(duet_convert(empty, out, &quiet), -1);
    ck_assert_msg(strstr(duet_error(), "not a model") && strstr(duet_error(), "config.json"), "%s", duet_error());
    ck_assert_int_eq(duet_convert("/nonexistent/model", out, &quiet), -1);
    ck_assert_msg(strstr(duet_error(), "/nonexistent/model"), "%s", duet_error());
    struct stat sb;
    ck_assert_int_ne(stat(out, &sb), 0); /* nothing left behind */
    free(txt), free(empty), free(out);
}
END_TEST

int main(void)
{
    stories = test_data_path("stories260K/config.json");
    char *l2 = test_data_path("llama2-tokenizer/tokenizer.json");
    test_skip_unless(stories, "stories260K/config.json");
    test_skip_unless(l2, "llama2-tokenizer/tokenizer.json");
    free(l2);
    free(stories);
    stories = test_data_path("stories260K");
    if (test_tmpdir(tmpdir, sizeof tmpdir, "convert")) return TEST_EXIT_HARD;
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stories_logits);
    tcase_add_test(tc, stories_tokenizer);
    tcase_add_test(tc, llama2_tokenizer);
    tcase_add_test(tc, spm_scores_fixture);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, type_f16);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    test_rmtree(tmpdir);
    return rc;
}

#else
/* ---- the default model: SmolLM2-135M-Instruct Q4_1 GGUF -> HF folder ------------------------- */

static char *model_path;

START_TEST(smollm2_to_hf)
{
    char *hf = tmp_path("smollm2_hf");
    ck_assert_msg(duet_convert(model_path, hf, &quiet) == 0, "%s", duet_error());
    /* the ChatML prompt: special tokens as text here (encode_opts parse_special 0 on both sides) */
    same_logits(model_path, hf, "The capital of France is Paris, and the capital of Italy is");
    duet_model *m = duet_model_open(hf);
    ck_assert_msg(m != NULL, "%s", duet_error());
    ck_assert_int_eq(m->embed->dtype, ST_F32);
    ck_assert_ptr_null(st_set_find(m->st, "lm_head.weight")); /* tied */
    duet_model_close(m);

    /* its tokenizer.json against the committed vectors (ids with parse_special off and on, decode) */
    duet_tokenizer *t = duet_tokenizer_load(hf);
    ck_assert_msg(t != NULL, "%s", duet_error());
    char *vec = test_src_path("tests/data/tokenizer/smollm2_bpe.jsonl");
    FILE *f = fopen(vec, "r");
    ck_assert_ptr_nonnull(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *c = json_loads(line, JSON_ALLOW_NUL, NULL);
        ck_assert_ptr_nonnull(c);
        if (!strcmp(json_string_value(json_object_get(c, "kind")), "text")) {
            json_t *text = json_object_get(c, "text");
            bad += check_case(t, "smollm2 tokenizer.json", text, 1, 0, json_object_get(c, "ids"));
            bad += check_case(t, "smollm2 tokenizer.json", text, 1, 1, json_object_get(c, "ids_special"));
            bad += check_decode(t, "smollm2", json_object_get(c, "ids_special"), 1, json_object_get(c, "decoded"));
            bad += check_decode(t, "smollm2", json_object_get(c, "ids_special"), 0, json_object_get(c, "decoded_special"));
            n++;
        }
        json_decref(c);
    }
    free(line);
    fclose(f);
    printf("smollm2_bpe.jsonl: %d texts, %d mismatches\n", n, bad);
    ck_assert_int_gt(n, 300);
    ck_assert_int_eq(bad, 0);
    duet_tokenizer_free(t);
    free(vec), free(hf);
}
END_TEST

int main(void)
{
    model_path = test_model_path();
    test_skip_unless(model_path, "the default model (make model, or DUET_MODEL)");
    if (test_tmpdir(tmpdir, sizeof tmpdir, "convert_smollm2")) return TEST_EXIT_HARD;
    Suite *s = suite_create("convert_smollm2");
    TCase *tc = tcase_create("smollm2");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, smollm2_to_hf);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    test_rmtree(tmpdir);
    free(model_path);
    return rc;
}
#endif
