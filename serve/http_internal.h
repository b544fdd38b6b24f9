/* http_internal.h: what http_server.c (the daemon, routing, the small endpoints) and http_generate.c
 * (the two generation endpoints) share: the server and one request's state. */
#ifndef DUET_SERVE_HTTP_INTERNAL_H
#define DUET_SERVE_HTTP_INTERNAL_H

#include "serve/http_server.h"
#include "serve/openai_request.h"

#include <microhttpd.h>
#include <pthread.h>

struct srv_http {
    srv_config cfg;
    struct MHD_Daemon *d;
    srv_engine *engine;
    srv_metrics *m;
    int port;
    long long started; /* Unix seconds: /v1/models' "created" */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* active fell */
    int active;        /* generation requests between admission and their end */
    int draining;
    unsigned long long next_id;
};

/* One HTTP request (MHD's per-request pointer). */
typedef struct srv_conn {
    srv_http *h;
    struct MHD_Connection *c;
    char method[8];
    char path[128];    /* for the log, cut */
    char *body;
    size_t len, cap;
    int too_big;       /* the body passed max_body: the rest was dropped */
    int status;        /* what was queued (0: none yet) */
    int counted;       /* holds one of h->active */
    srv_job *job;      /* a generation request's, once submitted */
    double t0;
} srv_conn;

/* Queues a response with status and a JSON body (taken, freed; NULL: out of memory -> 500). */
enum MHD_Result srv_respond_json(srv_conn *cn, int status, char *json);
enum MHD_Result srv_respond_error(srv_conn *cn, const srv_err *e);
/* POST /v1/completions or /v1/chat/completions with the whole body in cn. */
enum MHD_Result srv_generate(srv_conn *cn, srv_kind kind);

#endif
