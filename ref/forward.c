/* forward.c: the fp32 LLaMA forward pass of the CPU reference, one packed batch at a time.
 * It reads like the HF LlamaForCausalLM forward; every named intermediate goes to the tap sink.
 * Legend: T tokens in the batch, D hidden, F ffn, H heads, Hk kv heads, d head_dim, V vocab, L layers,
 * S = max_seqs KV slots, C = max_ctx positions per slot.
 * The KV cache is a paged pool: blocks of REF_KV_BLOCK positions, each holding (L, REF_KV_BLOCK, Hk*d)
 * for K and the same for V; a slot takes a block from the free list the first time one of its
 * positions in that block is written (its blocks always cover positions 0 to its last), and release
 * gives all its blocks back. */
#include "ref_backend.h"

#include "build_config.h"

#include "error.h"
#include "kvquant.h"
#include "ops.h"
#include "calib/w8a8.h"
#include "dtype.h"
#include "fp8quant.h"
#include "smoothquant.h"
#include "sampler.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
    /* the KV pool: kv_blocks blocks of (L, REF_KV_BLOCK, Hk*d) each, for K and for V */
    float *kpool, *vpool;
    int kv_blocks, blocks_per_slot; /* blocks_per_slot = ceil(C / REF_KV_BLOCK) */
    int *table;                    /* [S * blocks_per_slot] block of (slot, pos / REF_KV_BLOCK), -1: none */
    int *free_list, n_free;        /* free block ids; the next one taken is free_list[n_free - 1] */
    int *taken;                    /* [kv_blocks] table entries this batch filled (undone if the pool runs out) */
    /* activations for the batch being run, grown on demand to cap_T tokens */
    int cap_T;
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up, *logits_all, *scratch;
    /* W8A8 (o.w8a8, calib/w8a8.h): the layers' codes' values as floats ([L][DUET_LIN_N_LINEAR] matrices,
     * in one allocation: sq's int8 codes, fp8's decoded E4M3), and per batch the activations' codes
     * (cap_T, max K) as bytes and as values, their scales (cap_T), sq's int32 products and the fp32
     * products (cap_T, max N) */
    float *w8_w, **w8_wl;
    uint8_t *w8_xq;
    float *w8_xc, *w8_xs, *w8_tmp;
    int32_t *w8_acc;
    float *drawn;       /* forward_sample's logits of the drawn rows, drawn_cap floats */
    int64_t drawn_cap;
    /* x,xn,tmp (T,D); q,att (T,H*d); k,v (T,Hk*d); gate,up (T,F); logits_all (T,V); scratch (C) */
} ref_state;

enum { REF_KV_BLOCK = 16 };

/* Where layer l's rows start inside a block: a block b holds (L, REF_KV_BLOCK, Hk*d), so layer l of
 * block b is at (b * L + l) * REF_KV_BLOCK * Hk*d floats. */
static int64_t kv_layer(const ref_state *s, int l)
{
    return (int64_t)l * REF_KV_BLOCK * s->c.n_kv_heads * s->c.head_dim;
}

/* The block table's entry for (slot seq, position pos): the block holding that position, -1 when none. */
static int *kv_entry(const ref_state *s, int seq, int pos)
{
    return &s->table[(int64_t)seq * s->blocks_per_slot + pos / REF_KV_BLOCK];
}

/* Layer l of the pool as ref_attention reads it (ref_kv_row addresses a position's row in it). */
static ref_kv_view kv_view(const ref_state *s, int l)
{
    int64_t row = (int64_t)s->c.n_kv_heads * s->c.head_dim;
    ref_kv_view v = {s->kpool + kv_layer(s, l), s->vpool + kv_layer(s, l), s->table, s->blocks_per_slot,
                     REF_KV_BLOCK, kv_layer(s, s->c.n_layers), row};
    return v;
}

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
    if (s->o.w8a8) {
        /* the seven products' K and N are each one of D, F and H d */
        const int64_t dq = D > q ? D : q, kmax = F > dq ? F : dq; /* also the largest N */
        free(s->w8_xq), free(s->w8_xc), free(s->w8_xs), free(s->w8_tmp), free(s->w8_acc);
        s->w8_xq = malloc((size_t)T * kmax);
        s->w8_xc = malloc(sizeof(float) * (size_t)T * kmax);
        s->w8_xs = malloc(sizeof(float) * (size_t)T);
        s->w8_tmp = malloc(sizeof(float) * (size_t)T * kmax);
        s->w8_acc = malloc(sizeof(int32_t) * (size_t)T * kmax);
        if (!s->w8_xq || !s->w8_xc || !s->w8_xs || !s->w8_tmp || !s->w8_acc)
            return duet_errorf("ref: out of memory for the W8A8 activations of %d tokens", T);
    }
    s->cap_T = T;
    return 0;
}

/* Gives each slot of the batch, from the free list, the blocks it has none of for positions 0..pos[t]
 * of its tokens, before anything is written: the block a token writes and, should a slot start past
 * position 0 (outside the seam's contract), those before it, as the GPU's block manager does, so
 * attention never reads outside the pool. When the pool runs out, the blocks taken are put back as they
 * were: the caches and the pool are unchanged and the batch fails. */
static int kv_reserve(ref_state *s, const duet_batch *b)
{
    int n_taken = 0;
    for (int t = 0; t < b->n_tokens; t++)
        for (int j = 0; j <= b->pos[t] / REF_KV_BLOCK; j++) {
            int *e = kv_entry(s, b->seq[t], j * REF_KV_BLOCK);
            if (*e >= 0) continue;
            if (!s->n_free) {
                duet_errorf("ref: KV pool exhausted: slot %d needs a block for position %d and none of the pool's %d "
                            "blocks (%d positions each) is free (%d taken by this batch, given back)",
                            b->seq[t], b->pos[t], s->kv_blocks, REF_KV_BLOCK, n_taken);
                goto undo;
            }
            *e = s->free_list[--s->n_free];
            s->taken[n_taken++] = (int)(e - s->table);
        }
    return 0;
undo:
    while (n_taken > 0) { /* in reverse: the free list comes back in its order */
        int *e = &s->table[s->taken[--n_taken]];
        s->free_list[s->n_free++] = *e;
        *e = -1;
    }
    return -1;
}

/* Writes this batch's K/V rows (T, Hk*d) into the cache of layer l at (seq[t], pos[t]). A quantized cache
 * (kv_mode) stores what its codes decode to, code x scale of the element's (layer, head), in fp32: what a
 * GPU attention kernel reads from the codes (common/kvquant.h). */
static void cache_store(ref_state *s, int l, const duet_batch *b)
{
    const ref_kv_view v = kv_view(s, l);
    float *kl = s->kpool + kv_layer(s, l), *vl = s->vpool + kv_layer(s, l); /* v.k and v.v, writable */
    const duet_kv_mode m = (duet_kv_mode)s->o.kv_mode;
    const int Hk = s->c.n_kv_heads, d = s->c.head_dim;
    const float *ks = m ? s->o.kv_scales + (size_t)l * 2 * Hk : NULL, *vs = m ? ks + Hk : NULL;
    for (int t = 0; t < b->n_tokens; t++) {
        int64_t off = ref_kv_row(&v, b->seq[t], b->pos[t]);
        const float *k = s->k + t * v.row_stride, *vv = s->v + t * v.row_stride;
        if (!m) {
            memcpy(kl + off, k, sizeof(float) * v.row_stride);
            memcpy(vl + off, vv, sizeof(float) * v.row_stride);
            continue;
        }
        for (int64_t j = 0; j < v.row_stride; j++) {
            const int h = (int)(j / d);
            kl[off + j] = duet_kv_decode(m, duet_kv_encode(m, k[j], ks[h]), ks[h]);
            vl[off + j] = duet_kv_decode(m, duet_kv_encode(m, vv[j], vs[h]), vs[h]);
        }
    }
}

static int ref_release(duet_backend *be, int seq)
{
    ref_state *s = be->impl;
    if (seq < 0 || seq >= s->o.max_seqs)
        return duet_errorf("ref: release: sequence slot %d outside [0, %d)", seq, s->o.max_seqs);
    for (int j = s->blocks_per_slot - 1; j >= 0; j--) {
        int *e = kv_entry(s, seq, j * REF_KV_BLOCK);
        if (*e < 0) continue;
        s->free_list[s->n_free++] = *e;
        *e = -1;
    }
    return 0;
}

/* y (T, N) = x . W^T: opts.batch_invariant computes it one row at a time (ref_matmul_rows), else one
 * sgemm (what the goldens were made with). The cost, measured on SmolLM2-135M (Q4_1 dequantized to fp32;
 * tests/bench_ref_prefill, one OpenBLAS thread, a shared 2-core x86-64): a 200-token prefill runs at
 * 33 tok/s instead of 98 (3x slower: a GEMV uses each weight it loads once, sgemm's micro-kernel
 * reuses it across a panel of rows in registers); decode at batch 1 is unchanged (11 tok/s, bound by
 * reading the weights either way). Keeping a 256 KiB panel of W in cache across the rows did not help
 * (32 tok/s). */
static void matmul(const ref_state *s, float *y, const float *x, const float *W, int T, int N, int K)
{
    if (s->o.batch_invariant) ref_matmul_rows(y, x, W, T, N, K);
    else ref_matmul(y, x, W, T, N, K);
}

/* Linear k (DUET_LIN_Q..DUET_LIN_DOWN) of layer l: y (T, N) = x . W^T, or in o.w8a8's mode on its codes:
 * sq (smoothquant.h): x's per-token int8 codes and scales, the exact int32 product, acc * xscale * wscale;
 * fp8 / fp8-tensor (fp8quant.h): x's E4M3 codes per token (or with the static scale), the fp32 product
 * of the codes' values (one sgemm), acc * xscale * wscale. */
static void linear(ref_state *s, int l, int k, float *y, const float *x, const float *W, int T, int N, int K)
{
    if (!s->o.w8a8) {
        matmul(s, y, x, W, T, N, K);
        return;
    }
    const duet_w8a8_linear *q = &s->o.w8a8->layers[l].lin[k];
    const float *wv = s->w8_wl[l * DUET_LIN_N_LINEAR + k];
    const int64_t TK = (int64_t)T * K;
    if (s->o.w8a8->mode == DUET_W8A8_SQ) {
        duet_sq_quant_tokens(x, T, K, (int8_t *)s->w8_xq, s->w8_xs);
        for (int64_t i = 0; i < TK; i++) s->w8_xc[i] = (float)(int8_t)s->w8_xq[i];
        ref_matmul_i8(s->w8_acc, s->w8_xc, wv, T, N, K, s->w8_tmp);
        duet_sq_dequant(s->w8_acc, s->w8_xs, q->scales, T, N, y);
        return;
    }
    if (q->x_scale > 0.0f) {
        duet_f8_quant_static(x, T, K, q->x_scale, s->w8_xq);
        for (int t = 0; t < T; t++) s->w8_xs[t] = q->x_scale;
    } else {
        duet_f8_quant_tokens(x, T, K, s->w8_xq, s->w8_xs);
    }
    for (int64_t i = 0; i < TK; i++) s->w8_xc[i] = duet_f8e4m3_to_f32(s->w8_xq[i]);
    matmul(s, s->w8_tmp, s->w8_xc, wv, T, N, K);
    duet_f8_dequant(s->w8_tmp, s->w8_xs, q->scales, T, N, y);
}

static int ref_forward(duet_backend *be, const duet_batch *b, float *logits)
{
    ref_state *s = be->impl;
    const duet_config *c = &s->c;
    if (duet_batch_validate(b, c, &s->o) || ensure_capacity(s, b->n_tokens) || kv_reserve(s, b)) return -1;
    const int T = b->n_tokens, D = c->dim, F = c->ffn_dim, H = c->n_heads, Hk = c->n_kv_heads, d = c->head_dim;
    const int64_t kv = (int64_t)Hk * d;

    ref_embedding(s->x, s->embed, b->tokens, T, D); /* x = embed_tokens(ids) */
    tap(be, "embed", s->x, T, D);
    for (int l = 0; l < c->n_layers; l++) {
        const ref_layer *w = &s->layers[l];
        const duet_w8a8_layer *sq = s->o.w8a8 ? &s->o.w8a8->layers[l] : NULL; /* its folded norms */
        /* attention block: x = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = norm(x) */
        ref_rmsnorm(s->xn, s->x, sq ? sq->attn_norm : w->attn_norm, c->norm_eps, T, D);
        tap_layer(be, l, "attn_norm", s->xn, T, D);
        linear(s, l, DUET_LIN_Q, s->q, s->xn, w->wq, T, H * d, D);
        linear(s, l, DUET_LIN_K, s->k, s->xn, w->wk, T, Hk * d, D);
        linear(s, l, DUET_LIN_V, s->v, s->xn, w->wv, T, Hk * d, D);
        tap_layer(be, l, "q", s->q, T, (int64_t)H * d);
        tap_layer(be, l, "k", s->k, T, kv);
        tap_layer(be, l, "v", s->v, T, kv);
        ref_rope(s->q, b->pos, c->rope_theta, T, H, d);
        ref_rope(s->k, b->pos, c->rope_theta, T, Hk, d);
        tap_layer(be, l, "q_rope", s->q, T, (int64_t)H * d);
        tap_layer(be, l, "k_rope", s->k, T, kv);
        cache_store(s, l, b);
        const ref_kv_view kvl = kv_view(s, l);
        ref_attention(s->att, s->q, &kvl, b->pos, b->seq, s->scratch, T, H, Hk, d);
        tap_layer(be, l, "attn", s->att, T, (int64_t)H * d);
        linear(s, l, DUET_LIN_O, s->tmp, s->att, w->wo, T, D, H * d);
        tap_layer(be, l, "attn_out", s->tmp, T, D);
        ref_add(s->x, s->x, s->tmp, (int64_t)T * D);
        tap_layer(be, l, "resid_mid", s->x, T, D);
        /* MLP block: x = x + down_proj(silu(gate_proj(n)) * up_proj(n)), n = norm(x) */
        ref_rmsnorm(s->xn, s->x, sq ? sq->ffn_norm : w->ffn_norm, c->norm_eps, T, D);
        tap_layer(be, l, "ffn_norm", s->xn, T, D);
        linear(s, l, DUET_LIN_GATE, s->gate, s->xn, w->w_gate, T, F, D);
        linear(s, l, DUET_LIN_UP, s->up, s->xn, w->w_up, T, F, D);
        tap_layer(be, l, "gate", s->gate, T, F);
        tap_layer(be, l, "up", s->up, T, F);
        ref_swiglu(s->gate, s->gate, s->up, T, F);
        tap_layer(be, l, "act", s->gate, T, F);
        linear(s, l, DUET_LIN_DOWN, s->tmp, s->gate, w->w_down, T, D, F);
        tap_layer(be, l, "ffn_out", s->tmp, T, D);
        ref_add(s->x, s->x, s->tmp, (int64_t)T * D);
        tap_layer(be, l, "out", s->x, T, D);
    }
    ref_rmsnorm(s->xn, s->x, s->final_norm, c->norm_eps, T, D);
    tap(be, "final_norm", s->xn, T, D);

    /* lm_head only on the rows asked for, unless taps want every row. */
    if (!b->logits_for || be->tap) {
        matmul(s, s->logits_all, s->xn, s->lm_head, T, c->vocab_size, D);
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
                matmul(s, logits + (int64_t)r++ * c->vocab_size, s->xn + (int64_t)t * D, s->lm_head, 1, c->vocab_size, D);
    }
    return 0;
}

/* The seam's forward_sample on the host: forward, then duet_sample on each drawn row (a NaN row is an error). */
static int ref_forward_sample(duet_backend *be, const duet_batch *b, duet_sampler *const *samplers, int *ids)
{
    ref_state *s = be->impl;
    const int V = s->c.vocab_size;
    int64_t R = 0;
    for (int t = 0; t < b->n_tokens; t++) R += !b->logits_for || b->logits_for[t];
    if (R * V > s->drawn_cap) {
        float *d = realloc(s->drawn, sizeof(float) * (size_t)(R * V));
        if (!d) return duet_errorf("ref: out of memory for the logits of %lld rows", (long long)R);
        s->drawn = d, s->drawn_cap = R * V;
    }
    if (ref_forward(be, b, s->drawn)) return -1;
    for (int t = 0, r = 0; t < b->n_tokens; t++) {
        if (b->logits_for && !b->logits_for[t]) continue;
        const float *row = s->drawn + (int64_t)r * V;
        for (int v = 0; v < V; v++)
            if (isnan(row[v]))
                return duet_errorf("ref: the logits of slot %d at position %d hold NaN: the forward pass broke down "
                                   "(NaN weights or activations out of range); no token can be drawn",
                                   b->seq[t], b->pos[t]);
        ids[r] = duet_sample(samplers[r], row);
        r++;
    }
    return 0;
}

static void ref_free(duet_backend *be)
{
    ref_state *s = be->impl;
    if (s) {
        float *bufs[] = {s->x, s->xn, s->tmp, s->q, s->att, s->k, s->v, s->gate, s->up, s->logits_all, s->scratch,
                         s->kpool, s->vpool, s->weights};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
        free(s->table);
        free(s->free_list);
        free(s->taken);
        free(s->drawn);
        free(s->w8_w), free(s->w8_wl), free(s->w8_xq), free(s->w8_xc), free(s->w8_xs), free(s->w8_tmp);
        free(s->w8_acc);
        free(s->layers);
        free(s);
    }
    free(be);
}

/* Sizes the pool: blocks of (L, REF_KV_BLOCK, Hk*d) floats for K and as many for V, as many as
 * opts->kv_budget bytes hold (0: S x blocks_per_slot, every slot full), never more than every slot full
 * needs. *elems: floats of the K pool. */
/* The host's available memory in bytes (/proc/meminfo MemAvailable, else free pages); 0 when unknown. */
static int64_t host_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb >= 0) return (int64_t)kb * 1024;
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (int64_t)pages * page : 0;
}

static int kv_pool_size(ref_state *s, const duet_backend_opts *o, int64_t weight_bytes, int64_t *elems)
{
    const duet_config *c = &s->c;
    s->blocks_per_slot = (o->max_ctx + REF_KV_BLOCK - 1) / REF_KV_BLOCK;
    int64_t block_elems, block_bytes, full; /* floats of one block (K or V), bytes of K + V, blocks of every slot full */
    if (__builtin_mul_overflow((int64_t)c->n_layers * REF_KV_BLOCK, (int64_t)c->n_kv_heads * c->head_dim, &block_elems) ||
        __builtin_mul_overflow(block_elems, (int64_t)(2 * sizeof(float)), &block_bytes) ||
        __builtin_mul_overflow((int64_t)o->max_seqs, (int64_t)s->blocks_per_slot, &full) || full > INT_MAX)
        return duet_errorf("ref: KV pool of %d slots x %d positions overflows", o->max_seqs, o->max_ctx);
    if (o->kv_budget < 0) return duet_errorf("ref: kv_budget %lld bytes is negative", (long long)o->kv_budget);
    if (!(o->kv_fraction >= 0.0 && o->kv_fraction <= 1.0))
        return duet_errorf("ref: kv_fraction %g is outside [0, 1]", o->kv_fraction);
    int64_t n = full;
    if (o->kv_budget == 0 && o->kv_fraction > 0.0) { /* a share of what the host has left after the weights */
        const int64_t avail = host_available() - weight_bytes;
        n = avail > 0 ? (int64_t)(o->kv_fraction * (double)avail) / block_bytes : 0;
        if (n < 1)
            return duet_errorf("ref: kv_fraction %g of the %.1f MiB available after %.1f MiB of weights holds no KV block "
                               "(%lld bytes)",
                               o->kv_fraction, (double)(avail > 0 ? avail : 0) / 1048576.0, weight_bytes / 1048576.0,
                               (long long)block_bytes);
        if (n > full) n = full;
    } else if (o->kv_budget > 0) {
        if (o->kv_budget < block_bytes)
            return duet_errorf("ref: kv_budget %lld bytes holds no KV block (one block of %d positions takes %lld bytes)",
                               (long long)o->kv_budget, REF_KV_BLOCK, (long long)block_bytes);
        n = o->kv_budget / block_bytes;
        if (n > full) n = full; /* more than every slot full could use */
    }
    if (__builtin_mul_overflow(n, block_elems, elems) || *elems > (int64_t)(SIZE_MAX / sizeof(float)))
        return duet_errorf("ref: KV pool of %lld blocks overflows", (long long)n);
    s->kv_blocks = (int)n;
    return 0;
}

/* Converts every weight to fp32 into one allocation; `next` walks through it. */
static float *load(const st_tensor *t, float **next)
{
    float *p = *next;
    if (st_to_f32(t, p)) return NULL;
    *next += t->numel;
    return p;
}

/* o.w8a8's codes as floats for ref_matmul_i8, after checking its shapes against the model's */
static int w8a8_load(ref_state *s)
{
    const duet_w8a8 *sq = s->o.w8a8;
    const duet_config *c = &s->c, *k = &sq->cfg;
    if (!duet_config_same_layers(k, c))
        return duet_errorf("ref: the W8A8 weights were made for other shapes than the model's");
    int64_t total = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < DUET_LIN_N_LINEAR; j++) total += sq->layers[l].lin[j].N * sq->layers[l].lin[j].K;
    s->w8_w = malloc(sizeof(float) * (size_t)total);
    s->w8_wl = malloc(sizeof(float *) * (size_t)c->n_layers * DUET_LIN_N_LINEAR);
    if (!s->w8_w || !s->w8_wl)
        return duet_errorf("ref: out of memory for the W8A8 weights (%.1f MiB)", total * 4.0 / 1048576);
    float *next = s->w8_w;
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < DUET_LIN_N_LINEAR; j++) {
            const duet_w8a8_linear *q = &sq->layers[l].lin[j];
            if (!q->codes) return duet_errorf("ref: W8A8 layer %d has no weights", l);
            s->w8_wl[l * DUET_LIN_N_LINEAR + j] = next;
            for (int64_t i = 0; i < q->N * q->K; i++)
                next[i] = sq->mode == DUET_W8A8_SQ ? (float)(int8_t)q->codes[i] : duet_f8e4m3_to_f32(q->codes[i]);
            next += q->N * q->K;
        }
    return 0;
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
    if (opts->kv_mode < 0 || opts->kv_mode > DUET_KV_FP8) {
        duet_errorf("ref: KV cache mode %d unknown", opts->kv_mode);
        return NULL;
    }
    for (int i = 0; opts->kv_mode && i < 2 * c->n_layers * c->n_kv_heads; i++)
        if (!opts->kv_scales || !(opts->kv_scales[i] > 0.0f) || !isfinite(opts->kv_scales[i])) {
            duet_errorf("ref: the %s KV cache needs a finite scale > 0 per layer and kv head (%s at %d)",
                        duet_kv_mode_name((duet_kv_mode)opts->kv_mode), opts->kv_scales ? "not" : "none given", i);
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
    be->forward_sample = ref_forward_sample;
    be->release = ref_release;
    be->free = ref_free;
    s->c = *c;
    be->cfg = &s->c;
    s->o = *opts;

    int64_t total = m->embed->numel + m->final_norm->numel + (c->tie_embeddings ? 0 : m->lm_head->numel);
    for (int l = 0; l < c->n_layers; l++) {
        const duet_layer_weights *w = &m->layers[l];
        total += w->attn_norm->numel + w->wq->numel + w->wk->numel + w->wv->numel + w->wo->numel +
                 w->ffn_norm->numel + w->w_gate->numel + w->w_up->numel + w->w_down->numel;
    }
    int64_t kv_elems = 0; /* floats of the K (or the V) pool */
    if (kv_pool_size(s, opts, total * (int64_t)sizeof(float), &kv_elems)) goto fail;
    be->kv_block = REF_KV_BLOCK;
    be->kv_blocks = s->kv_blocks;
    s->weights = malloc(sizeof(float) * (size_t)total);
    s->layers = calloc(c->n_layers, sizeof *s->layers);
    s->kpool = calloc((size_t)kv_elems, sizeof(float));
    s->vpool = calloc((size_t)kv_elems, sizeof(float));
    s->scratch = malloc(sizeof(float) * (size_t)opts->max_ctx);
    s->table = malloc(sizeof(int) * (size_t)opts->max_seqs * s->blocks_per_slot);
    s->free_list = malloc(sizeof(int) * (size_t)s->kv_blocks);
    s->taken = malloc(sizeof(int) * (size_t)s->kv_blocks);
    if (!s->weights || !s->layers || !s->kpool || !s->vpool || !s->scratch || !s->table || !s->free_list || !s->taken) {
        duet_errorf("ref: out of memory (%.1f MiB of weights, %.1f MiB of KV cache)", total * 4.0 / 1048576,
                    kv_elems * 8.0 / 1048576);
        goto fail;
    }
    for (int64_t i = 0; i < (int64_t)opts->max_seqs * s->blocks_per_slot; i++) s->table[i] = -1;
    for (int i = 0; i < s->kv_blocks; i++) s->free_list[i] = s->kv_blocks - 1 - i; /* block 0 is taken first */
    s->n_free = s->kv_blocks;
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
    if (opts->w8a8 && w8a8_load(s)) goto fail;
    char weights[160];
    duet_model_weights_describe(m, weights, sizeof weights);
    if (opts->w8a8 && opts->w8a8->mode == DUET_W8A8_SQ)
        snprintf(be->summary, sizeof be->summary,
                 "ref: fp32; SmoothQuant W8A8 (alpha %.2f: int8 weights per channel from weights %s, activations "
                 "per token, exact int32 products)",
                 (double)opts->w8a8->alpha, weights);
    else if (opts->w8a8)
        snprintf(be->summary, sizeof be->summary,
                 "ref: fp32; FP8 E4M3 W8A8 (%s: weights %s from weights %s, activations %s; fp32 products)",
                 duet_w8a8_mode_name(opts->w8a8->mode),
                 opts->w8a8->mode == DUET_W8A8_FP8 ? "per channel" : "per tensor", weights,
                 opts->w8a8->mode == DUET_W8A8_FP8 ? "per token" : "per tensor, static from the calibration");
    else
        snprintf(be->summary, sizeof be->summary, "ref: fp32; weights %s, dequantized to fp32 exactly", weights);
    return be;
fail:
    ref_free(be);
    return NULL;
}
