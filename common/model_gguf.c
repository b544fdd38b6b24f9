/* model_gguf.c: opens a LLaMA model from a llama.cpp GGUF file (see model.h): the `llama.*` metadata
 * becomes the config, the tensors keep their stored type (F32, Q8_0, Q4_1, ...; dtype.h), and the q/k
 * projections get their rows un-permuted.
 *
 * Why the permutation: llama.cpp's converter stores q_proj/k_proj with the rows of each head
 * interleaved for its interleaved ("GPT-J style") RoPE: per head of d rows, GGUF row 2i+j holds HF row
 * j*d/2 + i (i < d/2, j in {0,1}). duet's RoPE is HF's rotate-half, so the rows go back:
 *     hf[h*d + j*d/2 + i] = gguf[h*d + 2*i + j].
 * A row moves whole (all its blocks), so quantized rows permute without being dequantized. */
#include "model.h"
#include "error.h"
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an integer key into *out within [lo, hi]; absent: error when required, else *out = dflt. */
static int meta_int(const gguf_file *f, const char *key, int required, int64_t dflt, int64_t lo, int64_t hi,
                    int *out)
{
    int64_t v;
    int rc = gguf_get_int(f, key, &v);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (required) return duet_errorf("%s: missing required metadata '%s'", gguf_path(f), key);
        v = dflt;
    }
    if (v < lo || v > hi)
        return duet_errorf("%s: metadata '%s' = %lld is out of range [%lld, %lld]", gguf_path(f), key, (long long)v,
                           (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

static int meta_float(const gguf_file *f, const char *key, int required, double dflt, double lo, double hi, float *out)
{
    double v;
    int rc = gguf_get_float(f, key, &v);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (required) return duet_errorf("%s: missing required metadata '%s'", gguf_path(f), key);
        v = dflt;
    }
    if (!(v >= lo && v <= hi))
        return duet_errorf("%s: metadata '%s' = %g is out of range [%g, %g]", gguf_path(f), key, v, lo, hi);
    *out = (float)v;
    return 0;
}

static int str_is(gguf_str s, const char *lit) { return s.len == strlen(lit) && !memcmp(s.s, lit, s.len); }

/* Refuses what duet does not run, by name: other architectures, rope scaling, MoE. */
static int check_supported(const gguf_file *f)
{
    const char *path = gguf_path(f);
    gguf_str arch;
    int rc = gguf_get_str(f, "general.architecture", &arch);
    if (rc < 0) return -1;
    if (rc == 1) return duet_errorf("%s: missing required metadata 'general.architecture'", path);
    if (!str_is(arch, "llama"))
        return duet_errorf("%s: unsupported architecture '%.*s' (duet runs llama)", path, (int)(arch.len > 64 ? 64 : arch.len),
                           arch.s);
    gguf_str scaling;
    rc = gguf_get_str(f, "llama.rope.scaling.type", &scaling);
    if (rc < 0) return -1;
    if (rc == 0 && !str_is(scaling, "none"))
        return duet_errorf("%s: unsupported rope scaling type '%.*s' (llama.rope.scaling.type)", path,
                           (int)(scaling.len > 64 ? 64 : scaling.len), scaling.s);
    int64_t experts = 0;
    if (gguf_get_int(f, "llama.expert_count", &experts) < 0) return -1;
    if (experts > 0) return duet_errorf("%s: llama.expert_count = %lld: mixture-of-experts models are not supported", path,
                                        (long long)experts);
    return 0;
}

int duet_config_from_gguf(duet_config *c, const gguf_file *f)
{
    const char *path = gguf_path(f);
    memset(c, 0, sizeof *c);
    if (check_supported(f)) return -1;
    const int64_t BIG = 1 << 30;
    if (meta_int(f, "llama.embedding_length", 1, 0, 1, BIG, &c->dim) ||
        meta_int(f, "llama.feed_forward_length", 1, 0, 1, BIG, &c->ffn_dim) ||
        meta_int(f, "llama.block_count", 1, 0, 1, 100000, &c->n_layers) ||
        meta_int(f, "llama.attention.head_count", 1, 0, 1, 1 << 20, &c->n_heads) ||
        meta_int(f, "llama.attention.head_count_kv", 0, c->n_heads, 1, 1 << 20, &c->n_kv_heads) ||
        meta_int(f, "llama.context_length", 1, 0, 1, BIG, &c->max_pos) ||
        meta_float(f, "llama.attention.layer_norm_rms_epsilon", 1, 0, 1e-30, 1, &c->norm_eps) ||
        meta_float(f, "llama.rope.freq_base", 0, 10000.0, 1e-3, 1e30, &c->rope_theta))
        return -1;
    if (c->dim % c->n_heads)
        return duet_errorf("%s: llama.embedding_length %d is not divisible by llama.attention.head_count %d", path,
                           c->dim, c->n_heads);
    if (meta_int(f, "llama.attention.key_length", 0, c->dim / c->n_heads, 1, 1 << 16, &c->head_dim)) return -1;
    int vlen = c->head_dim, rope_dim = c->head_dim;
    if (meta_int(f, "llama.attention.value_length", 0, c->head_dim, 1, 1 << 16, &vlen) ||
        meta_int(f, "llama.rope.dimension_count", 0, c->head_dim, 1, 1 << 16, &rope_dim))
        return -1;
    if (vlen != c->head_dim)
        return duet_errorf("%s: llama.attention.value_length %d differs from key_length %d (not supported)", path, vlen,
                           c->head_dim);
    if (rope_dim != c->head_dim)
        return duet_errorf("%s: llama.rope.dimension_count %d differs from the head dim %d (partial RoPE is not "
                           "supported)", path, rope_dim, c->head_dim);
    /* vocab: llama.vocab_size, else the token list's length, else token_embd's rows */
    int64_t nv = 0;
    const gguf_str *toks;
    uint64_t ntok = 0;
    int rc = gguf_get_int(f, "llama.vocab_size", &nv);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (gguf_get_str_arr(f, "tokenizer.ggml.tokens", &toks, &ntok) < 0) return -1;
        nv = (int64_t)ntok;
        const st_tensor *e = gguf_find_tensor(f, "token_embd.weight");
        if (!nv && e && e->ndim == 2) nv = e->shape[0];
    }
    if (nv <= 0 || nv > BIG)
        return duet_errorf("%s: vocabulary size %lld is missing or out of range (llama.vocab_size)", path, (long long)nv);
    c->vocab_size = (int)nv;
    c->tie_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    if (meta_int(f, "tokenizer.ggml.bos_token_id", 0, -1, -1, nv - 1, &c->bos_id) ||
        meta_int(f, "tokenizer.ggml.eos_token_id", 0, -1, -1, nv - 1, &c->eos_id))
        return -1;
    return duet_config_validate(c, path);
}

/* The tensor `name`, shape-checked ({d0} or {d0, d1}, row-major) and of a float storage type. */
static const st_tensor *need(const gguf_file *f, const char *name, int ndim, int64_t d0, int64_t d1)
{
    const st_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        duet_errorf("%s: missing tensor '%s'", gguf_path(f), name);
        return NULL;
    }
    int64_t shape[2] = {d0, d1};
    if (st_check_shape(t, ndim, shape)) return NULL;
    const st_dtype_traits *tr = st_dtype_info(t->dtype);
    if (!tr || !tr->to_f32) {
        duet_errorf("%s: tensor '%s': type %s is not a weight type", gguf_path(f), name, st_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

/* A copy of q/k projection t (rows = heads * d) with each head's rows un-permuted (see the top of this
 * file), written into *slot, whose data goes to `buf`. */
static const st_tensor *unpermute(const st_tensor *t, int heads, int d, st_tensor *slot, char *buf)
{
    size_t row = t->nbytes / (size_t)t->shape[0];
    const char *src = t->data;
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < d / 2; i++)
                memcpy(buf + ((size_t)h * d + (size_t)j * (d / 2) + i) * row, src + ((size_t)h * d + 2 * (size_t)i + j) * row,
                       row);
    *slot = *t;
    slot->data = buf;
    return slot;
}

/* Every tensor of the file must be one the model uses: a file with more layers than block_count, or a
 * tensor duet would silently ignore (rope_freqs for scaled RoPE, biases), is refused by name. */
static int check_all_used(const gguf_file *f, const duet_config *c)
{
    static const char *top[] = {"token_embd.weight", "output_norm.weight", "output.weight"};
    static const char *per_layer[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                      "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    for (int i = 0; i < gguf_n_tensors(f); i++) {
        const char *name = gguf_tensor_at(f, i)->name;
        int used = 0;
        for (size_t k = 0; k < sizeof top / sizeof *top && !used; k++) used = !strcmp(name, top[k]);
        int l, n = 0;
        char part[32];
        if (!used && sscanf(name, "blk.%d.%31[a-z_].weight%n", &l, part, &n) == 2 && name[n] == 0 && l >= 0 &&
            l < c->n_layers)
            for (size_t k = 0; k < sizeof per_layer / sizeof *per_layer && !used; k++) used = !strcmp(part, per_layer[k]);
        if (!used)
            return duet_errorf("%s: tensor '%s' is not part of the model (llama.block_count %d; duet reads token_embd, "
                               "output_norm, output and blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,"
                               "ffn_gate,ffn_up,ffn_down})", gguf_path(f), name, c->n_layers);
    }
    return 0;
}

int duet_model_open_gguf(duet_model *m, const char *path)
{
    if (!(m->gguf = gguf_open(path))) return -1;
    const gguf_file *f = m->gguf;
    duet_config *c = &m->cfg;
    if (duet_config_from_gguf(c, f) || check_all_used(f, c)) return -1;
    int64_t D = c->dim, F = c->ffn_dim, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    if (!(m->embed = need(f, "token_embd.weight", 2, c->vocab_size, D))) return -1;
    if (!(m->final_norm = need(f, "output_norm.weight", 1, D, 0))) return -1;
    if (c->tie_embeddings) m->lm_head = m->embed;
    else if (!(m->lm_head = need(f, "output.weight", 2, c->vocab_size, D))) return -1;
    if (!(m->layers = calloc(c->n_layers, sizeof *m->layers))) return duet_errorf("out of memory");
    /* q and k of every layer, un-permuted into one buffer owned by the model */
    size_t qk_bytes = 0;
    for (int l = 0; l < c->n_layers; l++) {
        duet_layer_weights *w = &m->layers[l];
        char n[64];
#define NEED(field, part, nd, a, b)                                  \
    snprintf(n, sizeof n, "blk.%d.%s.weight", l, part);              \
    if (!(w->field = need(f, n, nd, a, b))) return -1;
        NEED(attn_norm, "attn_norm", 1, D, 0);
        NEED(wq, "attn_q", 2, q, D);
        NEED(wk, "attn_k", 2, kv, D);
        NEED(wv, "attn_v", 2, kv, D);
        NEED(wo, "attn_output", 2, D, q);
        NEED(ffn_norm, "ffn_norm", 1, D, 0);
        NEED(w_gate, "ffn_gate", 2, F, D);
        NEED(w_up, "ffn_up", 2, F, D);
        NEED(w_down, "ffn_down", 2, D, F);
#undef NEED
        qk_bytes += w->wq->nbytes + w->wk->nbytes;
    }
    m->owned = calloc((size_t)2 * c->n_layers, sizeof *m->owned);
    m->owned_data = malloc(qk_bytes ? qk_bytes : 1);
    if (!m->owned || !m->owned_data) return duet_errorf("out of memory for %zu bytes of q/k weights", qk_bytes);
    char *buf = m->owned_data;
    for (int l = 0; l < c->n_layers; l++) {
        duet_layer_weights *w = &m->layers[l];
        const st_tensor *wq = w->wq, *wk = w->wk;
        w->wq = unpermute(wq, c->n_heads, c->head_dim, &m->owned[2 * l], buf);
        buf += wq->nbytes;
        w->wk = unpermute(wk, c->n_kv_heads, c->head_dim, &m->owned[2 * l + 1], buf);
        buf += wk->nbytes;
    }
    return 0;
}
