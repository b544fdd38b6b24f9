/* swiglu.cu: elementwise silu(gate) * up over the fused (T, 2F) projection (see swiglu.h). */
#include "cuda_check.h"
#include "perturb.h"
#include "swiglu.h"

template <typename T> __global__ void swiglu_kernel(T *act, const T *gu, int64_t n, int F)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / F, j = i - t * F;
        float g = to_f32(gu[t * 2 * F + j]), u = to_f32(gu[t * 2 * F + F + j]);
        act[i] = from_f32<T>(g / (1.0f + expf(-g)) * u);
    }
}

extern "C" int gpu_swiglu(void *act, const void *gu, int T, int F, gpu_dtype dt, gpu_stream s)
{
    int64_t n = (int64_t)T * F;
    int blocks = (int)((n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536);
    if (dt == GPU_BF16)
        swiglu_kernel<<<blocks, 256, 0, s>>>((__nv_bfloat16 *)act, (const __nv_bfloat16 *)gu, n, F);
    else
        swiglu_kernel<<<blocks, 256, 0, s>>>((__half *)act, (const __half *)gu, n, F);
    LAUNCH_CHECK();
    return gpu_perturb("swiglu", act, n, dt, s);
}
