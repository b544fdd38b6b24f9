/* fuzz_openai_request.c: libFuzzer harness for srv_params_parse (serve/openai_request.c): the input is
 * the body of a POST, parsed once as /v1/completions and once as /v1/chat/completions (max_tokens
 * limit LIMIT). Invariants (openai_request.h):
 * - refused: a 400 (or a 500 for out of memory) with a non-empty message that names its field when it
 *   has one, and srv_json_error turns it into an OpenAI error body that parses back with the same
 *   message, type and param (a client always gets a readable error, never the fallback 500);
 * - accepted: the fields are in their documented ranges (max_tokens -1 or in [1, LIMIT], temperature
 *   in [0, 2], top_p in (0, 1], top_k in [0, 2^30], 0 to SRV_MAX_STOP stop strings each non-empty,
 *   include_usage only with stream), the prompt (completions) or messages (chat, known roles, contents
 *   present) are there, and the strings point into the parsed body;
 * - srv_params_free releases everything (ASan's leak check) in both cases. */
#include "fuzz_util.h"
#include "serve/openai_request.h"
#include "serve/openai_response.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT 512

/* e as the client gets it: srv_json_error's body parses back to e's message, type and param. */
static void check_error(const srv_err *e)
{
    FUZZ_CHECK(e->status == 400 || e->status == 500);
    FUZZ_CHECK(e->message[0] != '\0' && e->type && e->type[0]);
    if (e->param) FUZZ_CHECK(strstr(e->message, e->param) != NULL);
    char *body = srv_json_error(e);
    FUZZ_CHECK(body != NULL);
    json_t *j = json_loads(body, 0, NULL);
    FUZZ_CHECK(j != NULL);
    json_t *err = json_object_get(j, "error");
    FUZZ_CHECK(json_is_string(json_object_get(err, "message")));
    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(err, "message")), e->message));
    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(err, "type")), e->type));
    json_t *param = json_object_get(err, "param");
    FUZZ_CHECK(e->param ? json_is_string(param) && !strcmp(json_string_value(param), e->param) : json_is_null(param));
    json_decref(j);
    free(body);
}

static void check_params(const srv_params *p, srv_kind kind)
{
    FUZZ_CHECK(p->kind == kind && json_is_object(p->root));
    json_t *model = json_object_get(p->root, "model");
    FUZZ_CHECK(p->model ? p->model == json_string_value(model) : !model || json_is_null(model));
    if (kind == SRV_COMPLETIONS) {
        FUZZ_CHECK(p->prompt && strlen(p->prompt) == p->prompt_len && !p->msgs && p->n_msgs == 0);
    } else {
        FUZZ_CHECK(!p->prompt && p->msgs && p->n_msgs >= 1);
        FUZZ_CHECK((size_t)p->n_msgs == json_array_size(json_object_get(p->root, "messages")));
        for (int i = 0; i < p->n_msgs; i++) {
            const char *r = p->msgs[i].role;
            FUZZ_CHECK(r && (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant")));
            FUZZ_CHECK(p->msgs[i].content != NULL);
        }
    }
    FUZZ_CHECK(p->max_tokens == -1 || (p->max_tokens >= 1 && p->max_tokens <= LIMIT));
    FUZZ_CHECK(p->temperature >= 0 && p->temperature <= 2);
    FUZZ_CHECK(p->top_p > 0 && p->top_p <= 1);
    FUZZ_CHECK(p->top_k >= 0 && p->top_k <= (1 << 30));
    FUZZ_CHECK(p->n_stop >= 0 && p->n_stop <= SRV_MAX_STOP);
    for (int i = 0; i < p->n_stop; i++)
        FUZZ_CHECK(p->stop[i] && p->stop[i][0] && strlen(p->stop[i]) <= SRV_MAX_STOP_LEN);
    FUZZ_CHECK((p->stream == 0 || p->stream == 1) && (p->include_usage == 0 || p->include_usage == 1));
    FUZZ_CHECK(!p->include_usage || p->stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = 0; k < 2; k++) {
        srv_kind kind = k ? SRV_CHAT : SRV_COMPLETIONS;
        srv_params p;
        srv_err e;
        memset(&e, 0, sizeof e);
        if (srv_params_parse(&p, kind, (const char *)data, size, LIMIT, &e) == 0)
            check_params(&p, kind);
        else
            check_error(&e);
        srv_params_free(&p);
    }
    return 0;
}
