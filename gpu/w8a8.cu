/* w8a8.cu: SmoothQuant W8A8's kernels (w8a8.h): per-token int8 quantization, the int32 product on
 * cuBLASLt's int8 tensor-core path, and the dequantizing epilogue. */
#include "cuda_check.h"
#include "w8a8.h"

#include <cublasLt.h>
#include <stdlib.h>

#define QT_THREADS 256
#define I8_WS_BYTES ((size_t)32 << 20)
#define I8_PLANS 16

/* One block per token row: the row's max |x| (exact in any order), then its codes. */
template <typename T>
__global__ void __launch_bounds__(QT_THREADS) sq_quant_kernel(int8_t *codes, float *scales, const T *x, int K)
{
    pdl_trigger();
    pdl_wait();
    const int t = blockIdx.x;
    const T *row = x + (int64_t)t * K;
    float m = 0.0f;
    for (int j = threadIdx.x; j < K; j += QT_THREADS) m = fmaxf(m, fabsf(to_f32(row[j])));
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    __shared__ float wm[QT_THREADS / 32];
    if ((threadIdx.x & 31) == 0) wm[threadIdx.x >> 5] = m;
    __syncthreads();
    float amax = 0.0f;
#pragma unroll
    for (int w = 0; w < QT_THREADS / 32; w++) amax = fmaxf(amax, wm[w]);
    const float sc = amax / 127.0f; /* IEEE division, as the host's */
    if (threadIdx.x == 0) scales[t] = sc;
    int8_t *out = codes + (int64_t)t * K;
    for (int j = threadIdx.x; j < K; j += QT_THREADS) {
        int8_t c = 0;
        if (sc > 0.0f) {
            const float y = to_f32(row[j]) / sc;
            /* rintf then the clamp: common/smoothquant.c's duet_i8_code (NaN -> 0) */
            c = isnan(y) ? 0 : (int8_t)(int)fminf(fmaxf(rintf(y), -127.0f), 127.0f);
        }
        out[j] = c;
    }
}

extern "C" int gpu_sq_quant_tokens(int8_t *codes, float *scales, const void *x, int T, int K, gpu_dtype dt,
                                   gpu_stream s)
{
    if (T <= 0) return 0;
    if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(sq_quant_kernel<__nv_bfloat16>, dim3(T), dim3(QT_THREADS), 0, s, codes, scales,
                              (const __nv_bfloat16 *)x, K));
    else
        CUDA_CHECK(gpu_launch(sq_quant_kernel<__half>, dim3(T), dim3(QT_THREADS), 0, s, codes, scales,
                              (const __half *)x, K));
    LAUNCH_CHECK();
    return 0;
}

/* y[t, n] = (float)acc[t, n] * xs[t] * ws[n]: one thread per output element. */
template <typename TO>
__global__ void sq_dequant_kernel(TO *y, const int32_t *acc, const float *xs, const float *ws, int N, int64_t total)
{
    pdl_trigger();
    pdl_wait();
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / N, n = i - t * N;
        const float v = __fmul_rn(__fmul_rn((float)acc[i], xs[t]), ws[n]); /* no contraction: the host's order */
        y[i] = from_f32<TO>(v);
    }
}

extern "C" int gpu_sq_dequant(void *y, int y_f32, const int32_t *acc, const float *xs, const float *ws, int T, int N,
                              gpu_dtype dt, gpu_stream s)
{
    const int64_t total = (int64_t)T * N;
    if (total <= 0) return 0;
    const unsigned blocks = (unsigned)((total + 255) / 256 < 65535 * 8 ? (total + 255) / 256 : 65535 * 8);
    if (y_f32)
        CUDA_CHECK(gpu_launch(sq_dequant_kernel<float>, dim3(blocks), dim3(256), 0, s, (float *)y, acc, xs, ws, N, total));
    else if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(sq_dequant_kernel<__nv_bfloat16>, dim3(blocks), dim3(256), 0, s, (__nv_bfloat16 *)y, acc,
                              xs, ws, N, total));
    else
        CUDA_CHECK(gpu_launch(sq_dequant_kernel<__half>, dim3(blocks), dim3(256), 0, s, (__half *)y, acc, xs, ws, N,
                              total));
    LAUNCH_CHECK();
    return 0;
}

/* ---- the int32 product (cuBLASLt) ------------------------------------------------------------------ */

/* Column-major view of the row-major product: acc^T (N x T) = op_T(W: K x N, ld K) . x^T (K x T, ld K),
 * the "TN" layout cuBLASLt's int8 kernels require. One plan (descriptors + heuristic's algorithm) per
 * (T, N, K), kept in a small table. */
typedef struct i8_plan {
    int T, N, K;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} i8_plan;

struct gpu_i8_gemm {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    void *ws;
    i8_plan plans[I8_PLANS];
    int n_plans, next;
};

extern "C" gpu_i8_gemm *gpu_i8_gemm_create(void)
{
    gpu_i8_gemm *g = (gpu_i8_gemm *)calloc(1, sizeof *g);
    if (!g) {
        duet_errorf("gpu int8 gemm: out of host memory");
        return NULL;
    }
    cublasStatus_t st = cublasLtCreate(&g->lt);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32I, CUDA_R_32I);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (st != CUBLAS_STATUS_SUCCESS) {
        duet_errorf("gpu int8 gemm: cuBLASLt setup: %s", cublasGetStatusString(st));
        gpu_i8_gemm_free(g);
        return NULL;
    }
    if (!(g->ws = gpu_alloc(I8_WS_BYTES))) {
        gpu_i8_gemm_free(g);
        return NULL;
    }
    return g;
}

static void plan_free(i8_plan *p)
{
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    p->a = p->b = p->c = NULL;
}

extern "C" void gpu_i8_gemm_free(gpu_i8_gemm *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) plan_free(&g->plans[i]);
    if (g->desc) cublasLtMatmulDescDestroy(g->desc);
    if (g->lt) cublasLtDestroy(g->lt);
    gpu_free(g->ws);
    free(g);
}

static const i8_plan *get_plan(gpu_i8_gemm *g, int T, int N, int K)
{
    for (int i = 0; i < g->n_plans; i++)
        if (g->plans[i].T == T && g->plans[i].N == N && g->plans[i].K == K) return &g->plans[i];
    i8_plan *p = &g->plans[g->n_plans < I8_PLANS ? g->n_plans++ : (g->next++ % I8_PLANS)];
    plan_free(p);
    p->T = T, p->N = N, p->K = K;
    cublasStatus_t st = cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8I, K, N, K);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8I, K, T, K);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32I, N, T, N);
    cublasLtMatmulPreference_t pref = NULL;
    size_t wsb = I8_WS_BYTES;
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceCreate(&pref);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    cublasLtMatmulHeuristicResult_t h;
    int n = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc, p->a, p->b, p->c, p->c, pref, 1, &h, &n);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || n < 1) {
        duet_errorf("gpu int8 gemm: no cuBLASLt int8 algorithm for T %d, N %d, K %d (K must be a multiple of 4): %s", T,
                    N, K, st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "the heuristic returned none");
        plan_free(p);
        p->T = -1;
        return NULL;
    }
    p->algo = h.algo;
    return p;
}

extern "C" int gpu_sq_gemm_i32(gpu_i8_gemm *g, int32_t *acc, const int8_t *xcodes, const int8_t *wcodes, int T, int N,
                               int K, gpu_stream s)
{
    if (T <= 0) return 0;
    if (K % 4 || N <= 0 || K <= 0)
        return duet_errorf("gpu int8 gemm: N %d, K %d unsupported (K a positive multiple of 4)", N, K);
    const i8_plan *p = get_plan(g, T, N, K);
    if (!p) return -1;
    const int32_t one = 1, zero = 0;
    CUBLAS_CHECK(cublasLtMatmul(g->lt, g->desc, &one, wcodes, p->a, xcodes, p->b, &zero, acc, p->c, acc, p->c, &p->algo,
                                g->ws, I8_WS_BYTES, s));
    return 0;
}
