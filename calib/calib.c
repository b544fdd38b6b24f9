/* calib.c: the calibration statistics (calib.h): allocation, the tap sink, the JSON file. */
#include "calib.h"

#include "error.h"
#include "file.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALIB_FORMAT "duet-calibration"
#define CALIB_VERSION 1

/* The arrays of a layer, in file order: name, length (by shapes), the tap they come from, per head. */
enum { A_QKV, A_O, A_GU, A_DOWN, A_K, A_V, N_ARRAYS };
static const char *const ARRAY_NAME[N_ARRAYS] = {"qkv_in", "o_in", "gate_up_in", "down_in", "k", "v"};
static const char *const ARRAY_TAP[N_ARRAYS] = {"attn_norm", "attn", "ffn_norm", "act", "k_rope", "v"};

static int array_len(const duet_config *c, int a)
{
    switch (a) {
    case A_QKV:
    case A_GU: return c->dim;
    case A_O: return c->n_heads * c->head_dim;
    case A_DOWN: return c->ffn_dim;
    default: return c->n_kv_heads;
    }
}

static float **array_of(duet_calib_layer *l, int a)
{
    float **p[N_ARRAYS] = {&l->qkv_in, &l->o_in, &l->gate_up_in, &l->down_in, &l->k, &l->v};
    return p[a];
}

duet_calib *duet_calib_new(const duet_config *cfg, uint64_t fingerprint)
{
    duet_calib *c = calloc(1, sizeof *c);
    if (!c || cfg->n_layers <= 0 || !(c->layers = calloc((size_t)cfg->n_layers, sizeof *c->layers))) {
        free(c);
        duet_errorf("calibration: out of memory (or no layers)");
        return NULL;
    }
    c->cfg = *cfg;
    c->fingerprint = fingerprint;
    for (int l = 0; l < cfg->n_layers; l++)
        for (int a = 0; a < N_ARRAYS; a++)
            if (!(*array_of(&c->layers[l], a) = calloc((size_t)array_len(cfg, a), sizeof(float)))) {
                duet_calib_free(c);
                duet_errorf("calibration: out of memory");
                return NULL;
            }
    return c;
}

void duet_calib_free(duet_calib *c)
{
    if (!c) return;
    for (int l = 0; c->layers && l < c->cfg.n_layers; l++)
        for (int a = 0; a < N_ARRAYS; a++) free(*array_of(&c->layers[l], a));
    free(c->layers);
    free(c);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t duet_calib_fingerprint(const duet_model *m)
{
    const duet_config *c = &m->cfg;
    const int shapes[7] = {c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size};
    uint64_t h = fnv(14695981039346656037ull, shapes, sizeof shapes);
    float *w = malloc(sizeof(float) * (size_t)c->dim);
    if (w && m->final_norm && st_to_f32(m->final_norm, w) == 0) h = fnv(h, w, sizeof(float) * (size_t)c->dim);
    free(w);
    return h;
}

void duet_calib_tap(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    duet_calib *c = ctx;
    int l = -1, off = 0;
    if (sscanf(name, "layers.%d.%n", &l, &off) != 1 || off <= 0 || l < 0 || l >= c->cfg.n_layers) return;
    const char *what = name + off;
    for (int a = 0; a < N_ARRAYS; a++) {
        if (strcmp(what, ARRAY_TAP[a])) continue;
        float *mx = *array_of(&c->layers[l], a);
        const int per_head = a == A_K || a == A_V, d = c->cfg.head_dim, n = array_len(&c->cfg, a);
        if (cols != (per_head ? (int64_t)n * d : n)) return; /* not this model's tap */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++) {
                const float x = fabsf(data[r * cols + j]);
                float *slot = &mx[per_head ? j / d : j];
                if (x > *slot) *slot = x;
            }
        return;
    }
}

void duet_calib_kv_scales(const duet_calib *c, duet_kv_mode m, float *out)
{
    const int Hk = c->cfg.n_kv_heads;
    for (int l = 0; l < c->cfg.n_layers; l++)
        for (int h = 0; h < Hk; h++) {
            out[(2 * l) * Hk + h] = duet_kv_scale(m, c->layers[l].k[h]);
            out[(2 * l + 1) * Hk + h] = duet_kv_scale(m, c->layers[l].v[h]);
        }
}

/* ---- the file ----------------------------------------------------------------------------------- */

static const char *const SHAPE_KEY[7] = {"dim", "ffn_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                         "vocab_size"};

static void shapes_of(const duet_config *c, int v[7])
{
    v[0] = c->dim, v[1] = c->ffn_dim, v[2] = c->n_layers, v[3] = c->n_heads, v[4] = c->n_kv_heads;
    v[5] = c->head_dim, v[6] = c->vocab_size;
}

int duet_calib_write(const duet_calib *c, const char *path)
{
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)c->fingerprint);
    /* every value goes into root as it is made (json_object_set_new takes it, also on failure) */
    json_t *root = json_object(), *model = NULL, *layers = NULL;
    int ok = root && !json_object_set_new(root, "format", json_string(CALIB_FORMAT)) &&
             !json_object_set_new(root, "version", json_integer(CALIB_VERSION)) && (model = json_object()) &&
             !json_object_set_new(root, "model", model);
    int sh[7];
    shapes_of(&c->cfg, sh);
    for (int i = 0; ok && i < 7; i++) ok = !json_object_set_new(model, SHAPE_KEY[i], json_integer(sh[i]));
    ok = ok && !json_object_set_new(model, "fingerprint", json_string(fp)) &&
         !json_object_set_new(root, "samples", json_integer(c->samples)) &&
         !json_object_set_new(root, "tokens", json_integer(c->tokens)) &&
         !json_object_set_new(root, "source", json_string(c->source)) && (layers = json_array()) &&
         !json_object_set_new(root, "layers", layers);
    for (int l = 0; ok && l < c->cfg.n_layers; l++) {
        json_t *lo = json_object();
        ok = lo && !json_array_append_new(layers, lo);
        for (int a = 0; ok && a < N_ARRAYS; a++) {
            json_t *arr = json_array();
            const float *v = *array_of(&c->layers[l], a);
            ok = arr && !json_object_set_new(lo, ARRAY_NAME[a], arr);
            for (int j = 0; ok && j < array_len(&c->cfg, a); j++) ok = !json_array_append_new(arr, json_real(v[j]));
        }
    }
    int rc = 0;
    if (!ok) rc = duet_errorf("%s: cannot build the calibration JSON (out of memory)", path);
    else if (json_dump_file(root, path, JSON_INDENT(1) | JSON_REAL_PRECISION(9)))
        rc = duet_errorf("%s: cannot write the calibration file", path);
    json_decref(root);
    return rc;
}

static json_t *need(json_t *o, const char *key, json_type type, const char *what, const char *field)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        duet_errorf("%s: field '%s%s': missing", what, field, key);
        return NULL;
    }
    if (json_typeof(v) != type && !(type == JSON_REAL && json_is_integer(v))) {
        duet_errorf("%s: field '%s%s': wrong type", what, field, key);
        return NULL;
    }
    return v;
}

duet_calib *duet_calib_parse(const char *buf, size_t len, const char *what, const duet_config *cfg,
                             uint64_t fingerprint)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je), *v;
    duet_calib *c = NULL;
    if (!root || !json_is_object(root)) {
        if (root) duet_errorf("%s: not a JSON object", what);
        else duet_errorf("%s: line %d: malformed JSON: %s", what, je.line, je.text);
        goto fail;
    }
    if (!(v = need(root, "format", JSON_STRING, what, ""))) goto fail;
    if (strcmp(json_string_value(v), CALIB_FORMAT)) {
        duet_errorf("%s: field 'format': '%.64s' is not %s", what, json_string_value(v), CALIB_FORMAT);
        goto fail;
    }
    if (!(v = need(root, "version", JSON_INTEGER, what, ""))) goto fail;
    if (json_integer_value(v) != CALIB_VERSION) {
        duet_errorf("%s: field 'version': %lld (this duet reads version %d)", what, (long long)json_integer_value(v),
                    CALIB_VERSION);
        goto fail;
    }
    json_t *model = need(root, "model", JSON_OBJECT, what, "");
    if (!model) goto fail;
    int sh[7];
    shapes_of(cfg, sh);
    for (int i = 0; i < 7; i++) {
        if (!(v = need(model, SHAPE_KEY[i], JSON_INTEGER, what, "model."))) goto fail;
        if (json_integer_value(v) != sh[i]) {
            duet_errorf("%s: field 'model.%s': %lld, but the model has %d: a calibration file for another model",
                        what, SHAPE_KEY[i], (long long)json_integer_value(v), sh[i]);
            goto fail;
        }
    }
    if (!(v = need(model, "fingerprint", JSON_STRING, what, "model."))) goto fail;
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint);
    if (strcmp(json_string_value(v), fp)) {
        duet_errorf("%s: field 'model.fingerprint': %.32s, but the model's is %s (same shapes, other weights): a "
                    "calibration file for another model",
                    what, json_string_value(v), fp);
        goto fail;
    }
    if (!(c = duet_calib_new(cfg, fingerprint))) goto fail;
    if (!(v = need(root, "samples", JSON_INTEGER, what, ""))) goto fail;
    c->samples = json_integer_value(v);
    if (!(v = need(root, "tokens", JSON_INTEGER, what, ""))) goto fail;
    c->tokens = json_integer_value(v);
    if (c->samples < 1 || c->tokens < c->samples) {
        duet_errorf("%s: fields 'samples' %lld / 'tokens' %lld: no calibration data (at least one prompt of one "
                    "token)",
                    what, (long long)c->samples, (long long)c->tokens);
        goto fail;
    }
    if ((v = json_object_get(root, "source")) && json_is_string(v))
        snprintf(c->source, sizeof c->source, "%s", json_string_value(v));
    json_t *layers = need(root, "layers", JSON_ARRAY, what, "");
    if (!layers) goto fail;
    if ((int64_t)json_array_size(layers) != cfg->n_layers) {
        duet_errorf("%s: field 'layers': %zu layers, the model has %d", what, json_array_size(layers), cfg->n_layers);
        goto fail;
    }
    for (int l = 0; l < cfg->n_layers; l++) {
        json_t *lo = json_array_get(layers, (size_t)l);
        char field[64];
        snprintf(field, sizeof field, "layers[%d].", l);
        if (!json_is_object(lo)) {
            duet_errorf("%s: field 'layers[%d]': not an object", what, l);
            goto fail;
        }
        for (int a = 0; a < N_ARRAYS; a++) {
            json_t *arr = need(lo, ARRAY_NAME[a], JSON_ARRAY, what, field);
            if (!arr) goto fail;
            const int n = array_len(cfg, a);
            if ((int)json_array_size(arr) != n) {
                duet_errorf("%s: field '%s%s': %zu values, the model needs %d", what, field, ARRAY_NAME[a],
                            json_array_size(arr), n);
                goto fail;
            }
            float *dst = *array_of(&c->layers[l], a);
            for (int j = 0; j < n; j++) {
                json_t *x = json_array_get(arr, (size_t)j);
                const double d = json_is_number(x) ? json_number_value(x) : -1.0;
                if (!json_is_number(x) || !isfinite(d) || d < 0.0 || d > 3.4e38) {
                    duet_errorf("%s: field '%s%s[%d]': not a finite number >= 0", what, field, ARRAY_NAME[a], j);
                    goto fail;
                }
                dst[j] = (float)d;
            }
        }
    }
    json_decref(root);
    return c;
fail:
    duet_calib_free(c);
    json_decref(root);
    return NULL;
}

duet_calib *duet_calib_read(const char *path, const duet_model *m)
{
    size_t len = 0;
    char *buf = duet_read_file(path, &len);
    if (!buf) return NULL;
    duet_calib *c = duet_calib_parse(buf, len, path, &m->cfg, duet_calib_fingerprint(m));
    free(buf);
    return c;
}
