/* cuda_check.h (C++ only, inside gpu/): one check macro per API naming file and line, a launch check
 * after every kernel, and the dtype traits the templated kernels share. The macros record the error
 * with duet_errorf and return -1 from the calling function; library code never exits.
 * Build with -DDUET_GPU_DEBUG to make every launch check synchronize (finds the failing kernel). */
#ifndef DUET_GPU_CUDA_CHECK_H
#define DUET_GPU_CUDA_CHECK_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "error.h"
}
#include "gpu.h"

#define CUDA_CHECK(x)                                                                                        \
    do {                                                                                                     \
        cudaError_t e_ = (x);                                                                                \
        if (e_ != cudaSuccess)                                                                               \
            return duet_errorf("%s:%d: %s: %s (%s)", __FILE__, __LINE__, #x, cudaGetErrorString(e_),         \
                               cudaGetErrorName(e_));                                                        \
    } while (0)

#define CUBLAS_CHECK(x)                                                                                      \
    do {                                                                                                     \
        cublasStatus_t s_ = (x);                                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                     \
            return duet_errorf("%s:%d: %s: %s", __FILE__, __LINE__, #x, cublasGetStatusString(s_));          \
    } while (0)

#ifdef DUET_GPU_DEBUG
#define LAUNCH_CHECK()                                                                                       \
    do {                                                                                                     \
        CUDA_CHECK(cudaGetLastError());                                                                      \
        CUDA_CHECK(cudaDeviceSynchronize());                                                                 \
    } while (0)
#else
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())
#endif

/* fp16 / bf16 storage, fp32 math. */
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(float x) { return x; }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }

/* 16 bytes of storage (8 halves or 8 bfloat16s, one uint4 load) -> 8 floats; the last argument only
 * picks the element type. */
__device__ __forceinline__ void cvt8(const uint4 &r, float f[8], __half)
{
    const __half2 *h = (const __half2 *)&r;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __half22float2(h[i]);
        f[2 * i] = v.x, f[2 * i + 1] = v.y;
    }
}
__device__ __forceinline__ void cvt8(const uint4 &r, float f[8], __nv_bfloat16)
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&r;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __bfloat1622float2(h[i]);
        f[2 * i] = v.x, f[2 * i + 1] = v.y;
    }
}

#endif
