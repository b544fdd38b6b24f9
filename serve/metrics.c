/* metrics.c: see metrics.h. */
#include "serve/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Time to first token spans queueing and prefill; inter-token latency one decode step (tens of ms on the
 * ref, ~1 ms on the GPU). */
static const double TTFT_LE[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double ITL_LE[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
static const int CODES[SRV_N_CODES] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 0 /* any other */};

void srv_metrics_init(srv_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->ttft.le = TTFT_LE;
    m->ttft.n = (int)(sizeof TTFT_LE / sizeof TTFT_LE[0]);
    m->itl.le = ITL_LE;
    m->itl.n = (int)(sizeof ITL_LE / sizeof ITL_LE[0]);
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

void srv_metrics_sched(srv_metrics *m, const duet_sched_stats *st)
{
    pthread_mutex_lock(&m->mu);
    m->sched = *st;
    pthread_mutex_unlock(&m->mu);
}

static void observe(srv_metrics *m, srv_hist *h, double v)
{
    int b = 0;
    while (b < h->n && v > h->le[b]) b++;
    pthread_mutex_lock(&m->mu);
    h->counts[b]++;
    h->sum += v;
    h->count++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_ttft(srv_metrics *m, double s) { observe(m, &m->ttft, s); }
void srv_metrics_itl(srv_metrics *m, double s) { observe(m, &m->itl, s); }

void srv_metrics_finish(srv_metrics *m, duet_finish why)
{
    if ((int)why < 0 || (int)why >= 4) return;
    pthread_mutex_lock(&m->mu);
    m->by_finish[why]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_status(srv_metrics *m, int status)
{
    int i = 0;
    while (i < SRV_N_CODES - 1 && CODES[i] != status) i++;
    pthread_mutex_lock(&m->mu);
    m->by_status[i]++;
    pthread_mutex_unlock(&m->mu);
}

/* A growing text buffer; a failed allocation makes every later append a no-op and the result NULL. */
typedef struct text {
    char *p;
    size_t len, cap;
    int oom;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { t->oom = 1; return; }
        if (t->p && t->len + (size_t)n < t->cap) { t->len += (size_t)n; return; }
        size_t cap = (t->cap ? t->cap : 4096) * 2 + (size_t)n;
        char *q = realloc(t->p, cap);
        if (!q) { t->oom = 1; return; }
        t->p = q;
        t->cap = cap;
    }
}

static void gauge(text *t, const char *name, const char *help, long long v)
{
    add(t, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

static void counter(text *t, const char *name, const char *help, long long v)
{
    add(t, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name, v);
}

static void histogram(text *t, const char *name, const char *help, const srv_hist *h)
{
    add(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < h->n; b++) {
        cum += h->counts[b];
        add(t, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[b], (unsigned long long)cum);
    }
    cum += h->counts[h->n];
    add(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name, h->sum,
        name, (unsigned long long)h->count);
}

char *srv_metrics_render(srv_metrics *m, size_t *len)
{
    text t = {0};
    pthread_mutex_lock(&m->mu);
    const duet_sched_stats *s = &m->sched;
    gauge(&t, "duet_requests_running", "Requests being prefilled or decoded.", s->running);
    gauge(&t, "duet_requests_waiting", "Requests queued for admission.", s->waiting);
    gauge(&t, "duet_kv_blocks_used", "KV cache blocks held by running requests.", s->kv_blocks_used);
    gauge(&t, "duet_kv_blocks_total", "KV cache blocks the scheduler may hold.", s->kv_blocks_total);
    counter(&t, "duet_prompt_tokens_total", "Prompt tokens processed (recomputation after preemption included).",
            (long long)s->prompt_tokens);
    counter(&t, "duet_generation_tokens_total", "Tokens generated.", (long long)s->generated_tokens);
    counter(&t, "duet_preemptions_total", "Requests preempted (max-utilization policy).", (long long)s->preemptions);
    counter(&t, "duet_scheduler_steps_total", "Packed forward steps run.", (long long)s->steps);
    add(&t, "# HELP duet_requests_finished_total Generation requests ended, by reason.\n"
            "# TYPE duet_requests_finished_total counter\n");
    for (int f = 0; f < 4; f++)
        add(&t, "duet_requests_finished_total{reason=\"%s\"} %llu\n", duet_finish_name((duet_finish)f),
            (unsigned long long)m->by_finish[f]);
    add(&t, "# HELP duet_http_requests_total HTTP requests answered, by status.\n"
            "# TYPE duet_http_requests_total counter\n");
    for (int i = 0; i < SRV_N_CODES; i++) {
        if (CODES[i])
            add(&t, "duet_http_requests_total{code=\"%d\"} %llu\n", CODES[i], (unsigned long long)m->by_status[i]);
        else
            add(&t, "duet_http_requests_total{code=\"other\"} %llu\n", (unsigned long long)m->by_status[i]);
    }
    histogram(&t, "duet_time_to_first_token_seconds", "From submission to the first generated token.", &m->ttft);
    histogram(&t, "duet_inter_token_latency_seconds", "Between consecutive tokens of one request.", &m->itl);
    pthread_mutex_unlock(&m->mu);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
