/* attention.h: causal GQA attention of a packed batch against the paged KV cache (the K/V of the batch
 * itself are already stored by gpu_rope_kv). Token t, query head h attends to positions 0..pos[t] of
 * slot seq[t], kv head h / (H/Hk), scores scaled by 1/sqrt(d), softmax in fp32. d <= 256.
 * gpu_attention_decode: one query row per (token, head) block, online softmax, split-K over long
 * contexts with a reduction (attention_decode.cu); correct for any batch, prefill tokens included, and
 * what the engine uses for every token today. A flash-style prefill on tensor cores (query tiles of
 * one sequence sharing each K/V tile, attention_prefill.cu) is the next step; not written yet. */
#ifndef DUET_GPU_ATTENTION_H
#define DUET_GPU_ATTENTION_H
#include "gpu.h"
#include "kv_cache.h"
#ifdef __cplusplus
extern "C" {
#endif

#define GPU_ATTN_MAX_D 256

typedef struct gpu_attn_params {
    void *out;         /* (T, H d) dt */
    const void *q;     /* rows of stride ldq elements, head h of token t at q + t ldq + h d (after RoPE) */
    int64_t ldq;
    gpu_kv_view kv;    /* this layer's cache */
    const int *pos;    /* (T) device */
    const int *seq;    /* (T) device */
    int T, H;
    int max_len;       /* host: max over the batch of pos[t] + 1 (sizes the split) */
    float *ws;         /* split-K workspace, gpu_attention_ws_floats() floats */
    int n_sm;          /* multiprocessors of the device */
} gpu_attn_params;

/* Workspace floats the decode kernel may need for a batch of T tokens. */
size_t gpu_attention_ws_floats(int T, int H, int d, int n_sm);
int gpu_attention_decode(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
