/* test_chat.c: continuing a cached sequence (duet_gen_opts.start_pos) and the multi-turn chat session
 * (common/chat_session.h) on the default model (SmolLM2-135M-Instruct, ChatML) with the ref backend,
 * greedy: a turn generated on the cache of the turns before it gives the same ids as a from-scratch run
 * over the whole conversation. Skips (77) without the model. */
#include "test_util.h"

#include "backend.h"
#include "chat.h"
#include "chat_session.h"
#include "error.h"
#include "engine/registry.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTX 512
#define MAX_NEW 48

static duet_model *model;
static duet_tokenizer *tok;
static duet_chat_template tmpl;
static int end_id;

static duet_backend *make_ref(int max_seqs, duet_backend_opts *o)
{
    *o = (duet_backend_opts){.max_seqs = max_seqs, .max_ctx = CTX, .dtype = "fp32"};
    duet_backend *b = duet_backend_create("ref", model, o);
    ck_assert_msg(b != NULL, "ref backend: %s", duet_error());
    return b;
}

/* Greedy generation of prompt[0, n) at start_pos `start` of slot `seq`; returns the count in out. */
static int greedy(duet_backend *b, const duet_backend_opts *bo, int seq, int start, const int *prompt, int n,
                  int max_new, int eos, int *out)
{
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, model->cfg.vocab_size, 0.0f, 0, 1.0f, 0), 0);
    duet_gen_opts go = {.max_new = max_new, .eos_id = eos, .seq = seq, .start_pos = start, .sampler = &s};
    duet_gen_stats st;
    ck_assert_msg(duet_generate(b, bo, prompt, n, &go, out, &st) == 0, "%s", duet_error());
    ck_assert_int_eq(st.n_prompt, n);
    duet_sampler_free(&s);
    return st.n_generated;
}

static void assert_same_ids(const int *a, int na, const int *b, int nb, const char *what)
{
    ck_assert_msg(na == nb, "%s: %d ids vs %d from scratch", what, na, nb);
    for (int i = 0; i < na; i++) ck_assert_msg(a[i] == b[i], "%s: id %d is %d, from scratch %d", what, i, a[i], b[i]);
}

/* duet_generate continuing a slot: generate 8 ids from a prompt, then feed the last one at the position
 * after the cached ones and generate 8 more; the 16 equal one run of 16 from the prompt. */
START_TEST(test_start_pos_continues_a_sequence)
{
    duet_backend_opts bo;
    duet_backend *b = make_ref(2, &bo);
    int *prompt, first[8], second[8], whole[16];
    size_t np;
    static const char text[] = "The quick brown fox";
    ck_assert_int_eq(duet_tokenizer_encode_opts(tok, text, strlen(text), 1, 0, &prompt, &np), 0);
    ck_assert_int_eq(greedy(b, &bo, 0, 0, prompt, (int)np, 8, -1, first), 8);
    /* the slot caches positions 0..np+6; first[7] was sampled, not fed */
    ck_assert_int_eq(greedy(b, &bo, 0, (int)np + 7, &first[7], 1, 8, -1, second), 8);
    ck_assert_int_eq(greedy(b, &bo, 1, 0, prompt, (int)np, 16, -1, whole), 16);
    int cont[16];
    memcpy(cont, first, sizeof first);
    memcpy(cont + 8, second, sizeof second);
    assert_same_ids(cont, 16, whole, 16, "continued run");
    free(prompt);
    duet_backend_free(b);
}
END_TEST

/* start_pos outside the context, or a prompt that runs past it from there: an error naming the sizes. */
START_TEST(test_start_pos_past_the_context)
{
    duet_backend_opts bo;
    duet_backend *b = make_ref(1, &bo);
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, model->cfg.vocab_size, 0.0f, 0, 1.0f, 0), 0);
    int ids[4] = {1, 2, 3, 4}, out[4];
    duet_gen_stats st;
    duet_gen_opts go = {.max_new = 1, .eos_id = -1, .start_pos = CTX - 3, .sampler = &s};
    ck_assert_int_eq(duet_generate(b, &bo, ids, 4, &go, out, &st), -1);
    ck_assert_msg(strstr(duet_error(), "4 tokens at position 509") && strstr(duet_error(), "512"), "message: %s",
                  duet_error());
    go.start_pos = CTX - 4;
    go.max_new = 2; /* the 4 ids fill the context; the second new id would need position 512 */
    ck_assert_int_eq(duet_generate(b, &bo, ids, 4, &go, out, &st), -1);
    ck_assert_msg(strstr(duet_error(), "needs 513 positions"), "message: %s", duet_error());
    go.start_pos = -1;
    ck_assert_int_eq(duet_generate(b, &bo, ids, 4, &go, out, &st), -1);
    ck_assert_msg(strstr(duet_error(), "start position -1"), "message: %s", duet_error());
    go.start_pos = CTX - 4;
    go.max_new = 1;
    ck_assert_msg(duet_generate(b, &bo, ids, 4, &go, out, &st) == 0, "%s", duet_error());
    duet_sampler_free(&s);
    duet_backend_free(b);
}
END_TEST

/* One session turn on slot 0 (with the session's cache); returns the answer's length in out. */
static int session_turn(duet_chat_session *cs, duet_backend *b, const duet_backend_opts *bo, const char *user,
                        int *start, int *out)
{
    ck_assert_msg(duet_chat_session_begin(cs, user, start) == 0, "%s", duet_error());
    ck_assert_int_lt(*start, cs->n_ids);
    int n = greedy(b, bo, 0, *start, cs->ids + *start, cs->n_ids - *start, MAX_NEW, end_id, out);
    return n;
}

/* The conversation's ids from scratch: [history + user] rendered and tokenized as a whole, generated
 * on slot 1 from position 0. */
static int from_scratch(duet_backend *b, const duet_backend_opts *bo, const duet_chat_msg *msgs, int n_msgs,
                        int *out)
{
    char *text = duet_chat_render(&tmpl, msgs, n_msgs, NULL, 1);
    ck_assert_msg(text != NULL, "%s", duet_error());
    int *ids;
    size_t n;
    ck_assert_int_eq(duet_tokenizer_encode_opts(tok, text, strlen(text), tmpl.add_bos, 1, &ids, &n), 0);
    int got = greedy(b, bo, 1, 0, ids, (int)n, MAX_NEW, end_id, out);
    free(ids);
    free(text);
    return got;
}

/* Three turns: each one prefills only what follows the cache (the cache is reused: start is the cached
 * count, which grows), and generates the ids a from-scratch run over the whole conversation gives. */
START_TEST(test_turns_on_the_cache_equal_from_scratch)
{
    static const char *users[] = {"What is the capital of France?", "And of Italy?", "Which one is bigger?"};
    duet_backend_opts bo;
    duet_backend *b = make_ref(2, &bo);
    duet_chat_session cs;
    ck_assert_int_eq(duet_chat_session_init(&cs, &tmpl, tok, NULL), 0);
    int out[MAX_NEW], ref[MAX_NEW], prev_cached = 0;
    for (int t = 0; t < 3; t++) {
        int start;
        int n = session_turn(&cs, b, &bo, users[t], &start, out);
        if (t == 0)
            ck_assert_int_eq(start, 0);
        else
            ck_assert_msg(start == prev_cached && start > 0, "turn %d: %d ids reused of %d cached", t + 1, start,
                          prev_cached);
        /* the history as text, as from_scratch renders it: the session's messages plus this turn's */
        duet_chat_msg msgs[8];
        memcpy(msgs, cs.msgs, sizeof(duet_chat_msg) * (size_t)cs.n_msgs);
        msgs[cs.n_msgs] = (duet_chat_msg){"user", users[t]};
        int nr = from_scratch(b, &bo, msgs, cs.n_msgs + 1, ref);
        char what[32];
        snprintf(what, sizeof what, "turn %d", t + 1);
        assert_same_ids(out, n, ref, nr, what);
        int n_ids = cs.n_ids;
        ck_assert_msg(duet_chat_session_end(&cs, out, n, end_id) == 0, "%s", duet_error());
        ck_assert_int_eq(cs.n_cached, n_ids + n - 1);
        ck_assert_int_eq(cs.n_msgs, 2 * (t + 1));
        prev_cached = cs.n_cached;
    }
    duet_chat_session_free(&cs);
    duet_backend_free(b);
}
END_TEST

/* reset forgets the conversation: the next turn starts at 0 with the ids of a first turn. A system
 * prompt set later resets too, and its rendering differs in the system block. */
START_TEST(test_reset_and_system)
{
    duet_backend_opts bo;
    duet_backend *b = make_ref(2, &bo);
    duet_chat_session cs;
    ck_assert_int_eq(duet_chat_session_init(&cs, &tmpl, tok, NULL), 0);
    int out[MAX_NEW], start;
    int n = session_turn(&cs, b, &bo, "Hello!", &start, out);
    int n1 = cs.n_ids, *ids1 = malloc(sizeof(int) * (size_t)n1);
    memcpy(ids1, cs.ids, sizeof(int) * (size_t)n1);
    ck_assert_int_eq(duet_chat_session_end(&cs, out, n, end_id), 0);
    duet_chat_session_reset(&cs);
    ck_assert_int_eq(cs.n_cached, 0);
    ck_assert_int_eq(cs.n_msgs, 0);
    ck_assert_int_eq(duet_chat_session_begin(&cs, "Hello!", &start), 0);
    ck_assert_int_eq(start, 0);
    assert_same_ids(cs.ids, cs.n_ids, ids1, n1, "after reset");
    duet_chat_session_cancel(&cs);
    ck_assert_int_eq(duet_chat_session_set_system(&cs, "You are terse."), 0);
    ck_assert_int_eq(duet_chat_session_begin(&cs, "Hello!", &start), 0);
    ck_assert_int_eq(start, 0);
    char *text;
    size_t len;
    ck_assert_int_eq(duet_tokenizer_decode(tok, cs.ids, (size_t)cs.n_ids, 0, &text, &len), 0);
    ck_assert_msg(strstr(text, "<|im_start|>system\nYou are terse.<|im_end|>"), "rendered: %s", text);
    free(text);
    free(ids1);
    duet_chat_session_free(&cs);
    duet_backend_free(b);
}
END_TEST

/* A cache that is not a prefix of the new rendering is not reused: the turn starts at 0. And cancel
 * leaves history and cache as they were. */
START_TEST(test_cache_not_a_prefix)
{
    duet_backend_opts bo;
    duet_backend *b = make_ref(1, &bo);
    duet_chat_session cs;
    ck_assert_int_eq(duet_chat_session_init(&cs, &tmpl, tok, NULL), 0);
    int out[MAX_NEW], start;
    int n = session_turn(&cs, b, &bo, "Hi", &start, out);
    ck_assert_int_eq(duet_chat_session_end(&cs, out, n, end_id), 0);
    int cached = cs.n_cached;
    ck_assert_int_eq(duet_chat_session_begin(&cs, "Bye", &start), 0);
    ck_assert_int_eq(start, cached);
    duet_chat_session_cancel(&cs);
    ck_assert_int_eq(cs.n_cached, cached);
    ck_assert_int_eq(cs.n_msgs, 2);
    cs.cached[cached - 1] ^= 1; /* as if the slot held another id there */
    ck_assert_int_eq(duet_chat_session_begin(&cs, "Bye", &start), 0);
    ck_assert_int_eq(start, 0);
    duet_chat_session_free(&cs);
    duet_backend_free(b);
}
END_TEST

/* end without an open turn, or with no ids: errors. */
START_TEST(test_end_errors)
{
    duet_chat_session cs;
    ck_assert_int_eq(duet_chat_session_init(&cs, &tmpl, tok, ""), 0);
    int id = end_id, start;
    ck_assert_int_eq(duet_chat_session_end(&cs, &id, 1, end_id), -1);
    ck_assert_msg(strstr(duet_error(), "no turn is open"), "message: %s", duet_error());
    ck_assert_int_eq(duet_chat_session_begin(&cs, "Hi", &start), 0);
    ck_assert_int_eq(duet_chat_session_end(&cs, &id, 0, end_id), -1);
    ck_assert_msg(strstr(duet_error(), "0 ids"), "message: %s", duet_error());
    duet_chat_session_free(&cs);
}
END_TEST

int main(void)
{
    char *mp = test_model_path();
    test_skip_unless(mp, "the default model (run `make model`)");
    if (!(model = duet_model_open(mp)) || !(tok = duet_model_tokenizer(model)) ||
        duet_model_chat_template(model, &tmpl)) {
        fprintf(stderr, "cannot open %s: %s\n", mp, duet_error());
        return TEST_EXIT_HARD;
    }
    if (tmpl.format != DUET_CHAT_CHATML ||
        (end_id = duet_tokenizer_token_id(tok, tmpl.end_token, strlen(tmpl.end_token))) < 0) {
        fprintf(stderr, "%s: expected a ChatML template with <|im_end|>\n", mp);
        return TEST_EXIT_HARD;
    }
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("chat session on the ref backend");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_start_pos_continues_a_sequence);
    tcase_add_test(tc, test_start_pos_past_the_context);
    tcase_add_test(tc, test_turns_on_the_cache_equal_from_scratch);
    tcase_add_test(tc, test_reset_and_system);
    tcase_add_test(tc, test_cache_not_a_prefix);
    tcase_add_test(tc, test_end_errors);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    duet_chat_template_free(&tmpl);
    duet_tokenizer_free(tok);
    duet_model_close(model);
    free(mp);
    return rc;
}
