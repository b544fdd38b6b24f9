/* bench_gpu.cu: random fills on the GPU, device info and the measured ceilings (see bench_gpu.h). */
#include "bench_gpu.h"
#include "cuda_check.h"
#include "gemm.h"
#include "weights.h"

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

/* rng.h's duet_mix64 (SplitMix64's finaliser), on the device. */
__device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename T> __global__ void fill_kernel(T *p, int64_t n, uint64_t key, float mean, float amp)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float u = (float)(mix64(key ^ (uint64_t)i) >> 40) * (1.0f / 16777216.0f);
        p[i] = from_f32<T>(mean + amp * (2.0f * u - 1.0f));
    }
}

extern "C" int gpu_fill_random(void *p, int64_t n, gpu_dtype dt, uint64_t seed, uint64_t stream, float mean, float std,
                               gpu_stream s)
{
    uint64_t key = (seed * 0x9e3779b97f4a7c15ull) ^ (stream * 0xd1b54a32d192ed03ull);
    key = key ^ (key >> 29); /* host half of the mix; the kernel mixes key ^ i */
    float amp = std * 1.7320508f;
    int blocks = (int)std::min<int64_t>((n + 255) / 256, 132 * 16);
    if (blocks < 1) blocks = 1;
    if (dt == GPU_BF16) fill_kernel<<<blocks, 256, 0, s>>>((__nv_bfloat16 *)p, n, key, mean, amp);
    else fill_kernel<<<blocks, 256, 0, s>>>((__half *)p, n, key, mean, amp);
    LAUNCH_CHECK();
    return 0;
}

extern "C" int gpu_device_info(char *name, size_t n, size_t *free_b, size_t *total_b, int *n_sm)
{
    cudaDeviceProp prop;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    if (name) snprintf(name, n, "%s", prop.name);
    if (n_sm) *n_sm = prop.multiProcessorCount;
    size_t f = 0, t = 0;
    CUDA_CHECK(cudaMemGetInfo(&f, &t));
    if (free_b) *free_b = f;
    if (total_b) *total_b = t;
    return 0;
}

static double median(std::vector<float> &v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

extern "C" int gpu_measure_copy(size_t bytes, int reps, double *gbps)
{
    void *a = gpu_alloc(bytes), *b = gpu_alloc(bytes);
    cudaEvent_t e0, e1;
    std::vector<float> ms;
    int rc = -1;
    if (!a || !b) goto out;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) goto out;
    if (gpu_fill_random(a, (int64_t)(bytes / 2), GPU_F16, 1, 1, 0.0f, 1.0f, NULL)) goto out;
    for (int i = 0; i < reps + 2; i++) {
        if (cudaEventRecord(e0) != cudaSuccess || cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice) != cudaSuccess ||
            cudaEventRecord(e1) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess) {
            duet_errorf("gpu_measure_copy: %s", cudaGetErrorString(cudaGetLastError()));
            goto out;
        }
        float t = 0;
        if (cudaEventElapsedTime(&t, e0, e1) != cudaSuccess) goto out;
        if (i >= 2) ms.push_back(t);
    }
    *gbps = 2.0 * (double)bytes / (median(ms) * 1e-3) / 1e9;
    rc = 0;
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
out:
    gpu_free(a);
    gpu_free(b);
    return rc;
}

extern "C" int gpu_measure_gemm(int T, int N, int K, gpu_dtype dt, int weights, gpu_gemm_path path, int reps,
                                double *ms_out)
{
    gpu_wplan plan = gpu_wplan_of_mode(weights, N, K);
    size_t wbytes = gpu_wplan_bytes(&plan, dt);
    int copies = (int)std::min<size_t>(16, std::max<size_t>(1, ((size_t)256 << 20) / wbytes + 1));
    std::vector<void *> W(copies, nullptr);
    std::vector<gpu_wdesc> Wd(copies);
    void *x = gpu_alloc((size_t)T * K * 2), *y = gpu_alloc((size_t)T * N * 4);
    gpu_gemm_ctx *g = gpu_gemm_create();
    cudaEvent_t e0 = NULL, e1 = NULL;
    std::vector<float> ms;
    int rc = -1;
    if (!x || !y || !g) goto out;
    if (path == GPU_PATH_INVARIANT) {
        if (gpu_gemm_set_invariant(g)) goto out;
    } else if (path != GPU_PATH_ENGINE) {
        const int gemv = path == GPU_PATH_GEMV || path == GPU_PATH_GEMV_REGS ? 8 : 0;
        gpu_gemm_set_qgemv(g, path == GPU_PATH_GEMV_REGS ? GPU_QGEMV_REGS : GPU_QGEMV_TMA);
        gpu_gemm_set_small_t(g, gemv);
        gpu_gemm_set_small_t_q(g, gemv);
        gpu_gemm_set_qmma_max_t(g, path == GPU_PATH_QMMA ? 64 : 0);
    }
    if (plan.fmt != GPU_W_DENSE && gpu_gemm_reserve_dequant(g, (size_t)N * K * 2)) goto out;
    for (int i = 0; i < copies; i++) {
        if (!(W[i] = gpu_alloc(wbytes))) goto out;
        if (gpu_wplan_fill_random(&plan, W[i], dt, 7, 100 + i, 0.0f, 0.02f, NULL)) goto out;
        gpu_wplan_place(&plan, W[i], dt, &Wd[i]);
    }
    if (gpu_fill_random(x, (int64_t)T * K, dt, 7, 99, 0.0f, 1.0f, NULL)) goto out;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) goto out;
    /* warm-up, then 5 timed bursts of reps back-to-back products (queued, so no per-call event gap) */
    for (int i = 0; i < 3; i++)
        if (gpu_gemm(g, y, 0, x, &Wd[i % copies], T, N, K, dt, NULL)) goto out;
    for (int b = 0; b < 5; b++) {
        if (cudaEventRecord(e0) != cudaSuccess) goto out;
        for (int i = 0; i < reps; i++)
            if (gpu_gemm(g, y, 0, x, &Wd[i % copies], T, N, K, dt, NULL)) goto out;
        if (cudaEventRecord(e1) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess) {
            duet_errorf("gpu_measure_gemm: %s", cudaGetErrorString(cudaGetLastError()));
            goto out;
        }
        float t = 0;
        if (cudaEventElapsedTime(&t, e0, e1) != cudaSuccess) goto out;
        ms.push_back(t / reps);
    }
    *ms_out = median(ms);
    rc = 0;
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    for (void *w : W) gpu_free(w);
    gpu_free(x);
    gpu_free(y);
    gpu_gemm_free(g);
    return rc;
}
