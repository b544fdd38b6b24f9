/* scheduler.h: in-flight batching over the backend seam (common/backend.h). Requests wait in a pool; each
 * step packs one batch (no padding) of every running request's next tokens: one decode token per request
 * that is generating, then chunks of prompts still being prefilled (chunked prefill), within a per-step
 * token budget; then it samples each finished row with that request's own sampler (parameters, seed), so
 * a request's draws are those of its solo run. Admission is first come, first served (a request that
 * does not fit holds back those behind it, so none starves), under the backend's KV pool (kv_blocks
 * blocks of kv_block positions), with one of two policies:
 *   DUET_SCHED_NO_EVICT  a request is admitted only when the blocks for prompt + max_tokens are free
 *                        beside every running request's reservation; it is never paused;
 *   DUET_SCHED_MAX_UTIL  admitted on its current need (its first chunk); when a step needs more blocks
 *                        than are free, the most recently admitted running request is preempted (its
 *                        blocks released) and goes back to the head of the queue, to be recomputed
 *                        from its prompt and the tokens it has generated so far.
 * The pool is never over-committed: the scheduler counts blocks exactly as the backend takes them
 * (ceil(positions / kv_block) per slot).
 *
 * Not thread-safe: one thread calls every function here (duet serve's engine thread; the HTTP threads
 * talk to it through their own queue). Callbacks run inside duet_sched_step, on that thread; they may
 * call duet_sched_cancel. */
#ifndef DUET_SCHEDULER_H
#define DUET_SCHEDULER_H

#include "backend.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { DUET_SCHED_NO_EVICT = 0, DUET_SCHED_MAX_UTIL = 1 } duet_sched_policy;

typedef struct duet_sched_opts {
    int max_seqs;     /* requests running at once, each in its own KV slot (<= the backend's max_seqs) */
    int max_ctx;      /* positions per request: prompt + max_tokens must fit (<= the backend's max_ctx) */
    int token_budget; /* tokens per step, decode tokens and prefill chunks together (>= max_seqs) */
    duet_sched_policy policy;
    int max_waiting;  /* requests queued at most (0: no limit); a submit beyond it is refused as busy */
    int kv_blocks;    /* KV blocks the scheduler may hold at once (0: the backend's whole pool) */
    /* For stop strings and the text callback (NULL: token ids only; stop strings are then refused). */
    const duet_tokenizer *tokenizer;
} duet_sched_opts;

/* Why a request ended. */
typedef enum {
    DUET_FINISH_STOP = 0,  /* a stop id (eos) or a stop string */
    DUET_FINISH_LENGTH,    /* max_tokens generated */
    DUET_FINISH_CANCELLED, /* duet_sched_cancel */
    DUET_FINISH_ERROR      /* the backend failed (duet_error() says why) */
} duet_finish;
const char *duet_finish_name(duet_finish f); /* "stop", "length", "cancelled", "error" */

typedef struct duet_request_stats {
    int n_prompt, n_generated;
    int preemptions;                           /* times it was preempted and recomputed */
    double t_submit, t_first_token, t_done;    /* duet_now() seconds; t_first_token 0 when none */
} duet_request_stats;

typedef struct duet_request {
    const int *prompt; /* [n_prompt] ids, copied at submit */
    int n_prompt;
    int max_tokens;    /* >= 1 */
    float temperature; /* the sampler's parameters (sampler.h): temperature 0 is greedy */
    int top_k;
    float top_p;
    uint64_t seed;
    const int *stop_ids; /* [n_stop_ids] ids that end the request (the eos id among them); copied */
    int n_stop_ids;
    const char *const *stop; /* [n_stop] stop strings, copied; the text ends before the first match */
    int n_stop;
    /* Each generated token, in order, stop ids included (may be NULL). */
    void (*on_token)(void *ctx, int64_t id, int token);
    /* The text as it becomes final (needs the tokenizer; may be NULL): UTF-8, special tokens skipped,
     * bytes that may begin a stop string held back until they cannot; stop strings never appear. */
    void (*on_text)(void *ctx, int64_t id, const char *text, size_t len);
    /* Once, last: why it ended and its counts (may be NULL). */
    void (*on_done)(void *ctx, int64_t id, duet_finish why, const duet_request_stats *st);
    void *ctx;
} duet_request;

typedef struct duet_sched_stats {
    int running, waiting;
    int kv_blocks_used, kv_blocks_total;
    int64_t prompt_tokens, generated_tokens; /* processed / sampled since create (recomputation counted
                                              * in prompt_tokens) */
    int64_t steps, preemptions, finished;
    /* seconds in duet_sched_step since create: all of it, and the backend's calls within it (the
     * difference is the scheduler's own host work: planning, callbacks, sampling without forward_sample) */
    double step_s, backend_s;
} duet_sched_stats;

typedef struct duet_sched duet_sched;

/* NULL + duet_error() when the options do not fit the backend (slots, context, budget). */
duet_sched *duet_sched_create(duet_backend *b, const duet_sched_opts *o);
void duet_sched_free(duet_sched *s); /* requests still alive end without callbacks */

/* Queues a request: 0 and *id (> 0, increasing), -1 + duet_error() for a request that can never run
 * (empty prompt, ids outside the vocabulary, prompt + max_tokens beyond max_ctx or beyond the whole KV
 * pool, bad sampler parameters, stop strings without a tokenizer), DUET_SCHED_BUSY + duet_error() when
 * max_waiting requests are already queued. */
#define DUET_SCHED_BUSY (-2)
int duet_sched_submit(duet_sched *s, const duet_request *r, int64_t *id);
/* Ends request id (waiting or running) at the next step with DUET_FINISH_CANCELLED; 0, or -1 when no
 * such request is alive. */
int duet_sched_cancel(duet_sched *s, int64_t id);
/* One step: cancellations, admission, one packed forward, sampling, callbacks. Returns the requests still
 * alive (running + waiting; 0: idle, nothing was run), or -1 + duet_error() when the backend failed (the
 * running requests then end with DUET_FINISH_ERROR; the waiting ones stay queued). */
int duet_sched_step(duet_sched *s);
/* Steps until no request is alive; 0 or -1 as duet_sched_step. */
int duet_sched_drain(duet_sched *s);
void duet_sched_get_stats(const duet_sched *s, duet_sched_stats *st);

#endif
