/* embedding.cu: row gathers (see embedding.h). Conversion dt -> fp32 is exact. */
#include "cuda_check.h"
#include "embedding.h"

template <typename T> __global__ void embedding_kernel(float *x, const T *table, const int *tokens, int D)
{
    pdl_trigger();
    pdl_wait();
    const T *row = table + (int64_t)tokens[blockIdx.x] * D;
    float *o = x + (int64_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = to_f32(row[i]);
}

template <typename T> __global__ void gather_kernel(T *out, const T *in, const int *rows, int D)
{
    pdl_trigger();
    pdl_wait();
    const T *src = in + (int64_t)rows[blockIdx.x] * D;
    T *o = out + (int64_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = src[i];
}

static int threads_for(int D) { return D >= 256 ? 256 : ((D + 31) / 32) * 32; }

extern "C" int gpu_embedding(float *x, const void *table, const int *tokens, int T, int D, gpu_dtype dt, gpu_stream s)
{
    if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(embedding_kernel<__nv_bfloat16>, T, threads_for(D), 0, s, x, (const __nv_bfloat16 *)table,
                              tokens, D));
    else
        CUDA_CHECK(gpu_launch(embedding_kernel<__half>, T, threads_for(D), 0, s, x, (const __half *)table, tokens, D));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int gpu_gather_rows(void *out, const void *in, const int *rows, int R, int D, gpu_dtype dt, gpu_stream s)
{
    /* both dtypes are 2-byte values moved unchanged */
    CUDA_CHECK(gpu_launch(gather_kernel<__half>, R, threads_for(D), 0, s, (__half *)out, (const __half *)in, rows, D));
    LAUNCH_CHECK();
    return 0;
}
