/* qmma.h: y = x . W^T for weight-only quantized W on tensor cores (mma.sync m16n8k16), for the token
 * counts between the GEMV's and cuBLAS's sweet spots (T = 1..64: decode steps of a batch, short prefill
 * chunks). The weights are exactly the ref's: the MMA multiplies the integer codes (q - z, or q), which
 * fp16 and bf16 hold exactly, and each group's fp32 code product is scaled by s in fp32 afterwards
 * (gpu/qmma.cu says how). gpu_gemm takes it for quantized weights above the GEMV's token counts. */
#ifndef DUET_GPU_QMMA_H
#define DUET_GPU_QMMA_H
#include "gpu.h"
#include "weights.h"
#define QMMA_MAX_T 64 /* the most tokens (rows of x) it takes */
#ifdef __cplusplus
extern "C" {
#endif
/* y (T, N) = x (T, K) . W^T, W (N, K) in GPU_W_I8 / GPU_W_U4 / GPU_W_U4_MIN (weights.h), x in dt (16-byte
 * aligned), y in dt or in fp32 when y_f32 is nonzero; fp32 accumulation; 1 <= T <= 64, K and the group
 * multiples of 32. Deterministic (fixed summation order). -1 + duet_error() on a shape or format it does
 * not take or a launch error. */
int gpu_qmma(void *y, int y_f32, const void *x, const gpu_wdesc *W, int T, int N, int K, gpu_dtype dt,
             gpu_stream s);
/* Whether gpu_qmma takes this product (the same checks, no error recorded). */
int gpu_qmma_ok(const void *x, const gpu_wdesc *W, int T, int N, int K, gpu_dtype dt);
#ifdef __cplusplus
}
#endif
#endif
