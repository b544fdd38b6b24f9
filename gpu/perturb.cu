/* perturb.cu: DUET_PERTURB's scaling kernel and gpu_hog's spinning kernel (see perturb.h). */
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

/* spins until the device's global timer passes t_end (ns) */
__global__ void hog_kernel(unsigned long long t_end)
{
    unsigned long long t;
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        __nanosleep(1000);
    } while (t < t_end);
}

__global__ void hog_now_kernel(unsigned long long *t)
{
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(*t));
}

extern "C" int gpu_hog(int ms)
{
    static cudaStream_t hs;
    int dev = 0, n_sm = 0, per_sm = 0;
    unsigned long long now = 0, *d_now = NULL;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, hog_kernel, 1024, 0));
    if (!hs) CUDA_CHECK(cudaStreamCreateWithFlags(&hs, cudaStreamNonBlocking));
    /* the device clock, read on the device: the kernel's end time is in its units */
    CUDA_CHECK(cudaMalloc(&d_now, sizeof *d_now));
    hog_now_kernel<<<1, 1, 0, hs>>>(d_now);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(&now, d_now, sizeof now, cudaMemcpyDeviceToHost, hs);
    if (e == cudaSuccess) e = cudaStreamSynchronize(hs);
    cudaFree(d_now);
    CUDA_CHECK(e);
    hog_kernel<<<n_sm * (per_sm > 0 ? per_sm : 1), 1024, 0, hs>>>(now + (unsigned long long)ms * 1000000ull);
    LAUNCH_CHECK();
    return 0;
}
