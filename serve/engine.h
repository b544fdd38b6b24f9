/* engine.h: duet serve's engine thread, the one thread that calls the scheduler (serve/scheduler.h is
 * not thread-safe). HTTP threads hand it jobs through an inbox (a mutex and a condition variable); it
 * submits them, steps the scheduler while any request is alive and sleeps when none is. Its callbacks
 * append each job's text to the job's own buffer and wake the connection thread waiting on it. A job is
 * shared by its connection and the engine and freed by the last of them to let go (srv_job_unref). */
#ifndef DUET_SERVE_ENGINE_H
#define DUET_SERVE_ENGINE_H

#include "serve/metrics.h"
#include "serve/scheduler.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SRV_JOB_POSTED = 0, /* in the inbox */
    SRV_JOB_ACCEPTED,   /* submitted: the callbacks are running */
    SRV_JOB_REFUSED,    /* duet_sched_submit refused it: err, busy */
    SRV_JOB_DONE        /* on_done ran: why, st */
} srv_job_state;

typedef struct srv_job {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on every change below */
    int refs;
    /* Set by the HTTP thread before srv_engine_submit: the request (its callbacks and ctx are the
     * engine's) and the arrays it points to, owned by the job. */
    duet_request req;
    int *prompt;
    char **stop;
    int n_stop;
    int stop_ids[2];
    /* Set by the engine thread. */
    srv_job_state state;
    int busy;      /* REFUSED because the scheduler's queue is full (429), else the request is bad (400) */
    char err[512]; /* REFUSED: why */
    int64_t id;    /* the scheduler's id once ACCEPTED */
    char *text;    /* the text so far, [len] bytes (not NUL-terminated), final UTF-8 */
    size_t len, cap;
    int oom;       /* a text append failed: the text is short; the request ends as an error */
    duet_finish why;
    duet_request_stats st;
    double t_last; /* the last token's time (inter-token latency; engine thread only) */
    srv_metrics *m; /* the engine's, for the callbacks */
    /* The connection's line for the request log, written when the job is freed (so a cancelled
     * request's line has its final counts); log[0] == 0: none. */
    char log[512];
    double t_start;
} srv_job;

srv_job *srv_job_new(void); /* one reference; NULL when out of memory */
void srv_job_ref(srv_job *j);
void srv_job_unref(srv_job *j);

typedef struct srv_engine srv_engine;

/* Starts the engine thread, which creates the scheduler over b (b and o->tokenizer stay the caller's
 * and must outlive srv_engine_stop). NULL + duet_error() when the scheduler refuses the options. */
srv_engine *srv_engine_start(duet_backend *b, const duet_sched_opts *o, srv_metrics *m);
/* Posts j and waits until the engine has submitted it: 0 (ACCEPTED; the engine holds its own reference
 * until on_done), or -1 (REFUSED: j->err, j->busy). */
int srv_engine_submit(srv_engine *e, srv_job *j);
/* Asks the engine to cancel request id (a no-op once it has ended). Does not wait. */
void srv_engine_cancel(srv_engine *e, int64_t id);
/* Lets every alive request finish, stops the thread, frees the scheduler and e. */
void srv_engine_stop(srv_engine *e);

#endif
