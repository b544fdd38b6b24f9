/* test_cnn_dailymail.c: the cnn_dailymail JSON Lines reader: a good fixture, every error path
 * (each message must name the file and the line), and the shared 100-item test split (built as a
 * second program that skips, exit 77, without the shared data). */
#include "test_util.h"

#include "error.h"
#include "eval/cnn_dailymail.h"
#include "eval/rouge.h"

#include <stdlib.h>
#include <string.h>

#ifndef CNN_SHARED_SPLIT
static char *fixture(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/rouge/fixtures/%s", name);
    return test_src_path(rel);
}

/* Loading `name` fails and the message contains the file's path and every string in `want`. */
static void expect_error(const char *name, const char *want1, const char *want2)
{
    char *path = fixture(name);
    cnn_item *items = (cnn_item *)1;
    size_t n = 99;
    duet_error_clear();
    ck_assert_int_eq(cnn_load(path, 0, &items, &n), -1);
    ck_assert_ptr_null(items);
    ck_assert_uint_eq(n, 0);
    const char *msg = duet_error();
    ck_assert_msg(strstr(msg, path), "'%s' does not name the file %s", msg, path);
    ck_assert_msg(strstr(msg, want1), "'%s' lacks '%s'", msg, want1);
    if (want2)
        ck_assert_msg(strstr(msg, want2), "'%s' lacks '%s'", msg, want2);
    free(path);
}

START_TEST(test_ok_fixture)
{
    char *path = fixture("cnn_ok.jsonl");
    cnn_item *it;
    size_t n;
    ck_assert_msg(!cnn_load(path, 0, &it, &n), "%s", duet_error());
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(it[0].id, "a1");
    ck_assert_str_eq(it[0].highlights, "First highlight.\nSecond line.");
    ck_assert_uint_eq(it[0].line, 1);
    ck_assert_str_eq(it[1].article, "Second article \xE2\x84\xAA" "elvin.");
    ck_assert_uint_eq(it[1].line, 3); /* the blank line 2 is skipped */
    ck_assert_str_eq(it[2].highlights, "");
    ck_assert_uint_eq(it[2].line, 4);
    cnn_free(it, n);
    ck_assert(!cnn_load(path, 2, &it, &n));
    ck_assert_uint_eq(n, 2);
    cnn_free(it, n);
    free(path);
}
END_TEST

START_TEST(test_missing_file)
{
    expect_error("no_such_file.jsonl", "cannot open", "No such file");
}
END_TEST

START_TEST(test_malformed_json)
{
    expect_error("cnn_malformed.jsonl", "line 2:", "malformed JSON");
}
END_TEST

START_TEST(test_missing_highlights)
{
    expect_error("cnn_no_highlights.jsonl", "line 3:", "field 'highlights' is missing");
}
END_TEST

START_TEST(test_wrong_type)
{
    expect_error("cnn_wrong_type.jsonl", "line 2:", "field 'highlights' is a number, expected a string");
}
END_TEST

START_TEST(test_null_id)
{
    expect_error("cnn_null_id.jsonl", "line 3:", "field 'id' is null, expected a string");
}
END_TEST

START_TEST(test_not_object)
{
    expect_error("cnn_not_object.jsonl", "line 1:", "expected a JSON object, got an array");
}
END_TEST

START_TEST(test_bad_utf8)
{
    expect_error("cnn_bad_utf8.jsonl", "line 2:", "malformed JSON");
}
END_TEST

START_TEST(test_empty_file)
{
    expect_error("cnn_empty.jsonl", "no items", NULL);
}
END_TEST

#else
/* The shared split: 100 items, item 0 the ICC story, every highlight scores 1 against itself. */
START_TEST(test_shared_split)
{
    char *path = test_data_path("cnn_dailymail/test_100.jsonl");
    ck_assert_ptr_nonnull(path);
    cnn_item *it;
    size_t n;
    ck_assert_msg(!cnn_load(path, 0, &it, &n), "%s", duet_error());
    ck_assert_uint_eq(n, 100);
    ck_assert_str_eq(it[0].id, "f001ec5c4704938247d27a44948eebb37ae98d01");
    ck_assert(!strncmp(it[0].article, "(CNN)The Palestinian Authority", 30));
    for (size_t i = 0; i < n; i++) {
        ck_assert(it[i].highlights_len > 0 && it[i].article_len > 0);
        rouge_scores s;
        ck_assert(!rouge_score(&s, it[i].highlights, it[i].highlights, 0));
        for (int t = 0; t < ROUGE_N_TYPES; t++)
            ck_assert_double_eq_tol(s.s[t].f, 1.0, 1e-15);
    }
    cnn_free(it, n);
    ck_assert(!cnn_load(path, 20, &it, &n));
    ck_assert_uint_eq(n, 20);
    cnn_free(it, n);
    free(path);
}
END_TEST
#endif

/* Built twice from this file: tests/test_cnn_dailymail runs the fixture tests (always), and
 * tests/test_cnn_dailymail_split (-DCNN_SHARED_SPLIT) reads the shared split, skipping (77) without it. */
int main(void)
{
    Suite *s = suite_create("cnn_dailymail");
    TCase *tc = tcase_create("reader");
#ifdef CNN_SHARED_SPLIT
    char *p = test_data_path("cnn_dailymail/test_100.jsonl");
    test_skip_unless(p, "shared data cnn_dailymail/test_100.jsonl");
    free(p);
    tcase_add_test(tc, test_shared_split);
#else
    tcase_add_test(tc, test_ok_fixture);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_malformed_json);
    tcase_add_test(tc, test_missing_highlights);
    tcase_add_test(tc, test_wrong_type);
    tcase_add_test(tc, test_null_id);
    tcase_add_test(tc, test_not_object);
    tcase_add_test(tc, test_bad_utf8);
    tcase_add_test(tc, test_empty_file);
#endif
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
