/* scheduler.c: in-flight batching over the backend seam (scheduler.h has the contract and the policies).
 *
 * A request's state is its token list, prompt then generated ids, and how many of them its KV slot caches
 * (n_cached). Each step feeds a request tokens[n_cached ..]: the one token sampled last (decode), or a chunk
 * of what is not cached yet (prefill, or the recomputation of a preempted request: prompt and generated
 * tokens together). When a chunk reaches the end of the list, its last row's logits are sampled and the id
 * appended. So prefill, chunked prefill, decode and recomputation are one mechanism.
 *
 * Blocks: a slot caching p positions holds ceil(p / kv_block) blocks of the pool (the backend takes them as
 * positions are first written and gives them all back on release); `used` is the sum over running requests,
 * and no step is issued whose positions would take more than the pool. no-evict also counts each running
 * request's reservation (blocks for prompt + max_tokens - 1 positions) at admission. */
#include "scheduler.h"

#include "error.h"
#include "generate.h"
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sreq {
    int64_t id;
    duet_request r;           /* the caller's request; its arrays replaced by the copies below */
    int *tokens;              /* [cap] prompt, then generated ids */
    int n_tokens, cap, n_prompt, n_gen;
    int n_cached;             /* positions its slot caches */
    int slot;                 /* -1 while waiting */
    int reserve;              /* no-evict: blocks reserved for its whole run */
    int64_t admitted;         /* admission order (preemption takes the newest) */
    int cancel;
    int *stop_ids;
    char **stop;
    size_t max_stop;          /* longest stop string */
    duet_sampler sampler;
    duet_detok *detok;
    char *text;               /* decoded text so far; [emitted, text_len) is held back */
    size_t text_len, text_cap, emitted;
    duet_request_stats st;
    struct sreq *prev, *next; /* the waiting queue */
} sreq;

typedef struct feed {
    sreq *q;
    int n; /* tokens fed this step */
} feed;

struct duet_sched {
    duet_backend *b;
    duet_sched_opts o;
    int pool;                 /* blocks the scheduler may hold */
    int used, reserved;       /* blocks held by running requests; no-evict reservations */
    sreq **running;           /* [max_seqs] by slot, NULL when free */
    int n_running;
    sreq *wait_head, *wait_tail;
    int n_waiting;
    int64_t next_id, next_admit;
    feed *plan;               /* [max_seqs] the step's feeds */
    sreq **order;             /* [max_seqs] the running requests by admission, oldest first (a step's scratch) */
    /* the step's batch: token_budget rows at most */
    int *tok, *pos, *seq;
    uint8_t *want;
    float *logits;            /* [max_seqs, V]: forward's rows when the backend has no forward_sample */
    duet_sampler **samplers;  /* [max_seqs] the drawn rows' samplers, batch order */
    sreq **drawn;             /* [max_seqs] their requests */
    int *ids;                 /* [max_seqs] the draws */
    duet_sched_stats stats;
};

const char *duet_finish_name(duet_finish f)
{
    switch (f) {
    case DUET_FINISH_STOP: return "stop";
    case DUET_FINISH_LENGTH: return "length";
    case DUET_FINISH_CANCELLED: return "cancelled";
    default: return "error";
    }
}

static int blocks_for(const duet_sched *s, int positions)
{
    return (positions + s->b->kv_block - 1) / s->b->kv_block;
}

/* ---- waiting queue ---------------------------------------------------------------------------- */

static void wait_push(duet_sched *s, sreq *q, int front)
{
    q->prev = q->next = NULL;
    if (!s->wait_head) s->wait_head = s->wait_tail = q;
    else if (front) q->next = s->wait_head, s->wait_head->prev = q, s->wait_head = q;
    else q->prev = s->wait_tail, s->wait_tail->next = q, s->wait_tail = q;
    s->n_waiting++;
}

static void wait_remove(duet_sched *s, sreq *q)
{
    if (q->prev) q->prev->next = q->next;
    else s->wait_head = q->next;
    if (q->next) q->next->prev = q->prev;
    else s->wait_tail = q->prev;
    q->prev = q->next = NULL;
    s->n_waiting--;
}

/* ---- text: stop strings and the held-back tail ------------------------------------------------ */

static int text_append(sreq *q, const char *p, size_t n)
{
    if (q->text_len + n + 1 > q->text_cap) {
        size_t cap = q->text_cap ? q->text_cap : 256;
        while (cap < q->text_len + n + 1) cap *= 2;
        char *t = realloc(q->text, cap);
        if (!t) return duet_errorf("scheduler: out of memory for the text of request %lld", (long long)q->id);
        q->text = t, q->text_cap = cap;
    }
    memcpy(q->text + q->text_len, p, n);
    q->text_len += n;
    q->text[q->text_len] = 0;
    return 0;
}

static void emit(sreq *q, size_t upto)
{
    if (upto > q->emitted && q->r.on_text) q->r.on_text(q->r.ctx, q->id, q->text + q->emitted, upto - q->emitted);
    if (upto > q->emitted) q->emitted = upto;
}

/* The earliest stop string in the held-back text: its offset, or -1. */
static long find_stop(const sreq *q)
{
    long best = -1;
    for (int i = 0; i < q->r.n_stop; i++) {
        size_t n = strlen(q->stop[i]);
        for (size_t at = q->emitted; at + n <= q->text_len; at++)
            if (!memcmp(q->text + at, q->stop[i], n)) {
                if (best < 0 || (long)at < best) best = (long)at;
                break;
            }
    }
    return best;
}

/* Emits what can no longer begin a stop string (up to the last max_stop - 1 bytes, at a UTF-8 boundary);
 * 1 when a stop string matched (the text before it is emitted), 0 otherwise. */
static int text_flush(sreq *q, int final)
{
    long at = find_stop(q);
    if (at >= 0) {
        emit(q, (size_t)at);
        return 1;
    }
    if (final || !q->max_stop) {
        emit(q, q->text_len);
        return 0;
    }
    if (q->text_len < q->emitted + q->max_stop) return 0;
    size_t safe = q->text_len - (q->max_stop - 1);
    while (safe > q->emitted && ((unsigned char)q->text[safe] & 0xC0) == 0x80) safe--;
    emit(q, safe);
    return 0;
}

/* ---- request lifetime ------------------------------------------------------------------------- */

static void req_free(sreq *q)
{
    if (!q) return;
    free(q->tokens);
    free(q->stop_ids);
    for (int i = 0; q->stop && i < q->r.n_stop; i++) free(q->stop[i]);
    free(q->stop);
    duet_sampler_free(&q->sampler);
    if (q->detok) duet_detok_free(q->detok);
    free(q->text);
    free(q);
}

/* Gives a running request's slot and blocks back. */
static int unseat(duet_sched *s, sreq *q)
{
    if (q->slot < 0) return 0;
    int rc = s->b->release(s->b, q->slot);
    s->used -= blocks_for(s, q->n_cached);
    s->reserved -= q->reserve;
    q->reserve = 0;
    s->running[q->slot] = NULL;
    s->n_running--;
    q->slot = -1;
    q->n_cached = 0;
    return rc;
}

static void finish(duet_sched *s, sreq *q, duet_finish why)
{
    if (q->slot >= 0) unseat(s, q);
    else wait_remove(s, q);
    if (why == DUET_FINISH_LENGTH || why == DUET_FINISH_STOP) {
        char *out = NULL;
        size_t n = 0;
        if (q->detok && !duet_detok_finish(q->detok, &out, &n) && n) text_append(q, out, n);
        if (q->detok) text_flush(q, 1);
    }
    q->st.n_generated = q->n_gen;
    q->st.t_done = duet_now();
    s->stats.finished++;
    if (q->r.on_done) q->r.on_done(q->r.ctx, q->id, why, &q->st);
    req_free(q);
}

/* Back to the head of the queue, to be recomputed from its tokens. */
static void preempt(duet_sched *s, sreq *q)
{
    unseat(s, q);
    q->st.preemptions++;
    s->stats.preemptions++;
    wait_push(s, q, 1);
}

/* ---- create / submit / cancel ----------------------------------------------------------------- */

duet_sched *duet_sched_create(duet_backend *b, const duet_sched_opts *o)
{
    if (!b || !o) {
        duet_errorf("scheduler: no backend or options");
        return NULL;
    }
    if (o->max_seqs < 1 || o->max_ctx < 2 || o->token_budget < o->max_seqs || o->max_waiting < 0 || o->kv_blocks < 0) {
        duet_errorf("scheduler: max_seqs %d (>= 1), max_ctx %d (>= 2), token_budget %d (>= max_seqs), "
                           "max_waiting %d, kv_blocks %d (>= 0) do not fit",
                    o->max_seqs, o->max_ctx, o->token_budget, o->max_waiting, o->kv_blocks);
        return NULL;
    }
    if (b->kv_block < 1 || b->kv_blocks < 1 || !b->release) {
        duet_errorf("scheduler: backend '%s' has no KV pool to share (kv_block %d, kv_blocks %d, release %s)", b->name,
                    b->kv_block, b->kv_blocks, b->release ? "set" : "missing");
        return NULL;
    }
    if (o->kv_blocks > b->kv_blocks) {
        duet_errorf("scheduler: kv_blocks %d is more than the backend's pool of %d", o->kv_blocks, b->kv_blocks);
        return NULL;
    }
    duet_sched *s = calloc(1, sizeof *s);
    if (!s) {
        duet_errorf("scheduler: out of memory");
        return NULL;
    }
    s->b = b;
    s->o = *o;
    s->pool = o->kv_blocks ? o->kv_blocks : b->kv_blocks;
    s->next_id = 1;
    const int V = b->cfg->vocab_size, T = o->token_budget;
    s->running = calloc((size_t)o->max_seqs, sizeof *s->running);
    s->plan = calloc((size_t)o->max_seqs, sizeof *s->plan);
    s->order = calloc((size_t)o->max_seqs, sizeof *s->order);
    s->tok = malloc(sizeof(int) * (size_t)T);
    s->pos = malloc(sizeof(int) * (size_t)T);
    s->seq = malloc(sizeof(int) * (size_t)T);
    s->want = malloc((size_t)T);
    s->logits = malloc(sizeof(float) * (size_t)o->max_seqs * (size_t)V);
    s->samplers = calloc((size_t)o->max_seqs, sizeof *s->samplers);
    s->drawn = calloc((size_t)o->max_seqs, sizeof *s->drawn);
    s->ids = calloc((size_t)o->max_seqs, sizeof *s->ids);
    if (!s->samplers || !s->drawn || !s->ids || !s->running || !s->plan || !s->order || !s->tok || !s->pos || !s->seq || !s->want || !s->logits) {
        duet_sched_free(s);
        duet_errorf("scheduler: out of memory (%d slots, budget %d, vocab %d)", o->max_seqs, T, V);
        return NULL;
    }
    s->stats.kv_blocks_total = s->pool;
    return s;
}

void duet_sched_free(duet_sched *s)
{
    if (!s) return;
    for (int i = 0; s->running && i < s->o.max_seqs; i++) {
        sreq *q = s->running[i];
        if (!q) continue;
        unseat(s, q);
        req_free(q);
    }
    while (s->wait_head) {
        sreq *q = s->wait_head;
        wait_remove(s, q);
        req_free(q);
    }
    free(s->running);
    free(s->plan);
    free(s->order);
    free(s->tok);
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->logits);
    free(s->samplers);
    free(s->drawn);
    free(s->ids);
    free(s);
}

int duet_sched_submit(duet_sched *s, const duet_request *r, int64_t *id)
{
    const int V = s->b->cfg->vocab_size;
    if (!r || r->n_prompt < 1 || !r->prompt) return duet_errorf("request: the prompt is empty");
    if (r->max_tokens < 1) return duet_errorf("request: max_tokens %d (at least 1)", r->max_tokens);
    if ((int64_t)r->n_prompt + r->max_tokens > s->o.max_ctx)
        return duet_errorf("request: prompt of %d tokens + max_tokens %d is beyond the context of %d", r->n_prompt,
                           r->max_tokens, s->o.max_ctx);
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= V)
            return duet_errorf("request: prompt token %d: id %d outside the vocabulary [0, %d)", i, r->prompt[i], V);
    const int need = blocks_for(s, r->n_prompt + r->max_tokens - 1);
    if (need > s->pool)
        return duet_errorf("request: prompt of %d tokens + max_tokens %d needs %d KV blocks, more than the pool of %d",
                           r->n_prompt, r->max_tokens, need, s->pool);
    if (r->n_stop_ids < 0 || r->n_stop < 0 || (r->n_stop_ids && !r->stop_ids) || (r->n_stop && !r->stop))
        return duet_errorf("request: stop lists inconsistent (%d ids, %d strings)", r->n_stop_ids, r->n_stop);
    if (r->n_stop && !s->o.tokenizer) return duet_errorf("request: stop strings need a tokenizer (none given)");
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i] || !r->stop[i][0]) return duet_errorf("request: stop string %d is empty", i);
    if (s->o.max_waiting && s->n_waiting >= s->o.max_waiting) {
        duet_errorf("request: %d requests are already waiting (the limit)", s->n_waiting);
        return DUET_SCHED_BUSY;
    }
    sreq *q = calloc(1, sizeof *q);
    if (!q) return duet_errorf("scheduler: out of memory");
    q->r = *r;
    q->slot = -1;
    q->cap = r->n_prompt + r->max_tokens;
    q->tokens = malloc(sizeof(int) * (size_t)q->cap);
    q->stop_ids = r->n_stop_ids ? malloc(sizeof(int) * (size_t)r->n_stop_ids) : NULL;
    q->stop = r->n_stop ? calloc((size_t)r->n_stop, sizeof(char *)) : NULL;
    if (!q->tokens || (r->n_stop_ids && !q->stop_ids) || (r->n_stop && !q->stop)) goto oom;
    memcpy(q->tokens, r->prompt, sizeof(int) * (size_t)r->n_prompt);
    q->n_tokens = q->n_prompt = r->n_prompt;
    if (r->n_stop_ids) memcpy(q->stop_ids, r->stop_ids, sizeof(int) * (size_t)r->n_stop_ids);
    for (int i = 0; i < r->n_stop; i++) {
        if (!(q->stop[i] = strdup(r->stop[i]))) goto oom;
        size_t n = strlen(r->stop[i]);
        if (n > q->max_stop) q->max_stop = n;
    }
    q->r.prompt = NULL, q->r.stop_ids = q->stop_ids, q->r.stop = (const char *const *)q->stop;
    if (duet_sampler_init(&q->sampler, V, r->temperature, r->top_k, r->top_p, r->seed)) {
        req_free(q);
        return -1;
    }
    if (s->o.tokenizer && !(q->detok = duet_detok_new(s->o.tokenizer))) {
        req_free(q);
        return -1;
    }
    q->id = s->next_id++;
    q->st.n_prompt = r->n_prompt;
    q->st.t_submit = duet_now();
    wait_push(s, q, 0);
    *id = q->id;
    return 0;
oom:
    req_free(q);
    return duet_errorf("scheduler: out of memory for a request of %d tokens", r->n_prompt);
}

static sreq *find(duet_sched *s, int64_t id)
{
    for (int i = 0; i < s->o.max_seqs; i++)
        if (s->running[i] && s->running[i]->id == id) return s->running[i];
    for (sreq *q = s->wait_head; q; q = q->next)
        if (q->id == id) return q;
    return NULL;
}

int duet_sched_cancel(duet_sched *s, int64_t id)
{
    sreq *q = find(s, id);
    if (!q) return -1;
    q->cancel = 1;
    return 0;
}

/* ---- one step --------------------------------------------------------------------------------- */

/* The running request admitted last. */
static sreq *newest(const duet_sched *s)
{
    sreq *best = NULL;
    for (int i = 0; i < s->o.max_seqs; i++)
        if (s->running[i] && (!best || s->running[i]->admitted > best->admitted)) best = s->running[i];
    return best;
}

/* Blocks a feed of n more tokens takes beyond what q holds. */
static int extra_blocks(const duet_sched *s, const sreq *q, int n)
{
    return blocks_for(s, q->n_cached + n) - blocks_for(s, q->n_cached);
}

/* Sampled id `tok` appended to q: callbacks, stop ids and strings, max_tokens. 1 when q has finished. */
static int take_token(duet_sched *s, sreq *q, int tok)
{
    q->tokens[q->n_tokens++] = tok;
    q->n_gen++;
    s->stats.generated_tokens++;
    if (q->n_gen == 1) q->st.t_first_token = duet_now();
    if (q->r.on_token) q->r.on_token(q->r.ctx, q->id, tok);
    for (int i = 0; i < q->r.n_stop_ids; i++)
        if (q->stop_ids[i] == tok) return finish(s, q, DUET_FINISH_STOP), 1;
    if (q->detok) {
        char *out = NULL;
        size_t n = 0;
        if (duet_detok_push(q->detok, tok, &out, &n)) return finish(s, q, DUET_FINISH_ERROR), 1;
        if (n && text_append(q, out, n)) return finish(s, q, DUET_FINISH_ERROR), 1;
        if (text_flush(q, 0)) {
            q->emitted = q->text_len; /* the stop string and what follows are dropped */
            q->detok = (duet_detok_free(q->detok), NULL);
            return finish(s, q, DUET_FINISH_STOP), 1;
        }
    }
    if (q->n_gen >= q->r.max_tokens) return finish(s, q, DUET_FINISH_LENGTH), 1;
    return 0;
}

static int by_admission(const void *a, const void *b)
{
    const sreq *x = *(const sreq *const *)a, *y = *(const sreq *const *)b;
    return x->admitted < y->admitted ? -1 : x->admitted > y->admitted;
}

static int sched_step(duet_sched *s);

int duet_sched_step(duet_sched *s)
{
    const double t0 = duet_now();
    int rc = sched_step(s);
    s->stats.step_s += duet_now() - t0;
    return rc;
}

static int sched_step(duet_sched *s)
{
    /* cancellations */
    for (int i = 0; i < s->o.max_seqs; i++)
        if (s->running[i] && s->running[i]->cancel) finish(s, s->running[i], DUET_FINISH_CANCELLED);
    for (sreq *q = s->wait_head, *nx; q; q = nx) {
        nx = q->next;
        if (q->cancel) finish(s, q, DUET_FINISH_CANCELLED);
    }
    if (!s->n_running && !s->n_waiting) return 0;

    /* the running requests' feeds, oldest admission first: decode tokens before prefill chunks (one walk
     * of the requests sorted by admission per pass; a request preempted on the way has slot -1) */
    feed *plan = s->plan;
    int n_plan = 0, budget = s->o.token_budget, planned_blocks = 0, preempted = 0, n_order = 0;
    for (int i = 0; i < s->o.max_seqs; i++)
        if (s->running[i]) s->order[n_order++] = s->running[i];
    qsort(s->order, (size_t)n_order, sizeof *s->order, by_admission);
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < n_order && budget > 0; k++) {
            sreq *q = s->order[k];
            if (q->slot < 0 || (q->n_tokens - q->n_cached == 1) != (pass == 0)) continue;
            int n = q->n_tokens - q->n_cached;
            if (n > budget) n = budget;
            int extra = extra_blocks(s, q, n);
            while (s->used + planned_blocks + extra > s->pool) { /* max-utilization only: no-evict reserved */
                sreq *v = newest(s);
                for (int j = 0; j < n_plan; j++)
                    if (plan[j].q == v) {
                        planned_blocks -= extra_blocks(s, v, plan[j].n);
                        budget += plan[j].n;
                        plan[j] = plan[--n_plan];
                        break;
                    }
                preempt(s, v);
                preempted = 1;
                if (v == q) break;
            }
            if (q->slot < 0) continue; /* it preempted itself */
            plan[n_plan].q = q, plan[n_plan].n = n, n_plan++;
            budget -= n;
            planned_blocks += extra;
        }
    }
    /* admission, first come first served, while a slot, budget and blocks are left (none after a
     * preemption in this step: the pool is short) */
    while (!preempted && s->wait_head && budget > 0 && s->n_running < s->o.max_seqs) {
        sreq *q = s->wait_head;
        int n = q->n_tokens < budget ? q->n_tokens : budget, extra = blocks_for(s, n);
        int reserve = s->o.policy == DUET_SCHED_NO_EVICT ? blocks_for(s, q->n_prompt + q->r.max_tokens - 1) : 0;
        if (s->o.policy == DUET_SCHED_NO_EVICT ? s->reserved + reserve > s->pool
                                               : s->used + planned_blocks + extra > s->pool)
            break;
        wait_remove(s, q);
        int slot = 0;
        while (s->running[slot]) slot++;
        s->running[slot] = q;
        s->n_running++;
        q->slot = slot;
        q->n_cached = 0;
        q->reserve = reserve;
        s->reserved += reserve;
        q->admitted = s->next_admit++;
        plan[n_plan].q = q, plan[n_plan].n = n, n_plan++;
        budget -= n;
        planned_blocks += extra;
    }
    if (!n_plan) return s->n_running + s->n_waiting;

    /* the packed batch */
    int T = 0;
    for (int j = 0; j < n_plan; j++) {
        sreq *q = plan[j].q;
        for (int i = 0; i < plan[j].n; i++, T++) {
            s->tok[T] = q->tokens[q->n_cached + i];
            s->pos[T] = q->n_cached + i;
            s->seq[T] = q->slot;
            s->want[T] = i == plan[j].n - 1 && q->n_cached + plan[j].n == q->n_tokens;
        }
    }
    duet_batch batch = {T, s->tok, s->pos, s->seq, s->want};
    int R = 0; /* the rows drawn: the feeds that reach the end of their token list, in batch order */
    for (int j = 0; j < n_plan; j++)
        if (plan[j].q->n_cached + plan[j].n == plan[j].q->n_tokens) {
            s->drawn[R] = plan[j].q;
            s->samplers[R++] = &plan[j].q->sampler;
        }
    s->stats.steps++;
    /* the backend draws on its side when it can (only the ids cross), else its logits come back */
    const double tb = duet_now();
    int rc = s->b->forward_sample ? s->b->forward_sample(s->b, &batch, s->samplers, s->ids)
                                  : s->b->forward(s->b, &batch, s->logits);
    s->stats.backend_s += duet_now() - tb;
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", duet_error());
        for (int j = 0; j < n_plan; j++) finish(s, plan[j].q, DUET_FINISH_ERROR);
        for (int i = 0; i < s->o.max_seqs; i++)
            if (s->running[i]) finish(s, s->running[i], DUET_FINISH_ERROR);
        duet_errorf("%s", msg);
        return -1;
    }
    /* cache bookkeeping first, then the tokens (which may finish and release requests) */
    for (int j = 0; j < n_plan; j++) {
        sreq *q = plan[j].q;
        s->used += extra_blocks(s, q, plan[j].n);
        /* tokens fed that were not sampled at this position before count as prompt work: all but a decode */
        if (plan[j].n > 1 || q->n_gen == 0) s->stats.prompt_tokens += plan[j].n;
        q->n_cached += plan[j].n;
    }
    const int V = s->b->cfg->vocab_size;
    for (int r = 0; r < R; r++) {
        sreq *q = s->drawn[r];
        if (!s->b->forward_sample) {
            const float *row = s->logits + (int64_t)r * V;
            int nan = 0;
            for (int v = 0; v < V && !nan; v++) nan = isnan(row[v]);
            if (nan) { /* this request ends; the others go on */
                duet_errorf("request %lld: the logits at position %d hold NaN", (long long)q->id, q->n_cached - 1);
                finish(s, q, DUET_FINISH_ERROR);
                continue;
            }
            s->ids[r] = duet_sample(&q->sampler, row);
        }
        take_token(s, q, s->ids[r]);
    }
    return s->n_running + s->n_waiting;
}

int duet_sched_drain(duet_sched *s)
{
    int rc;
    while ((rc = duet_sched_step(s)) > 0) {
    }
    return rc;
}

void duet_sched_get_stats(const duet_sched *s, duet_sched_stats *st)
{
    *st = s->stats;
    st->running = s->n_running;
    st->waiting = s->n_waiting;
    st->kv_blocks_used = s->used;
    st->kv_blocks_total = s->pool;
}
