/* rmsnorm.cu: fused residual add + RMSNorm, one block per token row; the sum of squares is reduced in
 * fp32 (warp shuffles, then across warps); each thread re-reads only what it wrote itself. */
#include "cuda_check.h"
#include "perturb.h"
#include "rmsnorm.h"

template <typename T>
__global__ void add_rmsnorm_kernel(T *out, float *x, const T *delta, const T *w, float eps, int D)
{
    float *xr = x + (int64_t)blockIdx.x * D;
    const T *dr = delta ? delta + (int64_t)blockIdx.x * D : nullptr;
    pdl_trigger();
    pdl_wait();
    T *o = out + (int64_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = xr[i];
        if (dr) {
            v += to_f32(dr[i]);
            xr[i] = v;
        }
        ss += v * v;
    }
    __shared__ float warp_ss[32];
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    if (lane == 0) warp_ss[warp] = ss;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < n_warps; i++) total += warp_ss[i];
    float inv = 1.0f / sqrtf(total / D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = from_f32<T>(to_f32(w[i]) * (xr[i] * inv));
}

extern "C" int gpu_add_rmsnorm(void *out, float *x, const void *delta, const void *w, float eps, int T, int D,
                               gpu_dtype dt, gpu_stream s)
{
    int threads = D >= 1024 ? 1024 : ((D + 31) / 32) * 32;
    if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(add_rmsnorm_kernel<__nv_bfloat16>, T, threads, 0, s, (__nv_bfloat16 *)out, x,
                              (const __nv_bfloat16 *)delta, (const __nv_bfloat16 *)w, eps, D));
    else
        CUDA_CHECK(gpu_launch(add_rmsnorm_kernel<__half>, T, threads, 0, s, (__half *)out, x, (const __half *)delta,
                              (const __half *)w, eps, D));
    LAUNCH_CHECK();
    return gpu_perturb("rmsnorm", out, (int64_t)T * D, dt, s);
}
