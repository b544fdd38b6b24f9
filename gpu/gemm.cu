/* gemm.cu: y = x . W^T. The paths, same contract (fp32 accumulation):
 *  - few tokens (T <= small_t, default 2, also for quantized weights; decode steps): a weight-streaming GEMV
 *    kernel (gemv.cuh, instantiated per weight format in gemv_<format>.cu; picked here). Each
 *    warp owns 2 output rows of W and walks K with 16-byte loads, 4 chunks deep (8 loads in flight per
 *    lane), reusing each loaded x chunk for both rows; x (T, K) is tiny and stays in L1/L2. Needs K % 8
 *    == 0 and 16-byte aligned rows; anything else goes to cuBLAS. The same kernel has fused forms for the
 *    decode step (gpu_gemv_fused): RMSNorm in its prologue, SwiGLU or the residual add in its epilogue.
 *  - quantized weights above the GEMV's T, up to 64 tokens: the tensor-core product of gpu/qmma.cu;
 *  - quantized weights beyond: dequantize W to dt into a workspace, then cuBLAS;
 *  - otherwise cublasGemmEx, fp32 compute (CUBLAS_COMPUTE_32F, no reduced-precision reductions), default
 *    algorithm selection, a fixed workspace (so that the calls can be captured in a CUDA graph).
 * Batch-invariant mode (gpu_gemm_set_invariant): every T takes one path, gemm_fixed.h's pinned cuBLASLt
 * algorithm per shape (quantized weights dequantized first), so a row's result does not depend on T.
 * Row-major to cuBLAS column-major, said once: a row-major (R, C) matrix is the column-major (C, R)
 * matrix with the same bytes. So row-major y (T, N) = x (T, K) . W^T is column-major
 * y' (N, T) = W' (K, N)^T . x' (K, T): cuBLAS A = W with op T, lda = K; B = x with op N, ldb = K;
 * C = y, ldc = N; m = N, n = T, k = K. */
#include "cuda_check.h"
#include "gemm.h"
#include "gemm_fixed.h"
#include "gemv.h"
#include "kv_cache.h"
#include "perturb.h"
#include "gemv_tma.h"
#include "qmma.h"
#include "weights.h"

#include <cublas_v2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_WS_BYTES (32u << 20)

struct gpu_gemm_ctx {
    cublasHandle_t h;
    void *ws;            /* cuBLAS workspace (fixed: graph capture must not allocate) */
    cudaStream_t stream; /* the stream the handle is bound to */
    int bound;
    int small_t;         /* T <= small_t: the GEMV kernel (dense weights) */
    int small_t_q;       /* the same for quantized weights */
    int qmma_max_t;      /* quantized weights, small_t_q < T <= qmma_max_t: the tensor-core gpu_qmma */
    int qgemv_tma;       /* quantized weights at T = 1: GPU_QGEMV_* (gemm.h), the bulk-copy GEMV or the register one */
    void *dq;            /* the prefill path's dequantized weights (dq_bytes) */
    size_t dq_bytes;
    gpu_gemm_fixed *fixed; /* batch-invariant mode: every product through it; NULL otherwise */
};

extern "C" gpu_gemm_ctx *gpu_gemm_create(void)
{
    gpu_gemm_ctx *g = (gpu_gemm_ctx *)calloc(1, sizeof *g);
    if (!g) {
        duet_errorf("gpu_gemm_create: out of host memory");
        return NULL;
    }
    cublasStatus_t st = cublasCreate(&g->h);
    if (st != CUBLAS_STATUS_SUCCESS) {
        duet_errorf("%s:%d: cublasCreate: %s", __FILE__, __LINE__, cublasGetStatusString(st));
        free(g);
        return NULL;
    }
    if (cudaMalloc(&g->ws, GEMM_WS_BYTES) != cudaSuccess) {
        cudaGetLastError();
        duet_errorf("gpu_gemm_create: cudaMalloc of the %u MiB cuBLAS workspace failed", GEMM_WS_BYTES >> 20);
        cublasDestroy(g->h);
        free(g);
        return NULL;
    }
    /* fp16 inputs must not use fp16 reductions inside split-K */
    st = cublasSetMathMode(g->h, (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    if (st != CUBLAS_STATUS_SUCCESS) {
        duet_errorf("%s:%d: cublasSetMathMode: %s", __FILE__, __LINE__, cublasGetStatusString(st));
        gpu_gemm_free(g);
        return NULL;
    }
    /* measured on an H100 (gpu/NOTES.md), LLaMA-7B decode GEMMs per step: GEMV 5.08 / 5.18 / 5.63 / 6.62 ms
     * at T = 1 / 2 / 4 / 8, cuBLAS 5.47 / 5.35 / 5.31 / 5.30 ms: the GEMV wins up to T = 2 */
    g->small_t = 2;
    const char *e = getenv("DUET_GEMV_MAX_T"); /* 0 turns the GEMV path off (A/B timing) */
    if (e && *e) g->small_t = atoi(e) < 0 ? 0 : (atoi(e) > GEMV_MAX_T ? GEMV_MAX_T : atoi(e));
    /* quantized weights: the GEMV up to 2 tokens, then the tensor-core qmma (measured on the H200, LLaMA-7B
     * int4-g128 decode GEMMs per step: GEMV 2.03 / 2.63 / 4.85 ms at T = 1 / 2 / 4, qmma 3.40 / 3.41 / 3.44) */
    g->small_t_q = 2;
    e = getenv("DUET_QGEMV_MAX_T");
    if (e && *e) gpu_gemm_set_small_t_q(g, atoi(e));
    /* above the GEMV's T the tensor-core product (gpu/qmma.cu), then dequantize + cuBLAS: measured on the
     * H200, LLaMA-7B decode GEMMs per step at T = 32 / 64, qmma 7.2 / 11.9 ms (int8), 5.0 / 11.8 (int4-g128),
     * 10.1 / 13.5 (q8_0), 11.3 / 16.9 (q4_1); dequantize + cuBLAS 8.9 - 9.9 at both */
    g->qmma_max_t = 32;
    e = getenv("DUET_QMMA_MAX_T"); /* 0 turns it off (A/B timing) */
    if (e && *e) gpu_gemm_set_qmma_max_t(g, atoi(e));
    /* one token, quantized weights: the bulk-copy GEMV (gemv_tma.h) for the formats it is faster on, the
     * register GEMV for the others; DUET_QGEMV_KERNEL=tma|regs picks one for every format (A/B timing;
     * docs/environment.md) */
    g->qgemv_tma = GPU_QGEMV_AUTO;
    e = getenv("DUET_QGEMV_KERNEL");
    if (e && *e) {
        if (strcmp(e, "tma") && strcmp(e, "regs") && strcmp(e, "auto")) {
            duet_errorf("DUET_QGEMV_KERNEL: '%s' is not a choice (auto, tma, regs)", e);
            gpu_gemm_free(g);
            return NULL;
        }
        g->qgemv_tma = !strcmp(e, "tma") ? GPU_QGEMV_TMA : !strcmp(e, "regs") ? GPU_QGEMV_REGS : GPU_QGEMV_AUTO;
    }
    return g;
}

extern "C" void gpu_gemm_free(gpu_gemm_ctx *g)
{
    if (!g) return;
    gpu_gemm_fixed_free(g->fixed);
    cublasDestroy(g->h);
    cudaFree(g->ws);
    gpu_free(g->dq);
    free(g);
}

extern "C" int gpu_gemm_set_invariant(gpu_gemm_ctx *g)
{
    if (!g->fixed && !(g->fixed = gpu_gemm_fixed_create(g->ws, GEMM_WS_BYTES))) return -1;
    return 0;
}

extern "C" void gpu_gemm_set_small_t(gpu_gemm_ctx *g, int t)
{
    g->small_t = t < 0 ? 0 : (t > GEMV_MAX_T ? GEMV_MAX_T : t);
}

extern "C" void gpu_gemm_set_small_t_q(gpu_gemm_ctx *g, int t)
{
    g->small_t_q = t < 0 ? 0 : (t > GEMV_MAX_T ? GEMV_MAX_T : t);
}

extern "C" void gpu_gemm_set_qmma_max_t(gpu_gemm_ctx *g, int t)
{
    g->qmma_max_t = t < 0 ? 0 : (t > QMMA_MAX_T ? QMMA_MAX_T : t);
}

extern "C" void gpu_gemm_set_qgemv(gpu_gemm_ctx *g, int kernel) { g->qgemv_tma = kernel; }

extern "C" int gpu_gemv_tma_takes(const gpu_wdesc *W, int N, int K, gpu_dtype dt, int norm)
{
    static const float dummy[4] __attribute__((aligned(16))) = {0, 0, 0, 0}; /* an aligned non-null input */
    gemv_args a = {NULL, norm ? NULL : dummy, norm ? dummy : NULL, norm ? dummy : NULL, 0.0f, *W, N, K, 1};
    return gemv_tma_ok(a, dt);
}

extern "C" int gpu_gemv_tma_usable(void) { return gemv_tma_usable(); }

/* the GEMV of format W->fmt (gemv_<format>.cu; one token of quantized weights: gemv_tma_<format>.cu) */
static cudaError_t gemv_any(const gpu_gemm_ctx *g, const gemv_args &a, gpu_dtype dt, int T, int y_f32, int fused,
                            int norm, gpu_gemv_out out, cudaStream_t s)
{
    const int tma = g->qgemv_tma == GPU_QGEMV_TMA || (g->qgemv_tma == GPU_QGEMV_AUTO && gemv_tma_preferred(a.W, dt));
    if (T == 1 && tma && gemv_tma_ok(a, dt)) switch (a.W.fmt) {
        case GPU_W_I8: return gemv_tma_run<GPU_W_I8>(a, dt, y_f32, fused, norm, out, s);
        case GPU_W_U4: return gemv_tma_run<GPU_W_U4>(a, dt, y_f32, fused, norm, out, s);
        default: return gemv_tma_run<GPU_W_U4_MIN>(a, dt, y_f32, fused, norm, out, s);
        }
    switch (a.W.fmt) {
    case GPU_W_I8: return gemv_run<GPU_W_I8>(a, dt, T, y_f32, fused, norm, out, s);
    case GPU_W_U4: return gemv_run<GPU_W_U4>(a, dt, T, y_f32, fused, norm, out, s);
    case GPU_W_U4_MIN: return gemv_run<GPU_W_U4_MIN>(a, dt, T, y_f32, fused, norm, out, s);
    default: return gemv_run<GPU_W_DENSE>(a, dt, T, y_f32, fused, norm, out, s);
    }
}

/* K fits the format's 16-byte loads (a chunk inside one group), every row and x 16-byte aligned */
static int gemv_fits(const gpu_wdesc *W, int K, gpu_dtype dt)
{
    const gpu_wfmt_info *f = gpu_wfmt_get(W->fmt);
    if (!f || K % f->lane_elems || ((uintptr_t)W->w & 15) || gpu_wdesc_row_bytes(W->fmt, K, dt) % 16) return 0;
    return W->fmt == GPU_W_DENSE || (W->group > 0 && K % W->group == 0 && W->group % f->lane_elems == 0);
}

static int small_t_of(const gpu_gemm_ctx *g, const gpu_wdesc *W)
{
    return W->fmt == GPU_W_DENSE ? g->small_t : g->small_t_q;
}

static int gemv_ok(const gpu_gemm_ctx *g, const void *x, const gpu_wdesc *W, int T, int K, gpu_dtype dt)
{
    return T >= 1 && T <= GEMV_MAX_T && T <= small_t_of(g, W) && ((uintptr_t)x & 15) == 0 && gemv_fits(W, K, dt);
}

extern "C" int gpu_gemv_fused_ok(const gpu_gemm_ctx *g, const gpu_wdesc *W, int T, int K, gpu_dtype dt)
{
    return T >= 1 && T <= 2 && T <= small_t_of(g, W) && gemv_fits(W, K, dt);
}

extern "C" int gpu_gemv_fused(gpu_gemm_ctx *g, void *y, gpu_gemv_out out, const void *x, const float *xr,
                              const void *norm_w, float eps, const gpu_wdesc *W, int T, int N, int K, gpu_dtype dt,
                              gpu_stream s)
{
    return gpu_gemv_fused_rope(g, y, out, x, xr, norm_w, eps, W, T, N, K, NULL, dt, s);
}

extern "C" int gpu_gemv_fused_rope(gpu_gemm_ctx *g, void *y, gpu_gemv_out out, const void *x, const float *xr,
                                   const void *norm_w, float eps, const gpu_wdesc *W, int T, int N, int K,
                                   const gpu_gemv_rope *rope, gpu_dtype dt, gpu_stream s)
{
    if (out == GPU_GEMV_ROPE &&
        (!rope || rope->kv.d % 2 || rope->H % rope->kv.Hk || N != (rope->H + 2 * rope->kv.Hk) * rope->kv.d))
        return duet_errorf("gpu_gemv_fused: the rope output needs N = (H + 2 Hk) d with an even d (N %d)", N);
    if (!gpu_gemv_fused_ok(g, W, T, K, dt) || (xr ? !norm_w || ((uintptr_t)xr & 15) : !x || ((uintptr_t)x & 15)))
        return duet_errorf("gpu_gemv_fused: T %d, K %d, the %s weights or an unaligned pointer do not fit the fused GEMV",
                           T, K, gpu_wfmt_get(W->fmt) ? gpu_wfmt_get(W->fmt)->name : "?");
    gemv_args a = {y, x, xr, norm_w, eps, *W, N, K, 1};
    if (rope) a.kv = rope->kv, a.pos = rope->pos, a.seq = rope->seq, a.theta = rope->theta, a.H = rope->H;
    int norm = xr != NULL;
    CUDA_CHECK(gemv_any(g, a, dt, T, 0, 1, norm, out, s));
    LAUNCH_CHECK();
    return 0;
}

/* ---- entry ---------------------------------------------------------------------------------------- */

extern "C" int gpu_gemm_reserve_dequant(gpu_gemm_ctx *g, size_t bytes)
{
    if (bytes <= g->dq_bytes) return 0;
    gpu_free(g->dq);
    g->dq = NULL;
    g->dq_bytes = 0;
    if (!(g->dq = gpu_alloc(bytes))) {
        duet_error_prefix("gpu_gemm: the %.1f MiB dequantization workspace of the prefill path: ", bytes / 1048576.0);
        return -1;
    }
    g->dq_bytes = bytes;
    return 0;
}

static int gemm_any(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const gpu_wdesc *Wd, int T, int N, int K,
                    gpu_dtype dt, gpu_stream s);

/* DUET_PERTURB=qgemm breaks the products with quantized weights (perturb.h) */
extern "C" int gpu_gemm(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const gpu_wdesc *Wd, int T, int N, int K,
                        gpu_dtype dt, gpu_stream s)
{
    if (gemm_any(g, y, y_f32, x, Wd, T, N, K, dt, s)) return -1;
    return Wd->fmt == GPU_W_DENSE || y_f32 ? 0 : gpu_perturb("qgemm", y, (int64_t)T * N, dt, s);
}

/* cublasGemmEx, row-major y (T, N) (leading dimension ldy) = x (T, K) . W (N, K)^T, W in dt */
static int cublas_nt(gpu_gemm_ctx *g, void *y, int y_f32, int ldy, const void *x, const void *W, int T, int N, int K,
                     gpu_dtype dt, gpu_stream s)
{
    cudaDataType_t ab = dt == GPU_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cudaDataType_t c = y_f32 ? CUDA_R_32F : ab;
    const float one = 1.0f, zero = 0.0f;
    /* cublasSetStream resets the workspace to cuBLAS's own pool: rebind both only on a change */
    if (!g->bound || g->stream != (cudaStream_t)s) {
        CUBLAS_CHECK(cublasSetStream(g->h, s));
        CUBLAS_CHECK(cublasSetWorkspace(g->h, g->ws, GEMM_WS_BYTES));
        g->stream = s;
        g->bound = 1;
    }
    CUBLAS_CHECK(cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, ab, K, x, ab, K, &zero, y, c, ldy,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* the quantized paths' workspace: W dequantized to dt */
static const void *dequant_w(gpu_gemm_ctx *g, const gpu_wdesc *Wd, int N, int K, gpu_dtype dt, gpu_stream s)
{
    const size_t need = (size_t)N * K * gpu_dtype_size(dt);
    if (need > g->dq_bytes) {
        duet_errorf("gpu_gemm: a %s (%d, %d) matrix needs %.1f MiB of dequantization workspace, %.1f MiB "
                    "reserved (gpu_gemm_reserve_dequant)",
                    gpu_wfmt_get(Wd->fmt)->name, N, K, need / 1048576.0, g->dq_bytes / 1048576.0);
        return NULL;
    }
    return gpu_dequant(g->dq, Wd, N, K, dt, s) ? NULL : g->dq;
}

static int gemm_any(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const gpu_wdesc *Wd, int T, int N, int K,
                    gpu_dtype dt, gpu_stream s)
{
    if (g->fixed) { /* batch-invariant: one pinned algorithm for every T */
        const void *W = Wd->fmt == GPU_W_DENSE ? Wd->w : dequant_w(g, Wd, N, K, dt, s);
        return W ? gpu_gemm_fixed_nt(g->fixed, y, y_f32, N, x, W, T, N, K, dt, s) : -1;
    }
    if (gemv_ok(g, x, Wd, T, K, dt)) {
        gemv_args a = {y, x, NULL, NULL, 0.0f, *Wd, N, K, 1};
        CUDA_CHECK(gemv_any(g, a, dt, T, y_f32, 0, 0, GPU_GEMV_STORE, s));
        LAUNCH_CHECK();
        return 0;
    }
    if (Wd->fmt == GPU_W_DENSE) return cublas_nt(g, y, y_f32, N, x, Wd->w, T, N, K, dt, s);
    if (T <= g->qmma_max_t && gpu_qmma_ok(x, Wd, T, N, K, dt)) return gpu_qmma(y, y_f32, x, Wd, T, N, K, dt, s);
    /* the prefill path (first step): dequantize W to dt into the workspace, then cuBLAS. (Slices of 16 MiB,
     * to keep the copy in L2, measured slower on the H200: 67% of fp16's prefill against 81%, the many small
     * dequantize and GEMM launches cost more than the HBM writes they save.) */
    const void *W = dequant_w(g, Wd, N, K, dt, s);
    return W ? cublas_nt(g, y, y_f32, N, x, W, T, N, K, dt, s) : -1;
}
