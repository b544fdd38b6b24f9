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

/* 16 bytes of streamed weights, read once: not allocated in L1, which keeps the small x operand of the
 * weight products resident there (ld.global.nc: the weights are never written by a kernel) */
__device__ __forceinline__ uint4 ld_stream16(const void *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* Programmatic dependent launch (Hopper): a kernel launched through gpu_launch may be scheduled while
 * the kernel before it in the stream is still running, so its launch latency and its first weight loads
 * overlap that kernel's tail. Contract for every kernel launched this way: it calls pdl_wait() before it
 * reads anything an earlier kernel wrote and before it writes anything (griddepcontrol.wait returns once
 * the previous grid has completed and its memory is visible; a no-op for a plain launch), so completion
 * stays transitive down the stream. pdl_trigger() lets the next kernel be scheduled as soon as every block
 * of this one has started. $DUET_PDL=0 launches without the attribute (A/B timing). sm_90 and later. */
__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

extern "C" int gpu_pdl_enabled(void); /* gpu.cu: device is sm_90+ and $DUET_PDL is not "0" */

template <typename... KArgs, typename... Args>
static inline cudaError_t gpu_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                     Args... args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = gpu_pdl_enabled() ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...);
}

#endif
