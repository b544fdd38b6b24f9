/* http_server.h: duet serve's HTTP side on libmicrohttpd, one thread per connection. The connection
 * threads parse, check and tokenize requests and wait on their job's buffer; they never call the
 * scheduler: jobs go to the engine thread (serve/engine.h). Routes: POST /v1/completions,
 * POST /v1/chat/completions, GET /v1/models[/ID], GET /health, GET /metrics. */
#ifndef DUET_SERVE_HTTP_SERVER_H
#define DUET_SERVE_HTTP_SERVER_H

#include "serve/engine.h"
#include "serve/metrics.h"

#include "chat.h"
#include "tokenizer.h"

#include <stddef.h>

typedef struct srv_config {
    const char *host;     /* address to bind (numeric or a name getaddrinfo resolves) */
    int port;             /* 0: any free port (srv_http_port says which) */
    const char *api_key;  /* NULL: no authentication */
    size_t max_body;      /* bytes of a request body at most (413 beyond) */
    int max_tokens_limit; /* max_tokens at most (400 beyond) */
    int max_concurrent;   /* generation requests at once (429 beyond) */
    int max_ctx;          /* positions per request: prompt + max_tokens (400 beyond) */
    const char *model_id; /* the name /v1/models lists and requests must give (or leave out) */
    /* The model's tokenizer, its chat template (NULL: none, chat requests get 400), the id that ends a chat
     * turn (-1: eos), the eos id (-1: none) and the BOS id an empty prompt starts from (-1: none). */
    const duet_tokenizer *tok;
    const duet_chat_template *tmpl;
    int chat_end_id, eos_id, bos_id;
} srv_config;

typedef struct srv_http srv_http;

/* Binds and starts serving; NULL + duet_error() (the address, the port in use). cfg's strings and
 * objects, e and m must outlive srv_http_stop. */
srv_http *srv_http_start(const srv_config *cfg, srv_engine *e, srv_metrics *m);
int srv_http_port(const srv_http *h); /* the port bound */
/* Stops accepting connections; requests arriving on open connections get 503; returns once every
 * generation request has been answered. */
void srv_http_drain(srv_http *h);
void srv_http_stop(srv_http *h); /* closes every connection and frees h */

#endif
