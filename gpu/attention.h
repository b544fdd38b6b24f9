/* attention.h: causal GQA attention of a packed batch against the paged KV cache (the K/V of the batch
 * itself are already stored by gpu_rope_kv). Token t, query head h attends to positions 0..pos[t] of
 * slot seq[t], kv head h / (H/Hk), scores scaled by 1/sqrt(d), softmax in fp32. d <= 256.
 * gpu_attention: the dispatcher the engine calls. It splits the batch (host pos/seq) into segments, runs
 * of tokens of one slot at consecutive positions: segments of one token (decode) go to the decode
 * kernel, longer ones (prefill, also after a cached prefix) to the tensor-core prefill kernel; without
 * h_pos/h_seq, or for head dims the prefill kernel lacks, everything goes to the decode kernel. A
 * quantized cache (kv.mode int8 / fp8, kv_codes.cuh) is read by the vectorized decode kernel (head_dim %
 * 8 == 0, an error otherwise) and by the prefill kernel.
 * A batch of decode tokens only is one decode launch, as before (graph-friendly). fixed_order: the
 * decode kernel for every token, one split (batch-invariant mode).
 * gpu_attention_decode: one block per (token, group of query heads sharing a kv head), 16-byte K/V
 * loads, online softmax, split-K over long contexts with a reduction (attention_decode.cu); correct for
 * any batch, prefill tokens included.
 * gpu_attention_prefill: every segment (one-token ones too) through the flash-style kernel
 * (attention_prefill.cu: 64 query rows x 64 keys per step, mma.sync, fp32 online softmax); head dims
 * 64 and 128 only, an error otherwise; needs h_pos/h_seq. */
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
    const int *h_pos;  /* (T) host copies of pos, seq: the segment split (NULL: decode kernel only) */
    const int *h_seq;
    /* Nonzero: batch-invariant, every token through the decode kernel without split-K, so a token's
     * softmax and sums run in one order set by its own position alone (not by the batch, the segment it
     * came in or the device's SM count). */
    int fixed_order;
} gpu_attn_params;

/* Workspace floats the decode kernel may need for a batch of T tokens. */
size_t gpu_attention_ws_floats(int T, int H, int d, int n_sm);
int gpu_attention(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s);
int gpu_attention_decode(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s);
/* The decode kernel on batch tokens [t0, t0 + n) only (the rest of out untouched). */
int gpu_attention_decode_range(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s, int t0, int n);
/* The scalar decode kernel (2-byte loads, a block per (token, head)): what gpu_attention_decode uses for
 * d % 8 != 0; kept callable as the reference the decode bench compares with. */
int gpu_attention_decode_scalar(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s);
int gpu_attention_prefill(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
