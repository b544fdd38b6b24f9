/* gemm_fixed.h: the batch-invariant dense product of gemm.h's invariant mode. Row-major y (T, N) = x (T, K)
 * . W (N, K)^T, x and W in dt, y in dt or fp32, fp32 accumulation, through cuBLASLt with one plan per
 * (N, K, dt, output type), made at the shape's first call and then used for every T:
 *  - S K-slices (gpu_gemm_fixed_slices: a rule of N and K alone). Without a split over K a narrow product
 *    (N 4096: the 7B's o and down projections) has too few output tiles to stream W at a full batch's
 *    decode step; a split whose count varies with T (cuBLAS's split-K) is what makes a row depend on the
 *    batch. Here S is fixed: the S partials are fp32, summed in slice order by one kernel.
 *  - one algorithm: cuBLASLt's heuristic best at T = GEMM_FIXED_T_DECODE among those that reduce over
 *    the slice inside one CTA (reduction scheme none, split-K 1) and also run at T = 1 and
 *    GEMM_FIXED_CHUNK; with S > 1, rows go GEMM_FIXED_CHUNK at a time (the partials' buffer).
 * A tile kernel walks K in the same order for every output element whatever the other rows of its tile
 * are, so row t of y does not depend on T or on the other rows of x. A T the pinned algorithm cannot run
 * is an error naming the shape (never a silent other algorithm). */
#ifndef DUET_GPU_GEMM_FIXED_H
#define DUET_GPU_GEMM_FIXED_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif

#define GEMM_FIXED_T_DECODE 64       /* a decode step of a full batch */
#define GEMM_FIXED_CHUNK 256         /* rows per call when S > 1 */
#define GEMM_FIXED_MAX_SPLIT 4       /* K slices at most */
#define GEMM_FIXED_SPLIT_COLS 16384  /* N S the slices aim for */
#define GEMM_FIXED_MIN_SLICE 64      /* K / S is a multiple of it */
#define GEMM_FIXED_MAX_CANDIDATES 16

typedef struct gpu_gemm_fixed gpu_gemm_fixed;
/* ws: device workspace of ws_bytes the products may use (shared with the caller's cuBLAS calls on the
 * same stream). NULL + duet_error() when cuBLASLt cannot start. */
gpu_gemm_fixed *gpu_gemm_fixed_create(void *ws, size_t ws_bytes);
void gpu_gemm_fixed_free(gpu_gemm_fixed *f);
/* The K slices of an (N, K) product (1, 2 or 4). */
int gpu_gemm_fixed_slices(int N, int K);
/* y (T, N), leading dimension ldy = x (T, K) . W (N, K)^T; the first call of a shape picks its algorithm
 * (host work only: callable while a CUDA graph is being captured). 0 or -1 + duet_error(). */
int gpu_gemm_fixed_nt(gpu_gemm_fixed *f, void *y, int y_f32, int ldy, const void *x, const void *W, int T, int N, int K,
                      gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
