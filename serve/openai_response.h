/* openai_response.h: the JSON bodies duet serve answers with, in OpenAI's shapes: a completion
 * ("text_completion") and a chat completion ("chat.completion") with usage, their streamed chunks
 * ("text_completion" / "chat.completion.chunk"), the model list, and the error object. Each returns a
 * malloc'ed NUL-terminated compact JSON text, or NULL when out of memory (or the text is not UTF-8). */
#ifndef DUET_SERVE_OPENAI_RESPONSE_H
#define DUET_SERVE_OPENAI_RESPONSE_H

#include "serve/openai_request.h"

#include <stddef.h>

typedef struct srv_reply_id {
    srv_kind kind;
    char id[48];        /* "cmpl-..." or "chatcmpl-..." */
    long long created;  /* Unix seconds */
    const char *model;
} srv_reply_id;

char *srv_json_error(const srv_err *e);
/* finish: "stop" or "length". */
char *srv_json_reply(const srv_reply_id *r, const char *text, size_t len, const char *finish, int n_prompt,
                     int n_generated);
/* One streamed chunk: text (NULL: none; chat's first chunk carries the role: role_chunk), finish (NULL
 * while it goes on). */
char *srv_json_chunk(const srv_reply_id *r, const char *text, size_t len, int role_chunk, const char *finish);
/* The last chunk when stream_options.include_usage: no choices, the usage. */
char *srv_json_usage_chunk(const srv_reply_id *r, int n_prompt, int n_generated);
char *srv_json_models(const char *model, long long created);
char *srv_json_model(const char *model, long long created);

#endif
