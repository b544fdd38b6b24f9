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

/* In-place RoPE in HF rotate-half layout on x (T, n_heads*d): within each head the pair is (i, i+d/2),
 * angle = pos[t] * theta^(-2i/d). */
void ref_rope(float *x, const int *pos, float theta, int T, int n_heads, int d);

/* Causal GQA attention for the T tokens of a packed batch against a KV cache.
 * out (T, H*d); q (T, H*d) after RoPE; token t attends to positions 0..pos[t] of its sequence, whose
 * keys/values are kcache/vcache + seq[t] * seq_stride, laid out (max_ctx, Hk*d). Query head h reads
 * kv head h / (H/Hk). Scores are scaled by 1/sqrt(d); softmax in fp32 with max subtraction.
 * scratch: at least (max position + 1) floats. */
void ref_attention(float *out, const float *q, const float *kcache, const float *vcache, const int *pos,
                   const int *seq, int64_t seq_stride, float *scratch, int T, int H, int Hk, int d);

/* act (T, F) = silu(gate) * up, silu(x) = x / (1 + exp(-x)). act may alias gate. */
void ref_swiglu(float *act, const float *gate, const float *up, int T, int F);

/* out (n) = a + b (the residual add). out may alias a. */
void ref_add(float *out, const float *a, const float *b, int64_t n);

#endif
