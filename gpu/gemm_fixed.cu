/* gemm_fixed.cu: the batch-invariant dense product (gemm_fixed.h). Row-major to cuBLASLt's column-major as
 * in gemm.cu: row-major y (T, N) = x (T, K) . W^T is column-major y' (N, T) = W' (K, N)^T . x' (K, T), so
 * A = W stored (K rows, N columns, ld K) with op T, B = x (K, T, ld K) with op N, C = D = y (N, T, ld ldy). */
#include "cuda_check.h"
#include "gemm_fixed.h"

#include <cublasLt.h>
#include <stdlib.h>

typedef struct fixed_plan {
    int N, K, y_f32;
    gpu_dtype dt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a; /* W, the same for every T */
    cublasLtMatmulAlgo_t algo;
    int ok_T, ok_ldy; /* the last (T, ldy) the algorithm was checked at: a step repeats it for every layer */
} fixed_plan;

struct gpu_gemm_fixed {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    fixed_plan *plans;
    int n_plans, cap_plans;
};

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
    cublasLtDestroy(f->lt);
    free(f);
}

static cudaDataType_t ab_type(gpu_dtype dt) { return dt == GPU_BF16 ? CUDA_R_16BF : CUDA_R_16F; }

/* B (x) and C (y) layouts at T rows */
static int bc_layouts(const fixed_plan *p, int T, int ldy, cublasLtMatrixLayout_t *b, cublasLtMatrixLayout_t *c)
{
    *b = *c = NULL;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(b, ab_type(p->dt), (uint64_t)p->K, (uint64_t)T, (int64_t)p->K));
    cublasStatus_t st = cublasLtMatrixLayoutCreate(c, p->y_f32 ? CUDA_R_32F : ab_type(p->dt), (uint64_t)p->N,
                                                   (uint64_t)T, (int64_t)ldy);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cublasLtMatrixLayoutDestroy(*b);
        *b = NULL;
        return duet_errorf("%s:%d: cublasLtMatrixLayoutCreate: %s", __FILE__, __LINE__, cublasGetStatusString(st));
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

/* The pinned algorithm of (N, K, dt, y_f32): the heuristic's best at GEMM_FIXED_T_REF rows among those
 * without a cross-CTA reduction, split-K set to 1, that also run at one row. */
static int plan_new(gpu_gemm_fixed *f, int N, int K, int y_f32, gpu_dtype dt, fixed_plan *p)
{
    p->N = N, p->K = K, p->y_f32 = y_f32, p->dt = dt;
    p->desc = NULL, p->a = NULL;
    p->ok_T = p->ok_ldy = 0;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, ab_type(dt), (uint64_t)K, (uint64_t)N, (int64_t)K));
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatrixLayout_t b = NULL, c = NULL;
    const uint64_t ws = f->ws_bytes;
    const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    cublasStatus_t st =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &none, sizeof none);
    if (st != CUBLAS_STATUS_SUCCESS || bc_layouts(p, GEMM_FIXED_T_REF, N, &b, &c)) {
        cublasLtMatmulPreferenceDestroy(pref);
        return st != CUBLAS_STATUS_SUCCESS
                   ? duet_errorf("%s:%d: cublasLtMatmulPreferenceSetAttribute: %s", __FILE__, __LINE__,
                                 cublasGetStatusString(st))
                   : -1;
    }
    cublasLtMatmulHeuristicResult_t r[16];
    int n = 0;
    st = cublasLtMatmulAlgoGetHeuristic(f->lt, p->desc, p->a, b, c, c, pref, 16, r, &n);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS) n = 0;
    const int32_t one = 1;
    for (int i = 0; i < n; i++) {
        if (r[i].state != CUBLAS_STATUS_SUCCESS) continue;
        cublasLtMatmulAlgo_t algo = r[i].algo;
        /* one CTA per output tile over the whole K: no split, no reduction across CTAs */
        if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof none) !=
                CUBLAS_STATUS_SUCCESS)
            continue;
        if (algo_runs(f, p, &algo, GEMM_FIXED_T_REF, N) && algo_runs(f, p, &algo, 1, N)) {
            p->algo = algo;
            return 0;
        }
    }
    return duet_errorf("gpu batch-invariant GEMM: cuBLASLt has no algorithm without split-K for (N %d, K %d, %s%s) "
                       "that runs at 1 and %d rows (%d candidates%s)",
                       N, K, gpu_dtype_name(dt), y_f32 ? ", fp32 out" : "", GEMM_FIXED_T_REF, n,
                       st != CUBLAS_STATUS_SUCCESS ? ", the heuristic failed" : "");
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

extern "C" int gpu_gemm_fixed_nt(gpu_gemm_fixed *f, void *y, int y_f32, int ldy, const void *x, const void *W, int T,
                                 int N, int K, gpu_dtype dt, gpu_stream s)
{
    if (T <= 0) return 0;
    fixed_plan *p = plan_of(f, N, K, y_f32, dt);
    if (!p) return -1;
    if (T != p->ok_T || ldy != p->ok_ldy) {
        if (!algo_runs(f, p, &p->algo, T, ldy))
            return duet_errorf("gpu batch-invariant GEMM: the pinned cuBLASLt algorithm of (N %d, K %d) does not "
                               "run at T %d within the %zu-byte workspace",
                               N, K, T, f->ws_bytes);
        p->ok_T = T, p->ok_ldy = ldy;
    }
    cublasLtMatrixLayout_t b, c;
    if (bc_layouts(p, T, ldy, &b, &c)) return -1;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = cublasLtMatmul(f->lt, p->desc, &one, W, p->a, x, b, &zero, y, c, y, c, &p->algo, f->ws,
                                       f->ws_bytes, (cudaStream_t)s);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    CUBLAS_CHECK(st);
    return 0;
}
