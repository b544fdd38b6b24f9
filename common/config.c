/* config.c: reads and writes the HF config.json of a LLaMA model (see config.h). */
#include "config.h"
#include "error.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the integer fields: far above any released LLaMA, low enough that every product the
 * backends form of them (H * d, V * D, L * ctx * Hk * d) stays well inside 64 bits. */
#define CFG_MAX_DIM (1 << 20)    /* hidden_size, intermediate_size */
#define CFG_MAX_COUNT (1 << 12)  /* layers, heads, kv heads, head_dim */
#define CFG_MAX_VOCAB (1 << 24)
#define CFG_MAX_POS (1 << 24)
#define CFG_MAX_TOKEN_ID 0x7fffffff

/* Reads integer key `key` into [min, max]; required keys missing are an error naming the file and key,
 * and so is a value outside the range (no silent wrap when casting to int). */
static int get_int(json_t *root, const char *path, const char *key, int required, int dflt, long long min,
                   long long max, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return duet_errorf("%s: missing required key '%s'", path, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return duet_errorf("%s: key '%s' must be an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        if (min == 1)
            return duet_errorf("%s: key '%s' = %lld is out of range: must be a positive integer <= %lld", path, key,
                               (long long)x, max);
        return duet_errorf("%s: key '%s' = %lld is out of range [%lld, %lld]", path, key, (long long)x, min, max);
    }
    *out = (int)x;
    return 0;
}

/* Reads number key `key`; it must be finite as a float (1e39 would become inf). */
static int get_float(json_t *root, const char *path, const char *key, int required, double dflt, float *out)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return duet_errorf("%s: missing required key '%s'", path, key);
        *out = (float)dflt;
        return 0;
    }
    if (!json_is_number(v)) return duet_errorf("%s: key '%s' must be a number", path, key);
    double x = json_number_value(v);
    if (!(fabs(x) <= FLT_MAX))
        return duet_errorf("%s: key '%s' = %g is out of the range of a float (|x| <= %g)", path, key, x, (double)FLT_MAX);
    *out = (float)x;
    return 0;
}

/* bos/eos may be an integer or a list of integers (LLaMA-3 style); the first is used, and every entry must
 * be a token id in [0, 2^31 - 1] (validate then checks it against the vocabulary). */
static int get_token_id(json_t *root, const char *path, const char *key, int *out)
{
    json_t *v = json_object_get(root, key);
    *out = -1;
    if (!v || json_is_null(v)) return 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0) return duet_errorf("%s: key '%s' is an empty list", path, key);
    for (size_t i = n; i-- > 0;) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(e)) return duet_errorf("%s: key '%s' must be an integer token id", path, key);
        json_int_t x = json_integer_value(e);
        if (x < 0 || x > CFG_MAX_TOKEN_ID)
            return duet_errorf("%s: key '%s' = %lld is not a token id (0 .. %d)", path, key, (long long)x,
                               CFG_MAX_TOKEN_ID);
        *out = (int)x;
    }
    return 0;
}

/* head_dim: given, or hidden_size / num_attention_heads, which must then divide evenly. */
static int read_head_dim(json_t *root, const char *path, duet_config *c)
{
    json_t *v = json_object_get(root, "head_dim");
    if ((!v || json_is_null(v)) && c->dim % c->n_heads)
        return duet_errorf("%s: hidden_size %d is not divisible by num_attention_heads %d (and no head_dim is given)",
                           path, c->dim, c->n_heads);
    return get_int(root, path, "head_dim", 0, c->dim / c->n_heads, 1, CFG_MAX_COUNT, &c->head_dim);
}

static int check_architecture(json_t *root, const char *path)
{
    json_t *arch = json_object_get(root, "architectures");
    json_t *type = json_object_get(root, "model_type");
    if (json_is_array(arch) && json_array_size(arch) > 0) {
        const char *a = json_string_value(json_array_get(arch, 0));
        if (!a || strcmp(a, "LlamaForCausalLM") != 0)
            return duet_errorf("%s: unsupported architecture '%s' (duet runs LlamaForCausalLM)", path,
                               a ? a : "(not a string)");
    } else if (json_is_string(type)) {
        if (strcmp(json_string_value(type), "llama") != 0)
            return duet_errorf("%s: unsupported model_type '%s' (duet runs llama)", path, json_string_value(type));
    } else {
        return duet_errorf("%s: missing 'architectures' and 'model_type'; cannot tell the architecture", path);
    }
    json_t *act = json_object_get(root, "hidden_act");
    if (act && json_is_string(act) && strcmp(json_string_value(act), "silu") != 0)
        return duet_errorf("%s: unsupported hidden_act '%s' (LLaMA uses silu)", path, json_string_value(act));
    const char *bias_keys[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        json_t *b = json_object_get(root, bias_keys[i]);
        if (b && json_is_true(b))
            return duet_errorf("%s: '%s': true is not supported (LLaMA has no biases)", path, bias_keys[i]);
    }
    return 0;
}

/* rope_theta lives at the top (transformers < 5) or in rope_parameters (transformers >= 5); any
 * rope type other than "default" (linear, dynamic, yarn, llama3, ...) is rejected by name. */
static int read_rope(json_t *root, const char *path, float *theta)
{
    json_t *params = json_object_get(root, "rope_parameters");
    json_t *scaling = json_object_get(root, "rope_scaling");
    json_t *src = root;
    if (params && json_is_object(params)) {
        src = params;
        if (json_object_get(params, "rope_type")) scaling = params;
    }
    if (scaling && !json_is_null(scaling)) {
        if (!json_is_object(scaling)) return duet_errorf("%s: 'rope_scaling' must be an object or null", path);
        json_t *t = json_object_get(scaling, "rope_type");
        if (!t) t = json_object_get(scaling, "type");
        const char *ts = json_string_value(t);
        if (!ts || strcmp(ts, "default") != 0)
            return duet_errorf("%s: unsupported rope scaling type '%s' (only default RoPE is implemented)", path,
                               ts ? ts : "(none)");
    }
    if (get_float(src, path, "rope_theta", 0, 10000.0, theta)) return -1;
    if (src != root && !json_object_get(params, "rope_theta") && get_float(root, path, "rope_theta", 0, 10000.0, theta))
        return -1;
    return 0;
}

int duet_config_same_layers(const duet_config *a, const duet_config *b)
{
    return a->n_layers == b->n_layers && a->dim == b->dim && a->ffn_dim == b->ffn_dim && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim;
}

int duet_config_validate(const duet_config *c, const char *path)
{
    if (c->dim <= 0 || c->ffn_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->vocab_size <= 0 || c->max_pos <= 0)
        return duet_errorf("%s: sizes must be positive (hidden_size %d, intermediate_size %d, layers %d, heads %d, "
                           "kv heads %d, head_dim %d, vocab %d, max positions %d)",
                           path, c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                           c->vocab_size, c->max_pos);
    if (c->n_heads % c->n_kv_heads)
        return duet_errorf("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                           c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) return duet_errorf("%s: head_dim %d must be even for RoPE", path, c->head_dim);
    if (!(c->norm_eps > 0)) return duet_errorf("%s: rms_norm_eps must be positive", path);
    if (!(c->rope_theta > 0)) return duet_errorf("%s: rope_theta must be positive", path);
    if (c->bos_id >= c->vocab_size || c->eos_id >= c->vocab_size)
        return duet_errorf("%s: bos/eos token id (%d/%d) outside the vocabulary (%d)", path, c->bos_id, c->eos_id,
                           c->vocab_size);
    return 0;
}

int duet_config_parse(duet_config *c, const char *text, const char *path)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) return duet_errorf("%s: line %d: invalid JSON: %s", path, jerr.line, jerr.text);
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) {
        duet_errorf("%s: top level must be a JSON object", path);
        goto out;
    }
    if (check_architecture(root, path)) goto out;
    if (get_int(root, path, "hidden_size", 1, 0, 1, CFG_MAX_DIM, &c->dim) ||
        get_int(root, path, "intermediate_size", 1, 0, 1, CFG_MAX_DIM, &c->ffn_dim) ||
        get_int(root, path, "num_hidden_layers", 1, 0, 1, CFG_MAX_COUNT, &c->n_layers) ||
        get_int(root, path, "num_attention_heads", 1, 0, 1, CFG_MAX_COUNT, &c->n_heads) ||
        get_int(root, path, "num_key_value_heads", 0, c->n_heads, 1, CFG_MAX_COUNT, &c->n_kv_heads) ||
        get_int(root, path, "vocab_size", 1, 0, 1, CFG_MAX_VOCAB, &c->vocab_size) ||
        get_int(root, path, "max_position_embeddings", 1, 0, 1, CFG_MAX_POS, &c->max_pos) ||
        get_float(root, path, "rms_norm_eps", 1, 0, &c->norm_eps) ||
        read_rope(root, path, &c->rope_theta) ||
        get_token_id(root, path, "bos_token_id", &c->bos_id) ||
        get_token_id(root, path, "eos_token_id", &c->eos_id) ||
        read_head_dim(root, path, c))
        goto out;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) {
        duet_errorf("%s: 'tie_word_embeddings' must be true or false", path);
        goto out;
    }
    c->tie_embeddings = tie ? json_is_true(tie) : 0;
    rc = duet_config_validate(c, path);
out:
    json_decref(root);
    return rc;
}

int duet_config_load(duet_config *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (jerr.line <= 0 || strstr(jerr.text, "unable to open"))
            return duet_errorf("%s: cannot read: %s", path, jerr.text);
        return duet_errorf("%s: line %d: invalid JSON: %s", path, jerr.line, jerr.text);
    }
    char *text = json_dumps(root, 0);
    json_decref(root);
    if (!text) return duet_errorf("%s: out of memory", path);
    int rc = duet_config_parse(c, text, path);
    free(text);
    return rc;
}

/* A float as the shortest decimal that reads back to it (1e-05, not 9.99999974737875e-06). */
static json_t *json_float(float x)
{
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return json_real(strtod(buf, NULL));
}

int duet_config_write(const duet_config *c, const char *path)
{
    json_t *root = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:b, s:s, s:b, s:b}",
                             "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", c->dim,
                             "intermediate_size", c->ffn_dim, "num_hidden_layers", c->n_layers,
                             "num_attention_heads", c->n_heads, "num_key_value_heads", c->n_kv_heads,
                             "head_dim", c->head_dim, "vocab_size", c->vocab_size, "max_position_embeddings",
                             c->max_pos, "rms_norm_eps", json_float(c->norm_eps), "rope_theta", json_float(c->rope_theta),
                             "tie_word_embeddings", c->tie_embeddings, "hidden_act", "silu",
                             "attention_bias", 0, "mlp_bias", 0);
    if (!root) return duet_errorf("%s: cannot build config JSON", path);
    json_object_set_new(root, "torch_dtype", json_string("float32"));
    json_object_set_new(root, "bos_token_id", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    json_object_set_new(root, "eos_token_id", c->eos_id >= 0 ? json_integer(c->eos_id) : json_null());
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (rc) return duet_errorf("%s: cannot write", path);
    return 0;
}
