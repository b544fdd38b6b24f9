/* http_server.c: the libmicrohttpd daemon (one thread per connection, quiesced to drain), the request
 * body with its size limit, authentication, routing, the small endpoints (/health, /metrics, /v1/models)
 * and the request log. See http_server.h. */
#include "serve/http_internal.h"
#include "serve/openai_response.h"

#include "error.h"
#include "generate.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum MHD_Result srv_respond_json(srv_conn *cn, int status, char *json)
{
    static const char OOM[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                              "\"code\":null}}";
    struct MHD_Response *r;
    if (json) {
        r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    } else {
        status = 500;
        r = MHD_create_response_from_buffer(sizeof OOM - 1, (void *)OOM, MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    cn->status = status;
    enum MHD_Result rc = MHD_queue_response(cn->c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result srv_respond_error(srv_conn *cn, const srv_err *e)
{
    return srv_respond_json(cn, e->status, srv_json_error(e));
}

static enum MHD_Result respond_text(srv_conn *cn, int status, const char *type, char *text, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    cn->status = status;
    enum MHD_Result rc = MHD_queue_response(cn->c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Bearer authentication: the comparison does not stop at the first differing byte. */
static int authorized(srv_conn *cn)
{
    const char *key = cn->h->cfg.api_key;
    if (!key) return 1;
    const char *auth = MHD_lookup_connection_value(cn->c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7)) return 0;
    auth += 7;
    size_t n = strlen(key), m = strlen(auth);
    unsigned diff = n != m;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? auth[i] : 0);
    return diff == 0;
}

static int is_draining(srv_http *h)
{
    pthread_mutex_lock(&h->mu);
    int d = h->draining;
    pthread_mutex_unlock(&h->mu);
    return d;
}

static enum MHD_Result route(srv_conn *cn, const char *url)
{
    srv_http *h = cn->h;
    srv_err e;
    int get = !strcmp(cn->method, "GET"), post = !strcmp(cn->method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) goto method;
        if (is_draining(h)) {
            srv_err_set(&e, 503, "service_unavailable", NULL, "draining", "the server is shutting down");
            return srv_respond_error(cn, &e);
        }
        return srv_respond_json(cn, 200, strdup("{\"status\":\"ok\"}"));
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) goto method;
        size_t len;
        char *text = srv_metrics_render(h->m, &len);
        if (!text) return srv_respond_json(cn, 500, NULL);
        return respond_text(cn, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    }
    if (strncmp(url, "/v1/", 4)) goto unknown;
    if (!authorized(cn)) {
        srv_err_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                    "missing or wrong API key: send the header 'Authorization: Bearer KEY'");
        return srv_respond_error(cn, &e);
    }
    if (!strcmp(url, "/v1/models")) {
        if (!get) goto method;
        return srv_respond_json(cn, 200, srv_json_models(h->cfg.model_id, h->started));
    }
    if (!strncmp(url, "/v1/models/", 11)) {
        if (!get) goto method;
        if (strcmp(url + 11, h->cfg.model_id)) {
            srv_err_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                        "the model '%.200s' does not exist; this server serves '%s'", url + 11, h->cfg.model_id);
            return srv_respond_error(cn, &e);
        }
        return srv_respond_json(cn, 200, srv_json_model(h->cfg.model_id, h->started));
    }
    int kind = !strcmp(url, "/v1/completions") ? SRV_COMPLETIONS : !strcmp(url, "/v1/chat/completions") ? SRV_CHAT : -1;
    if (kind < 0) goto unknown;
    if (!post) goto method;
    if (cn->too_big) {
        srv_err_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                    "the request body is over the limit of %zu bytes (--max-body)", h->cfg.max_body);
        return srv_respond_error(cn, &e);
    }
    if (is_draining(h)) {
        srv_err_set(&e, 503, "service_unavailable", NULL, "draining", "the server is shutting down");
        return srv_respond_error(cn, &e);
    }
    return srv_generate(cn, (srv_kind)kind);
unknown:
    srv_err_set(&e, 404, "invalid_request_error", NULL, "not_found", "no such endpoint: %s %.200s", cn->method, url);
    return srv_respond_error(cn, &e);
method:
    srv_err_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "%s is not allowed on %.200s",
                cn->method, url);
    return srv_respond_error(cn, &e);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    srv_http *h = cls;
    srv_conn *cn = *con_cls;
    if (!cn) { /* the first call: the headers are in */
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        cn->h = h;
        cn->c = c;
        cn->t0 = duet_now();
        snprintf(cn->method, sizeof cn->method, "%s", method);
        snprintf(cn->path, sizeof cn->path, "%s", url);
        *con_cls = cn;
        /* A declared length over the limit is answered at once: the body is never read (a client that sent
         * Expect: 100-continue does not send it). */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->cfg.max_body) {
            cn->too_big = 1;
            return route(cn, url);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cn->too_big || cn->status) return MHD_YES;
        if (n > h->cfg.max_body - cn->len) {
            cn->too_big = 1; /* dropped: the answer is 413 */
            free(cn->body);
            cn->body = NULL;
            cn->len = cn->cap = 0;
            return MHD_YES;
        }
        if (cn->len + n + 1 > cn->cap) {
            size_t cap = cn->cap * 2 + n + 1;
            if (cap > h->cfg.max_body + 1) cap = h->cfg.max_body + 1;
            char *p = realloc(cn->body, cap);
            if (!p) return MHD_NO;
            cn->body = p;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload, n);
        cn->len += n;
        cn->body[cn->len] = 0;
        return MHD_YES;
    }
    if (cn->status) return MHD_YES; /* answered already (413 at the first call) */
    return route(cn, url);
}

/* The request is over (answered, or the client went away): a generation still running is cancelled, and
 * the request's log line is written (by the job when it has one, once it has ended). */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    srv_http *h = cls;
    srv_conn *cn = *con_cls;
    if (!cn) return;
    *con_cls = NULL;
    int status = cn->status ? cn->status : 500;
    int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    srv_metrics_status(h->m, status);
    if (cn->job) {
        srv_job *j = cn->job;
        pthread_mutex_lock(&j->mu);
        int running = j->state == SRV_JOB_ACCEPTED;
        snprintf(j->log, sizeof j->log, "%s %s %d%s", cn->method, cn->path, status, ok ? "" : " (client gone)");
        j->t_start = cn->t0;
        pthread_mutex_unlock(&j->mu);
        if (running) srv_engine_cancel(h->engine, j->id);
        srv_job_unref(j);
    } else {
        fprintf(stderr, "serve: %s %s %d%s prompt=0 generated=0 %.1fms\n", cn->method, cn->path, status,
                ok ? "" : " (client gone)", (duet_now() - cn->t0) * 1e3);
    }
    if (cn->counted) {
        pthread_mutex_lock(&h->mu);
        h->active--;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    free(cn->body);
    free(cn);
}

/* libmicrohttpd's own messages (a connection closed on error, ...), marked as its. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    fprintf(stderr, "serve: libmicrohttpd: %s\n", line);
}

srv_http *srv_http_start(const srv_config *cfg, srv_engine *e, srv_metrics *m)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &ai);
    if (rc) {
        duet_errorf("--host %s: %s", cfg->host, gai_strerror(rc));
        return NULL;
    }
    srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        duet_errorf("serve: out of memory");
        return NULL;
    }
    h->cfg = *cfg;
    h->engine = e;
    h->m = m;
    h->started = (long long)time(NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* The connection limit stays above --max-concurrent so that a request over it is answered 429
     * rather than refused at accept; keep-alive connections and /metrics need room too. */
    unsigned limit = (unsigned)cfg->max_concurrent * 2 + 16;
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        duet_errorf("cannot listen on %s port %d (in use, or not an address of this host)", cfg->host, cfg->port);
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : cfg->port;
    return h;
}

int srv_http_port(const srv_http *h) { return h->port; }

void srv_http_drain(srv_http *h)
{
    MHD_socket s = MHD_quiesce_daemon(h->d); /* no new connections; the open ones go on */
    if (s != MHD_INVALID_SOCKET) close(s);
    pthread_mutex_lock(&h->mu);
    h->draining = 1;
    while (h->active > 0) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

void srv_http_stop(srv_http *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
