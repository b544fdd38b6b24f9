/* test_eval.c: the summarize.py protocol of `duet eval` on stories260K: for the first 20 cnn_dailymail
 * items with --max-input 412, the prompt ids, the greedy output ids and the decoded summaries equal
 * what Hugging Face transformers produced from the same inputs (tests/data/hf/stories260K_summaries.json,
 * made by scripts/hf_reference.py). The protocol's string rules are checked without data.
 * The model part skips (77) without ../shared/data. */
#include "test_util.h"

#include "backend.h"
#include "error.h"
#include "engine/registry.h"
#include "eval/cnn_dailymail.h"
#include "eval/summarize.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_prompt_text)
{
    size_t n;
    char *s = summarize_prompt_text("  He didn't say. They do n't  ", 30, &n);
    /* strip() happens after appending " TL;DR: ", so the trailing spaces of the article stay inside */
    ck_assert_str_eq(s, "He didn't say. They don't   TL;DR:");
    ck_assert_uint_eq(n, strlen(s));
    free(s);
    s = summarize_prompt_text("a n't n't", 9, &n);
    ck_assert_str_eq(s, "an'tn't TL;DR:");
    free(s);
    /* A NUL inside the article is a byte like any other: the text after it stays in the prompt. */
    s = summarize_prompt_text("Tom\0 ran home.", 14, &n);
    ck_assert_uint_eq(n, 21);
    ck_assert_int_eq(memcmp(s, "Tom\0 ran home. TL;DR:", 22), 0);
    free(s);
}
END_TEST

START_TEST(test_lengths_message)
{
    ck_assert_int_eq(summarize_check_lengths(412, 100, 512, "m"), 0);
    ck_assert_int_eq(summarize_check_lengths(923, 100, 512, "stories260K"), -1);
    ck_assert_msg(strstr(duet_error(), "512 positions") && strstr(duet_error(), "lower --max-input to 412"), "%s",
                  duet_error());
}
END_TEST

static int skip_model;

/* The prompt ids of an article holding a NUL byte cover the text after it (strlen stopped there). */
START_TEST(test_prompt_ids_nul)
{
    if (skip_model) return;
    char *dir = test_data_path("stories260K");
    duet_tokenizer *tok = duet_tokenizer_load(dir);
    ck_assert_msg(tok != NULL, "%s", duet_error());
    static const char art[] = "Tom had a red ball.\0 Then he ran home to his mom.";
    int *ids, *head, *full;
    size_t n, n_head, n_full;
    ck_assert_msg(summarize_prompt_ids(tok, art, sizeof art - 1, 400, &ids, &n) == 0, "%s", duet_error());
    ck_assert_msg(summarize_prompt_ids(tok, art, strlen(art), 400, &head, &n_head) == 0, "%s", duet_error());
    /* the same bytes straight through the tokenizer: what the prompt must be */
    static const char text[] = "Tom had a red ball.\0 Then he ran home to his mom. TL;DR:";
    ck_assert_int_eq(duet_tokenizer_encode(tok, text, sizeof text - 1, 1, &full, &n_full), 0);
    ck_assert_msg(n > n_head + 5, "%zu ids with the text after the NUL, %zu without: it was cut", n, n_head);
    ck_assert_uint_eq(n, n_full);
    ck_assert_int_eq(memcmp(ids, full, sizeof(int) * n), 0);
    free(ids);
    free(head);
    free(full);
    duet_tokenizer_free(tok);
    free(dir);
}
END_TEST

START_TEST(test_matches_hf_generate)
{
    if (skip_model) return;
    char *dir = test_data_path("stories260K"), *data = test_data_path("cnn_dailymail/test_100.jsonl");
    char *hf_path = test_src_path("tests/data/hf/stories260K_summaries.json");
    json_error_t jerr;
    json_t *hf = json_load_file(hf_path, 0, &jerr);
    ck_assert_msg(hf != NULL, "%s: %s", hf_path, jerr.text);
    json_t *hitems = json_object_get(hf, "items");
    int max_input = (int)json_integer_value(json_object_get(hf, "max_input"));
    int max_output = (int)json_integer_value(json_object_get(hf, "max_output"));
    size_t n_hf = json_array_size(hitems);
    ck_assert_int_eq(n_hf, 20);
    duet_model *m = duet_model_open(dir);
    duet_tokenizer *tok = duet_tokenizer_load(dir);
    ck_assert_msg(m && tok, "%s", duet_error());
    cnn_item *items;
    size_t n;
    ck_assert_msg(cnn_load(data, n_hf, &items, &n) == 0, "%s", duet_error());
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = m->cfg.max_pos};
    duet_backend *be = duet_backend_create("ref", m, &bo);
    ck_assert_ptr_nonnull(be);
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, m->cfg.vocab_size, 0, 0, 1, 0), 0);
    int *out = malloc(sizeof(int) * max_output);
    for (size_t i = 0; i < n; i++) {
        json_t *h = json_array_get(hitems, i);
        ck_assert_str_eq(items[i].id, json_string_value(json_object_get(h, "id")));
        int *ids;
        size_t n_ids;
        ck_assert_int_eq(summarize_prompt_ids(tok, items[i].article, items[i].article_len, max_input, &ids, &n_ids), 0);
        json_t *hin = json_object_get(h, "input_ids"), *hout = json_object_get(h, "output_ids");
        ck_assert_int_eq(n_ids, json_array_size(hin));
        for (size_t k = 0; k < n_ids; k++)
            ck_assert_msg(ids[k] == json_integer_value(json_array_get(hin, k)), "item %zu input token %zu: %d vs HF %lld",
                          i, k, ids[k], (long long)json_integer_value(json_array_get(hin, k)));
        duet_gen_opts go = {.max_new = max_output, .eos_id = duet_tokenizer_eos_id(tok), .sampler = &s};
        duet_gen_stats st;
        ck_assert_msg(duet_generate(be, &bo, ids, (int)n_ids, &go, out, &st) == 0, "%s", duet_error());
        ck_assert_int_eq(st.n_generated, json_array_size(hout));
        for (int k = 0; k < st.n_generated; k++)
            ck_assert_msg(out[k] == json_integer_value(json_array_get(hout, k)), "item %zu output token %d: %d vs HF %lld",
                          i, k, out[k], (long long)json_integer_value(json_array_get(hout, k)));
        char *text;
        size_t len;
        ck_assert_int_eq(duet_tokenizer_decode(tok, out, st.n_generated, 1, &text, &len), 0);
        ck_assert_str_eq(text, json_string_value(json_object_get(h, "summary")));
        free(text);
        free(ids);
    }
    free(out);
    duet_sampler_free(&s);
    duet_backend_free(be);
    cnn_free(items, n);
    duet_tokenizer_free(tok);
    duet_model_close(m);
    json_decref(hf);
    free(dir);
    free(data);
    free(hf_path);
}
END_TEST

int main(void)
{
    char *dir = test_data_path("stories260K"), *data = test_data_path("cnn_dailymail/test_100.jsonl");
    skip_model = !dir || !data;
    free(dir);
    free(data);
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("summarize");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_prompt_text);
    tcase_add_test(tc, test_lengths_message);
    tcase_add_test(tc, test_matches_hf_generate);
    tcase_add_test(tc, test_prompt_ids_nul);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    if (rc == 0 && skip_model) {
        fprintf(stderr, "SKIP: the HF comparison needs ../shared/data (stories260K, cnn_dailymail)\n");
        return TEST_EXIT_SKIP;
    }
    return rc;
}
