/* gpu_backend.cu: the CUDA engine: weights on the device (one allocation with a table), the paged KV
 * cache and its block manager, activations grown on demand, and the forward pass of a packed batch
 * mirroring ref/forward.c op by op, with the same taps (copied to host fp32 only when a sink is set).
 * Legend: T tokens in the batch, D hidden, F ffn, H heads, Hk kv heads, d head_dim, V vocab, L layers,
 * S = max_seqs slots, C = max_ctx, Q = (H + 2 Hk) d the fused q|k|v width. */
extern "C" {
#include "backend.h"
#include "safetensors.h"
#include "sampler.h"
}
#include "attention.h"
#include "bench_gpu.h"
#include "cuda_check.h"
#include "calib/w8a8.h"
#include "embedding.h"
#include "gemm.h"
#include "gpu_backend.h"
#include "kv_cache.h"
#include "kvquant.h"
#include "rmsnorm.h"
#include "rope.h"
#include "sampling.h"
#include "swiglu.h"
#include "w8a8_model.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB(x) ((double)(x) / 1048576.0)
#define GPU_MAX_GRAPHS 16

typedef struct gpu_weight {
    char name[64];
    void *ptr;    /* inside gpu_state.wbuf */
    size_t bytes;
} gpu_weight;

typedef struct gpu_layer {
    void *attn_norm, *ffn_norm;      /* (D) dt */
    gpu_wdesc wqkv, wo;              /* (Q, D) rows [wq; wk; wv], (D, H d): dense or quantized (weights.h) */
    gpu_wdesc wgu, w_down;           /* (2F, D) rows [w_gate; w_up], (D, F) */
} gpu_layer;

typedef struct gpu_state {
    duet_config c;
    duet_backend_opts o;
    gpu_dtype dt;
    int n_sm;
    int no_fuse; /* $DUET_NO_FUSE nonzero: decode steps run the unfused kernels (A/B timing) */
    int fuse_ok[3]; /* [T]: every layer's weights fit the fused decode GEMVs for T = 1, 2 tokens */
    cudaStream_t stream;
    /* recorded after every upload from h_meta (pinned: the copy reads it when the stream reaches it, not when
     * it is queued); the host waits on it before it writes h_meta again (meta_wait) */
    cudaEvent_t meta_up;
    /* the same for the block table: h_table (pinned) is the copy of blocks.table the last upload read */
    cudaEvent_t table_up;
    int *h_table; /* (S, max_blocks), pinned */
    gpu_gemm_ctx *gemm;
    /* weights: one allocation, a table of (name, pointer, size) */
    void *wbuf;
    size_t wbytes;
    gpu_weight *table;
    int n_weights;
    void *embed, *final_norm, *lm_head; /* (V, D) (D) (V, D) dt */
    gpu_wdesc lm_head_w;                /* = gpu_wdesc_dense(lm_head) */
    duet_qmode weights;                 /* the layers' mode (DUET_Q_NONE: dense) */
    gpu_layer *layers;                  /* [L] */
    /* paged KV cache: (L, 2, n_blocks, Hk, B, d) elements (dt, or 1-byte codes: kv_cache.h) */
    void *kv;
    size_t kv_bytes;
    float *d_kv_scales; /* (L, 2, Hk) device: the codes' scales (o.kv_mode != 0), K then V of each layer */
    gpu_w8a8_model *w8;   /* W8A8 (o.w8a8: sq, fp8, fp8-tensor): the layers' products and norms, or NULL */
    int n_blocks;
    gpu_block_mgr blocks;
    int *d_table; /* (S, max_blocks) */
    /* activations, grown to cap_T tokens: one allocation */
    int cap_T;
    void *abuf;
    float *x;        /* (T, D) fp32 residual stream */
    void *xn, *tmp;  /* (T, D) dt */
    void *qkv;       /* (T, Q) dt */
    void *att;       /* (T, H d) dt */
    void *gu;        /* (T, 2F) dt */
    void *act;       /* (T, F) dt */
    void *xsel;      /* (T, D) dt: rows whose logits are asked for */
    float *ws;       /* attention split-K workspace */
    int *d_meta;     /* (4T): tokens, pos, seq, rows */
    int *h_meta;     /* pinned (4T) */
    /* logits, grown to cap_R rows: one allocation */
    int cap_R;
    void *lbuf;
    float *logits;   /* (R, V) fp32 */
    int *d_ids;      /* (R) argmax ids */
    gpu_sample_params *d_params; /* (R) per-row sampler settings of a sampled decode */
    uint64_t *d_steps;           /* (R) their draw counters */
    void *d_sample_ws;           /* gpu_sample's scratch for R rows */
    int *d_nan;      /* (R) nonzero: a decode step of this call had NaN in row r's logits */
    int *d_hist;     /* (S, C) greedy ids: [seq, p] = the token chosen for position p + 1 */
    /* decode-step CUDA graphs, one per (batch size, attention length bound) */
    struct {
        int B, max_len, sampled;
        cudaGraphExec_t exec;
    } graphs[GPU_MAX_GRAPHS];
    int n_graphs;
    /* tap staging on the host */
    uint16_t *h_raw;
    float *h_f32;
    size_t h_cap;
} gpu_state;

/* ---- taps ------------------------------------------------------------------------------------- */

static int ensure_host(gpu_state *s, size_t n)
{
    if (n <= s->h_cap) return 0;
    free(s->h_raw);
    free(s->h_f32);
    s->h_raw = (uint16_t *)malloc(n * sizeof(uint16_t));
    s->h_f32 = (float *)malloc(n * sizeof(float));
    s->h_cap = s->h_raw && s->h_f32 ? n : 0;
    if (!s->h_cap) return duet_errorf("gpu: out of host memory for a tap of %zu values", n);
    return 0;
}

/* Copies (rows, cols) of a device matrix with row stride ld (elements) to host fp32, calls the sink. */
static int tap_dev(duet_backend *b, const char *name, const void *dev, int is_f32, int rows, int64_t cols, int64_t ld)
{
    if (!b->tap) return 0;
    gpu_state *s = (gpu_state *)b->impl;
    size_t n = (size_t)rows * cols;
    if (ensure_host(s, n)) return -1;
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (is_f32) {
        CUDA_CHECK(cudaMemcpy2D(s->h_f32, cols * 4, dev, ld * 4, cols * 4, rows, cudaMemcpyDeviceToHost));
    } else {
        CUDA_CHECK(cudaMemcpy2D(s->h_raw, cols * 2, dev, ld * 2, cols * 2, rows, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; i++)
            s->h_f32[i] = s->dt == GPU_BF16 ? duet_bf16_to_f32(s->h_raw[i]) : duet_f16_to_f32(s->h_raw[i]);
    }
    b->tap(b->tap_ctx, name, s->h_f32, rows, cols);
    return 0;
}

static int tap_layer(duet_backend *b, int l, const char *what, const void *dev, int is_f32, int rows, int64_t cols,
                     int64_t ld)
{
    if (!b->tap) return 0;
    char name[64];
    snprintf(name, sizeof name, "layers.%d.%s", l, what);
    return tap_dev(b, name, dev, is_f32, rows, cols, ld);
}

/* ---- activations ------------------------------------------------------------------------------ */

static void drop_graphs(gpu_state *s)
{
    for (int i = 0; i < s->n_graphs; i++) cudaGraphExecDestroy(s->graphs[i].exec);
    s->n_graphs = 0;
}

static int ensure_capacity(gpu_state *s, int T)
{
    if (T <= s->cap_T) return 0;
    const duet_config *c = &s->c;
    int64_t D = c->dim, F = c->ffn_dim, Hd = (int64_t)c->n_heads * c->head_dim,
            Q = (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    size_t e = gpu_dtype_size(s->dt);
    /* the logits have their own buffer (ensure_logits): a long prefill needs them for a few rows only */
    size_t sizes[] = {
        (size_t)T * D * 4, (size_t)T * D * e, (size_t)T * D * e, (size_t)T * Q * e, (size_t)T * Hd * e,
        (size_t)T * 2 * F * e, (size_t)T * F * e, (size_t)T * D * e, 0,
        gpu_attention_ws_floats(T, c->n_heads, c->head_dim, s->n_sm) * 4, (size_t)T * 4 * sizeof(int)};
    size_t off[11], total = 0;
    for (int i = 0; i < 11; i++) {
        off[i] = total;
        total += (sizes[i] + 255) & ~(size_t)255;
    }
    drop_graphs(s); /* they hold pointers into the old buffer */
    gpu_free(s->abuf);
    s->abuf = NULL;
    if (s->h_meta) cudaFreeHost(s->h_meta);
    s->h_meta = NULL;
    s->cap_T = 0;
    if (cudaMalloc(&s->abuf, total) != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return duet_errorf("gpu: out of GPU memory for the activations of %d tokens (%.1f MiB; %.1f MiB free)", T,
                           MiB(total), MiB(fr));
    }
    char *a = (char *)s->abuf;
    s->x = (float *)(a + off[0]);
    s->xn = a + off[1];
    s->tmp = a + off[2];
    s->qkv = a + off[3];
    s->att = a + off[4];
    s->gu = a + off[5];
    s->act = a + off[6];
    s->xsel = a + off[7];
    s->ws = (float *)(a + off[9]);
    s->d_meta = (int *)(a + off[10]);
    CUDA_CHECK(cudaMallocHost(&s->h_meta, (size_t)T * 4 * sizeof(int)));
    if (s->w8 && gpu_w8a8_model_reserve(s->w8, T)) return -1;
    s->cap_T = T;
    return 0;
}

/* Logits (R, V) fp32 and their argmax ids (R). */
static int ensure_logits(gpu_state *s, int R)
{
    if (R <= s->cap_R) return 0;
    size_t lb = ((size_t)R * s->c.vocab_size * 4 + 255) & ~(size_t)255;
    size_t ib = ((size_t)R * sizeof(int) + 255) & ~(size_t)255, pb = ((size_t)R * sizeof(gpu_sample_params) + 255) & ~(size_t)255;
    size_t sb = ((size_t)R * sizeof(uint64_t) + 255) & ~(size_t)255;
    drop_graphs(s);
    gpu_free(s->lbuf);
    s->lbuf = NULL;
    s->cap_R = 0;
    if (!(s->lbuf = gpu_alloc(lb + 2 * ib + pb + sb + gpu_sample_ws_bytes(R, s->c.vocab_size)))) {
        duet_error_prefix("gpu: logits of %d rows: ", R);
        return -1;
    }
    s->logits = (float *)s->lbuf;
    s->d_ids = (int *)((char *)s->lbuf + lb);
    s->d_params = (gpu_sample_params *)((char *)s->lbuf + lb + ib);
    s->d_steps = (uint64_t *)((char *)s->lbuf + lb + ib + pb);
    s->d_nan = (int *)((char *)s->lbuf + lb + ib + pb + sb);
    s->d_sample_ws = (char *)s->lbuf + lb + 2 * ib + pb + sb;
    s->cap_R = R;
    return 0;
}

/* ---- forward ---------------------------------------------------------------------------------- */

static gpu_kv_view kv_view(gpu_state *s, int l)
{
    const duet_config *c = &s->c;
    size_t per = (size_t)s->n_blocks * c->n_kv_heads * GPU_KV_BLOCK * c->head_dim * gpu_kv_elem_size(s->o.kv_mode, s->dt);
    gpu_kv_view v;
    v.k = (char *)s->kv + (size_t)(2 * l) * per;
    v.v = (char *)s->kv + (size_t)(2 * l + 1) * per;
    v.block_table = s->d_table;
    v.max_blocks = s->blocks.max_blocks;
    v.Hk = c->n_kv_heads;
    v.d = c->head_dim;
    v.mode = s->o.kv_mode;
    v.k_scale = s->d_kv_scales ? s->d_kv_scales + (size_t)l * 2 * c->n_kv_heads : NULL;
    v.v_scale = s->d_kv_scales ? v.k_scale + c->n_kv_heads : NULL;
    return v;
}

/* Before the host writes (or frees) h_meta: the last upload from it has been read. A step that returns
 * without synchronizing (a forward with no logits rows: prompt chunks) leaves its upload queued behind
 * earlier work, and on a busy GPU the next step's metadata would otherwise overwrite it first. */
static int meta_wait(gpu_state *s)
{
    CUDA_CHECK(cudaEventSynchronize(s->meta_up));
    return 0;
}

/* n ints of h_meta -> d_meta on the stream, then the event meta_wait waits on */
static int meta_upload(gpu_state *s, size_t n)
{
    CUDA_CHECK(cudaMemcpyAsync(s->d_meta, s->h_meta, sizeof(int) * n, cudaMemcpyHostToDevice, s->stream));
    CUDA_CHECK(cudaEventRecord(s->meta_up, s->stream));
    return 0;
}

/* Blocks for positions [0, n_pos[i]) of slots seq[i]; the table uploaded when it changed, on the stream
 * (after the queued work that reads the old table), from the pinned h_table. No device sync: the host waits
 * only for the previous table upload to have read h_table before it writes h_table again. */
static int reserve_blocks(gpu_state *s, int n, const int *seq, const int *n_pos)
{
    for (int i = 0; i < n; i++)
        if (gpu_block_mgr_reserve(&s->blocks, seq[i], n_pos[i])) return -1;
    if (s->blocks.dirty) {
        const size_t bytes = sizeof(int) * (size_t)s->o.max_seqs * s->blocks.max_blocks;
        CUDA_CHECK(cudaEventSynchronize(s->table_up));
        memcpy(s->h_table, s->blocks.table, bytes);
        CUDA_CHECK(cudaMemcpyAsync(s->d_table, s->h_table, bytes, cudaMemcpyHostToDevice, s->stream));
        CUDA_CHECK(cudaEventRecord(s->table_up, s->stream));
        s->blocks.dirty = 0;
    }
    return 0;
}

/* The seam's release: slot seq's blocks back to the pool; the device table follows at the next
 * reserve_blocks (it uploads the table when it changed, on the stream, after the work already queued). */
static int gpu_release_seq(duet_backend *be, int seq)
{
    gpu_state *s = (gpu_state *)be->impl;
    if (seq < 0 || seq >= s->o.max_seqs)
        return duet_errorf("gpu: release: sequence slot %d outside [0, %d)", seq, s->o.max_seqs);
    gpu_block_mgr_release(&s->blocks, seq);
    return 0;
}

/* Host side of a packed batch: capacity, KV blocks, one pinned upload of the metadata (tokens, pos,
 * seq, rows wanted) laid out for T tokens at s->d_meta. *R = rows wanted, *max_len = max pos + 1. */
static int prepare_batch(gpu_state *s, const duet_batch *b, int *R, int *max_len)
{
    const int T = b->n_tokens;
    if (duet_batch_validate(b, &s->c, &s->o) || meta_wait(s) || ensure_capacity(s, T)) return -1;
    int *h = s->h_meta;
    *max_len = 0;
    for (int t = 0; t < T; t++) {
        h[t] = b->pos[t] + 1; /* scratch: positions needed */
        if (b->pos[t] + 1 > *max_len) *max_len = b->pos[t] + 1;
    }
    if (reserve_blocks(s, T, b->seq, h)) return -1;
    memcpy(h, b->tokens, sizeof(int) * T);
    memcpy(h + T, b->pos, sizeof(int) * T);
    memcpy(h + 2 * T, b->seq, sizeof(int) * T);
    *R = 0;
    for (int t = 0; t < T; t++)
        if (!b->logits_for || b->logits_for[t]) h[3 * T + (*R)++] = t;
    return meta_upload(s, 4 * (size_t)T);
}

/* Embedding, the L layers and the final norm of T tokens whose metadata is at s->d_meta (T layout);
 * every pointer it uses is device memory, so a decode step can be captured in a CUDA graph.
 * max_len: an upper bound of pos + 1 over the batch (sizes the attention split). hb: the host batch
 * (its pos/seq let attention split prefill segments from decode tokens); NULL in a decode step, where
 * every token is a decode token and no host data may be read. */
static int run_layers(duet_backend *be, int T, int max_len, const duet_batch *hb)
{
    const duet_batch no_host = {T, NULL, NULL, NULL, NULL}, *b = hb ? hb : &no_host;
    gpu_state *s = (gpu_state *)be->impl;
    const duet_config *c = &s->c;
    const int D = c->dim, F = c->ffn_dim, H = c->n_heads, Hk = c->n_kv_heads, d = c->head_dim;
    const int64_t Hd = (int64_t)H * d, kvd = (int64_t)Hk * d, Q = Hd + 2 * kvd;
    const gpu_dtype dt = s->dt;
    cudaStream_t st = s->stream;
    const int *d_tok = s->d_meta, *d_pos = s->d_meta + T, *d_seq = s->d_meta + 2 * T;
    (void)Hk;
    (void)d_seq;
    (void)b;

    if (gpu_embedding(s->x, s->embed, d_tok, T, D, dt, st)) return -1; /* x = embed_tokens(ids) */
    if (tap_dev(be, "embed", s->x, 1, T, D, D)) return -1;
    if (!be->tap && !s->no_fuse && T >= 1 && T <= 2 && s->fuse_ok[T]) {
        /* The decode step (1-2 tokens, no taps): the same math in 4 GEMVs + attention per layer, RMSNorm
         * fused into the GEMVs that read the residual, RoPE and the KV store into the qkv GEMV, SwiGLU into
         * the gate/up GEMV, the residual adds into the o_proj and down GEMVs (gemm.h says how each rounds). */
        for (int l = 0; l < c->n_layers; l++) {
            const gpu_layer *w = &s->layers[l];
            gpu_kv_view kv = kv_view(s, l);
            gpu_attn_params ap = {s->att, s->qkv, Q, kv, d_pos, d_seq, T, H, max_len, s->ws, s->n_sm,
                                  b->pos, b->seq, s->o.batch_invariant};
            gpu_gemv_rope rope = {kv, d_pos, d_seq, c->rope_theta, H};
            /* quantized weights at 2 tokens: the RMSNorm as its own kernel (the GEMV normalizes in its prologue
             * only for one token; at two, x normalized per row pair would cost more than 8- and 4-bit weights) */
            const int qn = T == 2 && w->wqkv.fmt != GPU_W_DENSE, qf = T == 2 && w->wgu.fmt != GPU_W_DENSE;
            if ((qn && gpu_add_rmsnorm(s->xn, s->x, NULL, w->attn_norm, c->norm_eps, T, D, dt, st)) ||
                gpu_gemv_fused_rope(s->gemm, s->qkv, GPU_GEMV_ROPE, qn ? s->xn : NULL, qn ? NULL : s->x, w->attn_norm,
                                    c->norm_eps, &w->wqkv, T, (int)Q, D, &rope, dt, st) ||
                gpu_attention(&ap, dt, st) ||
                gpu_gemv_fused(s->gemm, s->x, GPU_GEMV_RESID, s->att, NULL, NULL, 0.0f, &w->wo, T, D, (int)Hd, dt, st) ||
                (qf && gpu_add_rmsnorm(s->xn, s->x, NULL, w->ffn_norm, c->norm_eps, T, D, dt, st)) ||
                gpu_gemv_fused(s->gemm, s->act, GPU_GEMV_SWIGLU, qf ? s->xn : NULL, qf ? NULL : s->x, w->ffn_norm,
                               c->norm_eps, &w->wgu, T, F, D, dt, st) ||
                gpu_gemv_fused(s->gemm, s->x, GPU_GEMV_RESID, s->act, NULL, NULL, 0.0f, &w->w_down, T, D, F, dt, st))
                return -1;
        }
        return gpu_add_rmsnorm(s->xn, s->x, NULL, s->final_norm, c->norm_eps, T, D, dt, st);
    }
    for (int l = 0; l < c->n_layers; l++) {
        const gpu_layer *w = &s->layers[l];
        gpu_kv_view kv = kv_view(s, l);
        /* W8A8: its norms (SmoothQuant's folded), and each product on int8 / E4M3 codes (w8a8_model.h) */
        const gpu_w8a8_layer *qw = s->w8 ? &s->w8->layers[l] : NULL;
        const void *attn_norm = qw ? qw->attn_norm : w->attn_norm, *ffn_norm = qw ? qw->ffn_norm : w->ffn_norm;
        /* x = x + ffn_out(l-1); n = input_layernorm(x) */
        if (gpu_add_rmsnorm(s->xn, s->x, l ? s->tmp : NULL, attn_norm, c->norm_eps, T, D, dt, st)) return -1;
        if (l && tap_layer(be, l - 1, "out", s->x, 1, T, D, D)) return -1;
        if (tap_layer(be, l, "attn_norm", s->xn, 0, T, D, D)) return -1;
        /* q|k|v = n . [wq; wk; wv]^T */
        if (qw ? gpu_w8a8_linear(s->w8, l, GPU_W8_QKV, s->qkv, s->xn, T, dt, st)
               : gpu_gemm(s->gemm, s->qkv, 0, s->xn, &w->wqkv, T, (int)Q, D, dt, st))
            return -1;
        if (tap_layer(be, l, "q", s->qkv, 0, T, Hd, Q) || tap_layer(be, l, "k", (char *)s->qkv + Hd * 2, 0, T, kvd, Q) ||
            tap_layer(be, l, "v", (char *)s->qkv + (Hd + kvd) * 2, 0, T, kvd, Q))
            return -1;
        /* q, k = rope(q), rope(k); cache[seq, pos] = k, v */
        if (gpu_rope_kv(s->qkv, &kv, d_pos, d_seq, c->rope_theta, T, H, dt, st)) return -1;
        if (tap_layer(be, l, "q_rope", s->qkv, 0, T, Hd, Q) ||
            tap_layer(be, l, "k_rope", (char *)s->qkv + Hd * 2, 0, T, kvd, Q))
            return -1;
        /* att = softmax(q k^T / sqrt(d) + causal) v over the cached positions */
        gpu_attn_params ap = {s->att, s->qkv, Q, kv, d_pos, d_seq, T, H, max_len, s->ws, s->n_sm,
                              b->pos, b->seq, s->o.batch_invariant};
        if (gpu_attention(&ap, dt, st)) return -1;
        if (tap_layer(be, l, "attn", s->att, 0, T, Hd, Hd)) return -1;
        if (qw ? gpu_w8a8_linear(s->w8, l, GPU_W8_O, s->tmp, s->att, T, dt, st)
               : gpu_gemm(s->gemm, s->tmp, 0, s->att, &w->wo, T, D, (int)Hd, dt, st)) /* o_proj */
            return -1;
        if (tap_layer(be, l, "attn_out", s->tmp, 0, T, D, D)) return -1;
        /* x = x + attn_out; n = post_attention_layernorm(x) */
        if (gpu_add_rmsnorm(s->xn, s->x, s->tmp, ffn_norm, c->norm_eps, T, D, dt, st)) return -1;
        if (tap_layer(be, l, "resid_mid", s->x, 1, T, D, D) || tap_layer(be, l, "ffn_norm", s->xn, 0, T, D, D)) return -1;
        /* gate|up = n . [w_gate; w_up]^T; act = silu(gate) * up; ffn_out = down_proj(act) */
        if (qw ? gpu_w8a8_linear(s->w8, l, GPU_W8_GU, s->gu, s->xn, T, dt, st)
               : gpu_gemm(s->gemm, s->gu, 0, s->xn, &w->wgu, T, 2 * F, D, dt, st))
            return -1;
        if (tap_layer(be, l, "gate", s->gu, 0, T, F, 2 * F) ||
            tap_layer(be, l, "up", (char *)s->gu + (size_t)F * 2, 0, T, F, 2 * F))
            return -1;
        if (gpu_swiglu(s->act, s->gu, T, F, dt, st)) return -1;
        if (tap_layer(be, l, "act", s->act, 0, T, F, F)) return -1;
        if (qw ? gpu_w8a8_linear(s->w8, l, GPU_W8_DOWN, s->tmp, s->act, T, dt, st)
               : gpu_gemm(s->gemm, s->tmp, 0, s->act, &w->w_down, T, D, F, dt, st))
            return -1;
        if (tap_layer(be, l, "ffn_out", s->tmp, 0, T, D, D)) return -1;
    }
    /* x = x + ffn_out(L-1); n = norm(x) */
    if (gpu_add_rmsnorm(s->xn, s->x, s->tmp, s->final_norm, c->norm_eps, T, D, dt, st)) return -1;
    if (tap_layer(be, c->n_layers - 1, "out", s->x, 1, T, D, D) || tap_dev(be, "final_norm", s->xn, 0, T, D, D))
        return -1;

    return 0;
}

static int gpu_forward(duet_backend *be, const duet_batch *b, float *logits)
{
    gpu_state *s = (gpu_state *)be->impl;
    const duet_config *c = &s->c;
    int R = 0, max_len = 0;
    if (prepare_batch(s, b, &R, &max_len)) return -1;
    const int T = b->n_tokens, D = c->dim, V = c->vocab_size;
    const int all_rows = !b->logits_for || be->tap != NULL;
    const int *h = s->h_meta, *d_rows = s->d_meta + 3 * T;
    const gpu_dtype dt = s->dt;
    cudaStream_t st = s->stream;
    if (ensure_logits(s, all_rows ? T : (R ? R : 1))) return -1;
    if (run_layers(be, T, max_len, b)) return -1;

    /* lm_head on the rows asked for (every row when a tap wants the logits) */
    if (all_rows) {
        if (gpu_gemm(s->gemm, s->logits, 1, s->xn, &s->lm_head_w, T, V, D, dt, st)) return -1;
        if (tap_dev(be, "logits", s->logits, 1, T, V, V)) return -1;
        if (!b->logits_for) {
            CUDA_CHECK(cudaMemcpyAsync(logits, s->logits, sizeof(float) * (size_t)T * V, cudaMemcpyDeviceToHost, st));
        } else {
            for (int r = 0; r < R; r++)
                CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)r * V, s->logits + (size_t)h[3 * T + r] * V,
                                           sizeof(float) * V, cudaMemcpyDeviceToHost, st));
        }
    } else if (R > 0) {
        if (gpu_gather_rows(s->xsel, s->xn, d_rows, R, D, dt, st)) return -1;
        if (gpu_gemm(s->gemm, s->logits, 1, s->xsel, &s->lm_head_w, R, V, D, dt, st)) return -1;
        CUDA_CHECK(cudaMemcpyAsync(logits, s->logits, sizeof(float) * (size_t)R * V, cudaMemcpyDeviceToHost, st));
    }
    CUDA_CHECK(cudaStreamSynchronize(st));
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* ---- greedy on the GPU: argmax without logits on the host, decode steps as CUDA graphs -------- */

extern "C" int gpu_backend_forward_argmax(duet_backend *be, const duet_batch *b, int *ids)
{
    if (be->tap) return duet_errorf("gpu_backend_forward_argmax: taps are set (use forward)");
    gpu_state *s = (gpu_state *)be->impl;
    const duet_config *c = &s->c;
    int R = 0, max_len = 0;
    if (prepare_batch(s, b, &R, &max_len)) return -1;
    const int T = b->n_tokens, D = c->dim, V = c->vocab_size;
    cudaStream_t st = s->stream;
    if (ensure_logits(s, R ? R : 1) || run_layers(be, T, max_len, b)) return -1;
    if (R == 0) return 0;
    const void *xs = s->xn;
    if (b->logits_for) {
        if (gpu_gather_rows(s->xsel, s->xn, s->d_meta + 3 * T, R, D, s->dt, st)) return -1;
        xs = s->xsel;
    }
    if (gpu_gemm(s->gemm, s->logits, 1, xs, &s->lm_head_w, R, V, D, s->dt, st) ||
        gpu_argmax(s->d_ids, s->logits, R, V, st))
        return -1;
    CUDA_CHECK(cudaMemcpyAsync(ids, s->d_ids, sizeof(int) * (size_t)R, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* After a decode step of B tokens: the argmax id of row b is the token of position pos[b] + 1 of slot
 * seq[b]; record it in hist (S, C) at [seq, pos], then feed it (tok = id, pos += 1). */
__global__ void advance_kernel(int *tok, int *pos, const int *seq, const int *ids, int *hist, int B, int C)
{
    pdl_trigger();
    pdl_wait();
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        int p = pos[b], id = ids[b];
        if (p < C) hist[(int64_t)seq[b] * C + p] = id;
        pos[b] = p + 1;
        tok[b] = id;
    }
}

/* nan[r] = 1 when row r of logits (R, V) holds a NaN (left as it is otherwise: the flag collects over the
 * steps of one decode call). One block per row. gpu_sample and gpu_argmax still return an id for such a
 * row (the host sampler's NaN rule, which test_gpu_sampling pins); this flag is what turns it into an
 * error. Launched plainly (no PDL attribute): it starts after the draw has completed. */
__global__ void nan_rows_kernel(int *nan, const float *logits, int V)
{
    const float *L = logits + (size_t)blockIdx.x * V;
    int any = 0;
    for (int i = threadIdx.x; i < V && !any; i += blockDim.x) any = isnan(L[i]);
    if (__syncthreads_or(any) && threadIdx.x == 0) nan[blockIdx.x] = 1;
}

/* One decode step of B tokens at s->d_meta (B layout): layers, lm_head, argmax or a draw with the
 * rows' samplers (s->d_params, s->d_steps), the NaN check of the logits (s->d_nan), advance. */
static int decode_step(duet_backend *be, int B, int max_len, int sampled)
{
    gpu_state *s = (gpu_state *)be->impl;
    cudaStream_t st = s->stream;
    const int V = s->c.vocab_size;
    if (run_layers(be, B, max_len, NULL) || gpu_gemm(s->gemm, s->logits, 1, s->xn, &s->lm_head_w, B, V, s->c.dim, s->dt, st) ||
        (sampled ? gpu_sample(s->d_ids, s->logits, B, V, s->d_params, s->d_steps, s->d_sample_ws, st)
                 : gpu_argmax(s->d_ids, s->logits, B, V, st)))
        return -1;
    nan_rows_kernel<<<B, 256, 0, st>>>(s->d_nan, s->logits, V);
    LAUNCH_CHECK();
    CUDA_CHECK(gpu_launch(advance_kernel, 1, 256, 0, st, s->d_meta, s->d_meta + B, s->d_meta + 2 * B, s->d_ids,
                          s->d_hist, B, s->o.max_ctx));
    LAUNCH_CHECK();
    return 0;
}

static cudaGraphExec_t step_graph(duet_backend *be, int B, int max_len, int sampled)
{
    gpu_state *s = (gpu_state *)be->impl;
    for (int i = 0; i < s->n_graphs; i++)
        if (s->graphs[i].B == B && s->graphs[i].max_len == max_len && s->graphs[i].sampled == sampled)
            return s->graphs[i].exec;
    if (s->n_graphs == GPU_MAX_GRAPHS) drop_graphs(s);
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    if (cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        duet_errorf("gpu: cudaStreamBeginCapture: %s", cudaGetErrorString(cudaGetLastError()));
        return NULL;
    }
    int rc = decode_step(be, B, max_len, sampled);
    cudaError_t e = cudaStreamEndCapture(s->stream, &g);
    if (rc || e != cudaSuccess) {
        if (!rc) duet_errorf("gpu: capturing a decode step of %d tokens: %s", B, cudaGetErrorString(e));
        cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        return NULL;
    }
    e = cudaGraphInstantiate(&ex, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        duet_errorf("gpu: cudaGraphInstantiate (decode step of %d tokens): %s", B, cudaGetErrorString(e));
        return NULL;
    }
    s->graphs[s->n_graphs].B = B;
    s->graphs[s->n_graphs].max_len = max_len;
    s->graphs[s->n_graphs].sampled = sampled;
    s->graphs[s->n_graphs++].exec = ex;
    return ex;
}

extern "C" int gpu_backend_decode_greedy(duet_backend *be, int B, const int *seq, const int *pos, const int *tok,
                                         int n_steps, int *out_ids)
{
    return gpu_backend_decode(be, B, seq, pos, tok, n_steps, NULL, NULL, out_ids);
}

extern "C" int gpu_backend_decode(duet_backend *be, int B, const int *seq, const int *pos, const int *tok, int n_steps,
                                  const gpu_sample_params *params, uint64_t *steps, int *out_ids)
{
    gpu_state *s = (gpu_state *)be->impl;
    const duet_config *c = &s->c;
    const int C = s->o.max_ctx;
    if (B < 1 || B > s->o.max_seqs || n_steps < 1)
        return duet_errorf("gpu_backend_decode: batch %d (max_seqs %d), steps %d", B, s->o.max_seqs, n_steps);
    int max_len = 0;
    for (int b = 0; b < B; b++) {
        if (seq[b] < 0 || seq[b] >= s->o.max_seqs || tok[b] < 0 || tok[b] >= c->vocab_size || pos[b] < 0 ||
            pos[b] + n_steps > C)
            return duet_errorf("gpu_backend_decode: row %d: slot %d, token %d, positions %d..%d (context %d)",
                               b, seq[b], tok[b], pos[b], pos[b] + n_steps - 1, C);
        for (int j = 0; j < b; j++)
            if (seq[j] == seq[b]) return duet_errorf("gpu_backend_decode: slot %d appears twice", seq[b]);
        if (pos[b] + n_steps > max_len) max_len = pos[b] + n_steps;
    }
    if (meta_wait(s) || ensure_capacity(s, B) || ensure_logits(s, B)) return -1;
    int *h = s->h_meta;
    for (int b = 0; b < B; b++) h[b] = pos[b] + n_steps;
    if (reserve_blocks(s, B, seq, h)) return -1;
    memcpy(h, tok, sizeof(int) * B);
    memcpy(h + B, pos, sizeof(int) * B);
    memcpy(h + 2 * B, seq, sizeof(int) * B);
    cudaStream_t st = s->stream;
    if (meta_upload(s, 3 * (size_t)B)) return -1;
    const int sampled = params != NULL;
    if (sampled) { /* pageable copies: synchronous with respect to the host arrays */
        CUDA_CHECK(cudaMemcpyAsync(s->d_params, params, sizeof(gpu_sample_params) * B, cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaMemcpyAsync(s->d_steps, steps, sizeof(uint64_t) * B, cudaMemcpyHostToDevice, st));
    }
    CUDA_CHECK(cudaMemsetAsync(s->d_nan, 0, sizeof(int) * B, st));
    const char *ng = getenv("DUET_NO_GRAPHS");
    cudaGraphExec_t ex = NULL;
    if (!be->tap && !(ng && *ng && strcmp(ng, "0"))) {
        CUDA_CHECK(cudaStreamSynchronize(st)); /* h_meta is reused by the capture's host code */
        if (!(ex = step_graph(be, B, max_len, sampled))) return -1;
    }
    for (int i = 0; i < n_steps; i++) {
        if (ex) CUDA_CHECK(cudaGraphLaunch(ex, st));
        else if (decode_step(be, B, max_len, sampled)) return -1;
    }
    if (sampled) CUDA_CHECK(cudaMemcpyAsync(steps, s->d_steps, sizeof(uint64_t) * B, cudaMemcpyDeviceToHost, st));
    int *hist = (int *)malloc(sizeof(int) * ((size_t)s->o.max_seqs * C + B)); /* then the B NaN flags */
    if (!hist) {
        cudaStreamSynchronize(st); /* steps[] may still be written */
        return duet_errorf("gpu_backend_decode: out of host memory");
    }
    cudaError_t e = cudaMemcpyAsync(hist, s->d_hist, sizeof(int) * (size_t)s->o.max_seqs * C, cudaMemcpyDeviceToHost, st);
    int *nan = hist + (size_t)s->o.max_seqs * C;
    if (e == cudaSuccess) e = cudaMemcpyAsync(nan, s->d_nan, sizeof(int) * B, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess)
        for (int i = 0; i < n_steps; i++)
            for (int b = 0; b < B; b++) out_ids[(size_t)i * B + b] = hist[(size_t)seq[b] * C + pos[b] + i];
    int nan_slot = -1;
    for (int b = 0; e == cudaSuccess && b < B && nan_slot < 0; b++)
        if (nan[b]) nan_slot = b;
    free(hist);
    CUDA_CHECK(e);
    if (nan_slot >= 0)
        return duet_errorf("gpu decode: the logits of slot %d hold NaN at a step of positions %d..%d: the forward "
                           "pass broke down (NaN weights or activations out of range); no token can be drawn",
                           seq[nan_slot], pos[nan_slot], pos[nan_slot] + n_steps - 1);
    return 0;
}

/* The seam's decode (backend.h): the samplers' settings and counters through gpu_backend_decode. */
static int gpu_decode_seam(duet_backend *be, int B, const int *seq, const int *pos, const int *tok, int n_steps,
                           duet_sampler *const *samplers, int *out_ids)
{
    gpu_sample_params *p = (gpu_sample_params *)malloc(sizeof *p * (size_t)(B > 0 ? B : 1));
    uint64_t *steps = (uint64_t *)malloc(sizeof *steps * (size_t)(B > 0 ? B : 1));
    int rc = -1;
    if (!p || !steps) {
        duet_errorf("gpu decode: out of host memory");
    } else {
        for (int b = 0; b < B; b++) {
            p[b].temperature = samplers[b]->temperature;
            p[b].top_k = samplers[b]->top_k;
            p[b].top_p = samplers[b]->top_p;
            p[b].seed = samplers[b]->seed;
            steps[b] = samplers[b]->step;
        }
        rc = gpu_backend_decode(be, B, seq, pos, tok, n_steps, p, steps, out_ids);
        if (!rc)
            for (int b = 0; b < B; b++) samplers[b]->step = steps[b];
    }
    free(p);
    free(steps);
    return rc;
}

/* The seam's forward_sample: the batch's layers, lm_head on the drawn rows, one draw per row with its own
 * sampler on the device (gpu_sample: duet_sample's draws; temperature 0 is its argmax), and the NaN check of
 * those rows; only the ids and the draw counters cross back. */
static int gpu_forward_sample(duet_backend *be, const duet_batch *b, duet_sampler *const *samplers, int *ids)
{
    if (be->tap) return duet_errorf("gpu forward_sample: taps are set (use forward)");
    gpu_state *s = (gpu_state *)be->impl;
    const duet_config *c = &s->c;
    int R = 0, max_len = 0;
    if (prepare_batch(s, b, &R, &max_len)) return -1;
    const int T = b->n_tokens, D = c->dim, V = c->vocab_size;
    cudaStream_t st = s->stream;
    if (ensure_logits(s, R ? R : 1) || run_layers(be, T, max_len, b)) return -1;
    if (R == 0) return 0;
    const void *xs = s->xn;
    if (b->logits_for) {
        if (gpu_gather_rows(s->xsel, s->xn, s->d_meta + 3 * T, R, D, s->dt, st)) return -1;
        xs = s->xsel;
    }
    if (gpu_gemm(s->gemm, s->logits, 1, xs, &s->lm_head_w, R, V, D, s->dt, st)) return -1;
    /* host copies of the rows' settings, then the draw (pageable copies: synchronous for the host arrays) */
    gpu_sample_params *p = (gpu_sample_params *)malloc(sizeof *p * (size_t)R);
    uint64_t *steps = (uint64_t *)malloc(sizeof *steps * (size_t)R);
    int *nan = (int *)malloc(sizeof *nan * (size_t)R);
    if (!p || !steps || !nan) {
        free(p), free(steps), free(nan);
        return duet_errorf("gpu forward_sample: out of host memory for %d rows", R);
    }
    for (int r = 0; r < R; r++) {
        p[r].temperature = samplers[r]->temperature;
        p[r].top_k = samplers[r]->top_k;
        p[r].top_p = samplers[r]->top_p;
        p[r].seed = samplers[r]->seed;
        steps[r] = samplers[r]->step;
    }
    cudaError_t e = cudaMemcpyAsync(s->d_params, p, sizeof *p * (size_t)R, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemcpyAsync(s->d_steps, steps, sizeof *steps * (size_t)R, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemsetAsync(s->d_nan, 0, sizeof(int) * (size_t)R, st);
    int rc = e == cudaSuccess ? gpu_sample(s->d_ids, s->logits, R, V, s->d_params, s->d_steps, s->d_sample_ws, st) : 0;
    if (e == cudaSuccess && !rc) {
        nan_rows_kernel<<<R, 256, 0, st>>>(s->d_nan, s->logits, V);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess && !rc) e = cudaMemcpyAsync(ids, s->d_ids, sizeof(int) * (size_t)R, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess && !rc)
        e = cudaMemcpyAsync(steps, s->d_steps, sizeof *steps * (size_t)R, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess && !rc) e = cudaMemcpyAsync(nan, s->d_nan, sizeof(int) * (size_t)R, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    int bad = -1;
    if (e == cudaSuccess && !rc)
        for (int r = 0; r < R && bad < 0; r++) {
            if (nan[r]) bad = r;
            else samplers[r]->step = steps[r];
        }
    free(p), free(steps), free(nan);
    CUDA_CHECK(e);
    if (rc) return -1;
    if (bad >= 0) { /* batch row of drawn row `bad` */
        const int t = s->h_meta[3 * T + bad];
        return duet_errorf("gpu: the logits of slot %d at position %d hold NaN: the forward pass broke down (NaN "
                           "weights or activations out of range); no token can be drawn",
                           b->seq[t], b->pos[t]);
    }
    return 0;
}

/* ---- create / free ---------------------------------------------------------------------------- */

static void gpu_backend_release(duet_backend *be)
{
    gpu_state *s = (gpu_state *)be->impl;
    if (s) {
        if (s->stream) cudaStreamSynchronize(s->stream);
        drop_graphs(s);
        gpu_free(s->abuf);
        gpu_free(s->lbuf);
        gpu_free(s->kv);
        gpu_free(s->d_kv_scales);
        gpu_w8a8_model_free(s->w8);
        gpu_free(s->d_table);
        gpu_free(s->d_hist);
        gpu_free(s->wbuf);
        if (s->h_meta) cudaFreeHost(s->h_meta);
        if (s->h_table) cudaFreeHost(s->h_table);
        gpu_gemm_free(s->gemm);
        if (s->meta_up) cudaEventDestroy(s->meta_up);
        if (s->table_up) cudaEventDestroy(s->table_up);
        if (s->stream) cudaStreamDestroy(s->stream);
        gpu_block_mgr_free(&s->blocks);
        free(s->table);
        free(s->layers);
        free(s->h_raw);
        free(s->h_f32);
        free(s);
    }
    free(be);
}

/* Adds a table entry laid out as plan p; returns its device pointer. */
static void *add_weight(gpu_state *s, size_t *next, const char *name, const gpu_wplan *p)
{
    gpu_weight *w = &s->table[s->n_weights++];
    snprintf(w->name, sizeof w->name, "%s", name);
    w->ptr = (char *)s->wbuf + *next;
    w->bytes = gpu_wplan_bytes(p, s->dt);
    *next += (w->bytes + 255) & ~(size_t)255;
    return w->ptr;
}

/* The weight entries of a config, in table order: per layer attn_norm, wqkv, wo, ffn_norm, w_gate_up,
 * w_down; then embed, final_norm, lm_head (untied only). Each layer entry has its own plan (a GGUF file
 * may store layers in different types); the norms, the embedding and lm_head are always dense. */
#define N_LAYER_ENTRIES 6
static const char *const LAYER_ENTRY[N_LAYER_ENTRIES] = {"attn_norm", "wqkv", "wo", "ffn_norm", "w_gate_up", "w_down"};
static const char *const TAIL_ENTRY[3] = {"embed", "final_norm", "lm_head"};

/* The dense plans of every entry: [L * 6] layer entries, then [3] tail entries (lm_head N = 0 when tied). */
static void dense_plans(const duet_config *c, gpu_wplan *lp, gpu_wplan *tp)
{
    int64_t D = c->dim, F = c->ffn_dim, Hd = (int64_t)c->n_heads * c->head_dim,
            Q = (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim, V = c->vocab_size;
    const int64_t NK[N_LAYER_ENTRIES][2] = {{1, D}, {Q, D}, {D, Hd}, {1, D}, {2 * F, D}, {D, F}};
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_ENTRIES; i++) lp[l * N_LAYER_ENTRIES + i] = {GPU_W_DENSE, 0, 0, NK[i][0], NK[i][1]};
    tp[0] = {GPU_W_DENSE, 0, 0, V, D};
    tp[1] = {GPU_W_DENSE, 0, 0, 1, D};
    tp[2] = {GPU_W_DENSE, 0, 0, c->tie_embeddings ? 0 : V, D};
}

static size_t plans_bytes(const gpu_wplan *lp, int n_lp, const gpu_wplan *tp, gpu_dtype dt, size_t *dq_bytes)
{
    size_t total = 0;
    *dq_bytes = 0;
    for (int i = 0; i < n_lp; i++) {
        total += (gpu_wplan_bytes(&lp[i], dt) + 255) & ~(size_t)255;
        size_t dq = (size_t)lp[i].N * lp[i].K * gpu_dtype_size(dt);
        if (lp[i].fmt != GPU_W_DENSE && dq > *dq_bytes) *dq_bytes = dq;
    }
    for (int i = 0; i < 3; i++) total += (gpu_wplan_bytes(&tp[i], dt) + 255) & ~(size_t)255;
    return total;
}

/* Places entry i of layer l (its device region p) into the layer's slots. */
static void place_layer_entry(gpu_state *s, int l, int i, const gpu_wplan *plan, void *p)
{
    gpu_layer *g = &s->layers[l];
    gpu_wdesc *slots[N_LAYER_ENTRIES] = {NULL, &g->wqkv, &g->wo, NULL, &g->wgu, &g->w_down};
    if (i == 0) g->attn_norm = p;
    else if (i == 3) g->ffn_norm = p;
    else gpu_wplan_place(plan, p, s->dt, slots[i]);
}

/* After the weights are placed: whether the fused decode GEMVs take every layer's weights. */
static void set_fuse_ok(gpu_state *s)
{
    const duet_config *c = &s->c;
    const int D = c->dim, F = c->ffn_dim, Hd = c->n_heads * c->head_dim;
    for (int T = 1; T <= 2; T++) {
        int ok = 1;
        for (int l = 0; l < c->n_layers && ok; l++) {
            const gpu_layer *w = &s->layers[l];
            ok = gpu_gemv_fused_ok(s->gemm, &w->wqkv, T, D, s->dt) && gpu_gemv_fused_ok(s->gemm, &w->wo, T, Hd, s->dt) &&
                 gpu_gemv_fused_ok(s->gemm, &w->wgu, T, D, s->dt) && gpu_gemv_fused_ok(s->gemm, &w->w_down, T, F, s->dt);
        }
        s->fuse_ok[T] = ok;
    }
}

/* The engine without weights: checks, device query, memory plan, stream, cuBLAS, KV cache, the weight
 * allocation and its (empty) table. */
/* The summary's note of batch-invariant mode. */
static void note_invariant(duet_backend *be)
{
    const gpu_state *s = (const gpu_state *)be->impl;
    size_t n = strlen(be->summary);
    if (s->o.batch_invariant && n < sizeof be->summary)
        snprintf(be->summary + n, sizeof be->summary - n,
                 "; batch-invariant (pinned cuBLASLt products, no fused GEMV, attention without split-K)");
    n = strlen(be->summary);
    if (s->o.kv_mode && n < sizeof be->summary)
        snprintf(be->summary + n, sizeof be->summary - n, "; %s KV cache (calibrated scales per layer and kv head)",
                 duet_kv_mode_name((duet_kv_mode)s->o.kv_mode));
}

static duet_backend *engine_new(const duet_config *c, const duet_backend_opts *opts, size_t wbytes, size_t dq_bytes)
{
    gpu_dtype dt;
    if (gpu_dtype_parse(opts->dtype, &dt)) return NULL;
    char why[256];
    if (gpu_device_count(why, sizeof why) == 0) {
        duet_errorf("gpu backend: no CUDA device (%s)", why);
        return NULL;
    }
    if (opts->max_seqs <= 0 || opts->max_ctx <= 0 || opts->max_ctx > c->max_pos) {
        duet_errorf("gpu: max_seqs %d / max_ctx %d invalid (the model has %d positions)", opts->max_seqs, opts->max_ctx,
                    c->max_pos);
        return NULL;
    }
    if (opts->kv_mode < DUET_KV_F || opts->kv_mode > DUET_KV_FP8) {
        duet_errorf("gpu: KV cache mode %d unknown (none, int8, fp8)", opts->kv_mode);
        return NULL;
    }
    if (opts->kv_mode && c->head_dim % 8) { /* only the vectorized decode kernel reads codes */
        duet_errorf("gpu: the %s KV cache needs head_dim a multiple of 8 (the attention kernel that reads codes "
                    "loads 8 per lane); this model's head_dim is %d",
                    duet_kv_mode_name((duet_kv_mode)opts->kv_mode), c->head_dim);
        return NULL;
    }
    for (int i = 0; opts->kv_mode && i < 2 * c->n_layers * c->n_kv_heads; i++)
        if (!opts->kv_scales || !(opts->kv_scales[i] > 0.0f) || !isfinite(opts->kv_scales[i])) {
            duet_errorf("gpu: the %s KV cache needs a positive, finite scale per layer and kv head (scale %d is %s)",
                        duet_kv_mode_name((duet_kv_mode)opts->kv_mode), i, opts->kv_scales ? "not" : "none given");
            return NULL;
        }
    if (opts->w8a8 && opts->w8a8->mode != DUET_W8A8_SQ && !gpu_f8_supported()) return NULL;
    if (c->head_dim > GPU_ATTN_MAX_D || c->head_dim % 2) {
        duet_errorf("gpu: head_dim %d unsupported (even, at most %d)", c->head_dim, GPU_ATTN_MAX_D);
        return NULL;
    }
    {
        double block_b =
            2.0 * c->n_layers * GPU_KV_BLOCK * c->n_kv_heads * c->head_dim * gpu_kv_elem_size(opts->kv_mode, dt);
        if (opts->kv_budget < 0 || (opts->kv_budget > 0 && (double)opts->kv_budget < block_b)) {
            duet_errorf("gpu: kv_budget %lld bytes holds no KV block (one block of %d positions takes %.0f bytes)",
                        (long long)opts->kv_budget, GPU_KV_BLOCK, block_b);
            return NULL;
        }
    }
    duet_backend *be = (duet_backend *)calloc(1, sizeof *be);
    gpu_state *s = (gpu_state *)calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        duet_errorf("gpu: out of host memory");
        return NULL;
    }
    be->name = "gpu";
    be->impl = s;
    be->forward = gpu_forward;
    be->decode = gpu_decode_seam;
    be->forward_sample = gpu_forward_sample;
    be->release = gpu_release_seq;
    be->free = gpu_backend_release;
    s->c = *c;
    be->cfg = &s->c;
    s->o = *opts;
    s->dt = dt;
    const int L = c->n_layers;
    int dev = 0;
    cudaDeviceProp prop;
    size_t free_b = 0, total_b = 0;
    int blocks_per_seq = (opts->max_ctx + GPU_KV_BLOCK - 1) / GPU_KV_BLOCK;
    /* The pool: kv_budget bytes of blocks (K and V of every layer, GPU_KV_BLOCK positions), at most every
     * slot full; 0: every slot full. */
    double block_d = 2.0 * L * GPU_KV_BLOCK * c->n_kv_heads * c->head_dim * gpu_kv_elem_size(opts->kv_mode, dt);
    double n_blocks_d = (double)opts->max_seqs * blocks_per_seq;
    if (opts->kv_budget > 0 && (double)(opts->kv_budget / (int64_t)block_d) < n_blocks_d)
        n_blocks_d = (double)(opts->kv_budget / (int64_t)block_d);
    double kv_d = n_blocks_d * block_d;
    double table_d = (double)opts->max_seqs * blocks_per_seq * sizeof(int);
    double hist_d = (double)opts->max_seqs * opts->max_ctx * sizeof(int);
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess ||
        cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaError_t e = cudaGetLastError();
        duet_errorf("gpu: cannot query the device: %s", cudaGetErrorString(e));
        goto fail;
    }
    s->n_sm = prop.multiProcessorCount;
    if (!(opts->kv_fraction >= 0.0 && opts->kv_fraction <= 1.0)) {
        duet_errorf("gpu: kv_fraction %g is outside [0, 1]", opts->kv_fraction);
        goto fail;
    }
    if (opts->kv_budget == 0 && opts->kv_fraction > 0.0) {
        /* a share of the device memory left once the weights, the dequantization workspace, the tables and
         * the 96 MiB of activations and cuBLAS workspace are placed; at most every slot full */
        double avail = (double)free_b - ((double)wbytes + dq_bytes + table_d + hist_d + 96.0 * 1048576);
        double n = avail > 0 ? floor(opts->kv_fraction * avail / block_d) : 0.0;
        if (n < 1.0) {
            duet_errorf("gpu: kv_fraction %g of the %.1f MiB left after the weights holds no KV block (%.0f bytes)",
                        opts->kv_fraction, MiB(avail > 0 ? avail : 0), block_d);
            goto fail;
        }
        if (n < n_blocks_d) n_blocks_d = n;
        kv_d = n_blocks_d * block_d;
    }
    {
        const char *nf = getenv("DUET_NO_FUSE");
        s->no_fuse = nf && *nf && strcmp(nf, "0");
        /* batch-invariant: the fused GEMVs reduce in another order than the products of larger batches;
         * SmoothQuant: its products are not GEMVs */
        if (opts->batch_invariant || opts->w8a8) s->no_fuse = 1;
    }
    {
        double need = (double)wbytes + dq_bytes + kv_d + table_d + hist_d + 96.0 * 1048576; /* + activations, cuBLAS */
        if (need > (double)free_b || (double)opts->max_seqs * blocks_per_seq > 2147483647.0) {
            duet_errorf("gpu: not enough GPU memory: weights %.1f MiB (%s) + %.1f MiB of dequantization workspace + KV "
                        "cache %.1f MiB (%.0f blocks of %d positions; max_seqs %d x max_ctx %d, %d layers, %s) + 96 MiB "
                        "of workspace = %.1f MiB, but %s has %.1f MiB free of %.1f MiB; lower max_seqs, max_ctx or "
                        "kv_budget",
                        MiB(wbytes), gpu_dtype_name(dt), MiB(dq_bytes), MiB(kv_d), n_blocks_d, GPU_KV_BLOCK,
                        opts->max_seqs, opts->max_ctx, L, gpu_dtype_name(dt), MiB(need), prop.name, MiB(free_b),
                        MiB(total_b));
            goto fail;
        }
    }
    s->n_blocks = (int)n_blocks_d;
    be->kv_block = GPU_KV_BLOCK;
    be->kv_blocks = s->n_blocks;
    s->kv_bytes = (size_t)kv_d;
    if (cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess) {
        duet_errorf("gpu: cudaStreamCreate failed: %s", cudaGetErrorString(cudaGetLastError()));
        goto fail;
    }
    if (cudaEventCreateWithFlags(&s->meta_up, cudaEventDisableTiming) != cudaSuccess) {
        duet_errorf("gpu: cudaEventCreate failed: %s", cudaGetErrorString(cudaGetLastError()));
        s->meta_up = NULL;
        goto fail;
    }
    if (cudaEventCreateWithFlags(&s->table_up, cudaEventDisableTiming) != cudaSuccess) {
        duet_errorf("gpu: cudaEventCreate failed: %s", cudaGetErrorString(cudaGetLastError()));
        s->table_up = NULL;
        goto fail;
    }
    if (!(s->gemm = gpu_gemm_create()) || gpu_gemm_reserve_dequant(s->gemm, dq_bytes) ||
        (opts->batch_invariant && gpu_gemm_set_invariant(s->gemm)))
        goto fail;
    if (gpu_block_mgr_init(&s->blocks, s->n_blocks, opts->max_seqs, opts->max_ctx)) goto fail;
    if (!(s->wbuf = gpu_alloc(wbytes)) || !(s->kv = gpu_alloc(s->kv_bytes)) ||
        !(s->d_table = (int *)gpu_alloc((size_t)table_d)) || !(s->d_hist = (int *)gpu_alloc((size_t)hist_d))) {
        duet_error_prefix("gpu: weights %.1f MiB + KV cache %.1f MiB (%.1f MiB free before): ", MiB(wbytes),
                          MiB(s->kv_bytes), MiB(free_b));
        goto fail;
    }
    if (cudaMallocHost((void **)&s->h_table, (size_t)table_d) != cudaSuccess) {
        cudaGetLastError();
        s->h_table = NULL;
        duet_errorf("gpu: no pinned host memory for the %.1f MiB block table", MiB((size_t)table_d));
        goto fail;
    }
    if (opts->kv_mode) {
        size_t nb = sizeof(float) * 2 * (size_t)L * c->n_kv_heads;
        if (!(s->d_kv_scales = (float *)gpu_alloc(nb))) goto fail;
        if (cudaMemcpy(s->d_kv_scales, opts->kv_scales, nb, cudaMemcpyHostToDevice) != cudaSuccess) {
            duet_errorf("gpu: uploading the KV cache scales: %s", cudaGetErrorString(cudaGetLastError()));
            goto fail;
        }
    }
    s->wbytes = wbytes;
    s->table = (gpu_weight *)calloc(3 + N_LAYER_ENTRIES * (size_t)L, sizeof(gpu_weight));
    s->layers = (gpu_layer *)calloc(L, sizeof(gpu_layer));
    if (!s->table || !s->layers) {
        duet_errorf("gpu: out of host memory");
        goto fail;
    }
    return be;
fail:
    gpu_backend_release(be);
    return NULL;
}

duet_backend *gpu_backend_create(const duet_model *m, const duet_backend_opts *opts)
{
    const duet_config *c = &m->cfg;
    const int L = c->n_layers;
    gpu_dtype dt;
    if (gpu_dtype_parse(opts->dtype, &dt)) return NULL;
    /* plans: each layer entry in its parts' common quantized format where the kernels take it */
    gpu_wplan *lp = (gpu_wplan *)malloc(sizeof(gpu_wplan) * N_LAYER_ENTRIES * (size_t)L), tp[3];
    if (!lp) {
        duet_errorf("gpu: out of host memory");
        return NULL;
    }
    dense_plans(c, lp, tp);
    int n_quant = 0, n_mats = 0;
    for (int l = 0; l < L; l++) {
        const duet_layer_weights *w = &m->layers[l];
        const st_tensor *parts[N_LAYER_ENTRIES][3] = {{w->attn_norm}, {w->wq, w->wk, w->wv}, {w->wo},
                                                      {w->ffn_norm},  {w->w_gate, w->w_up},  {w->w_down}};
        const int ns[N_LAYER_ENTRIES] = {1, 3, 1, 1, 2, 1};
        for (int i = 0; i < N_LAYER_ENTRIES; i++) {
            if (i == 0 || i == 3) continue;
            gpu_wplan p = gpu_wplan_of(parts[i], ns[i], dt);
            n_mats++;
            if (p.fmt != GPU_W_DENSE) lp[l * N_LAYER_ENTRIES + i] = p, n_quant++;
        }
    }
    size_t dq_bytes = 0, wbytes = plans_bytes(lp, N_LAYER_ENTRIES * L, tp, dt, &dq_bytes);
    duet_backend *be = engine_new(c, opts, wbytes, dq_bytes);
    if (!be) {
        free(lp);
        return NULL;
    }
    be->model = m;
    gpu_state *s = (gpu_state *)be->impl;
    size_t biggest = 0, biggest_numel = 0, next = 0;
    for (int i = 0; i < N_LAYER_ENTRIES * L; i++) {
        size_t b = gpu_wplan_bytes(&lp[i], dt);
        biggest = b > biggest ? b : biggest;
        biggest_numel = (size_t)(lp[i].N * lp[i].K) > biggest_numel ? (size_t)(lp[i].N * lp[i].K) : biggest_numel;
    }
    for (int i = 0; i < 3; i++) {
        size_t b = gpu_wplan_bytes(&tp[i], dt);
        biggest = b > biggest ? b : biggest;
        biggest_numel = (size_t)(tp[i].N * tp[i].K) > biggest_numel ? (size_t)(tp[i].N * tp[i].K) : biggest_numel;
    }
    /* upload: each entry staged on the host in its device layout, fused q|k|v and gate|up rows stacked */
    char *host = (char *)malloc(biggest);
    float *tmp = (float *)malloc(biggest_numel * sizeof(float));
    if (!host || !tmp) {
        duet_errorf("gpu: out of host memory staging the weights");
        goto fail;
    }
    for (int l = 0; l < L; l++) {
        const duet_layer_weights *w = &m->layers[l];
        const st_tensor *parts[N_LAYER_ENTRIES][3] = {{w->attn_norm}, {w->wq, w->wk, w->wv}, {w->wo},
                                                      {w->ffn_norm},  {w->w_gate, w->w_up},  {w->w_down}};
        const int ns[N_LAYER_ENTRIES] = {1, 3, 1, 1, 2, 1};
        for (int i = 0; i < N_LAYER_ENTRIES; i++) {
            const gpu_wplan *pl = &lp[l * N_LAYER_ENTRIES + i];
            char name[64];
            snprintf(name, sizeof name, "layers.%d.%s", l, LAYER_ENTRY[i]);
            void *p = add_weight(s, &next, name, pl);
            if (gpu_wplan_stage(pl, parts[i], ns[i], dt, host, tmp)) goto fail;
            if (cudaMemcpy(p, host, gpu_wplan_bytes(pl, dt), cudaMemcpyHostToDevice) != cudaSuccess) {
                duet_errorf("gpu: uploading %s: %s", name, cudaGetErrorString(cudaGetLastError()));
                goto fail;
            }
            place_layer_entry(s, l, i, pl, p);
        }
    }
    {
        const st_tensor *tails[3] = {m->embed, m->final_norm, m->lm_head};
        void **dst[3] = {&s->embed, &s->final_norm, &s->lm_head};
        for (int i = 0; i < (c->tie_embeddings ? 2 : 3); i++) {
            void *p = add_weight(s, &next, TAIL_ENTRY[i], &tp[i]);
            if (gpu_wplan_stage(&tp[i], &tails[i], 1, dt, host, tmp)) goto fail;
            if (cudaMemcpy(p, host, gpu_wplan_bytes(&tp[i], dt), cudaMemcpyHostToDevice) != cudaSuccess) {
                duet_errorf("gpu: uploading %s: %s", TAIL_ENTRY[i], cudaGetErrorString(cudaGetLastError()));
                goto fail;
            }
            *dst[i] = p;
        }
        if (c->tie_embeddings) s->lm_head = s->embed;
        s->lm_head_w = gpu_wdesc_dense(s->lm_head);
    }
    if (next > s->wbytes) {
        duet_errorf("gpu: internal: weight table overflows its allocation (%zu > %zu)", next, s->wbytes);
        goto fail;
    }
    set_fuse_ok(s);
    free(host);
    free(tmp);
    host = NULL, tmp = NULL;
    if (opts->w8a8 && !(s->w8 = gpu_w8a8_model_upload(opts->w8a8, c, dt))) goto fail_be;
    if (ensure_capacity(s, 64)) goto fail_be;
    {
        char types[96];
        duet_model_weight_types(m, types, sizeof types);
        const char *dts = dt == GPU_BF16 ? "bf16" : "fp16";
        s->weights = n_quant ? m->weights : DUET_Q_NONE;
        if (n_quant)
            snprintf(be->summary, sizeof be->summary,
                     "gpu: %s activations; weights stored as %s; %d of %d layer matrices run weight-only quantized (%s "
                     "codes, fp16 scales), the rest and the embedding converted to %s on upload",
                     dts, types, n_quant, n_mats, m->weights ? duet_qmode_get(m->weights)->name : "per-matrix", dts);
        else
            snprintf(be->summary, sizeof be->summary, "gpu: %s; weights stored as %s, converted to %s on upload%s", dts,
                     types, dts, strstr(types, "Q") ? " (their types have no weight-only kernel: dequantized)" : "");
    }
    if (s->w8) {
        size_t n = strlen(be->summary);
        if (s->w8->mode == DUET_W8A8_SQ)
            snprintf(be->summary + n, sizeof be->summary - n,
                     "; SmoothQuant W8A8 (alpha %.2f): int8 products on the tensor cores, activations int8 per token",
                     opts->w8a8->alpha);
        else
            snprintf(be->summary + n, sizeof be->summary - n,
                     "; FP8 W8A8 (%s): E4M3 products on the tensor cores, activations E4M3 %s",
                     duet_w8a8_mode_name((duet_w8a8_mode)s->w8->mode),
                     s->w8->mode == DUET_W8A8_FP8 ? "per token" : "with calibrated static scales");
    }
    note_invariant(be);
    free(lp);
    return be;
fail:
    free(host);
    free(tmp);
fail_be:
    free(lp);
    gpu_backend_release(be);
    return NULL;
}

duet_backend *gpu_backend_create_random(const duet_config *c, const duet_backend_opts *opts, uint64_t seed,
                                        int weights)
{
    const int L = c->n_layers;
    gpu_dtype dt;
    if (gpu_dtype_parse(opts->dtype, &dt)) return NULL;
    if (opts->w8a8 && weights != DUET_Q_NONE) {
        duet_errorf("gpu: W8A8 replaces the layer matrices: give weights none with it, not %s",
                    duet_qmode_get((duet_qmode)weights)->name);
        return NULL;
    }
    gpu_wplan *lp = (gpu_wplan *)malloc(sizeof(gpu_wplan) * N_LAYER_ENTRIES * (size_t)L), tp[3];
    if (!lp) {
        duet_errorf("gpu: out of host memory");
        return NULL;
    }
    dense_plans(c, lp, tp);
    for (int l = 0; l < L && weights != DUET_Q_NONE; l++)
        for (int i = 0; i < N_LAYER_ENTRIES; i++) {
            gpu_wplan *p = &lp[l * N_LAYER_ENTRIES + i];
            if (i == 0 || i == 3) continue;
            gpu_wplan q = gpu_wplan_of_mode(weights, p->N, p->K);
            gpu_wdesc d = {q.fmt, q.group, (const void *)(uintptr_t)256, (const uint16_t *)(uintptr_t)256, NULL,
                           (const uint16_t *)(uintptr_t)256};
            if (duet_qmode_check_k((duet_qmode)weights, p->K, LAYER_ENTRY[i]) < 0 ||
                gpu_wdesc_check(&d, p->N, p->K, dt, LAYER_ENTRY[i])) {
                free(lp);
                return NULL;
            }
            *p = q;
        }
    size_t dq_bytes = 0, wbytes = plans_bytes(lp, N_LAYER_ENTRIES * L, tp, dt, &dq_bytes);
    duet_backend *be = engine_new(c, opts, wbytes, dq_bytes);
    if (!be) {
        free(lp);
        return NULL;
    }
    gpu_state *s = (gpu_state *)be->impl;
    size_t next = 0;
    /* as common/synth.c: matrices std 1/sqrt(in), embedding 1, lm_head 4/sqrt(D), norms 1 + 0.1 noise */
    const float in_of[N_LAYER_ENTRIES] = {0, (float)c->dim, (float)c->n_heads * c->head_dim, 0, (float)c->dim,
                                          (float)c->ffn_dim};
    uint64_t stream = 1;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < N_LAYER_ENTRIES; i++, stream++) {
            const gpu_wplan *pl = &lp[l * N_LAYER_ENTRIES + i];
            char name[64];
            snprintf(name, sizeof name, "layers.%d.%s", l, LAYER_ENTRY[i]);
            void *p = add_weight(s, &next, name, pl);
            float mean = in_of[i] > 0 ? 0.0f : 1.0f, std = in_of[i] > 0 ? 1.0f / sqrtf(in_of[i]) : 0.1f;
            if (gpu_wplan_fill_random(pl, p, s->dt, seed, stream, mean, std, s->stream)) goto fail;
            place_layer_entry(s, l, i, pl, p);
        }
    {
        void **dst[3] = {&s->embed, &s->final_norm, &s->lm_head};
        const float mean[3] = {0.0f, 1.0f, 0.0f}, std[3] = {1.0f, 0.1f, 4.0f / sqrtf((float)c->dim)};
        for (int i = 0; i < (c->tie_embeddings ? 2 : 3); i++, stream++) {
            void *p = add_weight(s, &next, TAIL_ENTRY[i], &tp[i]);
            if (gpu_fill_random(p, tp[i].N * tp[i].K, s->dt, seed, stream, mean[i], std[i], s->stream)) goto fail;
            *dst[i] = p;
        }
        if (c->tie_embeddings) s->lm_head = s->embed;
        s->lm_head_w = gpu_wdesc_dense(s->lm_head);
    }
    if (cudaStreamSynchronize(s->stream) != cudaSuccess) {
        duet_errorf("gpu: filling random weights: %s", cudaGetErrorString(cudaGetLastError()));
        goto fail;
    }
    set_fuse_ok(s);
    s->weights = (duet_qmode)weights;
    /* W8A8 (the bench's duet_w8a8_random: seeded codes and scales made on the host) runs in place of the
     * dense layer matrices, which stay allocated */
    if (opts->w8a8 && !(s->w8 = gpu_w8a8_model_upload(opts->w8a8, c, dt))) goto fail;
    if (ensure_capacity(s, 64)) goto fail;
    snprintf(be->summary, sizeof be->summary,
             "gpu: %s activations; synthetic model (dim %d, ffn %d, %d layers, %d/%d heads, vocab %d), random weights "
             "made on the GPU, layer matrices %s%s",
             dt == GPU_BF16 ? "bf16" : "fp16", c->dim, c->ffn_dim, L, c->n_heads, c->n_kv_heads, c->vocab_size,
             opts->w8a8 ? "W8A8 " : "",
             opts->w8a8 ? duet_w8a8_mode_name(opts->w8a8->mode)
                        : weights == DUET_Q_NONE ? "dense" : duet_qmode_get((duet_qmode)weights)->name);
    note_invariant(be);
    free(lp);
    return be;
fail:
    free(lp);
    gpu_backend_release(be);
    return NULL;
}

extern "C" int gpu_backend_weight(duet_backend *be, int layer, const char *entry, gpu_wdesc *out, int64_t *N,
                                  int64_t *K)
{
    gpu_state *s = (gpu_state *)be->impl;
    const duet_config *c = &s->c;
    if (layer < 0 || layer >= c->n_layers) return duet_errorf("gpu_backend_weight: layer %d out of range", layer);
    const gpu_layer *g = &s->layers[layer];
    const gpu_wdesc *d[N_LAYER_ENTRIES] = {NULL, &g->wqkv, &g->wo, NULL, &g->wgu, &g->w_down};
    const int64_t D = c->dim, F = c->ffn_dim, Hd = (int64_t)c->n_heads * c->head_dim,
                  Q = (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    const int64_t NK[N_LAYER_ENTRIES][2] = {{1, D}, {Q, D}, {D, Hd}, {1, D}, {2 * F, D}, {D, F}};
    for (int i = 0; i < N_LAYER_ENTRIES; i++)
        if (d[i] && !strcmp(entry, LAYER_ENTRY[i])) {
            *out = *d[i];
            *N = NK[i][0];
            *K = NK[i][1];
            return 0;
        }
    return duet_errorf("gpu_backend_weight: no matrix entry '%s' (wqkv, wo, w_gate_up, w_down)", entry);
}
