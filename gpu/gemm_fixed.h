/* gemm_fixed.h: the batch-invariant dense product of gemm.h's invariant mode. Row-major y (T, N) = x (T, K)
 * . W (N, K)^T, x and W in dt, y in dt or fp32, fp32 accumulation, through cuBLASLt algorithms that
 * reduce over K inside one CTA (reduction scheme none, split-K 1). A tile kernel walks K in the same order
 * for every output element whatever the other rows of its tile are, so row t of y does not depend on T or
 * on the other rows of x.
 * Algorithms per (N, K, dt, output type) and row-count bucket (T <= 128, <= 1024, more): the anchor is
 * cuBLASLt's heuristic best at 64 rows that also runs at one row; buckets 1 and 2 take the heuristic's
 * best at 256 / 2048 rows whose output equals the anchor's bit for bit on a probe (seeded x, the
 * product's own W; gemm_fixed.cu says how a one-ulp difference shows), run at the plan's first call
 * outside graph capture; until then, or when no candidate matches, the anchor serves every T. So a tile
 * shape that suits a decode step and one that suits a long prompt give the same bits. A T no algorithm
 * can run is an error naming the shape (never a silent other algorithm).
 * Narrow products (few output tiles: N 4096 at a decode step has 64 for 132 SMs) are split over K into
 * S slices by a rule of N and K alone (gpu_gemm_fixed_slices), the same S and slices for every T: the
 * fp32 partials of one strided-batched call, summed in slice order by one kernel. Each output's order
 * of sums is then still fixed by (N, K) and its own row. */
#ifndef DUET_GPU_GEMM_FIXED_H
#define DUET_GPU_GEMM_FIXED_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif

/* the CTAs a split product aims at: one per SM of the H200, counting 64-wide output tiles (2 slices
 * measured faster than 4 for the LLaMA-7B's N 4096 products: gpu/NOTES.md) */
#define GEMM_FIXED_CTAS 132

typedef struct gpu_gemm_fixed gpu_gemm_fixed;
/* the K slices of an (N, K) product: 1, 2 or 4 (N 4096, K 4096 / 11008: 2; N 12288 or 22016: 1) */
int gpu_gemm_fixed_slices(int N, int K);
/* ws: device workspace of ws_bytes the products may use (shared with the caller's cuBLAS calls on the
 * same stream). NULL + duet_error() when cuBLASLt cannot start. */
gpu_gemm_fixed *gpu_gemm_fixed_create(void *ws, size_t ws_bytes);
void gpu_gemm_fixed_free(gpu_gemm_fixed *f);
/* y (T, N), leading dimension ldy = x (T, K) . W (N, K)^T. The first call of a shape picks its anchor
 * (host work only: callable while a CUDA graph is being captured); its first call outside a capture
 * also runs the probe on stream s and waits for it. 0 or -1 + duet_error(). */
int gpu_gemm_fixed_nt(gpu_gemm_fixed *f, void *y, int y_f32, int ldy, const void *x, const void *W, int T, int N, int K,
                      gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
