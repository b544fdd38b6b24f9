/* openai_response.c: see openai_response.h. */
#include "serve/openai_response.h"

#include <jansson.h>

/* Takes the reference to obj; NULL when obj is NULL (a failed json_* call on the way). */
static char *dump(json_t *obj)
{
    if (!obj) return NULL;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s;
}

/* json_object_set_new that remembers a failure: a NULL value (a failed constructor) or a failed set. */
static void set(json_t *o, const char *key, json_t *v, int *ok)
{
    if (!v || json_object_set_new(o, key, v)) *ok = 0;
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

char *srv_json_error(const srv_err *e)
{
    int ok = 1;
    json_t *in = json_object(), *out = json_object();
    if (!in || !out) {
        json_decref(in);
        json_decref(out);
        return NULL;
    }
    set(in, "message", json_string(e->message), &ok);
    set(in, "type", str_or_null(e->type), &ok);
    set(in, "param", str_or_null(e->param), &ok);
    set(in, "code", str_or_null(e->code), &ok);
    set(out, "error", in, &ok);
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return dump(out);
}

static json_t *head(const srv_reply_id *r, const char *object, int *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = 0;
        return NULL;
    }
    set(o, "id", json_string(r->id), ok);
    set(o, "object", json_string(object), ok);
    set(o, "created", json_integer(r->created), ok);
    set(o, "model", json_string(r->model), ok);
    return o;
}

static json_t *usage(int n_prompt, int n_generated)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", n_prompt, "completion_tokens", n_generated, "total_tokens",
                     n_prompt + n_generated);
}

/* Wraps one choice into head's object; the reference to choice is taken. */
static char *finish_obj(json_t *o, json_t *choice, int ok)
{
    json_t *arr = json_array();
    if (!choice || !arr || json_array_append_new(arr, choice)) ok = 0, choice = NULL;
    if (o) set(o, "choices", arr, &ok);
    if (!ok || !o) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

char *srv_json_reply(const srv_reply_id *r, const char *text, size_t len, const char *finish, int n_prompt,
                     int n_generated)
{
    int ok = 1;
    int chat = r->kind == SRV_CHAT;
    json_t *o = head(r, chat ? "chat.completion" : "text_completion", &ok);
    json_t *c = json_object();
    if (c) {
        set(c, "index", json_integer(0), &ok);
        if (chat)
            set(c, "message", json_pack("{s:s, s:s%}", "role", "assistant", "content", text ? text : "", len), &ok);
        else
            set(c, "text", json_stringn(text ? text : "", len), &ok);
        set(c, "logprobs", json_null(), &ok);
        set(c, "finish_reason", json_string(finish), &ok);
    }
    if (o) set(o, "usage", usage(n_prompt, n_generated), &ok);
    return finish_obj(o, c, ok);
}

char *srv_json_chunk(const srv_reply_id *r, const char *text, size_t len, int role_chunk, const char *finish)
{
    int ok = 1;
    int chat = r->kind == SRV_CHAT;
    json_t *o = head(r, chat ? "chat.completion.chunk" : "text_completion", &ok);
    json_t *c = json_object();
    if (c) {
        set(c, "index", json_integer(0), &ok);
        if (chat) {
            json_t *d = json_object();
            if (d && role_chunk) set(d, "role", json_string("assistant"), &ok);
            if (d && (text || role_chunk)) set(d, "content", json_stringn(text ? text : "", text ? len : 0), &ok);
            set(c, "delta", d, &ok);
        } else {
            set(c, "text", json_stringn(text ? text : "", text ? len : 0), &ok);
        }
        set(c, "logprobs", json_null(), &ok);
        set(c, "finish_reason", str_or_null(finish), &ok);
    }
    return finish_obj(o, c, ok);
}

char *srv_json_usage_chunk(const srv_reply_id *r, int n_prompt, int n_generated)
{
    int ok = 1;
    json_t *o = head(r, r->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", &ok);
    if (o) {
        set(o, "choices", json_array(), &ok);
        set(o, "usage", usage(n_prompt, n_generated), &ok);
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

static json_t *model_obj(const char *model, long long created)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", model, "object", "model", "created", (json_int_t)created, "owned_by",
                     "duet");
}

char *srv_json_models(const char *model, long long created)
{
    return dump(json_pack("{s:s, s:[o]}", "object", "list", "data", model_obj(model, created)));
}

char *srv_json_model(const char *model, long long created) { return dump(model_obj(model, created)); }
