/* w8a8.cu: the W8A8 kernels (w8a8.h): per-token int8 / E4M3 quantization, the products on cuBLASLt's int8
 * and FP8 tensor-core paths, and the dequantizing epilogue. */
#include "codes8.cuh"
#include "cuda_check.h"
#include "w8a8.h"

#include <cublasLt.h>
#include <stdlib.h>

#define QT_THREADS 256
#define LT_WS_BYTES ((size_t)32 << 20)
#define LT_PLANS 16

/* One block per token row: the row's max |x| (exact in any order), then its codes. FP8 (is_f8) with a
 * static scale (x_scale > 0) skips the maximum. */
template <typename T, bool is_f8>
__global__ void __launch_bounds__(QT_THREADS) quant_tokens_kernel(uint8_t *codes, float *scales, const T *x, int K,
                                                                  float x_scale)
{
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x;
    const T *row = x + (int64_t)t * K;
    float sc = x_scale;
    if (!(x_scale > 0.0f)) {
        float m = 0.0f;
        for (int j = threadIdx.x; j < K; j += QT_THREADS) m = fmaxf(m, fabsf(to_f32(row[j])));
        for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        __shared__ float wm[QT_THREADS / 32];
        if ((threadIdx.x & 31) == 0) wm[threadIdx.x >> 5] = m;
        __syncthreads();
        float amax = 0.0f;
#pragma unroll
        for (int w = 0; w < QT_THREADS / 32; w++) amax = fmaxf(amax, wm[w]);
        sc = amax / (is_f8 ? 448.0f : 127.0f); /* IEEE division, as the host's */
    }
    if (threadIdx.x == 0) scales[t] = sc;
    uint8_t *out = codes + (int64_t)t * K;
    for (int j = threadIdx.x; j < K; j += QT_THREADS) {
        const float y = to_f32(row[j]) / sc;
        out[j] = sc > 0.0f ? (is_f8 ? code_e4m3(y) : code_i8(y)) : 0;
    }
}

template <bool is_f8>
static int quant_tokens(uint8_t *codes, float *scales, const void *x, int T, int K, float x_scale, gpu_dtype dt,
                        gpu_stream s)
{
    if (T <= 0) return 0;
    if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(quant_tokens_kernel<__nv_bfloat16, is_f8>, dim3(T), dim3(QT_THREADS), 0, s, codes, scales,
                              (const __nv_bfloat16 *)x, K, x_scale));
    else
        CUDA_CHECK(gpu_launch(quant_tokens_kernel<__half, is_f8>, dim3(T), dim3(QT_THREADS), 0, s, codes, scales,
                              (const __half *)x, K, x_scale));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int gpu_sq_quant_tokens(int8_t *codes, float *scales, const void *x, int T, int K, gpu_dtype dt,
                                   gpu_stream s)
{
    return quant_tokens<false>((uint8_t *)codes, scales, x, T, K, 0.0f, dt, s);
}

extern "C" int gpu_f8_quant_tokens(uint8_t *codes, float *scales, const void *x, int T, int K, float x_scale,
                                   gpu_dtype dt, gpu_stream s)
{
    return quant_tokens<true>(codes, scales, x, T, K, x_scale, dt, s);
}

/* y[t, n] = (float)acc[t, n] * xs[t] * ws[n]: one thread per output element. */
template <typename TO, typename TA>
__global__ void dequant_kernel(TO *y, const TA *acc, const float *xs, const float *ws, int N, int64_t total)
{
    pdl_trigger();
    pdl_wait();
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / N, n = i - t * N;
        const float v = __fmul_rn(__fmul_rn((float)acc[i], xs[t]), ws[n]); /* no contraction: the host's order */
        y[i] = from_f32<TO>(v);
    }
}

template <typename TA>
static int dequant(void *y, int y_f32, const TA *acc, const float *xs, const float *ws, int T, int N, gpu_dtype dt,
                   gpu_stream s)
{
    const int64_t total = (int64_t)T * N;
    if (total <= 0) return 0;
    const unsigned blocks = (unsigned)((total + 255) / 256 < 65535 * 8 ? (total + 255) / 256 : 65535 * 8);
    if (y_f32)
        CUDA_CHECK(gpu_launch(dequant_kernel<float, TA>, dim3(blocks), dim3(256), 0, s, (float *)y, acc, xs, ws, N, total));
    else if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(dequant_kernel<__nv_bfloat16, TA>, dim3(blocks), dim3(256), 0, s, (__nv_bfloat16 *)y, acc,
                              xs, ws, N, total));
    else
        CUDA_CHECK(gpu_launch(dequant_kernel<__half, TA>, dim3(blocks), dim3(256), 0, s, (__half *)y, acc, xs, ws, N,
                              total));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int gpu_sq_dequant(void *y, int y_f32, const int32_t *acc, const float *xs, const float *ws, int T, int N,
                              gpu_dtype dt, gpu_stream s)
{
    return dequant<int32_t>(y, y_f32, acc, xs, ws, T, N, dt, s);
}

extern "C" int gpu_f8_dequant(void *y, int y_f32, const float *acc, const float *xs, const float *ws, int T, int N,
                              gpu_dtype dt, gpu_stream s)
{
    return dequant<float>(y, y_f32, acc, xs, ws, T, N, dt, s);
}

extern "C" int gpu_f8_supported(void)
{
    int dev = 0, major = 0, minor = 0;
    cudaDeviceProp prop;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        duet_errorf("gpu: FP8 W8A8: no CUDA device to ask");
        return 0;
    }
    major = prop.major, minor = prop.minor;
    if (major * 10 + minor >= 89) return 1;
    duet_errorf("gpu: FP8 W8A8 needs FP8 tensor cores (compute capability 8.9 or newer: Ada, Hopper); %s is sm_%d%d "
                "(use --w8a8 sq, or the ref's emulation)", prop.name, major, minor);
    return 0;
}

/* ---- the products (cuBLASLt) ------------------------------------------------------------------------ */

/* Column-major view of the row-major product: acc^T (N x T) = op_T(W: K x N, ld K) . x^T (K x T, ld K),
 * the "TN" layout cuBLASLt's int8 and FP8 kernels require. One plan (descriptors + heuristic's algorithm)
 * per (kind, T, N, K), kept in a small table; kind 0 int8 -> int32, 1 E4M3 -> fp32. */
typedef struct lt_plan {
    int kind, T, N, K;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct gpu_w8a8_gemm {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc[2];
    void *ws;
    lt_plan plans[LT_PLANS];
    int n_plans, next;
};

static cublasStatus_t desc_make(cublasLtMatmulDesc_t *d, cublasComputeType_t ct, cudaDataType_t st)
{
    cublasStatus_t r = cublasLtMatmulDescCreate(d, ct, st);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (r == CUBLAS_STATUS_SUCCESS) r = cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (r == CUBLAS_STATUS_SUCCESS) r = cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    return r;
}

extern "C" gpu_w8a8_gemm *gpu_w8a8_gemm_create(void)
{
    gpu_w8a8_gemm *g = (gpu_w8a8_gemm *)calloc(1, sizeof *g);
    if (!g) {
        duet_errorf("gpu W8A8 gemm: out of host memory");
        return NULL;
    }
    cublasStatus_t st = cublasLtCreate(&g->lt);
    if (st == CUBLAS_STATUS_SUCCESS) st = desc_make(&g->desc[0], CUBLAS_COMPUTE_32I, CUDA_R_32I);
    /* FP8: fp32 accumulation and scale type; CUBLASLT_MATMUL_DESC_FAST_ACCUM stays at its default 0 (the
     * partial sums are promoted to full fp32 accumulators) */
    if (st == CUBLAS_STATUS_SUCCESS) st = desc_make(&g->desc[1], CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (st != CUBLAS_STATUS_SUCCESS) {
        duet_errorf("gpu W8A8 gemm: cuBLASLt setup: %s", cublasGetStatusString(st));
        gpu_w8a8_gemm_free(g);
        return NULL;
    }
    if (!(g->ws = gpu_alloc(LT_WS_BYTES))) {
        gpu_w8a8_gemm_free(g);
        return NULL;
    }
    return g;
}

static void plan_free(lt_plan *p)
{
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    p->a = p->b = p->c = NULL;
}

extern "C" void gpu_w8a8_gemm_free(gpu_w8a8_gemm *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) plan_free(&g->plans[i]);
    for (int k = 0; k < 2; k++)
        if (g->desc[k]) cublasLtMatmulDescDestroy(g->desc[k]);
    if (g->lt) cublasLtDestroy(g->lt);
    gpu_free(g->ws);
    free(g);
}

static const lt_plan *get_plan(gpu_w8a8_gemm *g, int kind, int T, int N, int K)
{
    for (int i = 0; i < g->n_plans; i++) {
        const lt_plan *q = &g->plans[i];
        if (q->kind == kind && q->T == T && q->N == N && q->K == K) return q;
    }
    lt_plan *p = &g->plans[g->n_plans < LT_PLANS ? g->n_plans++ : (g->next++ % LT_PLANS)];
    plan_free(p);
    p->kind = kind, p->T = T, p->N = N, p->K = K;
    const cudaDataType_t in = kind ? CUDA_R_8F_E4M3 : CUDA_R_8I, out = kind ? CUDA_R_32F : CUDA_R_32I;
    cublasStatus_t st = cublasLtMatrixLayoutCreate(&p->a, in, K, N, K);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&p->b, in, K, T, K);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&p->c, out, N, T, N);
    cublasLtMatmulPreference_t pref = NULL;
    size_t wsb = LT_WS_BYTES;
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceCreate(&pref);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    cublasLtMatmulHeuristicResult_t h;
    int n = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc[kind], p->a, p->b, p->c, p->c, pref, 1, &h, &n);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || n < 1) {
        duet_errorf("gpu %s gemm: no cuBLASLt algorithm for T %d, N %d, K %d: %s", kind ? "FP8" : "int8", T, N, K,
                    st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "the heuristic returned none");
        plan_free(p);
        p->T = -1;
        return NULL;
    }
    p->algo = h.algo;
    return p;
}

/* One product of kind 0 (int8 -> int32) or 1 (E4M3 -> fp32) with its plan; alpha 1, beta 0 in the
 * descriptor's scale type. */
static int lt_matmul(gpu_w8a8_gemm *g, int kind, void *acc, const void *xcodes, const void *wcodes, int T, int N, int K,
                     gpu_stream s)
{
    const lt_plan *p = get_plan(g, kind, T, N, K);
    if (!p) return -1;
    const int32_t i1 = 1, i0 = 0;
    const float f1 = 1.0f, f0 = 0.0f;
    const void *one = kind ? (const void *)&f1 : (const void *)&i1, *zero = kind ? (const void *)&f0 : (const void *)&i0;
    CUBLAS_CHECK(cublasLtMatmul(g->lt, g->desc[kind], one, wcodes, p->a, xcodes, p->b, zero, acc, p->c, acc, p->c,
                                &p->algo, g->ws, LT_WS_BYTES, s));
    return 0;
}

extern "C" int gpu_w8a8_shape_check(int fp8, int64_t N, int64_t K)
{
    if (fp8 ? K > 0 && N > 0 && K % 16 == 0 && N % 4 == 0 : K > 0 && N > 0 && K % 4 == 0) return 0;
    return duet_errorf(fp8 ? "N %lld x K %lld: unsupported (FP8 needs K a positive multiple of 16, N of 4)"
                           : "N %lld x K %lld: unsupported (int8 needs K a positive multiple of 4)",
                       (long long)N, (long long)K);
}

extern "C" int gpu_sq_gemm_i32(gpu_w8a8_gemm *g, int32_t *acc, const int8_t *xcodes, const int8_t *wcodes, int T,
                               int N, int K, gpu_stream s)
{
    if (T <= 0) return 0;
    if (gpu_w8a8_shape_check(0, N, K)) return duet_error_prefix("gpu int8 gemm: ");
    return lt_matmul(g, 0, acc, xcodes, wcodes, T, N, K, s);
}

extern "C" int gpu_f8_gemm_f32(gpu_w8a8_gemm *g, float *acc, const uint8_t *xcodes, const uint8_t *wcodes, int T,
                               int N, int K, gpu_stream s)
{
    if (T <= 0) return 0;
    if (gpu_w8a8_shape_check(1, N, K)) return duet_error_prefix("gpu FP8 gemm: ");
    return lt_matmul(g, 1, acc, xcodes, wcodes, T, N, K, s);
}
