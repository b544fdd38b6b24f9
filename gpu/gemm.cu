/* gemm.cu: y = x . W^T through cublasGemmEx, fp32 compute (CUBLAS_COMPUTE_32F, no reduced-precision
 * reductions), default algorithm selection.
 * Row-major to cuBLAS column-major, said once: a row-major (R, C) matrix is the column-major (C, R)
 * matrix with the same bytes. So row-major y (T, N) = x (T, K) . W^T is column-major
 * y' (N, T) = W' (K, N)^T . x' (K, T): cuBLAS A = W with op T, lda = K; B = x with op N, ldb = K;
 * C = y, ldc = N; m = N, n = T, k = K. */
#include "cuda_check.h"
#include "gemm.h"

#include <cublas_v2.h>
#include <stdlib.h>

struct gpu_gemm_ctx {
    cublasHandle_t h;
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
    /* fp16 inputs must not use fp16 reductions inside split-K */
    cublasSetMathMode(g->h, (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    return g;
}

extern "C" void gpu_gemm_free(gpu_gemm_ctx *g)
{
    if (!g) return;
    cublasDestroy(g->h);
    free(g);
}

extern "C" int gpu_gemm(gpu_gemm_ctx *g, void *y, int y_f32, const void *x, const void *W, int T, int N, int K,
                        gpu_dtype dt, gpu_stream s)
{
    cudaDataType_t ab = dt == GPU_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cudaDataType_t c = y_f32 ? CUDA_R_32F : ab;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSetStream(g->h, s));
    CUBLAS_CHECK(cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, ab, K, x, ab, K, &zero, y, c, N,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}
