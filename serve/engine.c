/* engine.c: see engine.h. */
#include "serve/engine.h"

#include "error.h"
#include "generate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

srv_job *srv_job_new(void)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    return j;
}

void srv_job_ref(srv_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void srv_job_unref(srv_job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    if (j->log[0]) {
        /* method path status, then the request's own counts and how it ended */
        double ms = (duet_now() - j->t_start) * 1e3;
        if (j->state == SRV_JOB_DONE)
            fprintf(stderr, "serve: %s prompt=%d generated=%d finish=%s %.1fms\n", j->log, j->st.n_prompt,
                    j->st.n_generated, duet_finish_name(j->why), ms);
        else
            fprintf(stderr, "serve: %s prompt=%d generated=0 %.1fms\n", j->log, j->req.n_prompt, ms);
    }
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->stop);
    free(j->prompt);
    free(j->text);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* One inbox entry: a job to submit, or (job NULL) a request id to cancel. */
typedef struct inbox_item {
    struct inbox_item *next;
    srv_job *job;
    int64_t cancel_id;
} inbox_item;

struct srv_engine {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the inbox has items, the thread should stop, or (to the starter) it has started */
    inbox_item *head, *tail;
    int stop;
    int started; /* 1 running, -1 the scheduler was refused (err) */
    char err[512];
    duet_backend *b;
    duet_sched_opts opts;
    duet_sched *s;
    srv_metrics *m;
};

/* --- the scheduler's callbacks (engine thread); ctx is the job ----------------------------------- */

static void on_token(void *ctx, int64_t id, int token)
{
    srv_job *j = ctx;
    (void)id;
    (void)token;
    double now = duet_now();
    if (j->t_last > 0) srv_metrics_itl(j->m, now - j->t_last);
    j->t_last = now;
}

static void on_text(void *ctx, int64_t id, const char *text, size_t len)
{
    srv_job *j = ctx;
    (void)id;
    pthread_mutex_lock(&j->mu);
    if (!j->oom && len) {
        if (len > SIZE_MAX / 2 - j->len) {
            j->oom = 1;
        } else if (j->len + len > j->cap) {
            size_t cap = (j->cap ? j->cap * 2 : 256) + len;
            char *p = realloc(j->text, cap);
            if (!p) j->oom = 1;
            else j->text = p, j->cap = cap;
        }
        if (!j->oom) {
            memcpy(j->text + j->len, text, len);
            j->len += len;
        }
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void on_done(void *ctx, int64_t id, duet_finish why, const duet_request_stats *st)
{
    srv_job *j = ctx;
    (void)id;
    if (st->t_first_token > 0) srv_metrics_ttft(j->m, st->t_first_token - st->t_submit);
    pthread_mutex_lock(&j->mu);
    j->state = SRV_JOB_DONE;
    j->why = j->oom && why != DUET_FINISH_CANCELLED ? DUET_FINISH_ERROR : why;
    j->st = *st;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    srv_metrics_finish(j->m, j->why);
    srv_job_unref(j); /* the engine's reference */
}

/* --- the engine thread ------------------------------------------------------------------------- */

static void submit(srv_engine *e, srv_job *j)
{
    j->req.on_token = on_token;
    j->req.on_text = on_text;
    j->req.on_done = on_done;
    j->req.ctx = j;
    j->m = e->m;
    int64_t id = 0;
    int rc = duet_sched_submit(e->s, &j->req, &id);
    pthread_mutex_lock(&j->mu);
    if (rc == 0) {
        j->state = SRV_JOB_ACCEPTED;
        j->id = id;
    } else {
        j->state = SRV_JOB_REFUSED;
        j->busy = rc == DUET_SCHED_BUSY;
        snprintf(j->err, sizeof j->err, "%s", duet_error());
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    /* The inbox's reference becomes the engine's (dropped by on_done) when accepted. */
    if (rc != 0) srv_job_unref(j);
}

static void *engine_main(void *arg)
{
    srv_engine *e = arg;
    e->s = duet_sched_create(e->b, &e->opts);
    pthread_mutex_lock(&e->mu);
    if (!e->s) {
        snprintf(e->err, sizeof e->err, "%s", duet_error());
        e->started = -1;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        return NULL;
    }
    e->started = 1;
    pthread_cond_broadcast(&e->cv);
    duet_sched_stats st;
    duet_sched_get_stats(e->s, &st);
    srv_metrics_sched(e->m, &st);
    int alive = 0;
    for (;;) {
        /* Sleep while nothing is alive and nothing arrives; stop once asked and nothing is left. */
        while (!e->head && !alive && !e->stop) pthread_cond_wait(&e->cv, &e->mu);
        if (!e->head && !alive && e->stop) break;
        inbox_item *items = e->head;
        e->head = e->tail = NULL;
        pthread_mutex_unlock(&e->mu);
        while (items) {
            inbox_item *it = items;
            items = it->next;
            if (it->job) submit(e, it->job);
            else duet_sched_cancel(e->s, it->cancel_id); /* -1: it has ended already */
            free(it);
        }
        alive = duet_sched_step(e->s);
        if (alive < 0) {
            /* The running requests ended with DUET_FINISH_ERROR; the waiting ones stay queued. */
            fprintf(stderr, "serve: the backend failed: %s\n", duet_error());
            alive = 1; /* step again: the waiting requests, if any; 0 comes back when none is left */
        }
        duet_sched_get_stats(e->s, &st);
        srv_metrics_sched(e->m, &st);
        alive = st.running + st.waiting;
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

srv_engine *srv_engine_start(duet_backend *b, const duet_sched_opts *o, srv_metrics *m)
{
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) {
        duet_errorf("serve: out of memory");
        return NULL;
    }
    e->b = b;
    e->opts = *o;
    e->m = m;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc) {
        duet_errorf("serve: cannot start the engine thread (%s)", strerror(rc));
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        free(e);
        return NULL;
    }
    pthread_mutex_lock(&e->mu);
    while (!e->started) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (e->started < 0) {
        pthread_join(e->thread, NULL);
        duet_errorf("%s", e->err);
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        free(e);
        return NULL;
    }
    return e;
}

static int post(srv_engine *e, srv_job *j, int64_t cancel_id)
{
    inbox_item *it = calloc(1, sizeof *it);
    if (!it) return -1;
    it->job = j;
    it->cancel_id = cancel_id;
    pthread_mutex_lock(&e->mu);
    if (e->tail) e->tail->next = it;
    else e->head = it;
    e->tail = it;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int srv_engine_submit(srv_engine *e, srv_job *j)
{
    j->state = SRV_JOB_POSTED;
    srv_job_ref(j); /* the inbox's */
    if (post(e, j, 0)) {
        srv_job_unref(j);
        j->state = SRV_JOB_REFUSED;
        snprintf(j->err, sizeof j->err, "serve: out of memory");
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    while (j->state == SRV_JOB_POSTED) pthread_cond_wait(&j->cv, &j->mu);
    int rc = j->state == SRV_JOB_REFUSED ? -1 : 0;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void srv_engine_cancel(srv_engine *e, int64_t id)
{
    if (post(e, NULL, id)) fprintf(stderr, "serve: out of memory: request %lld not cancelled\n", (long long)id);
}

void srv_engine_stop(srv_engine *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    duet_sched_free(e->s);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
