/* test_bpe.c: GPT-2 style byte-level BPE against Hugging Face `tokenizers` (vectors made by
 * scripts/make_bpe_vectors.py from the SmolLM2 GGUF's own vocabulary and merges, in
 * tests/data/tokenizer/smollm2_bpe.jsonl). Built twice:
 *  - tests/test_bpe: the tokenizer read from the GGUF model file (test_model_path(); exits 77 when
 *    the model is absent): ids with parse_special off and on, decode, streaming decode, vocabulary
 *    size and special ids.
 *  - tests/test_bpe_json (-DBPE_OFFLINE): needs nothing outside the repository: the reference
 *    tokenizer.json the script saved, against the same vectors; streaming decode across an emoji
 *    split over single-byte tokens; Split behaviours; malformed ByteLevel / Split / Digits
 *    configurations; the tiny committed GGUFs (pre gpt2, llama-bpe, qwen2) against
 *    tests/data/tokenizer/tiny_bpe.jsonl, and malformed GGUF tokenizer metadata; decoding nothing;
 *    token strings that are not UTF-8 or hold a NUL byte. */
#include "test_util.h"
#include "tokenizer.h"
#include "error.h"
#include "gguf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTS 5 /* mismatches printed per check before only counting */

/* The vectors file: every JSON line (header first). */
static json_t *load_lines(void)
{
    char *path = test_src_path("tests/data/tokenizer/smollm2_bpe.jsonl");
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open - regenerate with scripts/make_bpe_vectors.py\n", path);
        exit(TEST_EXIT_HARD);
    }
    json_t *lines = json_array();
    char *line = NULL;
    size_t cap = 0;
    json_error_t err;
    int no = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &err);
        no++;
        if (!o) {
            fprintf(stderr, "%s line %d: %s\n", path, no, err.text);
            exit(TEST_EXIT_HARD);
        }
        json_array_append_new(lines, o);
    }
    free(line);
    fclose(f);
    free(path);
    return lines;
}

static const char *kind(json_t *o) { return json_string_value(json_object_get(o, "kind")); }

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

/* Every vector line against t. default_parse_special: what duet_tokenizer_encode should do (1 for
 * tokenizer.json, 0 for GGUF). Returns the number of mismatches; *n_texts / *n_dec count lines. */
static int check_vectors(const duet_tokenizer *t, json_t *lines, int default_parse_special,
                         const char *label, int *n_texts, int *n_dec)
{
    int bad = 0;
    char msg[256];
    *n_texts = *n_dec = 0;
    for (size_t l = 0; l < json_array_size(lines); l++) {
        json_t *cs = json_array_get(lines, l);
        if (!strcmp(kind(cs), "text")) {
            json_t *k = json_object_get(cs, "text");
            const char *text = json_string_value(k);
            size_t tn = json_string_length(k);
            (*n_texts)++;
            for (int ps = 0; ps <= 2; ps++) { /* 0, 1: parse_special; 2: duet_tokenizer_encode */
                int *ids, rc;
                size_t n;
                for (int add = 0; add <= 1; add++) { /* neither adds BOS/EOS here */
                    rc = ps < 2 ? duet_tokenizer_encode_opts(t, text, tn, add, ps, &ids, &n)
                                : duet_tokenizer_encode(t, text, tn, add, &ids, &n);
                    ck_assert_msg(rc == 0, "%s: %s", label, duet_error());
                    int want_ps = ps < 2 ? ps : default_parse_special;
                    json_t *want = json_object_get(cs, want_ps ? "ids_special" : "ids");
                    if (!ids_equal(ids, n, want, msg, sizeof msg) && bad++ < MAX_REPORTS)
                        fprintf(stderr, "%s line %zu (mode %d, add %d) text \"%.60s\": %s\n", label,
                                l + 1, ps, add, text, msg);
                    free(ids);
                }
            }
            size_t wn, sl;
            int *wids = json_ids(json_object_get(cs, "ids_special"), &wn);
            for (int skip = 1; skip >= 0; skip--) {
                char *s;
                ck_assert_msg(duet_tokenizer_decode(t, wids, wn, skip, &s, &sl) == 0, "%s: %s",
                              label, duet_error());
                json_t *want = json_object_get(cs, skip ? "decoded" : "decoded_special");
                if (!text_equal(s, sl, want) && bad++ < MAX_REPORTS)
                    fprintf(stderr, "%s line %zu decode(skip=%d): got \"%s\", want \"%s\"\n", label,
                            l + 1, skip, s, json_string_value(want));
                free(s);
            }
            char *s = stream_decode(t, wids, wn, &sl);
            if (!text_equal(s, sl, json_object_get(cs, "decoded")) && bad++ < MAX_REPORTS)
                fprintf(stderr, "%s line %zu streaming decode: got \"%s\"\n", label, l + 1, s);
            free(s);
            free(wids);
        } else if (!strcmp(kind(cs), "decode")) {
            size_t n, sl;
            int *ids = json_ids(json_object_get(cs, "ids"), &n);
            char *s;
            (*n_dec)++;
            for (int skip = 1; skip >= 0; skip--) {
                ck_assert_msg(duet_tokenizer_decode(t, ids, n, skip, &s, &sl) == 0, "%s: %s",
                              label, duet_error());
                json_t *want = json_object_get(cs, skip ? "skip" : "noskip");
                if (!text_equal(s, sl, want) && bad++ < MAX_REPORTS)
                    fprintf(stderr, "%s line %zu decode(skip=%d): got \"%s\", want \"%s\"\n", label,
                            l + 1, skip, s, json_string_value(want));
                free(s);
            }
            s = stream_decode(t, ids, n, &sl);
            if (!text_equal(s, sl, json_object_get(cs, "skip")) && bad++ < MAX_REPORTS)
                fprintf(stderr, "%s line %zu streaming: got \"%s\", want \"%s\"\n", label, l + 1, s,
                        json_string_value(json_object_get(cs, "skip")));
            free(s);
            free(ids);
        }
    }
    return bad;
}

/* The counts the header promises, so that a truncated file cannot pass. */
static void check_counts(json_t *lines, int n_texts, int n_dec)
{
    json_t *h = json_array_get(lines, 0);
    ck_assert_str_eq(kind(h), "header");
    ck_assert_int_eq(n_texts, (int)json_integer_value(json_object_get(h, "texts")));
    ck_assert_int_eq(n_dec, (int)json_integer_value(json_object_get(h, "decode_cases")));
    ck_assert_int_ge(n_texts, 300);
}

#ifndef BPE_OFFLINE
/* ---- the GGUF model file ---------------------------------------------------------------------- */

static duet_tokenizer *load_model_tokenizer(void)
{
    char *p = test_model_path();
    ck_assert(p != NULL);
    duet_tokenizer *t = duet_tokenizer_load_gguf(p);
    ck_assert_msg(t != NULL, "%s", duet_error());
    free(p);
    return t;
}

START_TEST(gguf_vectors)
{
    duet_tokenizer *t = load_model_tokenizer();
    json_t *lines = load_lines();
    int nt, nd;
    int bad = check_vectors(t, lines, 0, "gguf", &nt, &nd);
    fprintf(stderr, "gguf: %d texts, %d decode cases, %d mismatches\n", nt, nd, bad);
    ck_assert_msg(bad == 0, "gguf: %d mismatches with Hugging Face tokenizers (see stderr)", bad);
    check_counts(lines, nt, nd);
    json_decref(lines);
    duet_tokenizer_free(t);
}
END_TEST

/* Vocabulary size and special ids as the metadata has them; duet_tokenizer_load takes the file
 * too; add_bos_token=false means nothing is added. */
START_TEST(gguf_metadata)
{
    duet_tokenizer *t = load_model_tokenizer();
    json_t *lines = load_lines();
    ck_assert_int_eq(duet_tokenizer_vocab_size(t),
                     (int)json_integer_value(json_object_get(json_array_get(lines, 0), "vocab_size")));
    ck_assert_int_eq(duet_tokenizer_bos_id(t), 1);
    ck_assert_int_eq(duet_tokenizer_eos_id(t), 2);
    ck_assert_str_eq(duet_tokenizer_token(t, 1), "<|im_start|>");
    ck_assert_int_eq(duet_tokenizer_token_id(t, "<|im_end|>", 10), 2);
    int *a, *b;
    size_t na, nb;
    ck_assert(duet_tokenizer_encode(t, "Hi", 2, 0, &a, &na) == 0);
    ck_assert(duet_tokenizer_encode(t, "Hi", 2, 1, &b, &nb) == 0);
    ck_assert_uint_eq(na, nb);
    ck_assert(!memcmp(a, b, na * sizeof(int)));
    free(a);
    free(b);
    /* the special token as plain text (default) is several tokens; parsed it is one */
    ck_assert(duet_tokenizer_encode(t, "<|im_start|>", 12, 0, &a, &na) == 0);
    ck_assert_uint_gt(na, 1);
    free(a);
    ck_assert(duet_tokenizer_encode_opts(t, "<|im_start|>", 12, 0, 1, &a, &na) == 0);
    ck_assert_uint_eq(na, 1);
    ck_assert_int_eq(a[0], 1);
    free(a);
    duet_tokenizer_free(t);
    char *p = test_model_path();
    t = duet_tokenizer_load(p);
    ck_assert_msg(t != NULL, "%s", duet_error());
    ck_assert_int_eq(duet_tokenizer_vocab_size(t), 49152);
    duet_tokenizer_free(t);
    free(p);
    json_decref(lines);
}
END_TEST

int main(void)
{
    char *p = test_model_path();
    test_skip_unless(p, "the SmolLM2 GGUF model (make model, or DUET_MODEL)");
    free(p);
    Suite *s = suite_create("bpe");
    TCase *tc = tcase_create("gguf");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gguf_vectors);
    tcase_add_test(tc, gguf_metadata);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}

#else
/* ---- offline: the saved tokenizer.json, streaming, malformed configurations ------------------- */

static duet_tokenizer *load_saved(void)
{
    char *p = test_src_path("tests/data/tokenizer/smollm2_bpe_tokenizer.json");
    duet_tokenizer *t = duet_tokenizer_load_files(p, NULL);
    ck_assert_msg(t != NULL, "%s", duet_error());
    free(p);
    return t;
}

START_TEST(json_vectors)
{
    duet_tokenizer *t = load_saved();
    json_t *lines = load_lines();
    int nt, nd;
    int bad = check_vectors(t, lines, 1, "tokenizer.json", &nt, &nd);
    fprintf(stderr, "tokenizer.json: %d texts, %d decode cases, %d mismatches\n", nt, nd, bad);
    ck_assert_msg(bad == 0, "tokenizer.json: %d mismatches with Hugging Face tokenizers", bad);
    check_counts(lines, nt, nd);
    ck_assert_int_eq(duet_tokenizer_vocab_size(t), 49152);
    json_decref(lines);
    duet_tokenizer_free(t);
}
END_TEST

/* Pushes ids one at a time; returns the concatenation and stores each push's length. */
static char *push_all(const duet_tokenizer *t, const int *ids, int n, size_t *lens, size_t *total)
{
    duet_detok *d = duet_detok_new(t);
    ck_assert_msg(d != NULL, "%s", duet_error());
    char *all = calloc(256, 1), *out;
    size_t tot = 0, ol;
    for (int i = 0; i <= n; i++) {
        ck_assert(i < n ? duet_detok_push(d, ids[i], &out, &ol) == 0
                        : duet_detok_finish(d, &out, &ol) == 0);
        lens[i] = ol;
        ck_assert(tot + ol < 256);
        memcpy(all + tot, out, ol);
        tot += ol;
    }
    duet_detok_free(d);
    *total = tot;
    return all;
}

/* U+1F600 (F0 9F 98 80) pushed as its four single-byte tokens: nothing comes out until the last;
 * cut short, finish gives one U+FFFD; an ill-formed byte comes out at once as U+FFFD. */
START_TEST(stream_emoji_split)
{
    duet_tokenizer *t = load_saved();
    /* GPT-2's characters for the bytes F0 9F 98 80: U+00F0, U+0141, U+013A, U+0122 */
    const char *chars[] = {"\xC3\xB0", "\xC5\x81", "\xC4\xBA", "\xC4\xA2"};
    int ids[8];
    for (int i = 0; i < 4; i++) {
        ids[i] = duet_tokenizer_token_id(t, chars[i], 2);
        ck_assert_msg(ids[i] >= 0, "byte token %d missing", i);
    }
    ids[4] = duet_tokenizer_token_id(t, "a", 1);
    size_t lens[8], tot;
    char *s = push_all(t, (int[]){ids[4], ids[0], ids[1], ids[2], ids[3], ids[4]}, 6, lens, &tot);
    ck_assert_str_eq(s, "a\xF0\x9F\x98\x80" "a");
    ck_assert_uint_eq(lens[0], 1);
    ck_assert_uint_eq(lens[1] + lens[2] + lens[3], 0);
    ck_assert_uint_eq(lens[4], 4);
    char *whole;
    size_t wl;
    ck_assert(duet_tokenizer_decode(t, (int[]){ids[4], ids[0], ids[1], ids[2], ids[3], ids[4]}, 6,
                                    1, &whole, &wl) == 0);
    ck_assert_str_eq(whole, s);
    free(whole);
    free(s);
    /* truncated: three of the four bytes, then finish -> one U+FFFD (from_utf8_lossy) */
    s = push_all(t, ids, 3, lens, &tot);
    ck_assert_str_eq(s, "\xEF\xBF\xBD");
    ck_assert_uint_eq(lens[3], 3);
    ck_assert(duet_tokenizer_decode(t, ids, 3, 1, &whole, &wl) == 0);
    ck_assert_str_eq(whole, s);
    free(whole);
    free(s);
    /* F0 then 'a': F0 cannot continue, so U+FFFD and 'a' come out with the 'a' */
    s = push_all(t, (int[]){ids[0], ids[4]}, 2, lens, &tot);
    ck_assert_str_eq(s, "\xEF\xBF\xBD" "a");
    ck_assert_uint_eq(lens[0], 0);
    ck_assert_uint_eq(lens[1], 4);
    free(s);
    duet_tokenizer_free(t);
}
END_TEST

/* A tokenizer.json in a fresh temporary folder: the tiny vocabulary of split_behaviours, the
 * given pre_tokenizer, a ByteLevel decoder. NULL + duet_error() when it fails. */
static duet_tokenizer *load_inline(const char *pre, char *path, size_t psz)
{
    char dir[128];
    ck_assert(test_tmpdir(dir, sizeof dir, "bpe") == 0);
    snprintf(path, psz, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fprintf(f,
            "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3, "
            "\"1\": 4, \"\\u0120a\": 5, \"b1\": 6, \"11\": 7, \"1a\": 8, \"a\\u0120\": 9, "
            "\"1\\u0120\": 10}, \"merges\": [\"a b\", \"\\u0120 a\", \"b 1\", \"1 1\", \"1 a\", "
            "\"a \\u0120\", \"1 \\u0120\"]}, "
            "\"normalizer\": null, \"pre_tokenizer\": %s, \"decoder\": {\"type\": \"ByteLevel\"}}",
            pre);
    fclose(f);
    duet_error_clear();
    duet_tokenizer *t = duet_tokenizer_load_files(path, NULL);
    return t;
}

static void cleanup(const char *path)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    test_rmtree(dir);
}

static void expect_error(const char *pre, const char *needle1, const char *needle2)
{
    char path[256];
    duet_tokenizer *t = load_inline(pre, path, sizeof path);
    ck_assert_msg(t == NULL, "%s loaded but should have failed", pre);
    const char *e = duet_error();
    ck_assert_msg(strstr(e, path) != NULL, "error does not name the file: %s", e);
    ck_assert_msg(strstr(e, needle1) != NULL, "error lacks \"%s\": %s", needle1, e);
    ck_assert_msg(!needle2 || strstr(e, needle2) != NULL, "error lacks \"%s\": %s", needle2, e);
    cleanup(path);
}

START_TEST(bad_configs)
{
    expect_error("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}",
                 "'pre_tokenizer.pattern'", "does not compile");
    expect_error("{\"type\": \"Split\", \"pattern\": {\"String\": \"a\"}, \"behavior\": \"Sideways\"}",
                 "'pre_tokenizer.behavior'", "\"Sideways\"");
    expect_error("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, "
                 "{\"type\": \"Digits\"}]}",
                 "'pre_tokenizer.pretokenizers[1]'", "ByteLevel must be the last step");
    expect_error("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Whitespace\"}]}",
                 "'pre_tokenizer.pretokenizers[0].type'", "\"Whitespace\"");
    expect_error("{\"type\": \"Digits\", \"individual_digits\": 3}",
                 "'pre_tokenizer.individual_digits'", "true or false");
    expect_error("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Metaspace\", "
                 "\"replacement\": \"_\"}]}",
                 "'pre_tokenizer.pretokenizers[0].type'", "Metaspace inside a Sequence");
}
END_TEST

/* Split behaviours and invert on a tiny vocabulary whose merges show where the pieces end
 * (ids: a 0, b 1, ab 2, Ġ 3, 1 4, Ġa 5, b1 6, 11 7, 1a 8, aĠ 9, 1Ġ 10), String pattern "1", then
 * ByteLevel without regex. Expected values from tokenizers 0.23.3 (the same configuration built
 * with pre_tokenizers.Split("1", behavior, invert)). */
START_TEST(split_behaviours)
{
    static const struct {
        const char *behavior;
        int invert;
        const char *text;
        int ids[6], n;
    } cases[] = {
        {"Isolated", 0, "ab1 a", {2, 4, 5}, 3},
        {"Isolated", 0, "1ab11a 1", {4, 2, 4, 4, 9, 4}, 6},
        {"Isolated", 0, "b11 ", {1, 4, 4, 3}, 4},
        {"Isolated", 1, "ab1 a", {2, 4, 5}, 3},
        {"Isolated", 1, "1ab11a 1", {4, 2, 4, 4, 9, 4}, 6},
        {"Isolated", 1, "b11 ", {1, 4, 4, 3}, 4},
        {"Removed", 0, "ab1 a", {2, 5}, 2},
        {"Removed", 0, "1ab11a 1", {2, 9}, 2},
        {"Removed", 0, "b11 ", {1, 3}, 2},
        {"Removed", 1, "ab1 a", {4}, 1},
        {"Removed", 1, "1ab11a 1", {4, 4, 4, 4}, 4},
        {"Removed", 1, "b11 ", {4, 4}, 2},
        {"MergedWithPrevious", 0, "ab1 a", {2, 4, 5}, 3},
        {"MergedWithPrevious", 0, "1ab11a 1", {4, 2, 4, 4, 9, 4}, 6},
        {"MergedWithPrevious", 0, "b11 ", {6, 4, 3}, 3},
        {"MergedWithPrevious", 1, "ab1 a", {2, 4, 5}, 3},
        {"MergedWithPrevious", 1, "1ab11a 1", {4, 2, 4, 8, 3, 4}, 6},
        {"MergedWithPrevious", 1, "b11 ", {1, 4, 10}, 3},
        {"MergedWithNext", 0, "ab1 a", {2, 4, 5}, 3},
        {"MergedWithNext", 0, "1ab11a 1", {4, 2, 4, 8, 3, 4}, 6},
        {"MergedWithNext", 0, "b11 ", {1, 4, 10}, 3},
        {"MergedWithNext", 1, "ab1 a", {2, 4, 5}, 3},
        {"MergedWithNext", 1, "1ab11a 1", {4, 2, 4, 4, 9, 4}, 6},
        {"MergedWithNext", 1, "b11 ", {6, 4, 3}, 3},
        {"Contiguous", 0, "ab1 a", {2, 4, 5}, 3},
        {"Contiguous", 0, "1ab11a 1", {4, 2, 7, 9, 4}, 5},
        {"Contiguous", 0, "b11 ", {1, 7, 3}, 3},
        {"Contiguous", 1, "ab1 a", {2, 4, 5}, 3},
        {"Contiguous", 1, "1ab11a 1", {4, 2, 7, 9, 4}, 5},
        {"Contiguous", 1, "b11 ", {1, 7, 3}, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char pre[256], path[256];
        snprintf(pre, sizeof pre,
                 "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                 "{\"String\": \"1\"}, \"behavior\": \"%s\", \"invert\": %s}, {\"type\": "
                 "\"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}",
                 cases[c].behavior, cases[c].invert ? "true" : "false");
        duet_tokenizer *t = load_inline(pre, path, sizeof path);
        ck_assert_msg(t != NULL, "%s", duet_error());
        int *ids;
        size_t n;
        const char *text = cases[c].text;
        ck_assert_msg(duet_tokenizer_encode(t, text, strlen(text), 0, &ids, &n) == 0, "%s",
                      duet_error());
        ck_assert_msg(n == (size_t)cases[c].n && !memcmp(ids, cases[c].ids, n * sizeof(int)),
                      "%s invert=%d \"%s\": %zu ids, first %d", cases[c].behavior,
                      cases[c].invert, text, n, n ? ids[0] : -1);
        char *s;
        size_t sl;
        ck_assert(duet_tokenizer_decode(t, ids, n, 0, &s, &sl) == 0);
        if (strcmp(cases[c].behavior, "Removed")) ck_assert_str_eq(s, text); /* byte-exact */
        free(s);
        free(ids);
        duet_tokenizer_free(t);
        cleanup(path);
    }
}
END_TEST

/* The tiny GGUFs (metadata only) for the pre-tokenizers gpt2, llama-bpe (default BOS on, merges
 * ignored for whole-vocabulary words) and qwen2, against tests/data/tokenizer/tiny_bpe.jsonl. */
START_TEST(tiny_gguf_vectors)
{
    static const char *const pres[] = {"gpt2", "llama-bpe", "qwen2"};
    duet_tokenizer *toks[3];
    for (int i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/data/tokenizer/gguf/tiny_%s.gguf", pres[i]);
        char *p = test_src_path(rel);
        toks[i] = duet_tokenizer_load_gguf(p);
        ck_assert_msg(toks[i] != NULL, "%s", duet_error());
        ck_assert_int_eq(duet_tokenizer_vocab_size(toks[i]), 700);
        free(p);
    }
    char *path = test_src_path("tests/data/tokenizer/tiny_bpe.jsonl");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s missing - run scripts/make_bpe_vectors.py", path);
    char *line = NULL, msg[256];
    size_t cap = 0;
    int bad = 0, counts[3] = {0, 0, 0}, no = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *cs = json_loads(line, JSON_ALLOW_NUL, NULL);
        ck_assert(cs != NULL);
        no++;
        const char *pre = json_string_value(json_object_get(cs, "pre"));
        int k = !strcmp(pre, "gpt2") ? 0 : !strcmp(pre, "llama-bpe") ? 1 : 2;
        counts[k]++;
        json_t *jt = json_object_get(cs, "text");
        const char *text = json_string_value(jt);
        size_t tn = json_string_length(jt), n, sl;
        int *ids;
        for (int add = 0; add <= 1; add++) {
            ck_assert(duet_tokenizer_encode(toks[k], text, tn, add, &ids, &n) == 0);
            if (!ids_equal(ids, n, json_object_get(cs, add ? "ids_special" : "ids"), msg, sizeof msg) &&
                bad++ < MAX_REPORTS)
                fprintf(stderr, "tiny_bpe.jsonl line %d (%s, add %d) \"%.60s\": %s\n", no, pre, add,
                        text, msg);
            if (add) {
                char *s;
                ck_assert(duet_tokenizer_decode(toks[k], ids, n, 1, &s, &sl) == 0);
                if (!text_equal(s, sl, json_object_get(cs, "decoded")) && bad++ < MAX_REPORTS)
                    fprintf(stderr, "tiny_bpe.jsonl line %d (%s) decode: got \"%s\"\n", no, pre, s);
                free(s);
                s = stream_decode(toks[k], ids, n, &sl);
                if (!text_equal(s, sl, json_object_get(cs, "decoded")) && bad++ < MAX_REPORTS)
                    fprintf(stderr, "tiny_bpe.jsonl line %d (%s) streaming: got \"%s\"\n", no, pre, s);
                free(s);
            }
            free(ids);
        }
        json_decref(cs);
    }
    free(line);
    fclose(f);
    free(path);
    fprintf(stderr, "tiny GGUFs: %d / %d / %d texts (gpt2 / llama-bpe / qwen2), %d mismatches\n",
            counts[0], counts[1], counts[2], bad);
    ck_assert_msg(bad == 0, "tiny GGUFs: %d mismatches with Hugging Face tokenizers", bad);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ge(counts[i], 200);
        duet_tokenizer_free(toks[i]);
    }
}
END_TEST

/* Malformed GGUF tokenizer metadata: the error names the file, the key and the value. */
START_TEST(gguf_errors)
{
    static const struct {
        const char *file, *needle1, *needle2;
    } cases[] = {
        {"bad_pre.gguf", "'tokenizer.ggml.pre'", "\"nonsense-pre\""},
        {"bad_model_llama.gguf", "'tokenizer.ggml.scores'", "missing"}, /* a SentencePiece vocab without scores */
        {"bad_model_bert.gguf", "'tokenizer.ggml.model'", "\"bert\""},
        {"bad_merge.gguf", "'tokenizer.ggml.merges'", "\"zz\" is not in tokenizer.ggml.tokens"},
        {"bad_bos.gguf", "'tokenizer.ggml.bos_token_id'", "705 out of range"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/data/tokenizer/gguf/%s", cases[c].file);
        char *p = test_src_path(rel);
        duet_error_clear();
        ck_assert_msg(duet_tokenizer_load(p) == NULL, "%s loaded but should have failed", p);
        const char *e = duet_error();
        ck_assert_msg(strstr(e, p) && strstr(e, cases[c].needle1) && strstr(e, cases[c].needle2),
                      "%s: error lacks the file, \"%s\" or \"%s\": %s", cases[c].file,
                      cases[c].needle1, cases[c].needle2, e);
        free(p);
    }
}
END_TEST

/* Decoding nothing on a byte-level tokenizer: the empty ByteLevel buffer and the empty pending
 * bytes of a fresh streaming decoder are NULL, and reading them took NULL + 0 (undefined; UBSan
 * stopped fuzz_tokenizer_bpe on the 2-byte input 0d 63: tiny_gpt2.gguf, add_special and
 * parse_special on, the text "c", then zero ids to decode). */
START_TEST(empty_decode)
{
    char *p = test_src_path("tests/data/tokenizer/gguf/tiny_gpt2.gguf");
    duet_tokenizer *t = duet_tokenizer_load_gguf(p);
    ck_assert_msg(t != NULL, "%s", duet_error());
    free(p);
    int *ids;
    size_t n, sl;
    char *s;
    ck_assert(duet_tokenizer_encode_opts(t, "c", 1, 1, 1, &ids, &n) == 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], duet_tokenizer_token_id(t, "c", 1));
    ck_assert(duet_tokenizer_decode(t, ids, n, 0, &s, &sl) == 0);
    ck_assert_uint_eq(sl, 1);
    ck_assert_str_eq(s, "c");
    free(s);
    s = stream_decode(t, ids, n, &sl);
    ck_assert_uint_eq(sl, 1);
    ck_assert_str_eq(s, "c");
    free(s);
    free(ids);
    for (int skip = 0; skip <= 1; skip++) {
        ck_assert(duet_tokenizer_decode(t, (int[]){0}, 0, skip, &s, &sl) == 0);
        ck_assert_uint_eq(sl, 0);
        ck_assert_str_eq(s, "");
        free(s);
    }
    /* streaming: finish with nothing pushed, and after only a (skipped) special token */
    s = stream_decode(t, (int[]){0}, 0, &sl);
    ck_assert_uint_eq(sl, 0);
    ck_assert_str_eq(s, "");
    free(s);
    int bos = 0;
    ck_assert_str_eq(duet_tokenizer_token(t, bos), "<|begin_of_text|>");
    s = stream_decode(t, &bos, 1, &sl);
    ck_assert_uint_eq(sl, 0);
    ck_assert_str_eq(s, "");
    free(s);
    duet_tokenizer_free(t);
}
END_TEST

/* A GGUF tokenizer of five tokens (token 1 as given) written with duet's writer into dir; the
 * loaded tokenizer, or NULL + duet_error(). */
static duet_tokenizer *load_token_gguf(const char *dir, const char *tok1, size_t len1, char *path,
                                       size_t psz)
{
    snprintf(path, psz, "%s/tok.gguf", dir);
    const char *toks[] = {"<|begin_of_text|>", tok1, "a", "b", "ab"};
    size_t lens[] = {17, len1, 1, 1, 2};
    const char *merges[] = {"a b"};
    size_t mlens[] = {3};
    const int32_t types[] = {3, 3, 1, 1, 1};
    gguf_writer *w = gguf_writer_new();
    ck_assert(w != NULL);
    ck_assert(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4) == 0);
    ck_assert(gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt2", 4) == 0);
    ck_assert(gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", toks, lens, 5) == 0);
    ck_assert(gguf_writer_set_i32_arr(w, "tokenizer.ggml.token_type", types, 5) == 0);
    ck_assert(gguf_writer_set_str_arr(w, "tokenizer.ggml.merges", merges, mlens, 1) == 0);
    ck_assert_msg(gguf_writer_save(w, path) == 0, "%s", duet_error());
    gguf_writer_free(w);
    duet_error_clear();
    return duet_tokenizer_load_gguf(path);
}

/* GGUF token strings are raw bytes; fuzz_tokenizer_gguf found a control token
 * "<|be\xff\x03\x00ext|>" that loaded but whose string (as duet_tokenizer_token gives it back, up
 * to the NUL) named no id. Tokens must be UTF-8 (as in HF tokenizers) without a NUL byte: the error
 * names the file, the key, the id and the offset. The same file with a valid token 1 loads. */
START_TEST(gguf_bad_token_strings)
{
    static const struct {
        const char *tok;
        size_t len;
        const char *needle;
    } cases[] = {
        {"<|be\xff\x03\x00" "ext|>", 12, "token 1 is not valid UTF-8 (byte 0xFF at offset 4)"},
        {"<|be\x00" "xt|>", 9, "token 1 holds a NUL byte (offset 4)"},
        {"\xc3", 1, "token 1 is not valid UTF-8 (byte 0xC3 at offset 0)"},
        {"<|\xed\xa0\x80|>", 7, "token 1 is not valid UTF-8 (byte 0xED at offset 2)"}, /* a surrogate */
    };
    char dir[128], path[256];
    ck_assert(test_tmpdir(dir, sizeof dir, "bpe_gguf") == 0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        duet_tokenizer *t = load_token_gguf(dir, cases[c].tok, cases[c].len, path, sizeof path);
        ck_assert_msg(t == NULL, "case %zu loaded but should have failed", c);
        const char *e = duet_error();
        ck_assert_msg(strstr(e, path) && strstr(e, "'tokenizer.ggml.tokens'") &&
                          strstr(e, cases[c].needle),
                      "case %zu: error lacks the file, the key or \"%s\": %s", c, cases[c].needle, e);
    }
    duet_tokenizer *t = load_token_gguf(dir, "<|end_of_text|>", 15, path, sizeof path);
    ck_assert_msg(t != NULL, "%s", duet_error());
    for (int id = 0; id < 5; id++) {
        const char *s = duet_tokenizer_token(t, id);
        ck_assert_int_eq(duet_tokenizer_token_id(t, s, strlen(s)), id);
    }
    duet_tokenizer_free(t);
    test_rmtree(dir);
}
END_TEST

/* A tokenizer.json in dir whose added token 2 is `content` (a JSON string body). */
static duet_tokenizer *load_added_json(const char *dir, const char *content, char *path, size_t psz)
{
    snprintf(path, psz, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fprintf(f,
            "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}, "
            "\"added_tokens\": [{\"id\": 2, \"content\": \"%s\", \"special\": true}], "
            "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
            "\"decoder\": {\"type\": \"ByteLevel\"}}",
            content);
    fclose(f);
    duet_error_clear();
    return duet_tokenizer_load_files(path, NULL);
}

/* The same rule for tokenizer.json: jansson refuses a NUL in an object key (model.vocab), but an
 * added token's content may hold one ("\u0000"). Without the NUL the file loads. */
START_TEST(json_nul_added_token)
{
    char dir[128], path[256];
    ck_assert(test_tmpdir(dir, sizeof dir, "bpe_nul") == 0);
    ck_assert_msg(load_added_json(dir, "<x\\u0000y>", path, sizeof path) == NULL,
                  "loaded but should have failed");
    const char *e = duet_error();
    ck_assert_msg(strstr(e, path) && strstr(e, "field 'added_tokens[0]'") &&
                      strstr(e, "token 2 holds a NUL byte (offset 2)"),
                  "error lacks the file, the field or the offset: %s", e);
    duet_tokenizer *t = load_added_json(dir, "<xy>", path, sizeof path);
    ck_assert_msg(t != NULL, "%s", duet_error());
    ck_assert_int_eq(duet_tokenizer_token_id(t, "<xy>", 4), 2);
    duet_tokenizer_free(t);
    test_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bpe_json");
    TCase *tc = tcase_create("committed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, json_vectors);
    tcase_add_test(tc, stream_emoji_split);
    tcase_add_test(tc, bad_configs);
    tcase_add_test(tc, split_behaviours);
    tcase_add_test(tc, tiny_gguf_vectors);
    tcase_add_test(tc, gguf_errors);
    tcase_add_test(tc, empty_decode);
    tcase_add_test(tc, gguf_bad_token_strings);
    tcase_add_test(tc, json_nul_added_token);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
#endif
