/* synth.c: seeded synthetic LLaMA checkpoints (see synth.h). Each tensor draws from its own PRNG
 * stream, keyed by (seed, FNV-1a hash of its HF name), so a tensor's values do not depend on which
 * other tensors exist (layer 0 of a 2-layer and a 4-layer model agree). Values are streamed to the
 * file in chunks, so a LLaMA-7B-shaped model needs no more memory than one chunk.
 * Init keeps activations O(1) through the layers: embeddings N(0,1); matrices N(0, 1/in) (std
 * 1/sqrt(in), so a projection of a unit-RMS vector has unit-RMS outputs), except lm_head at 4x that
 * (logits RMS ~4, so the softmax has a clear top-1 as trained models do); norm weights 1 + 0.1 N(0,1).
 * Outliers (SmoothQuant's setting): K channels of every layer's input_layernorm and
 * post_attention_layernorm weights times S, so the inputs of q/k/v/gate/up carry K channels ~S times
 * the others at every layer (scaling the embedding instead would fade as the residual stream grows). */
#include "synth.h"
#include "error.h"
#include "rng.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* No fused multiply-add: a*b+c must round twice on every machine (GCC's -std=c11 already implies it). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define SYNTH_VERSION "1" /* bump when the generated values change; goldens record it */

void duet_synth_defaults(duet_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cfg.dim = 64;
    o->cfg.ffn_dim = 172;
    o->cfg.n_layers = 2;
    o->cfg.n_heads = 8;
    o->cfg.n_kv_heads = 4;
    o->cfg.head_dim = 8;
    o->cfg.vocab_size = 512;
    o->cfg.max_pos = 512;
    o->cfg.norm_eps = 1e-5f;
    o->cfg.rope_theta = 10000.0f;
    o->cfg.tie_embeddings = 0;
    o->cfg.bos_id = 1;
    o->cfg.eos_id = 2;
    o->seed = 1;
    o->n_outliers = 0;
    o->outlier_scale = 1.0f;
    o->dtype = ST_F32;
}

float duet_synth_normal(uint64_t stream, uint64_t i)
{
    uint64_t r = duet_rng_u64(stream, i);
    int32_t s = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) + (int32_t)((r >> 32) & 0xffff) +
                (int32_t)(r >> 48);
    /* Sum of four U{0..65535}: mean 131070, variance 4 (65536^2 - 1) / 12 ~ 65536^2 / 3. The centred
     * integer is exact in a float; one multiply by a constant rounds the same everywhere. */
    return (float)(s - 131070) * (1.7320508f / 65536.0f);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

void duet_synth_outlier_channels(uint64_t seed, int dim, int k, int *out)
{
    int *perm = malloc((size_t)dim * sizeof *perm);
    if (!perm) return;
    for (int i = 0; i < dim; i++) perm[i] = i;
    uint64_t stream = duet_rng_u64(seed, fnv1a("duet.outlier_channels"));
    for (int i = 0; i < k && i < dim; i++) { /* partial Fisher-Yates on integers */
        int j = i + (int)(duet_rng_u64(stream, (uint64_t)i) % (uint64_t)(dim - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
    free(perm);
    qsort(out, (size_t)k, sizeof *out, cmp_int);
}

/* ---- the tensor list ----------------------------------------------------------------------------- */

typedef enum { INIT_NORMAL, INIT_NORM_WEIGHT } init_kind;

typedef struct synth_tensor {
    char name[96];
    int ndim;
    int64_t shape[2];
    init_kind kind;
    float scale;     /* std of the normal part */
    int outliers;    /* norm weight: scale the outlier channels by S */
} synth_tensor;

static int add_tensor(synth_tensor *t, int *n, const char *name, int ndim, int64_t d0, int64_t d1, init_kind kind,
                      int outliers)
{
    synth_tensor *s = &t[(*n)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = ndim;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->kind = kind;
    s->outliers = outliers;
    /* std 1/sqrt(in) for matrices (in = d1); 1 for the embedding; 0.1 noise on norm weights. */
    if (kind == INIT_NORM_WEIGHT) s->scale = 0.1f;
    else if (!strcmp(name, "model.embed_tokens.weight")) s->scale = 1.0f;
    else if (!strcmp(name, "lm_head.weight")) s->scale = 4.0f / sqrtf((float)d1); /* logits RMS ~4: peaked softmax */
    else s->scale = 1.0f / sqrtf((float)d1);
    return 0;
}

static int list_tensors(const duet_config *c, synth_tensor **out)
{
    int cap = 3 + 9 * c->n_layers, n = 0;
    synth_tensor *t = calloc((size_t)cap, sizeof *t);
    if (!t) return duet_errorf("out of memory");
    int64_t D = c->dim, F = c->ffn_dim, Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    char name[96];
    add_tensor(t, &n, "model.embed_tokens.weight", 2, c->vocab_size, D, INIT_NORMAL, 0);
    for (int l = 0; l < c->n_layers; l++) {
#define ADD(suffix, nd, a, b, kind, outl)                                 \
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, suffix); \
    add_tensor(t, &n, name, nd, a, b, kind, outl);
        ADD("input_layernorm", 1, D, 0, INIT_NORM_WEIGHT, 1);
        ADD("self_attn.q_proj", 2, Q, D, INIT_NORMAL, 0);
        ADD("self_attn.k_proj", 2, KV, D, INIT_NORMAL, 0);
        ADD("self_attn.v_proj", 2, KV, D, INIT_NORMAL, 0);
        ADD("self_attn.o_proj", 2, D, Q, INIT_NORMAL, 0);
        ADD("post_attention_layernorm", 1, D, 0, INIT_NORM_WEIGHT, 1);
        ADD("mlp.gate_proj", 2, F, D, INIT_NORMAL, 0);
        ADD("mlp.up_proj", 2, F, D, INIT_NORMAL, 0);
        ADD("mlp.down_proj", 2, D, F, INIT_NORMAL, 0);
#undef ADD
    }
    add_tensor(t, &n, "model.norm.weight", 1, D, 0, INIT_NORM_WEIGHT, 0);
    if (!c->tie_embeddings) add_tensor(t, &n, "lm_head.weight", 2, c->vocab_size, D, INIT_NORMAL, 0);
    *out = t;
    return n;
}

static int64_t numel(const synth_tensor *t) { return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1]; }

/* ---- writing ------------------------------------------------------------------------------------- */

static int check_opts(const duet_synth_opts *o)
{
    if (duet_config_validate(&o->cfg, "duet synth")) return -1;
    if (o->dtype != ST_F32 && o->dtype != ST_F16 && o->dtype != ST_BF16)
        return duet_errorf("duet synth: dtype %s: only f32, f16 and bf16 are supported", st_dtype_name(o->dtype));
    if (o->n_outliers < 0 || o->n_outliers > o->cfg.dim)
        return duet_errorf("duet synth: outliers %d: must be between 0 and dim %d", o->n_outliers, o->cfg.dim);
    if (!(o->outlier_scale > 0) || o->outlier_scale > 1e4f)
        return duet_errorf("duet synth: outlier scale %g: must be in (0, 1e4]", (double)o->outlier_scale);
    return 0;
}

static const char *dtype_word(st_dtype t) { return t == ST_F16 ? "f16" : t == ST_BF16 ? "bf16" : "f32"; }

/* The shortest %g that reads back to x (1e-05, not 9.99999975e-06). */
static const char *short_float(float x, char *buf, size_t n)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return buf;
}

int duet_synth_spec_format(const duet_synth_opts *o, char *buf, size_t n)
{
    const duet_config *c = &o->cfg;
    char th[32], ep[32], os[32];
    int k = snprintf(buf, n,
                     "v=" SYNTH_VERSION " seed=%llu dim=%d ffn=%d layers=%d heads=%d kv_heads=%d head_dim=%d vocab=%d "
                     "max_pos=%d theta=%s eps=%s tied=%d outliers=%d outlier_scale=%s dtype=%s",
                     (unsigned long long)o->seed, c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                     c->head_dim, c->vocab_size, c->max_pos, short_float(c->rope_theta, th, sizeof th),
                     short_float(c->norm_eps, ep, sizeof ep), c->tie_embeddings, o->n_outliers,
                     short_float(o->outlier_scale, os, sizeof os), dtype_word(o->dtype));
    return k < 0 || (size_t)k >= n ? duet_errorf("synth spec: buffer too small") : 0;
}

int duet_synth_spec_parse(duet_synth_opts *o, const char *spec)
{
    duet_synth_defaults(o);
    char *copy = strdup(spec), *save = NULL;
    if (!copy) return duet_errorf("out of memory");
    int rc = 0;
    for (char *tok = strtok_r(copy, " \t\n", &save); tok && !rc; tok = strtok_r(NULL, " \t\n", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            rc = duet_errorf("synth spec '%s': '%s' is not key=value", spec, tok);
            break;
        }
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        char *end;
        errno = 0;
        long long iv = strtoll(v, &end, 10);
        int is_int = *v && !*end && !errno;
        (void)strtod(v, &end);
        int is_num = *v && !*end;
        struct { const char *key; int *dst; } ints[] = {
            {"dim", &o->cfg.dim}, {"ffn", &o->cfg.ffn_dim}, {"layers", &o->cfg.n_layers},
            {"heads", &o->cfg.n_heads}, {"kv_heads", &o->cfg.n_kv_heads}, {"head_dim", &o->cfg.head_dim},
            {"vocab", &o->cfg.vocab_size}, {"max_pos", &o->cfg.max_pos}, {"tied", &o->cfg.tie_embeddings},
            {"outliers", &o->n_outliers},
        };
        int done = 0;
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
            if (!strcmp(k, ints[i].key)) {
                if (!is_int || iv < 0 || iv > 1000000000) rc = duet_errorf("synth spec: %s=%s: not a count", k, v);
                else *ints[i].dst = (int)iv;
                done = 1;
            }
        if (done) continue;
        if (!strcmp(k, "v")) {
            if (strcmp(v, SYNTH_VERSION))
                rc = duet_errorf("synth spec: generator version %s, this duet writes version %s; regenerate with "
                                 "`make golden`", v, SYNTH_VERSION);
        } else if (!strcmp(k, "seed")) {
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || errno) rc = duet_errorf("synth spec: seed=%s: not an unsigned integer", v);
            o->seed = s;
        } else if (!strcmp(k, "theta") || !strcmp(k, "eps") || !strcmp(k, "outlier_scale")) {
            if (!is_num) rc = duet_errorf("synth spec: %s=%s: not a number", k, v);
            float f = strtof(v, NULL);
            if (!strcmp(k, "theta")) o->cfg.rope_theta = f;
            else if (!strcmp(k, "eps")) o->cfg.norm_eps = f;
            else o->outlier_scale = f;
        } else if (!strcmp(k, "dtype")) {
            if (!strcmp(v, "f32")) o->dtype = ST_F32;
            else if (!strcmp(v, "f16")) o->dtype = ST_F16;
            else if (!strcmp(v, "bf16")) o->dtype = ST_BF16;
            else rc = duet_errorf("synth spec: dtype=%s: expected f32, f16 or bf16", v);
        } else {
            rc = duet_errorf("synth spec: unknown key '%s'", k);
        }
    }
    free(copy);
    return rc;
}

/* Value j of tensor t (stream s): the init above; outlier channels of layer norm weights times S. */
static float value_at(const duet_synth_opts *o, const synth_tensor *t, uint64_t s, int64_t j, const char *is_outlier)
{
    float n = duet_synth_normal(s, (uint64_t)j);
    if (t->kind == INIT_NORMAL) return n * t->scale;
    float w = 1.0f + n * t->scale;
    if (t->outliers && is_outlier && is_outlier[j]) w = w * o->outlier_scale;
    return w;
}

#define CHUNK 65536

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) return duet_errorf("%s: cannot create folder: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return duet_errorf("%s: cannot create folder: %s", p, strerror(errno));
    return 0;
}

int duet_synth_write(const duet_synth_opts *o, const char *dir)
{
    if (check_opts(o)) return -1;
    if (make_dirs(dir)) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (duet_config_write(&o->cfg, path)) return -1;

    synth_tensor *t = NULL;
    int n = list_tensors(&o->cfg, &t);
    if (n < 0) return -1;
    char *is_outlier = calloc((size_t)o->cfg.dim, 1);
    int *ch = calloc((size_t)o->n_outliers + 1, sizeof *ch);
    float *buf = malloc(CHUNK * sizeof *buf);
    uint16_t *half = malloc(CHUNK * sizeof *half);
    char spec[512], chans[4096] = "";
    json_t *hdr = json_object(), *meta = json_object();
    FILE *fp = NULL;
    int rc = -1;
    if (!is_outlier || !ch || !buf || !half || !hdr || !meta) {
        duet_errorf("out of memory");
        goto out;
    }
    duet_synth_outlier_channels(o->seed, o->cfg.dim, o->n_outliers, ch);
    for (int i = 0, k = 0; i < o->n_outliers; i++) {
        is_outlier[ch[i]] = 1;
        k += snprintf(chans + k, sizeof chans - (size_t)k, i ? ",%d" : "%d", ch[i]);
        if (k >= (int)sizeof chans - 16) break;
    }
    duet_synth_spec_format(o, spec, sizeof spec);
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(meta, "duet_synth", json_string(spec));
    if (o->n_outliers) json_object_set_new(meta, "duet_synth_outlier_channels", json_string(chans));
    json_object_set_new(hdr, "__metadata__", meta);
    size_t esize = st_dtype_size(o->dtype), off = 0;
    for (int i = 0; i < n; i++) {
        size_t nb = (size_t)numel(&t[i]) * esize;
        json_t *shape = t[i].ndim == 1 ? json_pack("[I]", (json_int_t)t[i].shape[0])
                                       : json_pack("[I, I]", (json_int_t)t[i].shape[0], (json_int_t)t[i].shape[1]);
        json_object_set_new(hdr, t[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(o->dtype), "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        duet_errorf("cannot serialise the safetensors header");
        goto out;
    }
    size_t hlen = strlen(text), padded = (hlen + 7) & ~(size_t)7;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fp = fopen(path, "wb");
    if (!fp) {
        free(text);
        duet_errorf("%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(text, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    free(text);
    for (int i = 0; ok && i < n; i++) {
        uint64_t stream = duet_rng_u64(o->seed, fnv1a(t[i].name));
        int64_t total = numel(&t[i]);
        for (int64_t j0 = 0; ok && j0 < total; j0 += CHUNK) {
            int64_t m = total - j0 < CHUNK ? total - j0 : CHUNK;
            for (int64_t j = 0; j < m; j++) {
                int64_t idx = j0 + j; /* 1-D norm weights: the index is the channel */
                buf[j] = value_at(o, &t[i], stream, idx, t[i].ndim == 1 ? is_outlier : NULL);
            }
            if (o->dtype == ST_F32) {
                ok = fwrite(buf, 4, (size_t)m, fp) == (size_t)m; /* little-endian host (configure checks) */
            } else {
                for (int64_t j = 0; j < m; j++)
                    half[j] = o->dtype == ST_F16 ? duet_f32_to_f16(buf[j]) : duet_f32_to_bf16(buf[j]);
                ok = fwrite(half, 2, (size_t)m, fp) == (size_t)m;
            }
        }
    }
    if (fclose(fp) != 0 || !ok) {
        fp = NULL;
        duet_errorf("%s: write failed: %s", path, strerror(errno));
        goto out;
    }
    fp = NULL;
    rc = 0;
out:
    if (fp) fclose(fp);
    json_decref(hdr);
    free(t);
    free(is_outlier);
    free(ch);
    free(buf);
    free(half);
    return rc;
}
