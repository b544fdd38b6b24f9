/* metrics.h: duet serve's counters for GET /metrics (Prometheus text format 0.0.4): the scheduler's
 * gauges and token counters (a snapshot the engine thread takes after each step), requests by HTTP status
 * and by finish reason, and the time-to-first-token and inter-token latency histograms. Every function
 * takes the lock: the engine thread writes, the HTTP threads write statuses and read. */
#ifndef DUET_SERVE_METRICS_H
#define DUET_SERVE_METRICS_H

#include "serve/scheduler.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_HIST_MAX 16
typedef struct srv_hist {
    const double *le; /* [n] upper bounds in seconds, increasing; +Inf is implied */
    int n;
    uint64_t counts[SRV_HIST_MAX + 1]; /* per bucket, not cumulative (rendering accumulates) */
    double sum;
    uint64_t count;
} srv_hist;

#define SRV_N_CODES 10 /* the statuses duet serve answers with; srv_metrics_status's table */
typedef struct srv_metrics {
    pthread_mutex_t mu;
    duet_sched_stats sched;
    srv_hist ttft, itl;
    uint64_t by_status[SRV_N_CODES];
    uint64_t by_finish[4]; /* duet_finish */
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_sched(srv_metrics *m, const duet_sched_stats *st);
void srv_metrics_ttft(srv_metrics *m, double seconds);
void srv_metrics_itl(srv_metrics *m, double seconds);
void srv_metrics_finish(srv_metrics *m, duet_finish why);
void srv_metrics_status(srv_metrics *m, int http_status);
/* The exposition text, malloc'ed (NUL-terminated; *len without the NUL), or NULL when out of memory. */
char *srv_metrics_render(srv_metrics *m, size_t *len);

#endif
