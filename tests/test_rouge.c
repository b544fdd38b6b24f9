/* test_rouge.c: duet's ROUGE against the real rouge_score package, its Porter stemmer against
 * NLTK, and its bootstrap aggregate against rouge_score's BootstrapAggregator after
 * np.random.seed(0): all vectors in tests/data/rouge, made by scripts/make_rouge_vectors.py.
 * Also the tokenizer's Unicode / invalid UTF-8 behaviour and `duet rouge` (when built). */
#include "test_util.h"

#include "error.h"
#include "eval/bootstrap.h"
#include "eval/jsonl.h"
#include "eval/porter.h"
#include "eval/rouge.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SCORE_TOL 1e-6 /* required; the measured max error is printed (0 so far: bit-exact) */
#define BOOT_TOL 1e-9

/* ---- the committed pairs ---- */

typedef struct {
    char *pred, *ref;
    size_t pred_len, ref_len;
    rouge_scores want[2]; /* [0] no stemmer, [1] stemmer */
} pair;

static pair *pairs;
static size_t n_pairs;

static void read_prf_array(json_t *scores, rouge_scores *out, const char *where)
{
    for (int t = 0; t < ROUGE_N_TYPES; t++) {
        json_t *a = json_object_get(scores, rouge_type_names[t]);
        ck_assert_msg(json_is_array(a) && json_array_size(a) == 3, "%s: %s is not [p, r, f]", where,
                      rouge_type_names[t]);
        out->s[t].p = json_number_value(json_array_get(a, 0));
        out->s[t].r = json_number_value(json_array_get(a, 1));
        out->s[t].f = json_number_value(json_array_get(a, 2));
    }
}

static void load_pairs(void)
{
    if (pairs)
        return;
    char *path = test_src_path("tests/data/rouge/pairs.jsonl");
    jsonl_reader *r = jsonl_open(path);
    ck_assert_msg(r, "%s", duet_error());
    json_t *obj;
    size_t line, cap = 0;
    int got;
    while ((got = jsonl_next(r, &obj, &line)) == 1) {
        if (n_pairs == cap) {
            cap = cap ? cap * 2 : 256;
            pairs = realloc(pairs, cap * sizeof *pairs);
            ck_assert(pairs);
        }
        pair *p = &pairs[n_pairs++];
        const char *s;
        size_t n;
        ck_assert_msg(!jsonl_get_string(obj, "prediction", path, line, &s, &n), "%s", duet_error());
        p->pred = malloc(n + 1);
        memcpy(p->pred, s, n + 1);
        p->pred_len = n;
        ck_assert_msg(!jsonl_get_string(obj, "reference", path, line, &s, &n), "%s", duet_error());
        p->ref = malloc(n + 1);
        memcpy(p->ref, s, n + 1);
        p->ref_len = n;
        json_t *sc = json_object_get(obj, "scores");
        char where[64];
        snprintf(where, sizeof where, "pairs.jsonl line %zu", line);
        read_prf_array(json_object_get(sc, "nostem"), &p->want[0], where);
        read_prf_array(json_object_get(sc, "stem"), &p->want[1], where);
        json_decref(obj);
    }
    ck_assert_msg(got == 0, "%s", duet_error());
    jsonl_close(r);
    free(path);
}

START_TEST(test_pairs_match_rouge_score)
{
    load_pairs();
    ck_assert_uint_ge(n_pairs, 150);
    double max_err = 0;
    size_t checked = 0;
    for (size_t i = 0; i < n_pairs; i++) {
        for (int stem = 0; stem < 2; stem++) {
            rouge_scores got;
            ck_assert_msg(!rouge_score_len(&got, pairs[i].pred, pairs[i].pred_len, pairs[i].ref,
                                           pairs[i].ref_len, stem),
                          "%s", duet_error());
            for (int t = 0; t < ROUGE_N_TYPES; t++) {
                const rouge_prf *g = &got.s[t], *w = &pairs[i].want[stem].s[t];
                double e[3] = {fabs(g->p - w->p), fabs(g->r - w->r), fabs(g->f - w->f)};
                for (int k = 0; k < 3; k++) {
                    if (e[k] > max_err)
                        max_err = e[k];
                    ck_assert_msg(e[k] <= SCORE_TOL,
                                  "pair %zu (line %zu) stem=%d %s: got p/r/f %.17g %.17g %.17g, "
                                  "want %.17g %.17g %.17g",
                                  i, i + 1, stem, rouge_type_names[t], g->p, g->r, g->f, w->p, w->r, w->f);
                }
            }
            checked++;
        }
    }
    printf("rouge pairs: %zu scored pairs (%zu texts x 2 stemmer modes) match rouge_score, max |err| %.3g\n",
           checked, n_pairs, max_err);
}
END_TEST

/* rouge_score's own README example. */
START_TEST(test_readme_example)
{
    rouge_scores s;
    ck_assert(!rouge_score(&s, "The quick brown dog jumps on the log.",
                           "The quick brown fox jumps over the lazy dog", 0));
    ck_assert_double_eq_tol(s.s[ROUGE_1].p, 0.75, 1e-15);
    ck_assert_double_eq_tol(s.s[ROUGE_1].r, 2.0 / 3.0, 1e-15);
    ck_assert_double_eq_tol(s.s[ROUGE_1].f, 0.7058823529411765, 1e-15);
    ck_assert_double_eq_tol(s.s[ROUGE_L].p, 0.625, 1e-15);
    ck_assert_double_eq_tol(s.s[ROUGE_L].r, 5.0 / 9.0, 1e-15);
    ck_assert_double_eq_tol(s.s[ROUGE_L].f, 0.5882352941176471, 1e-15);
}
END_TEST

/* ---- tokenizer: Unicode and invalid UTF-8 ---- */

typedef struct {
    char buf[512];
    size_t n;
} joined;

static void join_emit(void *ctx, const char *tok, size_t n)
{
    joined *j = ctx;
    if (j->n)
        j->buf[j->n++] = ' ';
    memcpy(j->buf + j->n, tok, n);
    j->n += n;
    j->buf[j->n] = '\0';
}

static void join_newline(void *ctx)
{
    joined *j = ctx;
    j->buf[j->n++] = '|';
    j->buf[j->n] = '\0';
}

static const char *toks(const char *text, size_t len, int stem)
{
    static joined j;
    memset(&j, 0, sizeof j);
    ck_assert(!rouge_tokenize(text, len, stem, join_emit, join_newline, &j));
    return j.buf;
}
#define TOKS(s, stem) toks((s), sizeof(s) - 1, (stem))

START_TEST(test_tokenize_unicode)
{
    ck_assert_str_eq(TOKS("Hello, World! 42x", 0), "hello world 42x");
    /* U+212A KELVIN SIGN lowers to 'k' (joins the token); U+0130 to "i" + U+0307 (ends it) */
    ck_assert_str_eq(TOKS("\xE2\x84\xAA" "elvin", 0), "kelvin");
    ck_assert_str_eq(TOKS("\xC4\xB0stanbul", 0), "i stanbul");
    ck_assert_str_eq(TOKS("ab\xC4\xB0" "cd", 0), "abi cd");
    ck_assert_str_eq(TOKS("caf\xC3\xA9 na\xC3\xAFve", 0), "caf na ve");
    ck_assert_str_eq(TOKS("a\nb\n\nc", 0), "a| b|| c");
    ck_assert_str_eq(TOKS("running generously", 1), "run gener");
    ck_assert_str_eq(TOKS("the ran", 1), "the ran"); /* <= 3 chars: not stemmed */
}
END_TEST

START_TEST(test_invalid_utf8_is_separator)
{
    /* stray continuation bytes, a truncated sequence at the end, overlong forms, 0xff, NUL */
    ck_assert_str_eq(TOKS("ab\x80" "cd\xff" "ef", 0), "ab cd ef");
    ck_assert_str_eq(TOKS("ab\xE2\x84", 0), "ab");
    ck_assert_str_eq(TOKS("ab\xC4", 0), "ab");
    ck_assert_str_eq(TOKS("x\xC0\xAFy\xED\xA0\x80z", 0), "x y z");
    ck_assert_str_eq(TOKS("x\xE2\xC4\xB0y", 0), "x i y");
    ck_assert_str_eq(TOKS("nul\0byte", 0), "nul byte");
    rouge_scores s;
    const char junk[] = "\xff\xfe\x80\xC4\xE2\x84";
    ck_assert(!rouge_score_len(&s, junk, sizeof junk - 1, "a b", 3, 1));
    for (int t = 0; t < ROUGE_N_TYPES; t++)
        ck_assert(s.s[t].p == 0 && s.s[t].r == 0 && s.s[t].f == 0);
}
END_TEST

/* ---- Porter stemmer vs NLTK ---- */

START_TEST(test_porter_vs_nltk)
{
    char *path = test_src_path("tests/data/rouge/porter.tsv");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "cannot open %s", path);
    char line[512], out[512];
    size_t n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        ck_assert_msg(tab, "porter.tsv: no tab in '%s'", line);
        *tab = '\0';
        porter_stem(out, line, strlen(line));
        if (strcmp(out, tab + 1)) {
            if (bad < 20)
                fprintf(stderr, "porter: '%s' -> '%s', NLTK '%s'\n", line, out, tab + 1);
            bad++;
        }
        n++;
    }
    fclose(f);
    free(path);
    printf("porter: %zu words, %zu differ from NLTK\n", n, bad);
    ck_assert_uint_ge(n, 3000);
    ck_assert_uint_eq(bad, 0);
}
END_TEST

/* ---- numpy RNG and bootstrap ---- */

static json_t *boot;

static json_t *load_boot(void)
{
    if (boot)
        return boot;
    char *path = test_src_path("tests/data/rouge/bootstrap.json");
    json_error_t err;
    boot = json_load_file(path, 0, &err);
    ck_assert_msg(boot, "%s: %s (line %d)", path, err.text, err.line);
    free(path);
    return boot;
}

START_TEST(test_numpy_randint_stream)
{
    json_t *b = load_boot();
    json_t *runs = json_object_get(b, "randint_after_seed0");
    ck_assert(json_is_array(runs));
    mt19937 mt;
    mt19937_seed(&mt, 0);
    size_t k = 0;
    for (size_t i = 0; i < json_array_size(runs); i++) {
        json_t *run = json_array_get(runs, i);
        uint64_t n = (uint64_t)json_integer_value(json_object_get(run, "n"));
        json_t *vals = json_object_get(run, "values");
        for (size_t j = 0; j < json_array_size(vals); j++, k++) {
            uint64_t want = (uint64_t)json_integer_value(json_array_get(vals, j));
            uint64_t got = mt19937_randint(&mt, n);
            ck_assert_msg(got == want, "randint(0, %llu) draw %zu: got %llu, numpy %llu",
                          (unsigned long long)n, j, (unsigned long long)got, (unsigned long long)want);
        }
    }
    ck_assert_uint_ge(k, 300);
    /* std::mt19937 / numpy seed 0: first raw output */
    mt19937_seed(&mt, 0);
    ck_assert_uint_eq(mt19937_next32(&mt), 2357136044u);
}
END_TEST

START_TEST(test_percentile_linear)
{
    double s[5] = {1, 2, 3, 4, 10};
    ck_assert_double_eq(percentile_linear_sorted(s, 5, 50), 3);
    ck_assert_double_eq(percentile_linear_sorted(s, 5, 0), 1);
    ck_assert_double_eq(percentile_linear_sorted(s, 5, 100), 10);
    ck_assert_double_eq(percentile_linear_sorted(s, 5, 87.5), 7); /* numpy: 7.0 */
    ck_assert_double_eq_tol(percentile_linear_sorted(s, 5, 60), 3.4, 1e-15); /* numpy: 3.4 */
    double one = 7;
    ck_assert_double_eq(percentile_linear_sorted(&one, 1, 2.5), 7);
}
END_TEST

static void check_prf(const rouge_prf *got, json_t *want, double tol, const char *what)
{
    double w[3] = {json_number_value(json_array_get(want, 0)), json_number_value(json_array_get(want, 1)),
                   json_number_value(json_array_get(want, 2))};
    double g[3] = {got->p, got->r, got->f};
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs(g[k] - w[k]) <= tol, "%s [%c]: got %.17g, rouge_score %.17g", what, "prf"[k],
                      g[k], w[k]);
}

/* Aggregates each committed set twice: from duet's own per-item scores (end to end) and from
 * rouge_score's per-item scores (the aggregator alone); both must equal BootstrapAggregator. */
START_TEST(test_bootstrap_sets)
{
    load_pairs();
    json_t *sets = json_object_get(load_boot(), "sets");
    ck_assert(json_is_array(sets) && json_array_size(sets) >= 4);
    for (size_t si = 0; si < json_array_size(sets); si++) {
        json_t *set = json_array_get(sets, si);
        const char *name = json_string_value(json_object_get(set, "name"));
        int stem = json_is_true(json_object_get(set, "stem"));
        json_t *idx = json_object_get(set, "indices");
        size_t n = json_array_size(idx);
        rouge_scores *mine = calloc(n, sizeof *mine), *theirs = calloc(n, sizeof *theirs);
        rouge_aggregator *agg = rouge_aggregator_create();
        for (size_t i = 0; i < n; i++) {
            size_t p = (size_t)json_integer_value(json_array_get(idx, i));
            ck_assert_uint_lt(p, n_pairs);
            ck_assert(!rouge_score_len(&mine[i], pairs[p].pred, pairs[p].pred_len, pairs[p].ref,
                                       pairs[p].ref_len, stem));
            theirs[i] = pairs[p].want[stem];
            ck_assert(!rouge_aggregator_add(agg, &mine[i]));
        }
        rouge_aggregate a[3];
        ck_assert(!rouge_aggregate_compute(&a[0], mine, n, 1000, 0));
        ck_assert(!rouge_aggregate_compute(&a[1], theirs, n, 1000, 0));
        ck_assert(!rouge_aggregator_finish(agg, &a[2]));
        json_t *res = json_object_get(set, "result"), *mean = json_object_get(set, "mean");
        for (int v = 0; v < 3; v++)
            for (int t = 0; t < ROUGE_N_TYPES; t++) {
                char what[160];
                json_t *r = json_object_get(res, rouge_type_names[t]);
                snprintf(what, sizeof what, "set '%s' (%zu items) variant %d %s low", name, n, v, rouge_type_names[t]);
                check_prf(&a[v].low[t], json_object_get(r, "low"), BOOT_TOL, what);
                snprintf(what, sizeof what, "set '%s' (%zu items) variant %d %s mid", name, n, v, rouge_type_names[t]);
                check_prf(&a[v].mid[t], json_object_get(r, "mid"), BOOT_TOL, what);
                snprintf(what, sizeof what, "set '%s' (%zu items) variant %d %s high", name, n, v, rouge_type_names[t]);
                check_prf(&a[v].high[t], json_object_get(r, "high"), BOOT_TOL, what);
                snprintf(what, sizeof what, "set '%s' variant %d %s mean", name, v, rouge_type_names[t]);
                check_prf(&a[v].mean[t], json_object_get(mean, rouge_type_names[t]), 1e-12, what);
            }
        printf("bootstrap set '%s' (%zu items, stem %d): rouge1 mid F %.6f [%.6f, %.6f] matches\n", name, n,
               stem, a[0].mid[ROUGE_1].f * 100, a[0].low[ROUGE_1].f * 100, a[0].high[ROUGE_1].f * 100);
        rouge_aggregator_free(agg);
        free(mine);
        free(theirs);
    }
}
END_TEST

START_TEST(test_aggregate_errors)
{
    rouge_aggregate a;
    duet_error_clear();
    ck_assert_int_eq(rouge_aggregate_compute(&a, NULL, 0, 1000, 0), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "no items"));
}
END_TEST

/* ---- `duet rouge` (skipped when the binary is not built) ---- */

static char *duet_bin(void)
{
    size_t n = strlen(test_builddir()) + 16;
    char *p = malloc(n);
    snprintf(p, n, "%s/duet", test_builddir());
    struct stat st;
    if (stat(p, &st) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* Runs `duet rouge ARGS` and returns its exit status; stdout+stderr in out. */
static int run_duet(const char *args, char *out, size_t cap)
{
    char *bin = duet_bin();
    if (!bin)
        return -999;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' rouge %s 2>&1", test_srcdir(), bin, args);
    free(bin);
    FILE *p = popen(cmd, "r");
    ck_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_cli)
{
    static char out[65536];
    int rc = run_duet("--help", out, sizeof out);
    if (rc == -999) {
        printf("duet binary not built: CLI checks skipped\n");
        return;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "example"));
    ck_assert_int_eq(run_duet("--bogus x", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--bogus"));

    ck_assert_int_eq(run_duet("tests/data/rouge/fixtures/rouge_ok.jsonl", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "rougeLsum"));
    ck_assert_int_eq(run_duet("--per-item tests/data/rouge/fixtures/rouge_ok.jsonl", out, sizeof out), 0);
    /* line 2 has an empty prediction: all zeros */
    ck_assert_ptr_nonnull(strstr(out, "{\"rouge1\": [0, 0, 0], \"rouge2\": [0, 0, 0]"));
    ck_assert_int_eq(run_duet("--json - tests/data/rouge/fixtures/rouge_ok.jsonl", out, sizeof out), 0);
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    ck_assert_msg(j, "--json - output is not JSON: %s", err.text);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "n_items")), 3);
    json_decref(j);

    ck_assert_int_eq(run_duet("tests/data/rouge/fixtures/no_such_file.jsonl", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "no_such_file.jsonl"));
    ck_assert_int_eq(run_duet("tests/data/rouge/fixtures/rouge_missing_field.jsonl", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "rouge_missing_field.jsonl line 2: field 'reference' is missing"));
    ck_assert_int_eq(run_duet("tests/data/rouge/fixtures/rouge_malformed.jsonl", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "rouge_malformed.jsonl line 3: malformed JSON"));
    ck_assert_int_eq(run_duet("tests/data/rouge/fixtures/rouge_wrong_type.jsonl", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "rouge_wrong_type.jsonl line 1: field 'reference' is an array"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rouge");
    TCase *tc = tcase_create("rouge");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pairs_match_rouge_score);
    tcase_add_test(tc, test_readme_example);
    tcase_add_test(tc, test_tokenize_unicode);
    tcase_add_test(tc, test_invalid_utf8_is_separator);
    tcase_add_test(tc, test_porter_vs_nltk);
    tcase_add_test(tc, test_numpy_randint_stream);
    tcase_add_test(tc, test_percentile_linear);
    tcase_add_test(tc, test_bootstrap_sets);
    tcase_add_test(tc, test_aggregate_errors);
    tcase_add_test(tc, test_cli);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
