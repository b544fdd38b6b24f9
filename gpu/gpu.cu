/* gpu.cu: the shared helpers of gpu.h: dtype names, the device query that lets tests skip cleanly,
 * and device-memory helpers used by the engine and the tests (conversion happens on the host). */
#include "cuda_check.h"

extern "C" {
#include "safetensors.h"
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" int gpu_dtype_parse(const char *s, gpu_dtype *out)
{
    if (!s || !strcmp(s, "fp16")) {
        *out = GPU_F16;
        return 0;
    }
    if (!strcmp(s, "bf16")) {
        *out = GPU_BF16;
        return 0;
    }
    if (!strcmp(s, "fp32"))
        return duet_errorf("gpu backend: fp32 is not supported: the gpu backend stores weights and activations "
                           "in fp16 or bf16 (use fp16 or bf16, or the ref backend for fp32)");
    return duet_errorf("gpu backend: dtype '%s' unknown (expected fp16 or bf16)", s);
}

extern "C" const char *gpu_dtype_name(gpu_dtype dt) { return dt == GPU_BF16 ? "bf16" : "fp16"; }
extern "C" size_t gpu_dtype_size(gpu_dtype dt) { return 2; }

extern "C" int gpu_device_count(char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why) snprintf(why, n, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    if (count == 0 && why) snprintf(why, n, "cudaGetDeviceCount reports 0 devices");
    return count;
}

/* Cached on first use: PDL needs compute capability 9.0 (the kernels' griddepcontrol is compiled only for
 * sm_90+); $DUET_PDL=0 turns it off. */
extern "C" int gpu_pdl_enabled(void)
{
    static int cached = -1;
    if (cached < 0) {
        int dev = 0, major = 0;
        const char *e = getenv("DUET_PDL");
        cached = !(e && !strcmp(e, "0")) && cudaGetDevice(&dev) == cudaSuccess &&
                 cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
        cudaGetLastError();
    }
    return cached;
}

extern "C" void *gpu_alloc(size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        duet_errorf("gpu: cudaMalloc of %.1f MiB failed: %s", bytes / 1048576.0, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void gpu_free(void *p)
{
    if (p) cudaFree(p);
}

extern "C" int gpu_sync(void)
{
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" void gpu_round_host(float *x, int64_t n, gpu_dtype dt)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = dt == GPU_BF16 ? duet_bf16_to_f32(duet_f32_to_bf16(x[i])) : duet_f16_to_f32(duet_f32_to_f16(x[i]));
}

extern "C" int gpu_upload(void *dst, const float *src, int64_t n, gpu_dtype dt)
{
    uint16_t *h = (uint16_t *)malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
    if (!h) return duet_errorf("gpu_upload: out of host memory for %lld values", (long long)n);
    for (int64_t i = 0; i < n; i++) h[i] = dt == GPU_BF16 ? duet_f32_to_bf16(src[i]) : duet_f32_to_f16(src[i]);
    cudaError_t e = cudaMemcpy(dst, h, sizeof(uint16_t) * (size_t)n, cudaMemcpyHostToDevice);
    free(h);
    CUDA_CHECK(e);
    return 0;
}

extern "C" int gpu_download(float *dst, const void *src, int64_t n, gpu_dtype dt)
{
    uint16_t *h = (uint16_t *)malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
    if (!h) return duet_errorf("gpu_download: out of host memory for %lld values", (long long)n);
    cudaError_t e = cudaMemcpy(h, src, sizeof(uint16_t) * (size_t)n, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess)
        for (int64_t i = 0; i < n; i++) dst[i] = dt == GPU_BF16 ? duet_bf16_to_f32(h[i]) : duet_f16_to_f32(h[i]);
    free(h);
    CUDA_CHECK(e);
    return 0;
}

extern "C" int gpu_upload_f32(float *dst, const float *src, int64_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
    return 0;
}
extern "C" int gpu_download_f32(float *dst, const float *src, int64_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, sizeof(float) * (size_t)n, cudaMemcpyDeviceToHost));
    return 0;
}
extern "C" int gpu_upload_i32(int *dst, const int *src, int64_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, sizeof(int) * (size_t)n, cudaMemcpyHostToDevice));
    return 0;
}
extern "C" int gpu_download_i32(int *dst, const int *src, int64_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, sizeof(int) * (size_t)n, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int gpu_upload_bytes(void *dst, const void *src, size_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
    return 0;
}
extern "C" int gpu_download_bytes(void *dst, const void *src, size_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int gpu_poison(void *p, int64_t n, size_t elem)
{
    /* 0xFF bytes are a NaN in fp16, bf16 and fp32 alike. */
    CUDA_CHECK(cudaMemset(p, 0xFF, elem * (size_t)n));
    return 0;
}
