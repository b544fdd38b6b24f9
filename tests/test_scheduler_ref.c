/* test_scheduler_ref.c: the scheduler on the ref backend (batch_invariant, paged KV pool) with a synthetic
 * model (no data needed): requests with random prompts, lengths, greedy and sampled draws, a pool and a
 * token budget small enough to force queueing, chunked prefill and (max-utilization) preemption with
 * recomputation; every request's tokens equal its solo run through duet_generate on a fresh backend, bit
 * for bit, under both policies, and the backend's pool is whole again after the drain. */
#include "test_util.h"

#include "engine/registry.h"
#include "error.h"
#include "generate.h"
#include "model.h"
#include "rng.h"
#include "sampler.h"
#include "scheduler.h"
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREQ 40
#define CTX 160

typedef struct rq {
    int prompt[100], n_prompt, max_tokens, top_k;
    float temperature;
    uint64_t seed;
    int64_t id;
    int out[64], n_out, done, reason, preempted;
} rq;

static void on_token(void *ctx, int64_t id, int tok)
{
    rq *r = ctx;
    ck_assert_int_lt(r->n_out, 64);
    r->out[r->n_out++] = tok;
}

static void on_done(void *ctx, int64_t id, duet_finish why, const duet_request_stats *st)
{
    rq *r = ctx;
    r->done++;
    r->reason = (int)why;
    r->preempted = st->preemptions;
}

static duet_model *model;
static char tmpdir[128];

static void setup(void)
{
    ck_assert_int_eq(test_tmpdir(tmpdir, sizeof tmpdir, "sched_ref"), 0);
    duet_synth_opts o;
    duet_synth_defaults(&o); /* 2 layers, dim 64, vocab 512 */
    o.cfg.max_pos = CTX;
    ck_assert_msg(duet_synth_write(&o, tmpdir) == 0, "%s", duet_error());
    model = duet_model_open(tmpdir);
    ck_assert_msg(model != NULL, "%s", duet_error());
}

static void teardown(void)
{
    duet_model_close(model);
    test_rmtree(tmpdir);
}

static void make_requests(rq *R, uint64_t seed)
{
    uint64_t c = 0;
    for (int i = 0; i < NREQ; i++) {
        memset(&R[i], 0, sizeof R[i]);
        R[i].n_prompt = 1 + (int)(duet_rng_u64(seed, c++) % 100);
        for (int k = 0; k < R[i].n_prompt; k++) R[i].prompt[k] = (int)(duet_rng_u64(seed, c++) % 512);
        R[i].max_tokens = 1 + (int)(duet_rng_u64(seed, c++) % 50);
        if (duet_rng_u64(seed, c++) % 3 == 0) R[i].temperature = 0.9f, R[i].top_k = 20;
        R[i].seed = duet_rng_u64(seed, c++);
    }
}

/* The request alone: duet_generate on a fresh single-slot backend, host sampling. */
static int solo(const rq *r, int *out)
{
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = CTX, .batch_invariant = 1};
    duet_backend *b = duet_backend_create("ref", model, &bo);
    ck_assert_msg(b != NULL, "%s", duet_error());
    duet_sampler smp;
    ck_assert_int_eq(duet_sampler_init(&smp, 512, r->temperature, r->top_k, 1.0f, r->seed), 0);
    duet_gen_opts go = {.max_new = r->max_tokens, .eos_id = -1, .sampler = &smp, .host_sampling = 1};
    duet_gen_stats st;
    ck_assert_msg(duet_generate(b, &bo, r->prompt, r->n_prompt, &go, out, &st) == 0, "%s", duet_error());
    duet_sampler_free(&smp);
    duet_backend_free(b);
    return st.n_generated;
}

static void run(duet_sched_policy policy, int budget, int pool_blocks, int *preemptions)
{
    rq R[NREQ];
    make_requests(R, 7 + (uint64_t)policy);
    /* the backend's pool: pool_blocks blocks of 16 positions (its bytes: 2 x layers x 16 x kv dims x 4) */
    const duet_config *c = &model->cfg;
    const int64_t block_bytes = 2LL * c->n_layers * 16 * c->n_kv_heads * c->head_dim * (int64_t)sizeof(float);
    duet_backend_opts bo = {.max_seqs = 6, .max_ctx = CTX, .batch_invariant = 1, .kv_budget = pool_blocks * block_bytes};
    duet_backend *b = duet_backend_create("ref", model, &bo);
    ck_assert_msg(b != NULL, "%s", duet_error());
    ck_assert_int_eq(b->kv_blocks, pool_blocks);
    duet_sched_opts so = {.max_seqs = 6, .max_ctx = CTX, .token_budget = budget, .policy = policy};
    duet_sched *s = duet_sched_create(b, &so);
    ck_assert_msg(s != NULL, "%s", duet_error());
    /* arrivals: a few every step */
    int next = 0, alive = 1;
    while (next < NREQ || alive > 0) {
        for (int k = 0; k < 3 && next < NREQ; k++, next++) {
            duet_request q = {.prompt = R[next].prompt, .n_prompt = R[next].n_prompt, .max_tokens = R[next].max_tokens,
                              .temperature = R[next].temperature, .top_k = R[next].top_k, .top_p = 1.0f,
                              .seed = R[next].seed, .on_token = on_token, .on_done = on_done, .ctx = &R[next]};
            ck_assert_msg(duet_sched_submit(s, &q, &R[next].id) == 0, "%s", duet_error());
        }
        alive = duet_sched_step(s);
        ck_assert_msg(alive >= 0, "%s", duet_error());
    }
    duet_sched_stats st;
    duet_sched_get_stats(s, &st);
    *preemptions = (int)st.preemptions;
    ck_assert_int_eq(st.kv_blocks_used, 0);
    duet_sched_free(s);
    /* the pool is whole: one request that needs all of it runs */
    for (int i = 0; i < NREQ; i++) {
        ck_assert_int_eq(R[i].done, 1);
        ck_assert_int_eq(R[i].reason, DUET_FINISH_LENGTH);
        int exp[64];
        int n = solo(&R[i], exp);
        ck_assert_msg(R[i].n_out == n && !memcmp(R[i].out, exp, sizeof(int) * (size_t)n),
                      "request %d (prompt %d, max_tokens %d, temperature %g, preempted %d): tokens differ from its solo run",
                      i, R[i].n_prompt, R[i].max_tokens, R[i].temperature, R[i].preempted);
    }
    duet_backend_free(b);
}

START_TEST(solo_equal_max_utilization)
{
    int pre = 0;
    run(DUET_SCHED_MAX_UTIL, 24, 12, &pre);
    ck_assert_int_gt(pre, 0); /* the 12-block pool forced preemption and recomputation */
}
END_TEST

START_TEST(solo_equal_no_evict)
{
    int pre = 0;
    run(DUET_SCHED_NO_EVICT, 24, 12, &pre);
    ck_assert_int_eq(pre, 0);
}
END_TEST

/* kv_fraction: a share of the host's available memory, at most every slot full; out-of-range or too small
 * shares are errors naming it */
START_TEST(kv_fraction)
{
    const duet_config *c = &model->cfg;
    const int full = 6 * ((CTX + 15) / 16);
    duet_backend_opts bo = {.max_seqs = 6, .max_ctx = CTX, .kv_fraction = 1.0};
    duet_backend *b = duet_backend_create("ref", model, &bo);
    ck_assert_msg(b != NULL, "%s", duet_error());
    ck_assert_int_eq(b->kv_blocks, full); /* this tiny model's pool fits in any host many times over */
    duet_backend_free(b);
    bo.kv_fraction = 1e-15;
    ck_assert_ptr_null(duet_backend_create("ref", model, &bo));
    ck_assert_ptr_nonnull(strstr(duet_error(), "holds no KV block"));
    bo.kv_fraction = 1.5;
    ck_assert_ptr_null(duet_backend_create("ref", model, &bo));
    ck_assert_ptr_nonnull(strstr(duet_error(), "kv_fraction 1.5"));
    /* a byte budget wins over the fraction */
    const int64_t block_bytes = 2LL * c->n_layers * 16 * c->n_kv_heads * c->head_dim * (int64_t)sizeof(float);
    bo.kv_fraction = 1e-15, bo.kv_budget = 5 * block_bytes;
    b = duet_backend_create("ref", model, &bo);
    ck_assert_msg(b != NULL, "%s", duet_error());
    ck_assert_int_eq(b->kv_blocks, 5);
    duet_backend_free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("scheduler_ref");
    TCase *tc = tcase_create("synthetic model");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, solo_equal_max_utilization);
    tcase_add_test(tc, solo_equal_no_evict);
    tcase_add_test(tc, kv_fraction);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(suite()); }
