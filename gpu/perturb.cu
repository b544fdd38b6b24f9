/* perturb.cu: DUET_PERTURB's scaling kernel (see perturb.h). */
#include "cuda_check.h"
#include "perturb.h"

#include <stdlib.h>
#include <string.h>

template <typename T> __global__ void scale_kernel(T *x, int64_t n, float f)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = from_f32<T>(to_f32(x[i]) * f);
}

extern "C" int gpu_perturb(const char *op, void *buf, int64_t n, gpu_dtype dt, gpu_stream s)
{
    static const char *want;
    static int looked;
    if (!looked) {
        want = getenv("DUET_PERTURB");
        looked = 1;
    }
    if (!want || strcmp(want, op) != 0 || n <= 0) return 0;
    int blocks = (int)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
    if (dt == GPU_BF16)
        scale_kernel<<<blocks, 256, 0, s>>>((__nv_bfloat16 *)buf, n, 1.1f);
    else
        scale_kernel<<<blocks, 256, 0, s>>>((__half *)buf, n, 1.1f);
    LAUNCH_CHECK();
    return 0;
}
