/* test_openai.c: the OpenAI request and response bodies of duet serve (serve/openai_request.h,
 * serve/openai_response.h), no server: every field srv_params_parse reads, in each accepted form and
 * with each type and range error (a 400 naming the field, in a message that names it too, that
 * srv_json_error turns into an error body), the defaults, ignored fields; and the reply, chunk, usage,
 * model and error bodies parsed back with jansson against OpenAI's shapes. */
#include "test_util.h"

#include "serve/openai_request.h"
#include "serve/openai_response.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT 256 /* the max_tokens limit the server would pass (--max-ctx) */

static srv_params P;
static srv_err E;

/* Parses body as `kind`; 0 or -1 (P and E filled; free P with srv_params_free). */
static int parse_as(srv_kind kind, const char *body)
{
    memset(&E, 0, sizeof E);
    return srv_params_parse(&P, kind, body, strlen(body), LIMIT, &E);
}

/* e's error body: {"error": {message, type, param, code}} with e's values; returns the parsed body. */
static json_t *error_body(const srv_err *e)
{
    char *s = srv_json_error(e);
    ck_assert_msg(s != NULL, "srv_json_error failed on \"%s\"", e->message);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_msg(j != NULL, "the error body is not JSON (%s): %s", je.text, s);
    free(s);
    json_t *err = json_object_get(j, "error");
    ck_assert(json_is_object(err));
    ck_assert_str_eq(json_string_value(json_object_get(err, "message")), e->message);
    ck_assert_str_eq(json_string_value(json_object_get(err, "type")), e->type);
    json_t *param = json_object_get(err, "param"), *code = json_object_get(err, "code");
    ck_assert(param != NULL && code != NULL);
    if (e->param) ck_assert_str_eq(json_string_value(param), e->param);
    else ck_assert(json_is_null(param));
    if (e->code) ck_assert_str_eq(json_string_value(code), e->code);
    else ck_assert(json_is_null(code));
    return j;
}

/* body is refused for `kind` with a 400 whose param is `param` (NULL: none), whose message names the
 * field and holds `what`, and whose error body is well formed. */
static void refused(srv_kind kind, const char *body, const char *param, const char *what)
{
    int rc = parse_as(kind, body);
    srv_params_free(&P);
    ck_assert_msg(rc == -1, "accepted: %s", body);
    ck_assert_msg(E.status == 400, "%s: status %d", body, E.status);
    ck_assert_str_eq(E.type, "invalid_request_error");
    if (param) {
        ck_assert_msg(E.param && !strcmp(E.param, param), "%s: param %s, not %s", body, E.param ? E.param : "NULL", param);
        ck_assert_msg(strstr(E.message, param), "%s: the message does not name %s: %s", body, param, E.message);
    } else {
        ck_assert_msg(E.param == NULL, "%s: param %s", body, E.param);
    }
    ck_assert_msg(strstr(E.message, what), "%s: the message does not say \"%s\": %s", body, what, E.message);
    json_decref(error_body(&E));
}

static void accepted(srv_kind kind, const char *body)
{
    int rc = parse_as(kind, body);
    ck_assert_msg(rc == 0, "%s refused: %s", body, E.message);
}

#define C SRV_COMPLETIONS
#define CHAT SRV_CHAT

/* ---- the body ---------------------------------------------------------------------------------- */

START_TEST(test_body_not_json_or_not_object)
{
    refused(C, "", NULL, "not valid JSON");
    refused(C, "{\"prompt\": \"Hi\", ", NULL, "not valid JSON");
    refused(C, "[\"Hi\"]", NULL, "must be a JSON object, not an array");
    refused(CHAT, "\"Hi\"", NULL, "not valid JSON"); /* jansson takes only an object or array */
    refused(C, "{\"prompt\": \"a\", \"prompt\": \"b\"}", NULL, "duplicate"); /* JSON_REJECT_DUPLICATES */
    refused(C, "{\"prompt\": \"a\\u0000b\"}", NULL, "not valid JSON");   /* NUL: C strings downstream */
    refused(C, "{\"prompt\": \"\xff\"}", NULL, "not valid JSON");        /* not UTF-8 */
    ck_assert_str_eq(E.code, "invalid_json");
}
END_TEST

/* fuzz_openai_request's find: jansson's message quotes the body up to a bad escape, here the first
 * byte of a 2-byte character; the message was not UTF-8, srv_json_error failed, and the client got the
 * 500 "out of memory" body instead of this 400. */
START_TEST(test_error_quoting_half_a_character_is_utf8)
{
    refused(C, "{\"prompt\": \"x\", \"stop\": \"\\u0\xce\x9a\"}", NULL, "invalid escape");
    srv_err e;
    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big + 508, "\xc3\xa9\xc3\xa9", 4); /* 511 bytes kept: the cut falls inside the second é */
    big[sizeof big - 1] = 0;
    ck_assert_int_eq(srv_err_set(&e, 400, "invalid_request_error", "stop", NULL, "%s \xff\xc3(", big), -1);
    ck_assert_uint_eq(strlen(e.message), sizeof e.message - 1);
    ck_assert(!memcmp(e.message + 508, "\xc3\xa9?", 3)); /* the whole é kept, the cut half replaced */
    ck_assert_int_eq(srv_err_set(&e, 400, "invalid_request_error", NULL, NULL, "x \xff\xc3( \xed\xa0\x80 \xe2\x82\xac"), -1);
    ck_assert_str_eq(e.message, "x ?" "?( ?" "?? \xe2\x82\xac"); /* a surrogate is not UTF-8 either */
    json_decref(error_body(&e));
}
END_TEST

START_TEST(test_unknown_fields_ignored)
{
    accepted(C, "{\"prompt\": \"x\", \"user\": \"u\", \"presence_penalty\": 1, \"frequency_penalty\": 0.5, "
                "\"logit_bias\": {\"1\": 2}, \"echo\": false, \"best_of\": 1, \"frobnicate\": [1, {}]}");
    ck_assert_str_eq(P.prompt, "x");
    srv_params_free(&P);
    /* each endpoint ignores the other's input field (and chat-only max_completion_tokens on completions) */
    accepted(C, "{\"prompt\": \"x\", \"messages\": 5, \"max_completion_tokens\": 0}");
    ck_assert_int_eq(P.max_tokens, -1);
    srv_params_free(&P);
    accepted(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"prompt\": 5}");
    ck_assert_ptr_null(P.prompt);
    srv_params_free(&P);
}
END_TEST

/* ---- completions: prompt, and the defaults ----------------------------------------------------- */

START_TEST(test_completion_defaults)
{
    accepted(C, "{\"prompt\": \"Hi there\"}");
    ck_assert_int_eq(P.kind, SRV_COMPLETIONS);
    ck_assert_str_eq(P.prompt, "Hi there");
    ck_assert_uint_eq(P.prompt_len, 8);
    ck_assert_ptr_null(P.model);
    ck_assert_ptr_null(P.msgs);
    ck_assert_int_eq(P.max_tokens, -1);
    ck_assert(P.temperature == 1.0f && P.top_p == 1.0f); /* OpenAI's defaults */
    ck_assert_int_eq(P.top_k, 0);
    ck_assert_int_eq(P.has_seed, 0);
    ck_assert_int_eq(P.n_stop, 0);
    ck_assert_int_eq(P.stream, 0);
    ck_assert_int_eq(P.include_usage, 0);
    srv_params_free(&P);
    /* null is "not given" for every optional field */
    accepted(C, "{\"prompt\": \"x\", \"model\": null, \"max_tokens\": null, \"temperature\": null, \"top_p\": null, "
                "\"top_k\": null, \"seed\": null, \"n\": null, \"stop\": null, \"stream\": null, \"stream_options\": null}");
    ck_assert(P.model == NULL && P.max_tokens == -1 && P.temperature == 1.0f && P.top_p == 1.0f && P.top_k == 0);
    ck_assert(!P.has_seed && P.n_stop == 0 && !P.stream && !P.include_usage);
    srv_params_free(&P);
}
END_TEST

START_TEST(test_completion_every_field)
{
    accepted(C, "{\"model\": \"SmolLM2\", \"prompt\": [\"caf\\u00e9 \\ud83d\\ude00\"], \"max_tokens\": 256, "
                "\"temperature\": 0, \"top_p\": 0.5, \"top_k\": 40, \"seed\": 42, \"n\": 1, "
                "\"stop\": [\"\\n\", \"The\"], \"stream\": true, \"stream_options\": {\"include_usage\": true}}");
    ck_assert_str_eq(P.model, "SmolLM2");
    ck_assert_str_eq(P.prompt, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    ck_assert_uint_eq(P.prompt_len, 10);
    ck_assert_int_eq(P.max_tokens, LIMIT);
    ck_assert(P.temperature == 0.0f && P.top_p == 0.5f);
    ck_assert_int_eq(P.top_k, 40);
    ck_assert(P.has_seed && P.seed == 42);
    ck_assert_int_eq(P.n_stop, 2);
    ck_assert_str_eq(P.stop[0], "\n");
    ck_assert_str_eq(P.stop[1], "The");
    ck_assert(P.stream && P.include_usage);
    srv_params_free(&P);
}
END_TEST

START_TEST(test_prompt_forms_and_errors)
{
    accepted(C, "{\"prompt\": \"\"}"); /* empty: the server sends BOS alone, or refuses it as it will */
    ck_assert_uint_eq(P.prompt_len, 0);
    srv_params_free(&P);
    refused(C, "{}", "prompt", "'prompt' is required");
    refused(C, "{\"prompt\": null}", "prompt", "not null");
    refused(C, "{\"prompt\": 42}", "prompt", "not an integer");
    refused(C, "{\"prompt\": [\"a\", \"b\"]}", "prompt", "an array of one string");
    refused(C, "{\"prompt\": []}", "prompt", "not an array");
    refused(C, "{\"prompt\": [1, 2, 3]}", "prompt", "not an array"); /* token ids: not taken */
    refused(C, "{\"prompt\": {\"text\": \"a\"}}", "prompt", "not an object");
}
END_TEST

/* ---- chat: messages ---------------------------------------------------------------------------- */

START_TEST(test_messages_roles_and_content)
{
    accepted(CHAT, "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
                   "[{\"type\": \"text\", \"text\": \"Hel\"}, {\"type\": \"text\", \"text\": \"lo\"}]}, "
                   "{\"role\": \"assistant\", \"content\": \"\", \"name\": \"bot\"}]}");
    ck_assert_int_eq(P.kind, SRV_CHAT);
    ck_assert_ptr_null(P.prompt);
    ck_assert_int_eq(P.n_msgs, 3);
    ck_assert_str_eq(P.msgs[0].role, "system");
    ck_assert_str_eq(P.msgs[0].content, "Be brief.");
    ck_assert_str_eq(P.msgs[1].role, "user");
    ck_assert_str_eq(P.msgs[1].content, "Hello"); /* the text parts joined */
    ck_assert_str_eq(P.msgs[2].role, "assistant");
    ck_assert_str_eq(P.msgs[2].content, "");
    srv_params_free(&P);
    accepted(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": []}]}");
    ck_assert_str_eq(P.msgs[0].content, "");
    srv_params_free(&P);
}
END_TEST

START_TEST(test_messages_errors)
{
    refused(CHAT, "{}", "messages", "'messages' is required");
    refused(CHAT, "{\"messages\": \"Hi\"}", "messages", "must be an array, not a string");
    refused(CHAT, "{\"messages\": null}", "messages", "not null");
    refused(CHAT, "{\"messages\": []}", "messages", "empty");
    refused(CHAT, "{\"messages\": [\"Hi\"]}", "messages", "messages[0] must be an object");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"content\": \"b\"}]}", "messages",
            "messages[1].role must be system, user or assistant");
    refused(CHAT, "{\"messages\": [{\"role\": \"wizard\", \"content\": \"b\"}]}", "messages", "messages[0].role");
    refused(CHAT, "{\"messages\": [{\"role\": \"tool\", \"content\": \"b\"}]}", "messages", "messages[0].role");
    refused(CHAT, "{\"messages\": [{\"role\": 1, \"content\": \"b\"}]}", "messages", "messages[0].role");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\"}]}", "messages", "messages[0].content is required");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": null}]}", "messages", "messages[0].content must be");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 7}]}", "messages", "not an integer");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, "
                  "{\"type\": \"image_url\", \"image_url\": {}}]}]}", "messages", "messages[0].content[1] is not");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 5}]}]}", "messages",
            "messages[0].content[0]");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [\"a\"]}]}", "messages", "messages[0].content[0]");
    /* at most 4096 messages */
    size_t cap = 4097 * 40 + 64, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n, "{\"messages\": [");
    for (int i = 0; i < 4097; i++) n += (size_t)snprintf(b + n, cap - n, "%s{\"role\":\"user\",\"content\":\"x\"}", i ? "," : "");
    snprintf(b + n, cap - n, "]}");
    refused(CHAT, b, "messages", "4097 entries; at most 4096");
    free(b);
}
END_TEST

/* ---- the sampling and length fields -------------------------------------------------------------- */

START_TEST(test_max_tokens)
{
    accepted(C, "{\"prompt\": \"x\", \"max_tokens\": 1}");
    ck_assert_int_eq(P.max_tokens, 1);
    srv_params_free(&P);
    refused(C, "{\"prompt\": \"x\", \"max_tokens\": 0}", "max_tokens", "is 0; it must be in [1, 256]");
    refused(C, "{\"prompt\": \"x\", \"max_tokens\": -1}", "max_tokens", "[1, 256]");
    refused(C, "{\"prompt\": \"x\", \"max_tokens\": 257}", "max_tokens", "is 257");
    refused(C, "{\"prompt\": \"x\", \"max_tokens\": 9223372036854775807}", "max_tokens", "[1, 256]");
    refused(C, "{\"prompt\": \"x\", \"max_tokens\": 8.0}", "max_tokens", "must be an integer, not a number");
    refused(C, "{\"prompt\": \"x\", \"max_tokens\": \"8\"}", "max_tokens", "not a string");
    /* chat: max_completion_tokens too, and it wins */
    accepted(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 9, \"max_completion_tokens\": 3}");
    ck_assert_int_eq(P.max_tokens, 3);
    srv_params_free(&P);
    accepted(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 9}");
    ck_assert_int_eq(P.max_tokens, 9);
    srv_params_free(&P);
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": 0}",
            "max_completion_tokens", "[1, 256]");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": true}",
            "max_completion_tokens", "not a boolean");
}
END_TEST

START_TEST(test_temperature_top_p_top_k)
{
    accepted(C, "{\"prompt\": \"x\", \"temperature\": 2, \"top_p\": 1, \"top_k\": -1}");
    ck_assert(P.temperature == 2.0f && P.top_p == 1.0f);
    ck_assert_int_eq(P.top_k, 0); /* -1 is off, as 0 */
    srv_params_free(&P);
    accepted(C, "{\"prompt\": \"x\", \"temperature\": 0.0, \"top_p\": 1e-9, \"top_k\": 1073741824}");
    ck_assert(P.temperature == 0.0f && P.top_p > 0.0f);
    ck_assert_int_eq(P.top_k, 1 << 30);
    srv_params_free(&P);
    refused(C, "{\"prompt\": \"x\", \"temperature\": -0.1}", "temperature", "outside [0, 2]");
    refused(C, "{\"prompt\": \"x\", \"temperature\": 2.01}", "temperature", "is 2.01");
    refused(C, "{\"prompt\": \"x\", \"temperature\": \"hot\"}", "temperature", "must be a number, not a string");
    refused(C, "{\"prompt\": \"x\", \"temperature\": false}", "temperature", "not a boolean");
    refused(C, "{\"prompt\": \"x\", \"top_p\": 0}", "top_p", "above 0");
    refused(C, "{\"prompt\": \"x\", \"top_p\": 1.5}", "top_p", "outside [0, 1]");
    refused(C, "{\"prompt\": \"x\", \"top_p\": [0.5]}", "top_p", "not an array");
    refused(C, "{\"prompt\": \"x\", \"top_k\": -2}", "top_k", "is -2; -1 or 0 is off");
    refused(C, "{\"prompt\": \"x\", \"top_k\": 1073741825}", "top_k", "is 1073741825");
    refused(C, "{\"prompt\": \"x\", \"top_k\": 4.5}", "top_k", "must be an integer, not a number");
}
END_TEST

START_TEST(test_seed_and_n)
{
    accepted(C, "{\"prompt\": \"x\", \"seed\": 0}");
    ck_assert(P.has_seed && P.seed == 0);
    srv_params_free(&P);
    accepted(C, "{\"prompt\": \"x\", \"seed\": -1, \"n\": 1}"); /* any int64, as its bits */
    ck_assert(P.has_seed && P.seed == UINT64_MAX);
    srv_params_free(&P);
    refused(C, "{\"prompt\": \"x\", \"seed\": \"7\"}", "seed", "must be an integer, not a string");
    refused(C, "{\"prompt\": \"x\", \"seed\": 1.5}", "seed", "not a number");
    refused(C, "{\"prompt\": \"x\", \"n\": 2}", "n", "'n' must be 1");
    refused(C, "{\"prompt\": \"x\", \"n\": 0}", "n", "'n' must be 1");
    refused(C, "{\"prompt\": \"x\", \"n\": \"1\"}", "n", "'n' must be 1");
}
END_TEST

START_TEST(test_stop)
{
    accepted(C, "{\"prompt\": \"x\", \"stop\": \"\\n\\n\"}");
    ck_assert_int_eq(P.n_stop, 1);
    ck_assert_str_eq(P.stop[0], "\n\n");
    srv_params_free(&P);
    accepted(C, "{\"prompt\": \"x\", \"stop\": [\"a\", \"\\u00e9t\\u00e9\", \"c\", \"d\"]}");
    ck_assert_int_eq(P.n_stop, SRV_MAX_STOP);
    ck_assert_str_eq(P.stop[1], "\xc3\xa9t\xc3\xa9");
    ck_assert_str_eq(P.stop[3], "d");
    srv_params_free(&P);
    accepted(C, "{\"prompt\": \"x\", \"stop\": []}");
    ck_assert_int_eq(P.n_stop, 0);
    srv_params_free(&P);
    refused(C, "{\"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop", "5 strings; at most 4");
    refused(C, "{\"prompt\": \"x\", \"stop\": \"\"}", "stop", "'stop' must not be empty");
    refused(C, "{\"prompt\": \"x\", \"stop\": [\"a\", \"\"]}", "stop", "'stop[1]' must not be empty");
    refused(C, "{\"prompt\": \"x\", \"stop\": [\"a\", 3]}", "stop", "'stop[1]' must be a string, not an integer");
    refused(C, "{\"prompt\": \"x\", \"stop\": 3}", "stop", "a string or an array of strings, not an integer");
    refused(C, "{\"prompt\": \"x\", \"stop\": {\"a\": 1}}", "stop", "not an object");
    /* each string 1 to SRV_MAX_STOP_LEN bytes */
    char body[SRV_MAX_STOP_LEN + 64], s[SRV_MAX_STOP_LEN + 2];
    memset(s, 'z', sizeof s);
    s[SRV_MAX_STOP_LEN] = 0;
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": [\"%s\"]}", s);
    accepted(C, body);
    ck_assert_uint_eq(strlen(P.stop[0]), SRV_MAX_STOP_LEN);
    srv_params_free(&P);
    s[SRV_MAX_STOP_LEN] = 'z';
    s[SRV_MAX_STOP_LEN + 1] = 0;
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": \"%s\"}", s);
    refused(C, body, "stop", "'stop' is 1025 bytes; at most 1024");
}
END_TEST

START_TEST(test_stream_and_options)
{
    accepted(C, "{\"prompt\": \"x\", \"stream\": true}");
    ck_assert(P.stream && !P.include_usage);
    srv_params_free(&P);
    accepted(C, "{\"prompt\": \"x\", \"stream\": false}");
    ck_assert(!P.stream);
    srv_params_free(&P);
    accepted(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true, "
                   "\"stream_options\": {\"include_usage\": true}}");
    ck_assert(P.stream && P.include_usage);
    srv_params_free(&P);
    accepted(C, "{\"prompt\": \"x\", \"stream\": true, \"stream_options\": {}}");
    ck_assert(P.stream && !P.include_usage);
    srv_params_free(&P);
    refused(C, "{\"prompt\": \"x\", \"stream\": \"yes\"}", "stream", "must be a boolean, not a string");
    refused(C, "{\"prompt\": \"x\", \"stream\": 1}", "stream", "not an integer");
    refused(C, "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", "stream_options", "needs 'stream': true");
    refused(C, "{\"prompt\": \"x\", \"stream\": false, \"stream_options\": {}}", "stream_options", "needs 'stream': true");
    refused(C, "{\"prompt\": \"x\", \"stream\": true, \"stream_options\": true}", "stream_options", "must be an object");
    refused(C, "{\"prompt\": \"x\", \"stream\": true, \"stream_options\": {\"include_usage\": 1}}", "include_usage",
            "must be a boolean");
}
END_TEST

START_TEST(test_model)
{
    refused(C, "{\"prompt\": \"x\", \"model\": 5}", "model", "must be a string, not an integer");
    refused(CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"model\": [\"a\"]}", "model", "not an array");
}
END_TEST

/* ---- the response bodies ----------------------------------------------------------------------- */

static json_t *load(char *s)
{
    ck_assert_msg(s != NULL, "the body was not made");
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, s);
    free(s);
    return j;
}

/* id, object, created, model as r gave them; the one choice (index 0, logprobs null) returned. */
static json_t *head_and_choice(json_t *j, const srv_reply_id *r, const char *object, const char *finish)
{
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), r->id);
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), object);
    ck_assert(json_is_integer(json_object_get(j, "created")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "created")), r->created);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), r->model);
    json_t *ch = json_object_get(j, "choices");
    ck_assert(json_is_array(ch) && json_array_size(ch) == 1);
    json_t *c = json_array_get(ch, 0);
    ck_assert(json_is_integer(json_object_get(c, "index")) && json_integer_value(json_object_get(c, "index")) == 0);
    ck_assert(json_is_null(json_object_get(c, "logprobs")));
    json_t *f = json_object_get(c, "finish_reason");
    ck_assert(f != NULL);
    if (finish) ck_assert_str_eq(json_string_value(f), finish);
    else ck_assert(json_is_null(f));
    return c;
}

static void check_usage(json_t *j, int n_prompt, int n_generated)
{
    json_t *u = json_object_get(j, "usage");
    ck_assert(json_is_object(u));
    ck_assert_int_eq(json_integer_value(json_object_get(u, "prompt_tokens")), n_prompt);
    ck_assert_int_eq(json_integer_value(json_object_get(u, "completion_tokens")), n_generated);
    ck_assert_int_eq(json_integer_value(json_object_get(u, "total_tokens")), n_prompt + n_generated);
}

static const char TEXT[] = "Paris, \"the\" caf\xc3\xa9\n\t\xf0\x9f\x98\x80 and more"; /* quotes, escapes, UTF-8 */

START_TEST(test_completion_reply)
{
    srv_reply_id r = {.kind = SRV_COMPLETIONS, .id = "cmpl-65f0a1b2000001", .created = 1710000000LL, .model = "SmolLM2"};
    size_t len = strlen(TEXT) - 9; /* not NUL-terminated there: len counts */
    json_t *j = load(srv_json_reply(&r, TEXT, len, "length", 5, 8));
    json_t *c = head_and_choice(j, &r, "text_completion", "length");
    ck_assert(json_is_string(json_object_get(c, "text")));
    ck_assert_uint_eq(json_string_length(json_object_get(c, "text")), len);
    ck_assert(!memcmp(json_string_value(json_object_get(c, "text")), TEXT, len));
    ck_assert_ptr_null(json_object_get(c, "message"));
    check_usage(j, 5, 8);
    json_decref(j);
    j = load(srv_json_reply(&r, NULL, 0, "stop", 3, 0)); /* stopped before any text */
    c = head_and_choice(j, &r, "text_completion", "stop");
    ck_assert_str_eq(json_string_value(json_object_get(c, "text")), "");
    check_usage(j, 3, 0);
    json_decref(j);
}
END_TEST

START_TEST(test_chat_reply)
{
    srv_reply_id r = {.kind = SRV_CHAT, .id = "chatcmpl-65f0a1b2000002", .created = 1710000001LL, .model = "SmolLM2"};
    json_t *j = load(srv_json_reply(&r, TEXT, strlen(TEXT), "stop", 20, 7));
    json_t *c = head_and_choice(j, &r, "chat.completion", "stop");
    json_t *m = json_object_get(c, "message");
    ck_assert(json_is_object(m));
    ck_assert_str_eq(json_string_value(json_object_get(m, "role")), "assistant");
    ck_assert_str_eq(json_string_value(json_object_get(m, "content")), TEXT);
    ck_assert_ptr_null(json_object_get(c, "text"));
    check_usage(j, 20, 7);
    json_decref(j);
}
END_TEST

START_TEST(test_completion_chunks)
{
    srv_reply_id r = {.kind = SRV_COMPLETIONS, .id = "cmpl-1", .created = 7, .model = "m"};
    json_t *j = load(srv_json_chunk(&r, TEXT, 5, 0, NULL));
    json_t *c = head_and_choice(j, &r, "text_completion", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(c, "text")), "Paris");
    ck_assert_ptr_null(json_object_get(j, "usage"));
    json_decref(j);
    j = load(srv_json_chunk(&r, NULL, 0, 0, "length")); /* the last: no text, the finish */
    c = head_and_choice(j, &r, "text_completion", "length");
    ck_assert_str_eq(json_string_value(json_object_get(c, "text")), "");
    json_decref(j);
}
END_TEST

START_TEST(test_chat_chunks)
{
    srv_reply_id r = {.kind = SRV_CHAT, .id = "chatcmpl-1", .created = 7, .model = "m"};
    /* the first: the role and empty content */
    json_t *j = load(srv_json_chunk(&r, NULL, 0, 1, NULL));
    json_t *d = json_object_get(head_and_choice(j, &r, "chat.completion.chunk", NULL), "delta");
    ck_assert(json_is_object(d) && json_object_size(d) == 2);
    ck_assert_str_eq(json_string_value(json_object_get(d, "role")), "assistant");
    ck_assert_str_eq(json_string_value(json_object_get(d, "content")), "");
    json_decref(j);
    /* text: content only */
    j = load(srv_json_chunk(&r, TEXT, strlen(TEXT), 0, NULL));
    d = json_object_get(head_and_choice(j, &r, "chat.completion.chunk", NULL), "delta");
    ck_assert(json_is_object(d) && json_object_size(d) == 1);
    ck_assert_str_eq(json_string_value(json_object_get(d, "content")), TEXT);
    json_decref(j);
    /* the last: an empty delta and the finish */
    j = load(srv_json_chunk(&r, NULL, 0, 0, "stop"));
    d = json_object_get(head_and_choice(j, &r, "chat.completion.chunk", "stop"), "delta");
    ck_assert(json_is_object(d) && json_object_size(d) == 0);
    json_decref(j);
}
END_TEST

START_TEST(test_usage_chunk)
{
    for (int k = 0; k < 2; k++) {
        srv_reply_id r = {.kind = k ? SRV_CHAT : SRV_COMPLETIONS, .id = "x-1", .created = 9, .model = "m"};
        json_t *j = load(srv_json_usage_chunk(&r, 11, 4));
        ck_assert_str_eq(json_string_value(json_object_get(j, "object")), k ? "chat.completion.chunk" : "text_completion");
        ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "x-1");
        json_t *ch = json_object_get(j, "choices");
        ck_assert(json_is_array(ch) && json_array_size(ch) == 0);
        check_usage(j, 11, 4);
        json_decref(j);
    }
}
END_TEST

START_TEST(test_text_not_utf8_is_null)
{
    srv_reply_id r = {.kind = SRV_CHAT, .id = "x-1", .created = 9, .model = "m"};
    ck_assert_ptr_null(srv_json_reply(&r, "a\xff", 2, "stop", 1, 1));
    ck_assert_ptr_null(srv_json_chunk(&r, "\xc3", 1, 0, NULL)); /* half a character */
    r.kind = SRV_COMPLETIONS;
    ck_assert_ptr_null(srv_json_reply(&r, "a\xff", 2, "stop", 1, 1));
}
END_TEST

START_TEST(test_error_and_model_bodies)
{
    srv_err e;
    srv_err_set(&e, 404, "invalid_request_error", "model", "model_not_found", "the model '%s' does not exist", "gpt-4");
    ck_assert_int_eq(e.status, 404);
    json_t *j = error_body(&e);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                     "the model 'gpt-4' does not exist");
    json_decref(j);
    srv_err_set(&e, 500, "server_error", NULL, NULL, "out of memory");
    json_decref(error_body(&e)); /* param and code null */

    j = load(srv_json_models("SmolLM2", 1700000000LL));
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
    json_t *data = json_object_get(j, "data");
    ck_assert(json_is_array(data) && json_array_size(data) == 1);
    json_t *m = json_array_get(data, 0);
    ck_assert_str_eq(json_string_value(json_object_get(m, "id")), "SmolLM2");
    ck_assert_str_eq(json_string_value(json_object_get(m, "object")), "model");
    ck_assert_int_eq(json_integer_value(json_object_get(m, "created")), 1700000000LL);
    ck_assert_str_eq(json_string_value(json_object_get(m, "owned_by")), "duet");
    json_decref(j);
    j = load(srv_json_model("SmolLM2", 5));
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "SmolLM2");
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "model");
    json_decref(j);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("openai");
    TCase *req = tcase_create("request");
    tcase_add_test(req, test_body_not_json_or_not_object);
    tcase_add_test(req, test_error_quoting_half_a_character_is_utf8);
    tcase_add_test(req, test_unknown_fields_ignored);
    tcase_add_test(req, test_completion_defaults);
    tcase_add_test(req, test_completion_every_field);
    tcase_add_test(req, test_prompt_forms_and_errors);
    tcase_add_test(req, test_messages_roles_and_content);
    tcase_add_test(req, test_messages_errors);
    tcase_add_test(req, test_max_tokens);
    tcase_add_test(req, test_temperature_top_p_top_k);
    tcase_add_test(req, test_seed_and_n);
    tcase_add_test(req, test_stop);
    tcase_add_test(req, test_stream_and_options);
    tcase_add_test(req, test_model);
    suite_add_tcase(s, req);
    TCase *resp = tcase_create("response");
    tcase_add_test(resp, test_completion_reply);
    tcase_add_test(resp, test_chat_reply);
    tcase_add_test(resp, test_completion_chunks);
    tcase_add_test(resp, test_chat_chunks);
    tcase_add_test(resp, test_usage_chunk);
    tcase_add_test(resp, test_text_not_utf8_is_null);
    tcase_add_test(resp, test_error_and_model_bodies);
    suite_add_tcase(s, resp);
    return s;
}

int main(void) { return test_run_suite(suite()); }
