/* openai_request.h: the bodies of POST /v1/completions and /v1/chat/completions, parsed and checked
 * against OpenAI's API: prompt (a string, or an array of one string) or messages ({role, content}, content
 * a string or an array of {"type": "text", "text"} parts), model, max_tokens (chat: max_completion_tokens
 * too), temperature, top_p, top_k (an extension, as vLLM's), seed, stop (a string or an array of up to 4, each
 * 1 to SRV_MAX_STOP_LEN bytes),
 * n (1 only), stream, stream_options.include_usage. Other fields (penalties, user, ...) are ignored. */
#ifndef DUET_SERVE_OPENAI_REQUEST_H
#define DUET_SERVE_OPENAI_REQUEST_H

#include "chat.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SRV_COMPLETIONS = 0, SRV_CHAT = 1 } srv_kind;

/* An error for the client, in OpenAI's shape {"error": {message, type, param, code}}. */
typedef struct srv_err {
    int status;         /* HTTP status */
    char message[512];
    const char *type;   /* "invalid_request_error", ... */
    const char *param;  /* the field at fault, or NULL */
    const char *code;   /* a short code, or NULL */
} srv_err;
/* Fills e (the message made valid UTF-8: a byte outside a valid sequence becomes a '?'); returns -1. */
int srv_err_set(srv_err *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define SRV_MAX_STOP 4
/* The longest stop string, in bytes: the scheduler holds back that many bytes less one of a streamed
 * reply (they could begin a stop string), so a longer one would delay the stream by as much. */
#define SRV_MAX_STOP_LEN 1024

typedef struct srv_params {
    srv_kind kind;
    json_t *root;        /* the parsed body; the strings below point into it */
    const char *model;   /* NULL: not given */
    const char *prompt;  /* completions */
    size_t prompt_len;
    duet_chat_msg *msgs; /* chat: [n_msgs]; roles are static strings, contents malloc'ed */
    int n_msgs;
    int max_tokens;      /* -1: not given */
    float temperature, top_p;
    int top_k;
    int has_seed;
    uint64_t seed;
    const char *stop[SRV_MAX_STOP];
    int n_stop;
    int stream, include_usage;
} srv_params;

/* Parses body[len] for endpoint `kind`; max_tokens above max_tokens_limit is refused. 0, or -1 with e
 * filled (400, naming the field). srv_params_free in both cases. */
int srv_params_parse(srv_params *p, srv_kind kind, const char *body, size_t len, int max_tokens_limit, srv_err *e);
void srv_params_free(srv_params *p);

#endif
