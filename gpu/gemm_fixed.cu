/* gemm_fixed.cu: the batch-invariant dense product (gemm_fixed.h). Row-major to cuBLASLt's column-major as
 * in gemm.cu: row-major y (T, N) = x (T, K) . W^T is column-major y' (N, T) = W' (K, N)^T . x' (K, T), so
 * A = W stored (K rows, N columns, ld K) with op T, B = x (K, T, ld K) with op N, C = D = y (N, T, ld ldy).
 * With S K-slices the product is one strided-batched call of S items: item s takes rows [s K/S, (s+1) K/S)
 * of A and B (A, B offset K/S elements: the slices share ld K) and writes the fp32 partial P_s (N, T, ld N),
 * P_s at s N T floats into the slice buffer; sum_slices then adds P_0 + ... + P_{S-1} in that order. */
#include "cuda_check.h"
#include "gemm_fixed.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixed_plan {
    int N, K, y_f32, S; /* S: the K slices (1: straight into y) */
    gpu_dtype dt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a; /* W (or its S slices), the same for every T */
    cublasLtMatmulAlgo_t algo;
    int ok_T[2], ok_ldy[2]; /* (T, ldy) the algorithm was checked at: a step repeats them for every layer */
} fixed_plan;

struct gpu_gemm_fixed {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    float *slices; /* GEMM_FIXED_CHUNK x GEMM_FIXED_SPLIT_COLS x 2 floats: the S partials of one chunk */
    fixed_plan *plans;
    int n_plans, cap_plans;
};

#define SLICE_FLOATS ((size_t)GEMM_FIXED_CHUNK * GEMM_FIXED_SPLIT_COLS * 2)

extern "C" gpu_gemm_fixed *gpu_gemm_fixed_create(void *ws, size_t ws_bytes)
{
    gpu_gemm_fixed *f = (gpu_gemm_fixed *)calloc(1, sizeof *f);
    if (!f) {
        duet_errorf("gpu_gemm_fixed_create: out of host memory");
        return NULL;
    }
    cublasStatus_t st = cublasLtCreate(&f->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        duet_errorf("%s:%d: cublasLtCreate: %s", __FILE__, __LINE__, cublasGetStatusString(st));
        free(f);
        return NULL;
    }
    if (cudaMalloc((void **)&f->slices, SLICE_FLOATS * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        duet_errorf("gpu batch-invariant GEMM: no %.0f MiB for the K-slice partials (%s)",
                    SLICE_FLOATS * sizeof(float) / 1048576.0, "cudaMalloc failed");
        cublasLtDestroy(f->lt);
        free(f);
        return NULL;
    }
    f->ws = ws;
    f->ws_bytes = ws_bytes;
    return f;
}

extern "C" void gpu_gemm_fixed_free(gpu_gemm_fixed *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_plans; i++) {
        cublasLtMatrixLayoutDestroy(f->plans[i].a);
        cublasLtMatmulDescDestroy(f->plans[i].desc);
    }
    free(f->plans);
    cudaFree(f->slices);
    cublasLtDestroy(f->lt);
    free(f);
}

/* The K slices of (N, K): the fewest (a power of two, at most GEMM_FIXED_MAX_SPLIT) that make N S reach
 * GEMM_FIXED_SPLIT_COLS output columns, halved until each slice is a multiple of GEMM_FIXED_MIN_SLICE. A
 * rule of the shape alone: the same S for every T, so every row sums the same slices in the same order. */
extern "C" int gpu_gemm_fixed_slices(int N, int K)
{
    int S = 1;
    while (S < GEMM_FIXED_MAX_SPLIT && (long)N * S < GEMM_FIXED_SPLIT_COLS) S *= 2;
    while (S > 1 && K % (S * GEMM_FIXED_MIN_SLICE)) S /= 2;
    return S;
}

static cudaDataType_t ab_type(gpu_dtype dt) { return dt == GPU_BF16 ? CUDA_R_16BF : CUDA_R_16F; }

static cublasStatus_t set_batch(cublasLtMatrixLayout_t l, int S, int64_t stride)
{
    const int32_t n = S;
    cublasStatus_t st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
    return st;
}

/* B (x) and C (y, or the S partials) layouts at T rows */
static int bc_layouts(const fixed_plan *p, int T, int ldy, cublasLtMatrixLayout_t *b, cublasLtMatrixLayout_t *c)
{
    *b = *c = NULL;
    const int ks = p->K / p->S;
    const cudaDataType_t ct = p->y_f32 || p->S > 1 ? CUDA_R_32F : ab_type(p->dt);
    const int ldc = p->S > 1 ? p->N : ldy;
    cublasStatus_t st = cublasLtMatrixLayoutCreate(b, ab_type(p->dt), (uint64_t)ks, (uint64_t)T, (int64_t)p->K);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(c, ct, (uint64_t)p->N, (uint64_t)T, ldc);
    if (st == CUBLAS_STATUS_SUCCESS && p->S > 1) st = set_batch(*b, p->S, ks);
    if (st == CUBLAS_STATUS_SUCCESS && p->S > 1) st = set_batch(*c, p->S, (int64_t)p->N * T);
    if (st != CUBLAS_STATUS_SUCCESS) {
        if (*b) cublasLtMatrixLayoutDestroy(*b);
        if (*c) cublasLtMatrixLayoutDestroy(*c);
        *b = *c = NULL;
        return duet_errorf("%s:%d: cuBLASLt matrix layout: %s", __FILE__, __LINE__, cublasGetStatusString(st));
    }
    return 0;
}

/* Whether algo runs the plan's product at T rows within the workspace. */
static int algo_runs(gpu_gemm_fixed *f, const fixed_plan *p, const cublasLtMatmulAlgo_t *algo, int T, int ldy)
{
    cublasLtMatrixLayout_t b, c;
    if (bc_layouts(p, T, ldy, &b, &c)) return 0;
    cublasLtMatmulHeuristicResult_t r;
    cublasStatus_t st = cublasLtMatmulAlgoCheck(f->lt, p->desc, p->a, b, c, c, algo, &r);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    return st == CUBLAS_STATUS_SUCCESS && r.workspaceSize <= f->ws_bytes;
}

/* Candidates: cuBLASLt's heuristic at each of the tuning row counts, restricted to reduction scheme none,
 * split-K forced to 1 (one CTA per output tile over the whole K slice), deduplicated, each able to run at 1
 * row and at every tuning row count. Returns how many were kept in out (at most cap). */
static const int tune_T[] = {GEMM_FIXED_T_DECODE, GEMM_FIXED_CHUNK};
#define N_TUNE_T ((int)(sizeof tune_T / sizeof tune_T[0]))

static int candidates(gpu_gemm_fixed *f, const fixed_plan *p, cublasLtMatmulAlgo_t *out, int cap)
{
    cublasLtMatmulPreference_t pref = NULL;
    const uint64_t ws = f->ws_bytes;
    const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
    const int32_t one = 1;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return 0;
    if (cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &none, sizeof none) !=
            CUBLAS_STATUS_SUCCESS) {
        cublasLtMatmulPreferenceDestroy(pref);
        return 0;
    }
    int kept = 0;
    for (int ti = 0; ti < N_TUNE_T; ti++) {
        cublasLtMatrixLayout_t b, c;
        if (bc_layouts(p, tune_T[ti], p->N, &b, &c)) break;
        cublasLtMatmulHeuristicResult_t r[GEMM_FIXED_MAX_CANDIDATES];
        int n = 0;
        if (cublasLtMatmulAlgoGetHeuristic(f->lt, p->desc, p->a, b, c, c, pref, GEMM_FIXED_MAX_CANDIDATES, r, &n) !=
            CUBLAS_STATUS_SUCCESS)
            n = 0;
        cublasLtMatrixLayoutDestroy(b);
        cublasLtMatrixLayoutDestroy(c);
        for (int i = 0; i < n && kept < cap; i++) {
            if (r[i].state != CUBLAS_STATUS_SUCCESS) continue;
            cublasLtMatmulAlgo_t algo = r[i].algo;
            if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one) !=
                    CUBLAS_STATUS_SUCCESS ||
                cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none,
                                                     sizeof none) != CUBLAS_STATUS_SUCCESS)
                continue;
            int dup = 0;
            for (int j = 0; j < kept && !dup; j++) dup = !memcmp(&out[j], &algo, sizeof algo);
            int runs = !dup && algo_runs(f, p, &algo, 1, p->N);
            for (int tj = 0; tj < N_TUNE_T && runs; tj++) runs = algo_runs(f, p, &algo, tune_T[tj], p->N);
            if (runs) out[kept++] = algo;
        }
    }
    cublasLtMatmulPreferenceDestroy(pref);
    return kept;
}

/* The plan of (N, K, dt, y_f32): S = gpu_gemm_fixed_slices(N, K), and the first candidate, i.e. the
 * heuristic's best at GEMM_FIXED_T_DECODE rows. Chosen by rule, not by timing, so that every run and every
 * backend of a process pins the same one (a timed pick could differ between two runs, and so could their
 * tokens). */
static int plan_new(gpu_gemm_fixed *f, int N, int K, int y_f32, gpu_dtype dt, fixed_plan *p)
{
    p->N = N, p->K = K, p->y_f32 = y_f32, p->dt = dt;
    p->S = gpu_gemm_fixed_slices(N, K);
    p->desc = NULL, p->a = NULL;
    p->ok_T[0] = p->ok_T[1] = 0;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, ab_type(dt), (uint64_t)(K / p->S), (uint64_t)N, (int64_t)K));
    if (p->S > 1) CUBLAS_CHECK(set_batch(p->a, p->S, K / p->S));
    cublasLtMatmulAlgo_t cand[N_TUNE_T * GEMM_FIXED_MAX_CANDIDATES];
    const int n = candidates(f, p, cand, N_TUNE_T * GEMM_FIXED_MAX_CANDIDATES);
    if (!n)
        return duet_errorf("gpu batch-invariant GEMM: cuBLASLt has no algorithm without split-K for (N %d, K %d in "
                           "%d slices, %s%s) that runs at 1, %d and %d rows",
                           N, K, p->S, gpu_dtype_name(dt), y_f32 ? ", fp32 out" : "", GEMM_FIXED_T_DECODE,
                           GEMM_FIXED_CHUNK);
    p->algo = cand[0];
    return 0;
}

static fixed_plan *plan_of(gpu_gemm_fixed *f, int N, int K, int y_f32, gpu_dtype dt)
{
    for (int i = 0; i < f->n_plans; i++) {
        fixed_plan *p = &f->plans[i];
        if (p->N == N && p->K == K && p->y_f32 == y_f32 && p->dt == dt) return p;
    }
    if (f->n_plans == f->cap_plans) {
        int cap = f->cap_plans ? 2 * f->cap_plans : 16;
        fixed_plan *np = (fixed_plan *)realloc(f->plans, sizeof *np * (size_t)cap);
        if (!np) {
            duet_errorf("gpu batch-invariant GEMM: out of host memory");
            return NULL;
        }
        f->plans = np, f->cap_plans = cap;
    }
    fixed_plan *p = &f->plans[f->n_plans];
    if (plan_new(f, N, K, y_f32, dt, p)) {
        if (p->a) cublasLtMatrixLayoutDestroy(p->a);
        if (p->desc) cublasLtMatmulDescDestroy(p->desc);
        return NULL;
    }
    f->n_plans++;
    return p;
}

/* y (T, N) at ld ldy = P_0 + P_1 + ... + P_{S-1}, in that order; P: S partials of (T, N) fp32, row-major,
 * P_s at s T N (column-major (N, T, ld N) as cuBLASLt wrote them) */
template <typename OUT> __device__ OUT to_out(float v);
template <> __device__ float to_out<float>(float v) { return v; }
template <> __device__ __half to_out<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __nv_bfloat16 to_out<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename OUT> __global__ void sum_slices(OUT *y, int ldy, const float *P, int S, int T, int N)
{
    const size_t TN = (size_t)T * N, i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= TN) return;
    float acc = P[i];
    for (int s = 1; s < S; s++) acc += P[s * TN + i];
    y[(i / N) * ldy + i % N] = to_out<OUT>(acc);
}

static int check_at(gpu_gemm_fixed *f, fixed_plan *p, int T, int ldy)
{
    for (int i = 0; i < 2; i++)
        if (p->ok_T[i] == T && p->ok_ldy[i] == ldy) return 0;
    if (!algo_runs(f, p, &p->algo, T, ldy))
        return duet_errorf("gpu batch-invariant GEMM: the pinned cuBLASLt algorithm of (N %d, K %d in %d slices) "
                           "does not run at T %d within the %zu-byte workspace",
                           p->N, p->K, p->S, T, f->ws_bytes);
    p->ok_T[1] = p->ok_T[0], p->ok_ldy[1] = p->ok_ldy[0];
    p->ok_T[0] = T, p->ok_ldy[0] = ldy;
    return 0;
}

/* One product of T rows through the plan (T <= GEMM_FIXED_CHUNK when S > 1) */
static int run_rows(gpu_gemm_fixed *f, fixed_plan *p, void *y, int ldy, const void *x, const void *W, int T,
                    cudaStream_t s)
{
    if (check_at(f, p, T, ldy)) return -1;
    cublasLtMatrixLayout_t b, c;
    if (bc_layouts(p, T, ldy, &b, &c)) return -1;
    void *out = p->S > 1 ? (void *)f->slices : y;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = cublasLtMatmul(f->lt, p->desc, &one, W, p->a, x, b, &zero, out, c, out, c, &p->algo, f->ws,
                                       f->ws_bytes, s);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    CUBLAS_CHECK(st);
    if (p->S == 1) return 0;
    const size_t TN = (size_t)T * p->N;
    const unsigned blocks = (unsigned)((TN + 255) / 256);
    if (p->y_f32)
        sum_slices<float><<<blocks, 256, 0, s>>>((float *)y, ldy, f->slices, p->S, T, p->N);
    else if (p->dt == GPU_BF16)
        sum_slices<__nv_bfloat16><<<blocks, 256, 0, s>>>((__nv_bfloat16 *)y, ldy, f->slices, p->S, T, p->N);
    else
        sum_slices<__half><<<blocks, 256, 0, s>>>((__half *)y, ldy, f->slices, p->S, T, p->N);
    LAUNCH_CHECK();
    return 0;
}

extern "C" int gpu_gemm_fixed_nt(gpu_gemm_fixed *f, void *y, int y_f32, int ldy, const void *x, const void *W, int T,
                                 int N, int K, gpu_dtype dt, gpu_stream s)
{
    if (T <= 0) return 0;
    fixed_plan *p = plan_of(f, N, K, y_f32, dt);
    if (!p) return -1;
    if (p->S == 1) return run_rows(f, p, y, ldy, x, W, T, (cudaStream_t)s);
    /* the partials of GEMM_FIXED_CHUNK rows at a time: the same algorithm, so a row's sums do not depend on
     * which chunk it falls in */
    const size_t xe = gpu_dtype_size(dt), ye = y_f32 ? 4 : gpu_dtype_size(dt);
    for (int t0 = 0; t0 < T; t0 += GEMM_FIXED_CHUNK) {
        const int n = T - t0 < GEMM_FIXED_CHUNK ? T - t0 : GEMM_FIXED_CHUNK;
        if (run_rows(f, p, (char *)y + (size_t)t0 * ldy * ye, ldy, (const char *)x + (size_t)t0 * K * xe, W, n,
                     (cudaStream_t)s))
            return -1;
    }
    return 0;
}
