/* forward.c: the fp32 LLaMA forward pass of the CPU reference, one packed batch at a time.
 * It reads like the HF LlamaForCausalLM forward; every named intermediate goes to the tap sink.
 * Legend: T tokens in the batch, D hidden, F ffn, H heads, Hk kv heads, d head_dim, V vocab, L layers,
 * S = max_seqs KV slots, C = max_ctx positions per slot. */
#include "ref_backend.h"

#include "build_config.h"

#include "error.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef DUET_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct ref_layer {
    float *attn_norm, *wq, *wk, *wv, *wo; /* (D) (H*d,D) (Hk*d,D) (Hk*d,D) (D,H*d) */
    float *ffn_norm, *w_gate, *w_up, *w_down; /* (D) (F,D) (F,D) (D,F) */
} ref_layer;

typedef struct ref_state {
    duet_config c;
    duet_backend_opts o;
    float *weights;   /* one allocation holding every fp32 weight below */
    float *embed, *final_norm, *lm_head; /* (V,D) (D) (V,D) */
    ref_layer *layers; /* [L] */
    float *kcache, *vcache; /* (L, S, C, Hk*d) each */
    /* activations for the batch being run, grown on demand to cap_T tokens */
    int cap_T;
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up, *logits_all, *scratch;
    /* x,xn,tmp (T,D); q,att (T,H*d); k,v (T,Hk*d); gate,up (T,F); logits_all (T,V); scratch (C) */
} ref_state;

static void tap(duet_backend *b, const char *name, const float *data, int rows, int64_t cols)
{
    if (b->tap) b->tap(b->tap_ctx, name, data, rows, cols);
}

static void tap_layer(duet_backend *b, int l, const char *what, const float *data, int rows, int64_t cols)
{
    if (!b->tap) return;
    char name[64];
    snprintf(name, sizeof name, "layers.%d.%s", l, what);
    b->tap(b->tap_ctx, name, data, rows, cols);
}

static int ensure_capacity(ref_state *s, int T)
{
    if (T <= s->cap_T) return 0;
    const duet_config *c = &s->c;
    int64_t D = c->dim, F = c->ffn_dim, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    float **bufs[] = {&s->x, &s->xn, &s->tmp, &s->q, &s->att, &s->k, &s->v, &s->gate, &s->up, &s->logits_all};
    int64_t sizes[] = {D, D, D, q, q, kv, kv, F, F, c->vocab_size};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = malloc(sizeof(float) * (size_t)T * sizes[i]);
        if (!*bufs[i]) return duet_errorf("ref: out of memory for activations of %d tokens", T);
    }
    s->cap_T = T;
    return 0;
}

/* Writes this batch's K/V rows (T, Hk*d) into the cache of layer l at (seq[t], pos[t]). */
static void cache_store(ref_state *s, int l, const duet_batch *b)
{
    const duet_config *c = &s->c;
    int64_t kv = (int64_t)c->n_kv_heads * c->head_dim, C = s->o.max_ctx;
    float *kl = s->kcache + (int64_t)l * s->o.max_seqs * C * kv, *vl = s->vcache + (int64_t)l * s->o.max_seqs * C * kv;
    for (int t = 0; t < b->n_tokens; t++) {
        int64_t off = ((int64_t)b->seq[t] * C + b->pos[t]) * kv;
        memcpy(kl + off, s->k + t * kv, sizeof(float) * kv);
        memcpy(vl + off, s->v + t * kv, sizeof(float) * kv);
    }
}

static int ref_forward(duet_backend *be, const duet_batch *b, float *logits)
{
    ref_state *s = be->impl;
    const duet_config *c = &s->c;
    if (duet_batch_validate(b, c, &s->o) || ensure_capacity(s, b->n_tokens)) return -1;
    const int T = b->n_tokens, D = c->dim, F = c->ffn_dim, H = c->n_heads, Hk = c->n_kv_heads, d = c->head_dim;
    const int64_t C = s->o.max_ctx, kv = (int64_t)Hk * d;

    ref_embedding(s->x, s->embed, b->tokens, T, D); /* x = embed_tokens(ids) */
    tap(be, "embed", s->x, T, D);
    for (int l = 0; l < c->n_layers; l++) {
        const ref_layer *w = &s->layers[l];
        /* attention block: x = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = norm(x) */
        ref_rmsnorm(s->xn, s->x, w->attn_norm, c->norm_eps, T, D);
        tap_layer(be, l, "attn_norm", s->xn, T, D);
        ref_matmul(s->q, s->xn, w->wq, T, H * d, D);
        ref_matmul(s->k, s->xn, w->wk, T, Hk * d, D);
        ref_matmul(s->v, s->xn, w->wv, T, Hk * d, D);
        tap_layer(be, l, "q", s->q, T, (int64_t)H * d);
        tap_layer(be, l, "k", s->k, T, kv);
        tap_layer(be, l, "v", s->v, T, kv);
        ref_rope(s->q, b->pos, c->rope_theta, T, H, d);
        ref_rope(s->k, b->pos, c->rope_theta, T, Hk, d);
        tap_layer(be, l, "q_rope", s->q, T, (int64_t)H * d);
        tap_layer(be, l, "k_rope", s->k, T, kv);
        cache_store(s, l, b);
        int64_t layer_off = (int64_t)l * s->o.max_seqs * C * kv;
        ref_attention(s->att, s->q, s->kcache + layer_off, s->vcache + layer_off, b->pos, b->seq, C * kv, s->scratch, T,
                      H, Hk, d);
        tap_layer(be, l, "attn", s->att, T, (int64_t)H * d);
        ref_matmul(s->tmp, s->att, w->wo, T, D, H * d);
        tap_layer(be, l, "attn_out", s->tmp, T, D);
        ref_add(s->x, s->x, s->tmp, (int64_t)T * D);
        tap_layer(be, l, "resid_mid", s->x, T, D);
        /* MLP block: x = x + down_proj(silu(gate_proj(n)) * up_proj(n)), n = norm(x) */
        ref_rmsnorm(s->xn, s->x, w->ffn_norm, c->norm_eps, T, D);
        tap_layer(be, l, "ffn_norm", s->xn, T, D);
        ref_matmul(s->gate, s->xn, w->w_gate, T, F, D);
        ref_matmul(s->up, s->xn, w->w_up, T, F, D);
        tap_layer(be, l, "gate", s->gate, T, F);
        tap_layer(be, l, "up", s->up, T, F);
        ref_swiglu(s->gate, s->gate, s->up, T, F);
        tap_layer(be, l, "act", s->gate, T, F);
        ref_matmul(s->tmp, s->gate, w->w_down, T, D, F);
        tap_layer(be, l, "ffn_out", s->tmp, T, D);
        ref_add(s->x, s->x, s->tmp, (int64_t)T * D);
        tap_layer(be, l, "out", s->x, T, D);
    }
    ref_rmsnorm(s->xn, s->x, s->final_norm, c->norm_eps, T, D);
    tap(be, "final_norm", s->xn, T, D);

    /* lm_head only on the rows asked for, unless taps want every row. */
    if (!b->logits_for || be->tap) {
        ref_matmul(s->logits_all, s->xn, s->lm_head, T, c->vocab_size, D);
        tap(be, "logits", s->logits_all, T, c->vocab_size);
        int r = 0;
        for (int t = 0; t < T; t++)
            if (!b->logits_for || b->logits_for[t])
                memcpy(logits + (int64_t)r++ * c->vocab_size, s->logits_all + (int64_t)t * c->vocab_size,
                       sizeof(float) * c->vocab_size);
    } else {
        int r = 0;
        for (int t = 0; t < T; t++)
            if (b->logits_for[t])
                ref_matmul(logits + (int64_t)r++ * c->vocab_size, s->xn + (int64_t)t * D, s->lm_head, 1, c->vocab_size, D);
    }
    return 0;
}

static void ref_free(duet_backend *be)
{
    ref_state *s = be->impl;
    if (s) {
        float *bufs[] = {s->x, s->xn, s->tmp, s->q, s->att, s->k, s->v, s->gate, s->up, s->logits_all, s->scratch,
                         s->kcache, s->vcache, s->weights};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
        free(s->layers);
        free(s);
    }
    free(be);
}

/* Converts every weight to fp32 into one allocation; `next` walks through it. */
static float *load(const st_tensor *t, float **next)
{
    float *p = *next;
    if (st_to_f32(t, p)) return NULL;
    *next += t->numel;
    return p;
}

duet_backend *ref_backend_create(const duet_model *m, const duet_backend_opts *opts)
{
    const duet_config *c = &m->cfg;
    if (opts->dtype && strcmp(opts->dtype, "fp32") != 0) {
        duet_errorf("ref backend computes in fp32 only, not '%s' (fp16 and bf16 run on the gpu backend)", opts->dtype);
        return NULL;
    }
    if (opts->max_seqs <= 0 || opts->max_ctx <= 0 || opts->max_ctx > c->max_pos) {
        duet_errorf("ref: max_seqs %d / max_ctx %d invalid (the model has %d positions)", opts->max_seqs, opts->max_ctx,
                    c->max_pos);
        return NULL;
    }
#ifdef DUET_HAVE_OPENBLAS
    /* sgemm's blocking (and so its rounding) depends on the thread count: goldens pin it to 1. */
    if (opts->threads > 0) openblas_set_num_threads(opts->threads);
#endif
    duet_backend *be = calloc(1, sizeof *be);
    ref_state *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        duet_errorf("ref: out of memory");
        return NULL;
    }
    be->name = "ref";
    be->model = m;
    be->impl = s;
    be->forward = ref_forward;
    be->free = ref_free;
    s->c = *c;
    s->o = *opts;

    int64_t total = m->embed->numel + m->final_norm->numel + (c->tie_embeddings ? 0 : m->lm_head->numel);
    for (int l = 0; l < c->n_layers; l++) {
        const duet_layer_weights *w = &m->layers[l];
        total += w->attn_norm->numel + w->wq->numel + w->wk->numel + w->wv->numel + w->wo->numel +
                 w->ffn_norm->numel + w->w_gate->numel + w->w_up->numel + w->w_down->numel;
    }
    int64_t kv_elems = (int64_t)c->n_layers * opts->max_seqs * opts->max_ctx * c->n_kv_heads * c->head_dim;
    s->weights = malloc(sizeof(float) * (size_t)total);
    s->layers = calloc(c->n_layers, sizeof *s->layers);
    s->kcache = calloc((size_t)kv_elems, sizeof(float));
    s->vcache = calloc((size_t)kv_elems, sizeof(float));
    s->scratch = malloc(sizeof(float) * (size_t)opts->max_ctx);
    if (!s->weights || !s->layers || !s->kcache || !s->vcache || !s->scratch) {
        duet_errorf("ref: out of memory (%.1f MiB of weights, %.1f MiB of KV cache)", total * 4.0 / 1048576,
                    kv_elems * 8.0 / 1048576);
        goto fail;
    }
    float *next = s->weights;
    if (!(s->embed = load(m->embed, &next)) || !(s->final_norm = load(m->final_norm, &next))) goto fail;
    s->lm_head = c->tie_embeddings ? s->embed : load(m->lm_head, &next);
    if (!s->lm_head) goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        const duet_layer_weights *w = &m->layers[l];
        ref_layer *r = &s->layers[l];
        if (!(r->attn_norm = load(w->attn_norm, &next)) || !(r->wq = load(w->wq, &next)) ||
            !(r->wk = load(w->wk, &next)) || !(r->wv = load(w->wv, &next)) || !(r->wo = load(w->wo, &next)) ||
            !(r->ffn_norm = load(w->ffn_norm, &next)) || !(r->w_gate = load(w->w_gate, &next)) ||
            !(r->w_up = load(w->w_up, &next)) || !(r->w_down = load(w->w_down, &next)))
            goto fail;
    }
    char weights[160];
    duet_model_weights_describe(m, weights, sizeof weights);
    snprintf(be->summary, sizeof be->summary, "ref: fp32; weights %s, dequantized to fp32 exactly", weights);
    return be;
fail:
    ref_free(be);
    return NULL;
}
