/* test_scheduler.c: the in-flight batching scheduler (serve/scheduler.h) against a model-free backend that
 * holds the seam's contract strictly: positions of a slot must be appended in order, a forward needing more
 * KV blocks than are free fails (the scheduler must never cause that), release gives a slot's blocks back.
 * Its logits are a hash of the slot's whole token prefix, so a request's tokens depend only on its own
 * prompt and draws: any difference from the request's solo run (computed here without the scheduler) is a
 * scheduling bug (a wrong token, position or slot fed, a lost or duplicated step). */
#include "test_util.h"

#include "error.h"
#include "sampler.h"
#include "scheduler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FV 61      /* vocabulary */
#define FBLOCK 16  /* positions per KV block */

typedef struct fake {
    duet_backend be;
    duet_model m;
    int V, S, C, pool, free_blocks, fail_next;
    int nan_slot;      /* >= 0: that slot's logits are NaN */
    int *held, *len;   /* [S] blocks held, positions cached */
    uint64_t *h;       /* [S][C] hash of the slot's tokens 0..p */
    int64_t rows;      /* tokens fed */
    int max_batch;     /* most tokens in one forward */
} fake;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

static void fake_logits(uint64_t h, float *out, int V)
{
    for (int v = 0; v < V; v++) out[v] = (float)(mix(h, (uint64_t)v) >> 40) / 16777216.0f * 8.0f;
}

static int fake_forward(duet_backend *b, const duet_batch *bt, float *logits)
{
    fake *f = (fake *)b;
    if (f->fail_next) {
        f->fail_next = 0;
        return duet_errorf("fake: failure asked for by the test");
    }
    int *len = malloc(sizeof(int) * (size_t)f->S), need = 0;
    memcpy(len, f->len, sizeof(int) * (size_t)f->S);
    for (int t = 0; t < bt->n_tokens; t++) { /* check the whole batch before changing anything */
        int s = bt->seq[t], p = bt->pos[t];
        if (s < 0 || s >= f->S || p != len[s] || p >= f->C || bt->tokens[t] < 0 || bt->tokens[t] >= f->V) {
            free(len);
            return duet_errorf("fake: token %d: slot %d position %d (slot caches %d) or id %d out of order", t, s, p,
                               s >= 0 && s < f->S ? len[s] : -1, bt->tokens[t]);
        }
        if (p % FBLOCK == 0) need++;
        len[s]++;
    }
    free(len);
    if (need > f->free_blocks) return duet_errorf("fake: %d new blocks needed, %d free", need, f->free_blocks);
    int r = 0;
    for (int t = 0; t < bt->n_tokens; t++) {
        int s = bt->seq[t], p = bt->pos[t];
        if (p % FBLOCK == 0) f->held[s]++, f->free_blocks--;
        uint64_t prev = p ? f->h[(int64_t)s * f->C + p - 1] : 0x1234567ull;
        uint64_t h = mix(prev, (uint64_t)bt->tokens[t]);
        f->h[(int64_t)s * f->C + p] = h;
        f->len[s] = p + 1;
        if (!bt->logits_for || bt->logits_for[t]) {
            fake_logits(h, logits + (int64_t)r * f->V, f->V);
            if (s == f->nan_slot) logits[(int64_t)r * f->V + 3] = NAN;
            r++;
        }
    }
    f->rows += bt->n_tokens;
    if (bt->n_tokens > f->max_batch) f->max_batch = bt->n_tokens;
    return 0;
}

static int fake_release(duet_backend *b, int seq)
{
    fake *f = (fake *)b;
    if (seq < 0 || seq >= f->S) return duet_errorf("fake: release of slot %d", seq);
    f->free_blocks += f->held[seq];
    f->held[seq] = f->len[seq] = 0;
    return 0;
}

static fake *fake_new_v(int V, int S, int C, int pool)
{
    fake *f = calloc(1, sizeof *f);
    f->nan_slot = -1;
    f->V = V, f->S = S, f->C = C, f->pool = f->free_blocks = pool;
    f->held = calloc((size_t)S, sizeof(int));
    f->len = calloc((size_t)S, sizeof(int));
    f->h = calloc((size_t)S * C, sizeof(uint64_t));
    f->m.cfg.vocab_size = V;
    f->be.name = "fake";
    f->be.model = &f->m;
    f->be.cfg = &f->m.cfg;
    f->be.forward = fake_forward;
    f->be.release = fake_release;
    f->be.kv_block = FBLOCK;
    f->be.kv_blocks = pool;
    return f;
}

static fake *fake_new(int S, int C, int pool) { return fake_new_v(FV, S, C, pool); }

static void fake_free(fake *f)
{
    free(f->held);
    free(f->len);
    free(f->h);
    free(f);
}

/* ---- requests and their solo runs ------------------------------------------------------------- */

typedef struct rec {
    int prompt[128], n_prompt, max_tokens, stop_id;
    float temperature;
    uint64_t seed;
    int64_t id;
    int out[128], n_out, done, reason, cancel_at, preemptions;
} rec;

static void on_token(void *ctx, int64_t id, int tok)
{
    rec *r = ctx;
    ck_assert_int_eq(r->id, id);
    ck_assert_int_lt(r->n_out, 128);
    r->out[r->n_out++] = tok;
}

static void on_done(void *ctx, int64_t id, duet_finish why, const duet_request_stats *st)
{
    rec *r = ctx;
    ck_assert_int_eq(r->id, id);
    r->done++;
    r->reason = (int)why;
    r->preemptions = st->preemptions;
    ck_assert_int_eq(st->n_generated, r->n_out);
    ck_assert_int_eq(st->n_prompt, r->n_prompt);
}

/* The request alone: the same hash chain and a fresh sampler with its parameters. */
static int solo(const rec *r, int *out)
{
    duet_sampler smp;
    ck_assert_int_eq(duet_sampler_init(&smp, FV, r->temperature, 0, 1.0f, r->seed), 0);
    uint64_t h = 0x1234567ull;
    for (int i = 0; i < r->n_prompt; i++) h = mix(h, (uint64_t)r->prompt[i]);
    int n = 0;
    float lg[FV];
    for (;;) {
        fake_logits(h, lg, FV);
        int tok = duet_sample(&smp, lg);
        out[n++] = tok;
        if (tok == r->stop_id || n == r->max_tokens) break;
        h = mix(h, (uint64_t)tok);
    }
    duet_sampler_free(&smp);
    return n;
}

static int submit(duet_sched *s, rec *r)
{
    duet_request q = {0};
    q.prompt = r->prompt, q.n_prompt = r->n_prompt, q.max_tokens = r->max_tokens;
    q.temperature = r->temperature, q.top_p = 1.0f, q.seed = r->seed;
    q.stop_ids = &r->stop_id, q.n_stop_ids = r->stop_id >= 0 ? 1 : 0;
    q.on_token = on_token, q.on_done = on_done, q.ctx = r;
    return duet_sched_submit(s, &q, &r->id);
}

static uint64_t rng_state;
static int rnd(int n) /* 0 .. n-1 */
{
    rng_state = mix(rng_state, 77);
    return (int)(rng_state % (uint64_t)n);
}

static void rec_random(rec *r, int max_prompt, int max_new)
{
    memset(r, 0, sizeof *r);
    r->n_prompt = 1 + rnd(max_prompt);
    for (int i = 0; i < r->n_prompt; i++) r->prompt[i] = rnd(FV);
    r->max_tokens = 1 + rnd(max_new);
    r->stop_id = rnd(4) == 0 ? rnd(FV) : -1;
    r->temperature = rnd(3) == 0 ? 0.8f : 0.0f;
    r->seed = (uint64_t)rnd(1 << 30);
    r->cancel_at = rnd(30) == 0 ? 1 + rnd(200) : -1; /* steps after its arrival */
}

/* N requests arriving at random steps (0-3 per step), some cancelled later; every request must end exactly
 * once, the finished ones with their solo tokens, the cancelled ones with a prefix of them; the pool must
 * come back whole. */
static void stress(duet_sched_policy policy, int N, int S, int pool, int budget, int64_t *preempts, int *max_wait)
{
    fake *f = fake_new(S, 256, pool);
    duet_sched_opts o = {.max_seqs = S, .max_ctx = 256, .token_budget = budget, .policy = policy};
    duet_sched *s = duet_sched_create(&f->be, &o);
    ck_assert_msg(s != NULL, "%s", duet_error());
    rec *R = calloc((size_t)N, sizeof *R);
    int *arrived = calloc((size_t)N, sizeof(int)), *to_cancel = calloc((size_t)N, sizeof(int)), n_cancel = 0;
    int next = 0, step = 0;
    *max_wait = 0;
    while (next < N || duet_sched_step(s) > 0) {
        for (int k = rnd(4); k > 0 && next < N; k--, next++) {
            rec_random(&R[next], 100, 60);
            ck_assert_msg(submit(s, &R[next]) == 0, "%s", duet_error());
            arrived[next] = step;
            if (R[next].cancel_at >= 0) to_cancel[n_cancel++] = next;
        }
        for (int j = 0; j < n_cancel; j++) {
            const int i = to_cancel[j];
            if (step - arrived[i] == R[i].cancel_at && !R[i].done) ck_assert_int_eq(duet_sched_cancel(s, R[i].id), 0);
        }
        duet_sched_stats st;
        duet_sched_get_stats(s, &st);
        ck_assert_int_le(st.kv_blocks_used, pool);
        ck_assert_int_eq(st.kv_blocks_used, pool - f->free_blocks); /* counted as the backend takes them */
        if (st.waiting > *max_wait) *max_wait = st.waiting;
        if (next < N) ck_assert_int_ge(duet_sched_step(s), 0);
        step++;
    }
    int exp[128], cancelled = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(R[i].done == 1, "request %d ended %d times", i, R[i].done);
        int n = solo(&R[i], exp);
        if (R[i].reason == DUET_FINISH_CANCELLED) {
            cancelled++;
            ck_assert_int_le(R[i].n_out, n);
        } else {
            ck_assert_msg(R[i].reason == DUET_FINISH_STOP || R[i].reason == DUET_FINISH_LENGTH, "request %d: %s", i,
                          duet_finish_name((duet_finish)R[i].reason));
            ck_assert_msg(R[i].n_out == n, "request %d: %d tokens, solo %d", i, R[i].n_out, n);
            ck_assert_int_eq(R[i].reason, exp[n - 1] == R[i].stop_id ? DUET_FINISH_STOP : DUET_FINISH_LENGTH);
        }
        ck_assert_msg(!memcmp(R[i].out, exp, sizeof(int) * (size_t)R[i].n_out), "request %d: tokens differ from solo", i);
    }
    ck_assert_int_gt(cancelled, 0);
    duet_sched_stats st;
    duet_sched_get_stats(s, &st);
    ck_assert_int_eq(st.running + st.waiting + st.kv_blocks_used, 0);
    ck_assert_int_eq(st.finished, N);
    ck_assert_int_eq(f->free_blocks, pool);
    ck_assert_int_le(f->max_batch, budget);
    *preempts = st.preemptions;
    duet_sched_free(s);
    free(R);
    free(arrived);
    free(to_cancel);
    fake_free(f);
}

START_TEST(stress_max_utilization)
{
    rng_state = 1;
    int64_t pre = 0;
    int max_wait = 0;
    stress(DUET_SCHED_MAX_UTIL, 10000, 12, 30, 64, &pre, &max_wait);
    ck_assert_int_gt(pre, 0);      /* the pool was short: requests were preempted and recomputed */
    ck_assert_int_gt(max_wait, 0); /* and queued */
}
END_TEST

START_TEST(stress_no_evict)
{
    rng_state = 2;
    int64_t pre = 0;
    int max_wait = 0;
    stress(DUET_SCHED_NO_EVICT, 10000, 12, 30, 64, &pre, &max_wait);
    ck_assert_int_eq(pre, 0); /* a started request is never paused */
    ck_assert_int_gt(max_wait, 0);
}
END_TEST

/* A small token budget splits prompts into chunks; the tokens stay the solo run's. */
START_TEST(chunked_prefill)
{
    rng_state = 3;
    int64_t pre = 0;
    int max_wait = 0;
    stress(DUET_SCHED_MAX_UTIL, 300, 4, 40, 4, &pre, &max_wait);
    stress(DUET_SCHED_NO_EVICT, 300, 4, 40, 5, &pre, &max_wait);
}
END_TEST

START_TEST(bad_requests)
{
    fake *f = fake_new(2, 64, 4);
    duet_sched_opts o = {.max_seqs = 2, .max_ctx = 64, .token_budget = 8, .max_waiting = 2};
    duet_sched *s = duet_sched_create(&f->be, &o);
    ck_assert_ptr_nonnull(s);
    rec r;
    rec_random(&r, 10, 10);
    r.n_prompt = 60, r.max_tokens = 5; /* 65 > max_ctx 64 */
    ck_assert_int_eq(submit(s, &r), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "beyond the context of 64"));
    r.n_prompt = 50, r.max_tokens = 14; /* 63 positions: 4 blocks, the whole pool */
    rec big = r;
    ck_assert_int_eq(submit(s, &big), 0);
    r.n_prompt = 0;
    ck_assert_int_eq(submit(s, &r), -1);
    r.n_prompt = 3, r.prompt[1] = FV;
    ck_assert_int_eq(submit(s, &r), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "outside the vocabulary"));
    r.prompt[1] = 0, r.max_tokens = 0;
    ck_assert_int_eq(submit(s, &r), -1);
    r.max_tokens = 3, r.temperature = -1.0f;
    ck_assert_int_eq(submit(s, &r), -1);
    r.temperature = 0.0f;
    duet_request q = {.prompt = r.prompt, .n_prompt = 3, .max_tokens = 3, .top_p = 1.0f};
    const char *stops[] = {"x"};
    q.stop = stops, q.n_stop = 1;
    int64_t id;
    ck_assert_int_eq(duet_sched_submit(s, &q, &id), -1); /* stop strings without a tokenizer */
    ck_assert_ptr_nonnull(strstr(duet_error(), "tokenizer"));
    rec r2 = r, r3 = r;
    ck_assert_int_eq(submit(s, &r2), 0);
    ck_assert_int_eq(submit(s, &r3), DUET_SCHED_BUSY); /* max_waiting 2 */
    ck_assert_int_eq(duet_sched_cancel(s, 12345), -1);
    /* a backend failure ends the running requests with an error; the scheduler goes on */
    f->fail_next = 1;
    ck_assert_int_eq(duet_sched_step(s), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "failure asked for"));
    rec r4 = r;
    ck_assert_int_eq(submit(s, &r4), 0);
    ck_assert_int_eq(duet_sched_drain(s), 0);
    ck_assert_int_eq(big.done, 1);
    ck_assert_int_eq(big.reason, DUET_FINISH_ERROR); /* it was running */
    ck_assert_int_eq(r2.done + r4.done, 2);         /* they were waiting */
    ck_assert_int_ne(r2.reason, DUET_FINISH_ERROR);
    ck_assert_int_ne(r4.reason, DUET_FINISH_ERROR);
    ck_assert_int_eq(f->free_blocks, 4);
    /* NaN logits in one request's row end that request with an error; the other one finishes */
    rec a = r, c2 = r;
    ck_assert_int_eq(submit(s, &a), 0);
    ck_assert_int_eq(submit(s, &c2), 0);
    f->nan_slot = 1; /* the second admitted request's slot */
    ck_assert_int_eq(duet_sched_drain(s), 0);
    f->nan_slot = -1;
    ck_assert_int_eq(a.reason, DUET_FINISH_LENGTH);
    ck_assert_int_eq(c2.reason, DUET_FINISH_ERROR);
    ck_assert_int_eq(c2.n_out, 0);
    ck_assert_int_eq(f->free_blocks, 4);
    duet_sched_free(s);
    /* options that cannot work */
    o.token_budget = 1;
    ck_assert_ptr_null(duet_sched_create(&f->be, &o));
    o.token_budget = 8, o.kv_blocks = 5;
    ck_assert_ptr_null(duet_sched_create(&f->be, &o));
    ck_assert_ptr_nonnull(strstr(duet_error(), "more than the backend's pool"));
    f->be.release = NULL;
    o.kv_blocks = 0;
    ck_assert_ptr_null(duet_sched_create(&f->be, &o));
    fake_free(f);
}
END_TEST


/* ---- text: the tokenizer's stream, stop strings ------------------------------------------------ */

typedef struct text_rec {
    char buf[4096];
    size_t len;
    int done, reason;
} text_rec;

static void on_text(void *ctx, int64_t id, const char *p, size_t n)
{
    text_rec *t = ctx;
    ck_assert_uint_lt(t->len + n, sizeof t->buf);
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    t->buf[t->len] = 0;
}

static void on_text_done(void *ctx, int64_t id, duet_finish why, const duet_request_stats *st)
{
    text_rec *t = ctx;
    t->done++;
    t->reason = (int)why;
}

/* One greedy request on the default model's tokenizer (the fake's vocabulary is its size): its streamed text
 * equals the tokenizer's decode of its tokens; with a stop string taken from the middle of that text, the
 * text ends right before the string's first occurrence and the reason is "stop". */
START_TEST(stop_strings)
{
    char *path = test_model_path(); /* present: suite() adds this test only then */
    duet_tokenizer *tok = duet_tokenizer_load_gguf(path);
    ck_assert_msg(tok != NULL, "%s", duet_error());
    const int V = duet_tokenizer_vocab_size(tok);
    fake *f = fake_new_v(V, 2, 128, 16);
    duet_sched_opts o = {.max_seqs = 2, .max_ctx = 128, .token_budget = 16, .tokenizer = tok};
    duet_sched *s = duet_sched_create(&f->be, &o);
    ck_assert_ptr_nonnull(s);
    int prompt[3] = {100, 200, 300};
    /* the tokens alone: ids that decode to plain text are likely, the hash picks among all of them */
    text_rec full = {0};
    duet_request q = {.prompt = prompt, .n_prompt = 3, .max_tokens = 40, .top_p = 1.0f};
    q.on_text = on_text, q.on_done = on_text_done, q.ctx = &full;
    int64_t id;
    ck_assert_int_eq(duet_sched_submit(s, &q, &id), 0);
    int ids[64], n = 0;
    /* record the ids through a second request with on_token only */
    rec r = {0};
    memcpy(r.prompt, prompt, sizeof prompt);
    r.n_prompt = 3;
    duet_request q2 = {.prompt = prompt, .n_prompt = 3, .max_tokens = 40, .top_p = 1.0f};
    q2.on_token = on_token, q2.ctx = &r;
    ck_assert_int_eq(duet_sched_submit(s, &q2, &r.id), 0);
    ck_assert_int_eq(duet_sched_drain(s), 0);
    ck_assert_int_eq(full.done, 1);
    ck_assert_int_eq(full.reason, DUET_FINISH_LENGTH);
    ck_assert_int_eq(r.n_out, 40);
    for (n = 0; n < r.n_out; n++) ids[n] = r.out[n];
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(duet_tokenizer_decode(tok, ids, (size_t)n, 1, &text, &len), 0);
    ck_assert_uint_eq(full.len, len);
    ck_assert_msg(!memcmp(full.buf, text, len), "streamed text differs from the decode");
    ck_assert_uint_ge(len, 12);
    /* a 3-byte stop string from the middle (at a UTF-8 boundary) */
    size_t at = len / 2;
    while (at > 0 && ((unsigned char)text[at] & 0xC0) == 0x80) at--;
    size_t sl = 3;
    while (at + sl < len && ((unsigned char)text[at + sl] & 0xC0) == 0x80) sl++;
    char stop[16];
    memcpy(stop, text + at, sl);
    stop[sl] = 0;
    const char *first = strstr(text, stop);
    const char *stops[] = {"never appears \x01", stop};
    text_rec cut = {0};
    q.stop = stops, q.n_stop = 2, q.ctx = &cut;
    ck_assert_int_eq(duet_sched_submit(s, &q, &id), 0);
    ck_assert_int_eq(duet_sched_drain(s), 0);
    ck_assert_int_eq(cut.reason, DUET_FINISH_STOP);
    ck_assert_uint_eq(cut.len, (size_t)(first - text));
    ck_assert(!memcmp(cut.buf, text, cut.len));
    free(text);
    duet_sched_free(s);
    fake_free(f);
    duet_tokenizer_free(tok);
    free(path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("scheduler");
    TCase *tc = tcase_create("fake backend");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bad_requests);
    tcase_add_test(tc, chunked_prefill);
    tcase_add_test(tc, stress_max_utilization);
    tcase_add_test(tc, stress_no_evict);
    suite_add_tcase(s, tc);
    char *model = test_model_path(); /* the tokenizer's test needs the default model; the rest needs nothing */
    if (model && access(model, R_OK) == 0) {
        TCase *tt = tcase_create("tokenizer");
        tcase_set_timeout(tt, 120);
        tcase_add_test(tt, stop_strings);
        suite_add_tcase(s, tt);
    } else {
        fprintf(stderr, "test_scheduler: stop_strings not run: no default model (make model)\n");
    }
    free(model);
    return s;
}

int main(void) { return test_run_suite(suite()); }
