/* http_generate.c: POST /v1/completions and /v1/chat/completions: the body checked (openai_request.h),
 * the prompt rendered (chat: the model's template, as `duet generate --chat` renders one user turn) and
 * tokenized on the connection's thread, the job handed to the engine thread, then either the whole reply
 * once the request ends or a stream of server-sent events (data: {chunk}, ..., data: [DONE]) as the text
 * arrives. A connection thread waiting for text also watches its socket: a client that has gone away
 * cancels its request without waiting for the next write to fail. */
#include "serve/http_internal.h"
#include "serve/openai_response.h"

#include "error.h"
#include "generate.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define WAIT_MS 50          /* how often a waiting thread looks at its socket */
#define KEEPALIVE_S 10.0    /* an SSE comment after this long without text (keeps proxies from timing out) */

/* Whether the client closed its end: a hang-up, or a read that would return end of file. */
static int client_gone(int fd)
{
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

/* Waits on j (its mutex held) for WAIT_MS; 1 when the client has gone meanwhile. */
static int wait_a_little(srv_job *j, int fd)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != ETIMEDOUT) return 0;
    pthread_mutex_unlock(&j->mu);
    int gone = client_gone(fd);
    pthread_mutex_lock(&j->mu);
    return gone;
}

static const char *finish_reason(duet_finish f) { return f == DUET_FINISH_LENGTH ? "length" : "stop"; }

/* --- streaming ---------------------------------------------------------------------------------- */

/* The state of one streamed reply, owned by its MHD response (freed by stream_free, with its reference to
 * the job, whenever MHD lets go of the response). */
typedef struct srv_stream {
    srv_job *job;
    srv_reply_id rid;
    char model[128];
    int fd;
    int include_usage;
    int role_sent;
    size_t text_sent; /* bytes of job->text already sent */
    int finished;     /* the last event is in out */
    char *out;        /* formatted events not yet handed to MHD: [out_off, out_len) */
    size_t out_len, out_off, out_cap;
    double t_sent;
} srv_stream;

static int out_add(srv_stream *s, const char *a, const char *json, const char *b)
{
    if (!json) return -1;
    size_t la = strlen(a), lj = strlen(json), lb = strlen(b), need = s->out_len + la + lj + lb;
    if (need > s->out_cap) {
        char *p = realloc(s->out, need * 2);
        if (!p) return -1;
        s->out = p;
        s->out_cap = need * 2;
    }
    memcpy(s->out + s->out_len, a, la);
    memcpy(s->out + s->out_len + la, json, lj);
    memcpy(s->out + s->out_len + la + lj, b, lb);
    s->out_len = need;
    return 0;
}

static int out_event(srv_stream *s, char *json)
{
    int rc = out_add(s, "data: ", json, "\n\n");
    free(json);
    return rc;
}

/* Formats the next events into s->out: the role (chat's first chunk), new text, or the end. -1: the client
 * went away or memory ran out. */
static int stream_next(srv_stream *s)
{
    s->out_len = s->out_off = 0;
    if (s->rid.kind == SRV_CHAT && !s->role_sent) {
        s->role_sent = 1;
        return out_event(s, srv_json_chunk(&s->rid, NULL, 0, 1, NULL));
    }
    srv_job *j = s->job;
    pthread_mutex_lock(&j->mu);
    while (j->len == s->text_sent && j->state != SRV_JOB_DONE) {
        if (wait_a_little(j, s->fd)) {
            pthread_mutex_unlock(&j->mu);
            return -1;
        }
        if (j->len == s->text_sent && j->state != SRV_JOB_DONE && duet_now() - s->t_sent > KEEPALIVE_S) {
            pthread_mutex_unlock(&j->mu);
            s->t_sent = duet_now();
            return out_add(s, "", ": keep-alive", "\n\n");
        }
    }
    if (j->len > s->text_sent) {
        size_t from = s->text_sent, n = j->len - from;
        char *json = srv_json_chunk(&s->rid, j->text + from, n, 0, NULL);
        s->text_sent = j->len;
        pthread_mutex_unlock(&j->mu);
        s->t_sent = duet_now();
        return out_event(s, json);
    }
    duet_finish why = j->why;
    duet_request_stats st = j->st;
    pthread_mutex_unlock(&j->mu);
    int rc;
    if (why == DUET_FINISH_ERROR) {
        srv_err e;
        srv_err_set(&e, 500, "server_error", NULL, NULL, "generation failed after %d tokens", st.n_generated);
        rc = out_event(s, srv_json_error(&e));
    } else {
        rc = out_event(s, srv_json_chunk(&s->rid, NULL, 0, 0, finish_reason(why)));
        if (!rc && s->include_usage) rc = out_event(s, srv_json_usage_chunk(&s->rid, st.n_prompt, st.n_generated));
    }
    if (!rc) rc = out_add(s, "", "data: [DONE]", "\n\n");
    s->finished = 1;
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    srv_stream *s = cls;
    (void)pos;
    while (s->out_off == s->out_len) {
        if (s->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_next(s)) return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection */
    }
    size_t n = s->out_len - s->out_off;
    if (n > max) n = max;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    srv_stream *s = cls;
    srv_job_unref(s->job);
    free(s->out);
    free(s);
}

static enum MHD_Result respond_stream(srv_conn *cn, const srv_reply_id *rid, int include_usage)
{
    srv_stream *s = calloc(1, sizeof *s);
    if (!s) return srv_respond_json(cn, 500, NULL);
    s->job = cn->job;
    srv_job_ref(s->job);
    s->rid = *rid;
    snprintf(s->model, sizeof s->model, "%s", rid->model);
    s->rid.model = s->model;
    s->fd = conn_fd(cn->c);
    s->include_usage = include_usage;
    s->t_sent = duet_now();
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!r) {
        stream_free(s);
        return srv_respond_json(cn, 500, NULL);
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    cn->status = 200;
    enum MHD_Result rc = MHD_queue_response(cn->c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* --- the whole reply at the end ------------------------------------------------------------------ */

static enum MHD_Result respond_whole(srv_conn *cn, const srv_reply_id *rid)
{
    srv_job *j = cn->job;
    int fd = conn_fd(cn->c);
    pthread_mutex_lock(&j->mu);
    while (j->state != SRV_JOB_DONE) {
        if (wait_a_little(j, fd)) {
            pthread_mutex_unlock(&j->mu);
            return MHD_NO; /* gone: MHD closes the connection; on_completed cancels the request */
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (j->why == DUET_FINISH_ERROR) {
        srv_err e;
        srv_err_set(&e, 500, "server_error", NULL, NULL, "generation failed after %d tokens", j->st.n_generated);
        return srv_respond_error(cn, &e);
    }
    return srv_respond_json(cn, 200, srv_json_reply(rid, j->text, j->len, finish_reason(j->why), j->st.n_prompt,
                                                    j->st.n_generated));
}

/* --- the request -------------------------------------------------------------------------------- */

/* The prompt's ids (malloc'ed) as `duet generate` makes them: completions encode the text with the
 * tokenizer's BOS rule and special tokens as plain text (an empty prompt starts from BOS); chat renders
 * the messages with the model's template (its default system prompt when none is given) and parses
 * special tokens. 0, or -1 with e filled. */
static int prompt_ids(srv_http *h, const srv_params *p, int **ids, size_t *n, srv_err *e)
{
    const char *param = p->kind == SRV_CHAT ? "messages" : "prompt";
    *ids = NULL;
    *n = 0;
    if (p->kind == SRV_CHAT) {
        if (!h->cfg.tmpl)
            return srv_err_set(e, 400, "invalid_request_error", "messages", NULL,
                               "the model has no chat template: use /v1/completions");
        char *text = duet_chat_render(h->cfg.tmpl, p->msgs, p->n_msgs, NULL, 1);
        if (!text) return srv_err_set(e, 400, "invalid_request_error", "messages", NULL, "%s", duet_error());
        int rc = duet_tokenizer_encode_opts(h->cfg.tok, text, strlen(text), h->cfg.tmpl->add_bos, 1, ids, n);
        free(text);
        if (rc) return srv_err_set(e, 400, "invalid_request_error", param, NULL, "%s", duet_error());
    } else if (duet_tokenizer_encode_opts(h->cfg.tok, p->prompt, p->prompt_len, 1, 0, ids, n)) {
        return srv_err_set(e, 400, "invalid_request_error", param, NULL, "%s", duet_error());
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        if (h->cfg.bos_id < 0)
            return srv_err_set(e, 400, "invalid_request_error", param, NULL, "empty prompt and no BOS token to start from");
        if (!(*ids = malloc(sizeof(int)))) return srv_err_set(e, 500, "server_error", NULL, NULL, "out of memory");
        (*ids)[(*n)++] = h->cfg.bos_id;
    }
    return 0;
}

/* A seed for a request that gives none: different for every request. */
static uint64_t fresh_seed(srv_http *h)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&h->mu);
    uint64_t k = ++h->next_id;
    pthread_mutex_unlock(&h->mu);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ (k << 32);
    x ^= x >> 33; /* splitmix64's finalizer */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static enum MHD_Result generate(srv_conn *cn, srv_params *p)
{
    srv_http *h = cn->h;
    srv_err e;
    const char *param = p->kind == SRV_CHAT ? "messages" : "prompt";
    if (p->model && strcmp(p->model, h->cfg.model_id)) {
        srv_err_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                    "the model '%.200s' does not exist; this server serves '%s'", p->model, h->cfg.model_id);
        return srv_respond_error(cn, &e);
    }
    int *ids;
    size_t n;
    if (prompt_ids(h, p, &ids, &n, &e)) return srv_respond_error(cn, &e);
    int ctx = h->cfg.max_ctx;
    if (n >= (size_t)ctx) {
        free(ids);
        srv_err_set(&e, 400, "invalid_request_error", param, "context_length_exceeded",
                    "the prompt is %zu tokens; the context is %d tokens (--max-ctx), prompt and max_tokens together",
                    n, ctx);
        return srv_respond_error(cn, &e);
    }
    int max_tokens = p->max_tokens;
    if (max_tokens < 0) { /* not given: OpenAI's 16 for completions, the rest of the context for chat */
        max_tokens = p->kind == SRV_CHAT ? h->cfg.max_tokens_limit : 16;
        if (max_tokens > ctx - (int)n) max_tokens = ctx - (int)n;
    } else if ((int)n + max_tokens > ctx) {
        free(ids);
        srv_err_set(&e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                    "the prompt is %zu tokens and max_tokens is %d: %zu, over the context of %d tokens (--max-ctx)", n,
                    max_tokens, n + (size_t)max_tokens, ctx);
        return srv_respond_error(cn, &e);
    }
    pthread_mutex_lock(&h->mu);
    int over = h->active >= h->cfg.max_concurrent;
    if (!over) h->active++;
    pthread_mutex_unlock(&h->mu);
    if (over) {
        free(ids);
        srv_err_set(&e, 429, "rate_limit_error", NULL, "too_many_requests",
                    "%d requests are running, the limit (--max-concurrent); try again later", h->cfg.max_concurrent);
        return srv_respond_error(cn, &e);
    }
    cn->counted = 1;
    srv_job *j = srv_job_new();
    if (!j) {
        free(ids);
        return srv_respond_json(cn, 500, NULL);
    }
    cn->job = j;
    j->prompt = ids;
    j->req.prompt = ids;
    j->req.n_prompt = (int)n;
    j->req.max_tokens = max_tokens;
    j->req.temperature = p->temperature;
    j->req.top_k = p->top_k;
    j->req.top_p = p->top_p;
    j->req.seed = p->has_seed ? p->seed : fresh_seed(h);
    int end = p->kind == SRV_CHAT && h->cfg.chat_end_id >= 0 ? h->cfg.chat_end_id : h->cfg.eos_id;
    if (end >= 0) j->stop_ids[j->req.n_stop_ids++] = end;
    j->req.stop_ids = j->stop_ids;
    if (p->n_stop) {
        if (!(j->stop = calloc((size_t)p->n_stop, sizeof *j->stop))) return srv_respond_json(cn, 500, NULL);
        for (int i = 0; i < p->n_stop; i++)
            if (!(j->stop[j->n_stop++] = strdup(p->stop[i]))) return srv_respond_json(cn, 500, NULL);
        j->req.stop = (const char *const *)j->stop;
        j->req.n_stop = j->n_stop;
    }
    if (srv_engine_submit(h->engine, j)) {
        if (j->busy)
            srv_err_set(&e, 429, "rate_limit_error", NULL, "too_many_requests", "the scheduler is busy: %s", j->err);
        else
            srv_err_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", j->err);
        return srv_respond_error(cn, &e);
    }
    srv_reply_id rid = {.kind = p->kind, .created = (long long)time(NULL), .model = h->cfg.model_id};
    snprintf(rid.id, sizeof rid.id, "%s-%llx%06llx", p->kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)rid.created, (unsigned long long)j->id);
    return p->stream ? respond_stream(cn, &rid, p->include_usage) : respond_whole(cn, &rid);
}

enum MHD_Result srv_generate(srv_conn *cn, srv_kind kind)
{
    srv_params p;
    srv_err e;
    enum MHD_Result rc;
    if (srv_params_parse(&p, kind, cn->body ? cn->body : "", cn->len, cn->h->cfg.max_tokens_limit, &e))
        rc = srv_respond_error(cn, &e);
    else
        rc = generate(cn, &p);
    srv_params_free(&p);
    return rc;
}
