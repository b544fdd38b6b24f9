/* test_tokenizer.c: the tokenizer against Hugging Face `tokenizers` (vectors made by
 * scripts/make_tokenizer_vectors.py under tests/data/tokenizer/). Built twice:
 *  - tests/test_tokenizer: the stories260K and Llama-2 tokenizer.json of the shared data (ids with
 *    and without BOS, decode with and without special tokens, streaming decode, cnn_dailymail
 *    articles); exits 77 when the shared data is absent.
 *  - tests/test_tokenizer_errors (-DTOKENIZER_OFFLINE): needs nothing outside the repository:
 *    malformed files must fail with messages naming the file and the field, plus the committed
 *    tiny tokenizer (Metaspace, lstrip/rstrip added token, </s> suffix) against its vectors. */
#include "test_util.h"
#include "tokenizer.h"
#include "error.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTS 5 /* mismatches printed per check before only counting */

static json_t *load_vectors(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/tokenizer/%s", name);
    char *path = test_src_path(rel);
    json_error_t err;
    json_t *v = json_load_file(path, JSON_ALLOW_NUL, &err);
    if (!v) {
        fprintf(stderr, "%s: %s (line %d) - regenerate with scripts/make_tokenizer_vectors.py\n",
                path, err.text, err.line);
        exit(TEST_EXIT_HARD);
    }
    free(path);
    return v;
}

/* ids equal to a JSON array? Reports the first difference into msg. */
static int ids_equal(const int *ids, size_t n, json_t *want, char *msg, size_t msz)
{
    size_t wn = json_array_size(want);
    for (size_t i = 0; i < n && i < wn; i++) {
        int w = (int)json_integer_value(json_array_get(want, i));
        if (ids[i] != w) {
            snprintf(msg, msz, "first difference at index %zu: got %d, want %d (lengths %zu/%zu)",
                     i, ids[i], w, n, wn);
            return 0;
        }
    }
    if (n != wn) {
        snprintf(msg, msz, "length %zu, want %zu", n, wn);
        return 0;
    }
    return 1;
}

static int *json_ids(json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) ids[i] = (int)json_integer_value(json_array_get(a, i));
    return ids;
}

static int text_equal(const char *got, size_t gn, json_t *want)
{
    return gn == json_string_length(want) && !memcmp(got, json_string_value(want), gn);
}

/* Concatenation of duet_detok pushes of every id, then finish. */
static char *stream_decode(const duet_tokenizer *t, const int *ids, size_t n, size_t *len)
{
    duet_detok *d = duet_detok_new(t);
    ck_assert_msg(d != NULL, "duet_detok_new: %s", duet_error());
    size_t cap = 64, tot = 0;
    char *all = malloc(cap), *out;
    size_t ol;
    for (size_t i = 0; i <= n; i++) {
        int rc = i < n ? duet_detok_push(d, ids[i], &out, &ol) : duet_detok_finish(d, &out, &ol);
        ck_assert_msg(rc == 0, "detok: %s", duet_error());
        while (tot + ol + 1 > cap) all = realloc(all, cap *= 2);
        memcpy(all + tot, out, ol);
        tot += ol;
    }
    all[tot] = '\0';
    duet_detok_free(d);
    *len = tot;
    return all;
}

/* Every text case: encode without and with special tokens, decode skip / keep special tokens,
 * streaming decode. Returns the number of mismatches (each printed, up to MAX_REPORTS). */
static int check_cases(const duet_tokenizer *t, json_t *vec, const char *label)
{
    json_t *cases = json_object_get(vec, "cases");
    ck_assert_msg(json_array_size(cases) > 0, "%s: no cases", label);
    int bad = 0;
    char msg[256];
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *k = json_object_get(json_array_get(cases, c), "text");
        json_t *cs = json_array_get(cases, c);
        const char *text = json_string_value(k);
        size_t tn = json_string_length(k);
        int *ids;
        size_t n;
        for (int special = 0; special <= 1; special++) {
            ck_assert_msg(duet_tokenizer_encode(t, text, tn, special, &ids, &n) == 0, "%s: %s",
                          label, duet_error());
            json_t *want = json_object_get(cs, special ? "ids_special" : "ids");
            if (!ids_equal(ids, n, want, msg, sizeof msg) && bad++ < MAX_REPORTS)
                fprintf(stderr, "%s case %zu (special=%d) text \"%.60s\": %s\n", label, c, special,
                        text, msg);
            free(ids);
        }
        /* decoding HF's ids (so that a decode bug is not hidden by an encode bug) */
        size_t wn;
        int *wids = json_ids(json_object_get(cs, "ids_special"), &wn);
        for (int skip = 1; skip >= 0; skip--) {
            char *s;
            size_t sl;
            ck_assert_msg(duet_tokenizer_decode(t, wids, wn, skip, &s, &sl) == 0, "%s: %s", label,
                          duet_error());
            json_t *want = json_object_get(cs, skip ? "decoded" : "decoded_special");
            if (!text_equal(s, sl, want) && bad++ < MAX_REPORTS)
                fprintf(stderr, "%s case %zu decode(skip=%d): got \"%s\", want \"%s\"\n", label, c,
                        skip, s, json_string_value(want));
            free(s);
        }
        char *s = stream_decode(t, wids, wn, &wn);
        if (!text_equal(s, wn, json_object_get(cs, "decoded")) && bad++ < MAX_REPORTS)
            fprintf(stderr, "%s case %zu streaming decode: got \"%s\", want \"%s\"\n", label, c, s,
                    json_string_value(json_object_get(cs, "decoded")));
        free(s);
        free(wids);
    }
    return bad;
}

/* Random id lists: full decode both ways and streaming decode against HF. */
static int check_decode_cases(const duet_tokenizer *t, json_t *vec, const char *label)
{
    json_t *cases = json_object_get(vec, "decode_cases");
    ck_assert_msg(json_array_size(cases) > 0, "%s: no decode cases", label);
    int bad = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        size_t n, sl;
        int *ids = json_ids(json_object_get(cs, "ids"), &n);
        char *s;
        for (int skip = 1; skip >= 0; skip--) {
            ck_assert_msg(duet_tokenizer_decode(t, ids, n, skip, &s, &sl) == 0, "%s: %s", label,
                          duet_error());
            json_t *want = json_object_get(cs, skip ? "skip" : "noskip");
            if (!text_equal(s, sl, want) && bad++ < MAX_REPORTS)
                fprintf(stderr, "%s decode case %zu (skip=%d): got \"%s\", want \"%s\"\n", label, c,
                        skip, s, json_string_value(want));
            free(s);
        }
        s = stream_decode(t, ids, n, &sl);
        if (!text_equal(s, sl, json_object_get(cs, "skip")) && bad++ < MAX_REPORTS)
            fprintf(stderr, "%s decode case %zu streaming: got \"%s\", want \"%s\"\n", label, c, s,
                    json_string_value(json_object_get(cs, "skip")));
        free(s);
        free(ids);
    }
    return bad;
}

#ifndef TOKENIZER_OFFLINE
/* ---- shared data: stories260K and Llama-2 ----------------------------------------------------- */

static duet_tokenizer *load_shared(json_t *vec)
{
    char *tj = test_data_path(json_string_value(json_object_get(vec, "tokenizer")));
    json_t *c = json_object_get(vec, "config");
    char *cfg = json_is_string(c) ? test_data_path(json_string_value(c)) : NULL;
    ck_assert_msg(tj && (!json_is_string(c) || cfg), "shared tokenizer files missing");
    duet_tokenizer *t = duet_tokenizer_load_files(tj, cfg);
    ck_assert_msg(t != NULL, "load: %s", duet_error());
    free(tj);
    free(cfg);
    return t;
}

static uint64_t fnv1a64(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h;
}

/* The cnn_dailymail articles: ids with and without BOS, and decode's hash and length. */
static int check_articles(const duet_tokenizer *t, json_t *vec, const char *label)
{
    char *path = test_data_path("cnn_dailymail/test_100.jsonl");
    ck_assert_msg(path != NULL, "cnn_dailymail/test_100.jsonl missing");
    FILE *f = fopen(path, "r");
    ck_assert(f != NULL);
    json_t *arts = json_object_get(vec, "articles"), *lines = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) json_array_append_new(lines, json_loads(line, 0, NULL));
    free(line);
    fclose(f);
    free(path);
    int bad = 0;
    char msg[256];
    ck_assert_msg(json_array_size(arts) > 0, "%s: no articles", label);
    for (size_t a = 0; a < json_array_size(arts); a++) {
        json_t *art = json_array_get(arts, a);
        json_t *item = json_array_get(lines, (size_t)json_integer_value(json_object_get(art, "line")));
        ck_assert_msg(item && json_equal(json_object_get(item, "id"), json_object_get(art, "id")),
                      "%s: article %zu: test_100.jsonl line does not hold id %s", label, a,
                      json_string_value(json_object_get(art, "id")));
        json_t *k = json_object_get(item, "article");
        for (int special = 0; special <= 1; special++) {
            int *ids;
            size_t n;
            ck_assert(duet_tokenizer_encode(t, json_string_value(k), json_string_length(k), special,
                                            &ids, &n) == 0);
            if (!ids_equal(ids, n, json_object_get(art, special ? "ids_special" : "ids"), msg,
                           sizeof msg) && bad++ < MAX_REPORTS)
                fprintf(stderr, "%s article line %lld (special=%d): %s\n", label,
                        (long long)json_integer_value(json_object_get(art, "line")), special, msg);
            if (special) {
                char *s, hex[20];
                size_t sl;
                ck_assert(duet_tokenizer_decode(t, ids, n, 1, &s, &sl) == 0);
                snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(s, sl));
                if ((sl != (size_t)json_integer_value(json_object_get(art, "decoded_bytes")) ||
                     strcmp(hex, json_string_value(json_object_get(art, "decoded_fnv1a64")))) &&
                    bad++ < MAX_REPORTS)
                    fprintf(stderr, "%s article %zu: decode differs from HF (hash %s, %zu bytes)\n",
                            label, a, hex, sl);
                size_t stl;
                char *st = stream_decode(t, ids, n, &stl);
                if ((stl != sl || memcmp(st, s, sl)) && bad++ < MAX_REPORTS)
                    fprintf(stderr, "%s article %zu: streaming decode differs\n", label, a);
                free(st);
                free(s);
            }
            free(ids);
        }
    }
    json_decref(lines);
    return bad;
}

#define SHARED_TEST(name, file, check)                                                              \
    START_TEST(name)                                                                                \
    {                                                                                               \
        json_t *vec = load_vectors(file);                                                           \
        duet_tokenizer *t = load_shared(vec);                                                       \
        int bad = check(t, vec, file);                                                              \
        ck_assert_msg(bad == 0, "%s: %d mismatches with Hugging Face tokenizers (see stderr)",     \
                      file, bad);                                                                   \
        duet_tokenizer_free(t);                                                                     \
        json_decref(vec);                                                                           \
    }                                                                                               \
    END_TEST

SHARED_TEST(stories_cases, "stories260K.json", check_cases)
SHARED_TEST(stories_decode, "stories260K.json", check_decode_cases)
SHARED_TEST(stories_articles, "stories260K.json", check_articles)
SHARED_TEST(llama2_cases, "llama2.json", check_cases)
SHARED_TEST(llama2_decode, "llama2.json", check_decode_cases)
SHARED_TEST(llama2_articles, "llama2.json", check_articles)

START_TEST(load_dir_and_ids)
{
    /* duet_tokenizer_load(dir) picks up tokenizer_config.json; a tokenizer.json path works too */
    char *dir = test_data_path("stories260K"), *tj = test_data_path("llama2-tokenizer/tokenizer.json");
    duet_tokenizer *t = duet_tokenizer_load(dir);
    ck_assert_msg(t != NULL, "%s", duet_error());
    ck_assert_int_eq(duet_tokenizer_vocab_size(t), 512);
    ck_assert_int_eq(duet_tokenizer_bos_id(t), 1);
    ck_assert_int_eq(duet_tokenizer_eos_id(t), 2);
    ck_assert_str_eq(duet_tokenizer_token(t, 3), "<0x00>");
    duet_tokenizer_free(t);
    t = duet_tokenizer_load(tj);
    ck_assert_msg(t != NULL, "%s", duet_error());
    ck_assert_int_eq(duet_tokenizer_vocab_size(t), 32000);
    ck_assert_int_eq(duet_tokenizer_bos_id(t), 1);
    ck_assert_int_eq(duet_tokenizer_eos_id(t), 2);
    duet_tokenizer_free(t);
    free(dir);
    free(tj);
}
END_TEST

int main(void)
{
    char *a = test_data_path("stories260K/tokenizer.json");
    char *b = test_data_path("llama2-tokenizer/tokenizer.json");
    char *c = test_data_path("cnn_dailymail/test_100.jsonl");
    test_skip_unless(a, "stories260K/tokenizer.json");
    test_skip_unless(b, "llama2-tokenizer/tokenizer.json");
    test_skip_unless(c, "cnn_dailymail/test_100.jsonl");
    free(a);
    free(b);
    free(c);
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stories_cases);
    tcase_add_test(tc, stories_decode);
    tcase_add_test(tc, stories_articles);
    tcase_add_test(tc, llama2_cases);
    tcase_add_test(tc, llama2_decode);
    tcase_add_test(tc, llama2_articles);
    tcase_add_test(tc, load_dir_and_ids);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}

#else
/* ---- offline: malformed inputs and the committed tiny tokenizer ------------------------------- */

static char *bad_path(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/tokenizer/bad/%s", name);
    return test_src_path(rel);
}

/* Loading `name` must fail with a message holding the file name and every one of `needles`. */
static void expect_load_error(const char *name, const char *needle1, const char *needle2)
{
    char *p = bad_path(name);
    duet_error_clear();
    duet_tokenizer *t = duet_tokenizer_load_files(p, NULL);
    ck_assert_msg(t == NULL, "%s loaded but should have failed", name);
    const char *e = duet_error();
    ck_assert_msg(strstr(e, p) != NULL, "error does not name the file %s: %s", p, e);
    ck_assert_msg(strstr(e, needle1) != NULL, "error lacks \"%s\": %s", needle1, e);
    ck_assert_msg(!needle2 || strstr(e, needle2) != NULL, "error lacks \"%s\": %s", needle2, e);
    free(p);
}

START_TEST(missing_file)
{
    char *p = bad_path("does_not_exist.json");
    ck_assert(duet_tokenizer_load_files(p, NULL) == NULL);
    ck_assert_msg(strstr(duet_error(), p) && strstr(duet_error(), "No such file"), "%s",
                  duet_error());
    ck_assert(duet_tokenizer_load("/nonexistent/model/dir") == NULL);
    ck_assert_msg(strstr(duet_error(), "/nonexistent/model/dir"), "%s", duet_error());
    free(p);
}
END_TEST

START_TEST(truncated_json) { expect_load_error("truncated.json", "not valid JSON", "line 1"); }
END_TEST
START_TEST(no_model) { expect_load_error("no_model.json", "'model'", "missing"); }
END_TEST
START_TEST(unknown_model) { expect_load_error("unknown_model.json", "'model.type'", "\"WordPiece\""); }
END_TEST
START_TEST(vocab_non_integer)
{
    expect_load_error("vocab_non_integer.json", "'model.vocab'", "\"b\" has a non-integer id");
}
END_TEST
START_TEST(merges_unknown)
{
    expect_load_error("merges_unknown.json", "'model.merges[1]'", "\"zz\" is not in model.vocab");
}
END_TEST
START_TEST(unknown_normalizer)
{
    expect_load_error("unknown_normalizer.json", "'normalizer.normalizers[1].type'", "\"NFKC\"");
}
END_TEST
START_TEST(unknown_pretokenizer)
{
    expect_load_error("unknown_pretokenizer.json", "'pre_tokenizer.type'", "\"BertPreTokenizer\"");
}
END_TEST
START_TEST(unknown_decoder)
{
    expect_load_error("unknown_decoder.json", "'decoder.decoders[1].type'", "\"WordPiece\"");
}
END_TEST

/* Found by tests/fuzz/fuzz_tokenizer_load: a post_processor special token whose id lies inside the
 * vocabulary's range but names no token (id 1 here: the vocab skips it) was taken as BOS, so encode
 * gave an id that decode then refused. */
START_TEST(special_id_hole)
{
    expect_load_error("special_id_hole.json", "'post_processor.special_tokens.<s>.ids'",
                      "id 1 is not a token of the vocabulary");
}
END_TEST

START_TEST(bad_config)
{
    char *tj = test_src_path("tests/data/tokenizer/tiny.json"), *cfg = bad_path("bad_config.json");
    ck_assert(duet_tokenizer_load_files(tj, cfg) == NULL);
    ck_assert_msg(strstr(duet_error(), cfg) && strstr(duet_error(), "'bos_token'") &&
                      strstr(duet_error(), "<nope>"),
                  "%s", duet_error());
    free(tj);
    free(cfg);
}
END_TEST

/* Both merge spellings, Strip normalizer, unk + fuse_unk, no decoder (tokens joined by " ").
 * Expected values from tokenizers 0.23.3 (Tokenizer.from_file on these two files). */
START_TEST(merges_both_forms)
{
    static const struct {
        const char *text;
        int ids[6], n;
        const char *decoded;
    } cases[] = {
        {"abab", {4}, 1, "abab"},
        {"  ab a b ", {3, 0, 1, 0, 2}, 5, "ab <unk> a <unk> b"},
        {"abxxba", {3, 0, 2, 1}, 4, "ab <unk> b a"},
        {"x", {0}, 1, "<unk>"},
        {"", {0}, 0, ""},
    };
    const char *files[] = {"merges_pairs.json", "merges_strings.json"};
    for (int f = 0; f < 2; f++) {
        char *p = bad_path(files[f]);
        duet_tokenizer *t = duet_tokenizer_load_files(p, NULL);
        ck_assert_msg(t != NULL, "%s", duet_error());
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int *ids;
            size_t n;
            char *s;
            size_t sl;
            ck_assert(duet_tokenizer_encode(t, cases[c].text, strlen(cases[c].text), 1, &ids, &n) == 0);
            ck_assert_msg(n == (size_t)cases[c].n && !memcmp(ids, cases[c].ids, n * sizeof(int)),
                          "%s: \"%s\" encodes wrong (%zu ids)", files[f], cases[c].text, n);
            ck_assert(duet_tokenizer_decode(t, ids, n, 1, &s, &sl) == 0);
            ck_assert_str_eq(s, cases[c].decoded);
            free(s);
            s = stream_decode(t, ids, n, &sl);
            ck_assert_str_eq(s, cases[c].decoded);
            free(s);
            free(ids);
        }
        duet_tokenizer_free(t);
        free(p);
    }
}
END_TEST

START_TEST(bad_text_and_ids)
{
    char *tj = test_src_path("tests/data/tokenizer/tiny.json");
    duet_tokenizer *t = duet_tokenizer_load_files(tj, NULL);
    ck_assert_msg(t != NULL, "%s", duet_error());
    int *ids, bad_ids[] = {5, 100000};
    size_t n;
    char *s;
    ck_assert(duet_tokenizer_encode(t, "ab\xC3(", 4, 1, &ids, &n) == -1);
    ck_assert_msg(strstr(duet_error(), "not valid UTF-8") && strstr(duet_error(), "offset 2"), "%s",
                  duet_error());
    ck_assert(duet_tokenizer_decode(t, bad_ids, 2, 0, &s, &n) == -1);
    ck_assert_msg(strstr(duet_error(), "id 100000"), "%s", duet_error());
    duet_detok *d = duet_detok_new(t);
    ck_assert(duet_detok_push(d, -1, &s, &n) == -1);
    duet_detok_free(d);
    duet_tokenizer_free(t);
    free(tj);
}
END_TEST

START_TEST(tiny_vectors)
{
    char *tj = test_src_path("tests/data/tokenizer/tiny.json");
    duet_tokenizer *t = duet_tokenizer_load_files(tj, NULL);
    ck_assert_msg(t != NULL, "%s", duet_error());
    json_t *vec = load_vectors("tiny_vectors.json");
    int bad = check_cases(t, vec, "tiny") + check_decode_cases(t, vec, "tiny");
    ck_assert_msg(bad == 0, "tiny: %d mismatches with Hugging Face tokenizers (see stderr)", bad);
    ck_assert_int_eq(duet_tokenizer_bos_id(t), 1);
    ck_assert_int_eq(duet_tokenizer_eos_id(t), 2);
    json_decref(vec);
    duet_tokenizer_free(t);
    free(tj);
}
END_TEST

/* tokenizer_config.json overrides the post_processor: add_bos_token false, add_eos_token true. */
START_TEST(tiny_config)
{
    char *tj = test_src_path("tests/data/tokenizer/tiny.json"), *cfg = bad_path("tiny_config.json");
    duet_tokenizer *t = duet_tokenizer_load_files(tj, cfg);
    ck_assert_msg(t != NULL, "%s", duet_error());
    int *a, *b;
    size_t na, nb;
    ck_assert(duet_tokenizer_encode(t, "the cat", 7, 0, &a, &na) == 0);
    ck_assert(duet_tokenizer_encode(t, "the cat", 7, 1, &b, &nb) == 0);
    ck_assert_uint_eq(nb, na + 1);
    ck_assert(!memcmp(a, b, na * sizeof(int)));
    ck_assert_int_eq(b[na], 2);
    free(a);
    free(b);
    duet_tokenizer_free(t);
    free(tj);
    free(cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer_errors");
    TCase *tc = tcase_create("malformed");
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, truncated_json);
    tcase_add_test(tc, no_model);
    tcase_add_test(tc, unknown_model);
    tcase_add_test(tc, vocab_non_integer);
    tcase_add_test(tc, merges_unknown);
    tcase_add_test(tc, unknown_normalizer);
    tcase_add_test(tc, unknown_pretokenizer);
    tcase_add_test(tc, unknown_decoder);
    tcase_add_test(tc, special_id_hole);
    tcase_add_test(tc, bad_config);
    tcase_add_test(tc, bad_text_and_ids);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("committed");
    tcase_add_test(tv, merges_both_forms);
    tcase_add_test(tv, tiny_vectors);
    tcase_add_test(tv, tiny_config);
    suite_add_tcase(s, tv);
    return test_run_suite(s);
}
#endif
