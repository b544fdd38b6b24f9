/* openai_request.c: see openai_request.h. */
#include "serve/openai_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *INVALID = "invalid_request_error";

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (overlong forms, surrogates and
 * code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    static const uint32_t MIN[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < MIN[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    return len;
}

/* Makes s valid UTF-8 in place, each byte outside a valid sequence a '?': the message quotes the body
 * (jansson's "near '...'") and may have been cut mid-character, and an error body must be JSON. */
static void utf8_repair(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (l == 0) s[i++] = '?';
        else i += l;
    }
}

int srv_err_set(srv_err *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->param = param;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    utf8_repair(e->message);
    return -1;
}

static int bad(srv_err *e, const char *param, const char *fmt, const char *what)
{
    return srv_err_set(e, 400, INVALID, param, NULL, fmt, param, what);
}

/* A JSON type's name for messages. */
static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* An optional number field in [lo, hi] into *out; null and absent keep *out. */
static int get_number(json_t *root, const char *key, double lo, double hi, float *out, srv_err *e)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad(e, key, "'%s' must be a number, not %s", type_name(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return srv_err_set(e, 400, INVALID, key, NULL, "'%s' is %g, outside [%g, %g]", key, x, lo, hi);
    *out = (float)x;
    return 0;
}

static int get_bool(json_t *root, const char *key, int *out, srv_err *e)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad(e, key, "'%s' must be a boolean, not %s", type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int get_max_tokens(json_t *root, const char *key, int limit, int *out, srv_err *e)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return bad(e, key, "'%s' must be an integer, not %s", type_name(v));
    json_int_t n = json_integer_value(v);
    if (n < 1 || n > limit)
        return srv_err_set(e, 400, INVALID, key, NULL, "'%s' is %lld; it must be in [1, %d]", key, (long long)n, limit);
    *out = (int)n;
    return 0;
}

/* One stop string s (stop[i] when in an array): 1 to SRV_MAX_STOP_LEN bytes. */
static int add_stop(srv_params *p, json_t *s, long i, srv_err *e)
{
    char where[32] = "'stop'";
    if (i >= 0) snprintf(where, sizeof where, "'stop[%ld]'", i);
    if (!json_is_string(s)) return srv_err_set(e, 400, INVALID, "stop", NULL, "%s must be a string, not %s", where, type_name(s));
    size_t n = json_string_length(s);
    if (n == 0) return srv_err_set(e, 400, INVALID, "stop", NULL, "%s must not be empty", where);
    if (n > SRV_MAX_STOP_LEN)
        return srv_err_set(e, 400, INVALID, "stop", NULL, "%s is %zu bytes; at most %d", where, n, SRV_MAX_STOP_LEN);
    p->stop[p->n_stop++] = json_string_value(s);
    return 0;
}

static int get_stop(srv_params *p, srv_err *e)
{
    json_t *v = json_object_get(p->root, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) return add_stop(p, v, -1, e);
    if (!json_is_array(v)) return bad(e, "stop", "'%s' must be a string or an array of strings, not %s", type_name(v));
    if (json_array_size(v) > SRV_MAX_STOP)
        return srv_err_set(e, 400, INVALID, "stop", NULL, "'stop' has %zu strings; at most %d", json_array_size(v),
                           SRV_MAX_STOP);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s)
        if (add_stop(p, s, (long)i, e)) return -1;
    return 0;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts, joined. Malloc'ed. */
static char *content_text(json_t *c, int i, srv_err *e)
{
    if (json_is_string(c)) return strndup(json_string_value(c), json_string_length(c));
    if (!json_is_array(c)) {
        srv_err_set(e, 400, INVALID, "messages", NULL, "messages[%d].content must be a string or an array of text parts, not %s",
                    i, type_name(c));
        return NULL;
    }
    size_t total = 0, k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "text");
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!json_is_object(part) || !type || strcmp(type, "text") || !json_is_string(t)) {
            srv_err_set(e, 400, INVALID, "messages", NULL, "messages[%d].content[%zu] is not a {\"type\": \"text\", \"text\": ...} part",
                        i, k);
            return NULL;
        }
        total += json_string_length(t);
    }
    char *out = malloc(total + 1), *w = out;
    if (!out) {
        srv_err_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "text");
        memcpy(w, json_string_value(t), json_string_length(t));
        w += json_string_length(t);
    }
    *w = 0;
    return out;
}

static int get_messages(srv_params *p, srv_err *e)
{
    static const char *const ROLES[] = {"system", "user", "assistant"};
    json_t *v = json_object_get(p->root, "messages");
    if (!v) return srv_err_set(e, 400, INVALID, "messages", NULL, "'messages' is required");
    if (!json_is_array(v)) return bad(e, "messages", "'%s' must be an array, not %s", type_name(v));
    size_t n = json_array_size(v);
    if (n == 0) return srv_err_set(e, 400, INVALID, "messages", NULL, "'messages' is empty");
    if (n > 4096) return srv_err_set(e, 400, INVALID, "messages", NULL, "'messages' has %zu entries; at most 4096", n);
    if (!(p->msgs = calloc(n, sizeof *p->msgs))) return srv_err_set(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m) {
        if (!json_is_object(m))
            return srv_err_set(e, 400, INVALID, "messages", NULL, "messages[%zu] must be an object, not %s", i, type_name(m));
        const char *role = json_string_value(json_object_get(m, "role"));
        int r = -1;
        for (int k = 0; role && k < 3; k++)
            if (!strcmp(role, ROLES[k])) r = k;
        if (r < 0)
            return srv_err_set(e, 400, INVALID, "messages", NULL, "messages[%zu].role must be system, user or assistant", i);
        json_t *c = json_object_get(m, "content");
        if (!c) return srv_err_set(e, 400, INVALID, "messages", NULL, "messages[%zu].content is required", i);
        char *text = content_text(c, (int)i, e);
        if (!text) return -1;
        p->msgs[i].role = ROLES[r];
        p->msgs[i].content = text;
        p->n_msgs = (int)i + 1;
    }
    return 0;
}

static int parse(srv_params *p, int limit, srv_err *e)
{
    json_t *r = p->root;
    json_t *v = json_object_get(r, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return bad(e, "model", "'%s' must be a string, not %s", type_name(v));
        p->model = json_string_value(v);
    }
    if (p->kind == SRV_COMPLETIONS) {
        v = json_object_get(r, "prompt");
        if (!v) return srv_err_set(e, 400, INVALID, "prompt", NULL, "'prompt' is required");
        if (json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0))) v = json_array_get(v, 0);
        if (!json_is_string(v))
            return bad(e, "prompt", "'%s' must be a string (or an array of one string), not %s", type_name(v));
        p->prompt = json_string_value(v);
        p->prompt_len = json_string_length(v);
    } else if (get_messages(p, e)) {
        return -1;
    }
    if (get_max_tokens(r, "max_tokens", limit, &p->max_tokens, e)) return -1;
    if (p->kind == SRV_CHAT && get_max_tokens(r, "max_completion_tokens", limit, &p->max_tokens, e)) return -1;
    if (get_number(r, "temperature", 0, 2, &p->temperature, e)) return -1;
    if (get_number(r, "top_p", 0, 1, &p->top_p, e)) return -1;
    if (!(p->top_p > 0)) return srv_err_set(e, 400, INVALID, "top_p", NULL, "'top_p' must be above 0");
    v = json_object_get(r, "top_k");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) return bad(e, "top_k", "'%s' must be an integer, not %s", type_name(v));
        json_int_t k = json_integer_value(v);
        if (k < -1 || k > (1 << 30)) return srv_err_set(e, 400, INVALID, "top_k", NULL, "'top_k' is %lld; -1 or 0 is off", (long long)k);
        p->top_k = k < 0 ? 0 : (int)k;
    }
    v = json_object_get(r, "seed");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) return bad(e, "seed", "'%s' must be an integer, not %s", type_name(v));
        p->has_seed = 1;
        p->seed = (uint64_t)json_integer_value(v);
    }
    v = json_object_get(r, "n");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
        return srv_err_set(e, 400, INVALID, "n", NULL, "'n' must be 1 (one choice per request)");
    if (get_stop(p, e) || get_bool(r, "stream", &p->stream, e)) return -1;
    v = json_object_get(r, "stream_options");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v)) return bad(e, "stream_options", "'%s' must be an object, not %s", type_name(v));
        if (!p->stream) return srv_err_set(e, 400, INVALID, "stream_options", NULL, "'stream_options' needs 'stream': true");
        if (get_bool(v, "include_usage", &p->include_usage, e)) return -1;
    }
    return 0;
}

int srv_params_parse(srv_params *p, srv_kind kind, const char *body, size_t len, int limit, srv_err *e)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->max_tokens = -1;
    p->temperature = 1.0f; /* OpenAI's defaults */
    p->top_p = 1.0f;
    json_error_t je;
    if (!(p->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)))
        return srv_err_set(e, 400, INVALID, NULL, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)",
                           je.text, je.line, je.column);
    if (!json_is_object(p->root))
        return srv_err_set(e, 400, INVALID, NULL, "invalid_json", "the body must be a JSON object, not %s",
                           type_name(p->root));
    return parse(p, limit, e);
}

void srv_params_free(srv_params *p)
{
    for (int i = 0; i < p->n_msgs; i++) free((char *)p->msgs[i].content);
    free(p->msgs);
    json_decref(p->root);
    memset(p, 0, sizeof *p);
}
