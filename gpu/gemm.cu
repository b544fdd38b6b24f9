/* gemm.cu: y = x . W^T. Two paths, same contract (fp32 accumulation):
 *  - few tokens (T <= small_t, default 2; decode steps of 1-2 sequences): a weight-streaming GEMV kernel. Each
 *    warp owns 2 output rows of W and walks K with 16-byte loads, 4 chunks deep (8 loads in flight per
 *    lane), reusing each loaded x chunk for both rows; x (T, K) is tiny and stays in L1/L2. Needs K % 8
 *    == 0 and 16-byte aligned rows; anything else goes to cuBLAS.
 *  - otherwise cublasGemmEx, fp32 compute (CUBLAS_COMPUTE_32F, no reduced-precision reductions), default
 *    algorithm selection, a fixed workspace (so that the calls can be captured in a CUDA graph).
 * Row-major to cuBLAS column-major, said once: a row-major (R, C) matrix is the column-major (C, R)
 * matrix with the same bytes. So row-major y (T, N) = x (T, K) . W^T is column-major
 * y' (N, T) = W' (K, N)^T . x' (K, T): cuBLAS A = W with op T, lda = K; B = x with op N, ldb = K;
 * C = y, ldc = N; m = N, n = T, k = K. */
#include "cuda_check.h"
#include "gemm.h"

#include <cublas_v2.h>
#include <stdint.h>
#include <stdlib.h>

#define GEMM_WS_BYTES (32u << 20)
#define GEMV_MAX_T 8

struct gpu_gemm_ctx {
    cublasHandle_t h;
    void *ws;            /* cuBLAS workspace (fixed: graph capture must not allocate) */
    cudaStream_t stream; /* the stream the handle is bound to */
    int bound;
    int small_t;         /* T <= small_t: the GEMV kernel */
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
    return g;
}

extern "C" void gpu_gemm_free(gpu_gemm_ctx *g)
{
    if (!g) return;
    cublasDestroy(g->h);
    cudaFree(g->ws);
    free(g);
}

extern "C" void gpu_gemm_set_small_t(gpu_gemm_ctx *g, int t)
{
    g->small_t = t < 0 ? 0 : (t > GEMV_MAX_T ? GEMV_MAX_T : t);
}

/* ---- GEMV-like path ------------------------------------------------------------------------------ */

#define GEMV_R 2      /* rows of W per warp */
#define GEMV_U 4      /* 256-wide K chunks in flight per lane */
#define GEMV_WARPS 4

template <typename T, typename TO, int NT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(TO *__restrict__ y, const T *__restrict__ x, const T *__restrict__ W, int N, int K)
{
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5)) * GEMV_R;
    if (n0 >= N) return;
    const T *wr[GEMV_R];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++) wr[r] = W + (int64_t)min(n0 + r, N - 1) * K; /* clamped rows: not stored */
    float acc[GEMV_R][NT];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    for (int k0 = lane * 8; k0 < K; k0 += 256 * GEMV_U) {
        uint4 wv[GEMV_U][GEMV_R];
#pragma unroll
        for (int u = 0; u < GEMV_U; u++) {
            int k = k0 + u * 256;
#pragma unroll
            for (int r = 0; r < GEMV_R; r++)
                wv[u][r] = k < K ? __ldcs((const uint4 *)(wr[r] + k)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < GEMV_U; u++) {
            int k = k0 + u * 256;
            if (k < K) {
                float wf[GEMV_R][8];
#pragma unroll
                for (int r = 0; r < GEMV_R; r++) cvt8(wv[u][r], wf[r], T());
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    float xf[8];
                    cvt8(__ldg((const uint4 *)(x + (int64_t)t * K + k)), xf, T());
#pragma unroll
                    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
                        for (int i = 0; i < 8; i++) acc[r][t] = fmaf(wf[r][i], xf[i], acc[r][t]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = acc[r][t];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            acc[r][t] = v;
        }
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < GEMV_R; r++)
            if (n0 + r < N)
#pragma unroll
                for (int t = 0; t < NT; t++) y[(int64_t)t * N + n0 + r] = from_f32<TO>(acc[r][t]);
    }
}

template <typename T, typename TO, int NT> static void gemv_launch(void *y, const void *x, const void *W, int N, int K, cudaStream_t s)
{
    int rows_per_block = GEMV_WARPS * GEMV_R;
    gemv_kernel<T, TO, NT><<<(N + rows_per_block - 1) / rows_per_block, GEMV_WARPS * 32, 0, s>>>(
        (TO *)y, (const T *)x, (const T *)W, N, K);
}

template <typename T, typename TO> static void gemv_t(void *y, const void *x, const void *W, int T_, int N, int K, cudaStream_t s)
{
    switch (T_) {
    case 1: gemv_launch<T, TO, 1>(y, x, W, N, K, s); break;
    case 2: gemv_launch<T, TO, 2>(y, x, W, N, K, s); break;
    case 3: gemv_launch<T, TO, 3>(y, x, W, N, K, s); break;
    case 4: gemv_launch<T, TO, 4>(y, x, W, N, K, s); break;
    case 5: gemv_launch<T, TO, 5>(y, x, W, N, K, s); break;
    case 6: gemv_launch<T, TO, 6>(y, x, W, N, K, s); break;
    case 7: gemv_launch<T, TO, 7>(y, x, W, N, K, s); break;
    default: gemv_launch<T, TO, 8>(y, x, W, N, K, s); break;
    }
}

static int gemv_ok(const void *x, const void *W, int T, int K)
{
    return T >= 1 && T <= GEMV_MAX_T && K % 8 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)W & 15) == 0;
}

/* ---- entry ---------------------------------------------------------------------------------------- */

extern "C" int gpu_gemm(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const void *W, int T, int N, int K,
                        gpu_dtype dt, gpu_stream s)
{
    if (T <= g->small_t && gemv_ok(x, W, T, K)) {
        if (dt == GPU_BF16) {
            if (y_f32) gemv_t<__nv_bfloat16, float>(y, x, W, T, N, K, s);
            else gemv_t<__nv_bfloat16, __nv_bfloat16>(y, x, W, T, N, K, s);
        } else {
            if (y_f32) gemv_t<__half, float>(y, x, W, T, N, K, s);
            else gemv_t<__half, __half>(y, x, W, T, N, K, s);
        }
        LAUNCH_CHECK();
        return 0;
    }
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
    CUBLAS_CHECK(cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, ab, K, x, ab, K, &zero, y, c, N,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}
