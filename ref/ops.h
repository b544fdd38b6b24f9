/* ops.h: the fp32 reference ops of the LLaMA forward pass, one function per op, outputs first and
 * dimensions last. Every tensor is row-major; T = tokens, D = hidden, F = ffn, H = heads,
 * Hk = kv heads, d = head_dim, V = vocab. These are the oracle the GPU kernels are checked against. */
#ifndef DUET_REF_OPS_H
#define DUET_REF_OPS_H

#include <stdint.h>

/* out (T, D) = table (V, D) rows tokens[T]. */
void ref_embedding(float *out, const float *table, const int *tokens, int T, int D);

/* out (T, D) = x / sqrt(mean(x^2) + eps) * w, per row; w (D). HF LlamaRMSNorm. out may alias x. */
void ref_rmsnorm(float *out, const float *x, const float *w, float eps, int T, int D);

/* y (T, N) = x (T, K) . W^T, W (N, K) row-major (nn.Linear layout). */
void ref_matmul(float *y, const float *x, const float *W, int T, int N, int K);

/* The same product one row at a time, each row's sums in an order that depends on (N, K) only, not on
 * T or the row's place in x: a token's result does not depend on its batch (batch_invariant). Slower
 * than ref_matmul's sgemm, which blocks over the rows (see forward.c for the measured cost). */
void ref_matmul_rows(float *y, const float *x, const float *W, int T, int N, int K);

/* acc (T, N) int32 = xc (T, K) . wc (N, K)^T where xc and wc hold int8 codes (-127..127) as floats:
 * exact, equal to smoothquant.h's duet_sq_gemm_i32. Each sgemm covers at most REF_I8_CHUNK columns of K,
 * so every partial sum is an integer below 127^2 * 1024 < 2^24, exact in fp32 whatever the order; the
 * chunks are added in int32. tmp: T N floats. */
#define REF_I8_CHUNK 1024
void ref_matmul_i8(int32_t *acc, const float *xc, const float *wc, int T, int N, int K, float *tmp);

/* In-place RoPE in HF rotate-half layout on x (T, n_heads*d): within each head the pair is (i, i+d/2),
 * angle = pos[t] * theta^(-2i/d). */
void ref_rope(float *x, const int *pos, float theta, int T, int n_heads, int d);

/* One layer of a KV cache as attention reads it: slot s's position p is row p % block of block
 * table[s * blocks_per_slot + p / block]; a block is `block` rows of row_stride floats (Hk*d), blocks
 * lie block_stride floats apart, in k and in v alike. table NULL: slot s is block s (a contiguous cache,
 * (max_ctx, Hk*d) per slot: block = max_ctx, blocks_per_slot = 1, block_stride = max_ctx * Hk*d). */
typedef struct ref_kv_view {
    const float *k, *v;   /* block 0, row 0 of this layer */
    const int *table;     /* [slots * blocks_per_slot] block ids, or NULL */
    int blocks_per_slot, block;
    int64_t block_stride, row_stride;
} ref_kv_view;

/* Offset in floats of (slot seq, position pos) from kv->k (and kv->v): the one place that addresses it. */
static inline int64_t ref_kv_row(const ref_kv_view *kv, int seq, int pos)
{
    int64_t b = kv->table ? kv->table[(int64_t)seq * kv->blocks_per_slot + pos / kv->block] : seq;
    return b * kv->block_stride + (int64_t)(pos % kv->block) * kv->row_stride;
}

/* Causal GQA attention for the T tokens of a packed batch against a KV cache.
 * out (T, H*d); q (T, H*d) after RoPE; token t attends to positions 0..pos[t] of slot seq[t] of kv.
 * Query head h reads kv head h / (H/Hk). Scores are scaled by 1/sqrt(d); softmax in fp32 with max
 * subtraction. scratch: at least (max position + 1) floats. */
void ref_attention(float *out, const float *q, const ref_kv_view *kv, const int *pos, const int *seq, float *scratch,
                   int T, int H, int Hk, int d);

/* act (T, F) = silu(gate) * up, silu(x) = x / (1 + exp(-x)). act may alias gate. */
void ref_swiglu(float *act, const float *gate, const float *up, int T, int F);

/* out (n) = a + b (the residual add). out may alias a. */
void ref_add(float *out, const float *a, const float *b, int64_t n);

#endif
