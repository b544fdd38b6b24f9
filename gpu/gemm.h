/* gemm.h: the matrix products of the forward pass, fp16/bf16 activations and any weight format of
 * weights.h (dense or weight-only quantized): a weight-streaming GEMV kernel for a few tokens, cuBLAS
 * otherwise (quantized weights dequantized to the activation dtype first), fp32 accumulation. */
#ifndef DUET_GPU_GEMM_H
#define DUET_GPU_GEMM_H
#include "gpu.h"
#include "kv_cache.h"
#include "weights.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct gpu_gemm_ctx gpu_gemm_ctx;
gpu_gemm_ctx *gpu_gemm_create(void);
void gpu_gemm_free(gpu_gemm_ctx *g);
/* Largest T that uses the weight-streaming GEMV kernel (0: cuBLAS for every T; at most 8). Default 2 (the
 * measured crossover on an H100),
 * or $DUET_GEMV_MAX_T. */
void gpu_gemm_set_small_t(gpu_gemm_ctx *g, int t);
/* The same for quantized weights (default 8: the GEMV for every T it supports). */
void gpu_gemm_set_small_t_q(gpu_gemm_ctx *g, int t);
/* The largest T of quantized weights that takes the tensor-core gpu_qmma above small_t_q (default
 * QMMA_MAX_T = 64, $DUET_QMMA_MAX_T; 0: none, straight to dequantize + cuBLAS). */
void gpu_gemm_set_qmma_max_t(gpu_gemm_ctx *g, int t);
/* One token of quantized weights: the register GEMV (gemv.cuh), the bulk-copy tensor-core GEMV (gemv_tma.h)
 * wherever it fits, or (the default, $DUET_QGEMV_KERNEL) the bulk-copy one for the formats it measured faster on. */
enum { GPU_QGEMV_REGS = 0, GPU_QGEMV_TMA = 1, GPU_QGEMV_AUTO = 2 };
void gpu_gemm_set_qgemv(gpu_gemm_ctx *g, int kernel);
/* Whether one token of these quantized weights (N, K) takes the bulk-copy GEMV (norm: with the fused
 * RMSNorm input): 0 where the GPU or the build lacks it (compute capability 9.0, gpu_gemv_tma_usable) or
 * the shape or alignment does not fit; the register GEMV then. */
int gpu_gemv_tma_takes(const gpu_wdesc *W, int N, int K, gpu_dtype dt, int norm);
/* 1 when the GPU and this build run the bulk-copy GEMV (sm_90 code on a compute capability 9.0+ GPU). */
int gpu_gemv_tma_usable(void);
/* Batch-invariant mode from now on: every product, whatever T and the weight format, through one pinned
 * cuBLASLt algorithm per shape (gemm_fixed.h; quantized weights dequantized into the reserved workspace
 * first), no GEMV, no qmma, so each row's sums run in one order whatever the batch. 0 or -1 +
 * duet_error(). The fused GEMVs (gpu_gemv_fused) are not invariant: the caller must not use them. */
int gpu_gemm_set_invariant(gpu_gemm_ctx *g);
/* Reserves the workspace the quantized cuBLAS path dequantizes into (the largest N K of dt); call it
 * before any capture, which must not allocate. */
int gpu_gemm_reserve_dequant(gpu_gemm_ctx *g, size_t bytes);
/* y (T, N) = x (T, K) . W^T, W (N, K) row-major (nn.Linear's out x in) as described by *W (weights.h);
 * x in dt; y in dt, or in fp32 when y_f32 is nonzero (the logits). fp32 accumulation. Quantized W with
 * T above the GEMV's range: dequantized to dt into the reserved workspace, then cuBLAS. */
int gpu_gemm(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const gpu_wdesc *W, int T, int N, int K,
             gpu_dtype dt, gpu_stream s);

/* The decode step's fused GEMVs (T = 1 or 2 tokens, at most small_t; K a multiple of the format's
 * 16-byte load and of its group; 16-byte aligned; any weight format):
 * input: x (T, K) in dt, or, when xr is not NULL, rmsnorm(xr) * norm_w of the fp32 residual xr (T, K),
 * applied on the fly (dense weights: the normalized row is not rounded to dt, unlike gpu_add_rmsnorm's
 * output; quantized weights at T = 1: each block normalizes the row once into shared memory, rounded to
 * dt as gpu_add_rmsnorm rounds it);
 * output GPU_GEMV_STORE: y (T, N) in dt = input . W^T, W (N, K);
 *        GPU_GEMV_SWIGLU: y (T, N) in dt = silu(g) * u, with W = [w_gate; w_up] (2N, K) and g, u the two
 *                         products rounded to dt (gpu_swiglu's input);
 *        GPU_GEMV_RESID:  y is the fp32 residual (T, N): y += the product rounded to dt;
 *        GPU_GEMV_ROPE:   (gpu_gemv_fused_rope) y = qkv (T, (H + 2 Hk) d) in dt, W = [wq; wk; wv], with
 *                         RoPE applied to q and k and k, v stored in the paged cache: gpu_rope_kv's result.
 * Launched with programmatic dependent launch when available (cuda_check.h's gpu_launch). */
typedef enum { GPU_GEMV_STORE = 0, GPU_GEMV_SWIGLU = 1, GPU_GEMV_RESID = 2, GPU_GEMV_ROPE = 3 } gpu_gemv_out;
typedef struct gpu_gemv_rope {
    gpu_kv_view kv;        /* this layer's paged cache */
    const int *pos, *seq;  /* (T) device: each token's position and slot */
    float theta;
    int H;                 /* query heads (kv.Hk key/value heads of kv.d) */
} gpu_gemv_rope;
int gpu_gemv_fused_ok(const gpu_gemm_ctx *g, const gpu_wdesc *W, int T, int K, gpu_dtype dt);
int gpu_gemv_fused(gpu_gemm_ctx *g, void *y, gpu_gemv_out out, const void *x, const float *xr, const void *norm_w,
                   float eps, const gpu_wdesc *W, int T, int N, int K, gpu_dtype dt, gpu_stream s);
int gpu_gemv_fused_rope(gpu_gemm_ctx *g, void *y, gpu_gemv_out out, const void *x, const float *xr, const void *norm_w,
                        float eps, const gpu_wdesc *W, int T, int N, int K, const gpu_gemv_rope *rope, gpu_dtype dt,
                        gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
