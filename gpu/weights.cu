/* weights.cu: weights.h's format table, the descriptor checks, and the dequantize kernel of the
 * quantized prefill path. */
#include "cuda_check.h"
#include "weights.h"

#include <stdint.h>

static const gpu_wfmt_info FORMATS[GPU_W_N_FORMATS] = {
    /* name      bits zeros mins lane_elems */
    {"dense", 0, 0, 0, 8},
    {"i8", 8, 0, 0, 16},
    {"u4", 4, 1, 0, 32},
    {"u4-min", 4, 0, 1, 32},
};

extern "C" const gpu_wfmt_info *gpu_wfmt_get(gpu_wfmt f)
{
    return (unsigned)f < GPU_W_N_FORMATS ? &FORMATS[f] : NULL;
}

extern "C" size_t gpu_wdesc_row_bytes(gpu_wfmt f, int64_t K, gpu_dtype dt)
{
    const gpu_wfmt_info *i = gpu_wfmt_get(f);
    if (!i || K < 0) return 0;
    return f == GPU_W_DENSE ? (size_t)K * gpu_dtype_size(dt) : (size_t)K * i->bits / 8;
}

extern "C" int gpu_wdesc_check(const gpu_wdesc *W, int64_t N, int64_t K, gpu_dtype dt, const char *what)
{
    const gpu_wfmt_info *f = gpu_wfmt_get(W->fmt);
    if (!f) return duet_errorf("%s: unknown weight format %d", what, (int)W->fmt);
    if (!W->w || ((uintptr_t)W->w & 15) || gpu_wdesc_row_bytes(W->fmt, K, dt) % 16)
        return duet_errorf("%s: %s weights (%lld, %lld): rows must be 16-byte aligned", what, f->name, (long long)N,
                           (long long)K);
    if (W->fmt == GPU_W_DENSE) return 0;
    if (W->group <= 0 || K % W->group || W->group % f->lane_elems)
        return duet_errorf("%s: %s weights: group %d must divide K %lld and be a multiple of %d", what, f->name, W->group,
                           (long long)K, f->lane_elems);
    if (!W->scales) return duet_errorf("%s: %s weights without scales", what, f->name);
    if (f->has_mins && !W->mins) return duet_errorf("%s: %s weights without mins", what, f->name);
    return 0;
}

/* dst (N, K) in T: row n = blockIdx.y; thread x of the row makes elements 8x .. 8x + 7 (one group:
 * groups are multiples of 16) from one 8-byte (int8) or 4-byte (uint4) load and writes them as one
 * 16-byte store (coalesced), each weight s (q - z) or s q + m in fp32, rounded to T once. */
template <typename T, int WF>
__global__ void dequant_kernel(T *dst, gpu_wdesc W, int K)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x, k = 8 * x, n = blockIdx.y;
    if (k >= K) return;
    const int G = K / W.group, gi = k / W.group;
    const int64_t gidx = (int64_t)n * G + gi;
    float s = __half2float(__ushort_as_half(W.scales[gidx])), z = 0.0f, q[8];
    if (WF == GPU_W_I8) {
        uint2 v = *(const uint2 *)((const int8_t *)W.w + (int64_t)n * K + k);
        const int8_t *c = (const int8_t *)&v;
#pragma unroll
        for (int j = 0; j < 8; j++) q[j] = (float)c[j];
    } else {
        uint32_t v = *(const uint32_t *)((const uint8_t *)W.w + ((int64_t)n * K + k) / 2);
#pragma unroll
        for (int j = 0; j < 8; j++) q[j] = (float)((v >> (4 * j)) & 15);
        if (WF == GPU_W_U4) z = W.zeros ? (float)W.zeros[gidx] : 8.0f;
        else z = __half2float(__ushort_as_half(W.mins[gidx]));
    }
    uint4 out;
    T *o = (T *)&out;
#pragma unroll
    for (int j = 0; j < 8; j++) o[j] = from_f32<T>(WF == GPU_W_U4_MIN ? fmaf(s, q[j], z) : s * (q[j] - z));
    *(uint4 *)(dst + (int64_t)n * K + k) = out;
}

template <typename T> static cudaError_t dequant_t(void *dst, const gpu_wdesc *W, int N, int K, cudaStream_t s)
{
    dim3 block(128), grid((unsigned)((K / 8 + 127) / 128), (unsigned)N);
    switch (W->fmt) {
    case GPU_W_I8: dequant_kernel<T, GPU_W_I8><<<grid, block, 0, s>>>((T *)dst, *W, K); break;
    case GPU_W_U4: dequant_kernel<T, GPU_W_U4><<<grid, block, 0, s>>>((T *)dst, *W, K); break;
    default: dequant_kernel<T, GPU_W_U4_MIN><<<grid, block, 0, s>>>((T *)dst, *W, K); break;
    }
    return cudaGetLastError();
}

extern "C" int gpu_dequant(void *dst, const gpu_wdesc *W, int N, int K, gpu_dtype dt, gpu_stream s)
{
    if (gpu_wdesc_check(W, N, K, dt, "gpu_dequant")) return -1;
    if (W->fmt == GPU_W_DENSE) {
        CUDA_CHECK(cudaMemcpyAsync(dst, W->w, (size_t)N * K * gpu_dtype_size(dt), cudaMemcpyDeviceToDevice, s));
        return 0;
    }
    cudaError_t e = dt == GPU_BF16 ? dequant_t<__nv_bfloat16>(dst, W, N, K, s) : dequant_t<__half>(dst, W, N, K, s);
    CUDA_CHECK(e);
    return 0;
}

/* ---- table entries ------------------------------------------------------------------------------ */

extern "C" {
#include "dtype.h"
#include "quant.h"
#include "safetensors.h"
}
#include "bench_gpu.h"

#include <stdlib.h>
#include <string.h>

static size_t al256(size_t b) { return (b + 255) & ~(size_t)255; }

extern "C" size_t gpu_wplan_bytes(const gpu_wplan *p, gpu_dtype dt)
{
    size_t codes = al256((size_t)p->N * gpu_wdesc_row_bytes(p->fmt, p->K, dt));
    if (p->fmt == GPU_W_DENSE) return codes;
    size_t G = (size_t)(p->K / p->group), n = (size_t)p->N * G;
    return codes + al256(n * 2) + (p->fmt == GPU_W_U4 && p->zeros ? al256(n) : 0) +
           (p->fmt == GPU_W_U4_MIN ? al256(n * 2) : 0);
}

extern "C" void gpu_wplan_place(const gpu_wplan *p, void *dev, gpu_dtype dt, gpu_wdesc *d)
{
    char *b = (char *)dev;
    memset(d, 0, sizeof *d);
    d->fmt = p->fmt;
    d->group = p->group;
    d->w = b;
    if (p->fmt == GPU_W_DENSE) return;
    b += al256((size_t)p->N * gpu_wdesc_row_bytes(p->fmt, p->K, dt));
    size_t n = (size_t)p->N * (size_t)(p->K / p->group);
    d->scales = (const uint16_t *)b;
    b += al256(n * 2);
    if (p->fmt == GPU_W_U4 && p->zeros) d->zeros = (const uint8_t *)b, b += al256(n);
    if (p->fmt == GPU_W_U4_MIN) d->mins = (const uint16_t *)b;
}

extern "C" gpu_wplan gpu_wplan_of_mode(int qmode, int64_t N, int64_t K)
{
    gpu_wplan p = {GPU_W_DENSE, 0, 0, N, K};
    const duet_qmode_info *q = duet_qmode_get((duet_qmode)qmode);
    if (!q || qmode == DUET_Q_NONE) return p;
    p.fmt = q->bits == 8 ? GPU_W_I8 : qmode == DUET_Q_Q4_1 ? GPU_W_U4_MIN : GPU_W_U4;
    p.group = q->group ? q->group : (int)K;
    p.zeros = q->has_zeros;
    return p;
}

extern "C" gpu_wplan gpu_wplan_of(const st_tensor *const *parts, int n, gpu_dtype dt)
{
    int64_t N = 0, K = parts[0]->ndim == 2 ? parts[0]->shape[1] : parts[0]->numel;
    int mode = duet_qmode_of(parts[0]);
    for (int i = 0; i < n; i++) {
        N += parts[i]->ndim == 2 ? parts[i]->shape[0] : 1;
        if (duet_qmode_of(parts[i]) != mode) mode = -1;
    }
    gpu_wplan dense = {GPU_W_DENSE, 0, 0, N, K};
    if (mode <= DUET_Q_NONE) return dense;
    gpu_wplan p = gpu_wplan_of_mode(mode, N, K);
    /* the kernels' constraints, on a fake aligned pointer */
    gpu_wdesc d = {p.fmt, p.group, (const void *)(uintptr_t)256, (const uint16_t *)(uintptr_t)256, NULL,
                   (const uint16_t *)(uintptr_t)256};
    if (gpu_wdesc_check(&d, N, K, dt, "plan")) {
        duet_error_clear();
        return dense;
    }
    return p;
}

extern "C" int gpu_wplan_stage(const gpu_wplan *p, const st_tensor *const *parts, int n, gpu_dtype dt, void *host,
                               float *tmp)
{
    char *codes = (char *)host;
    if (p->fmt == GPU_W_DENSE) {
        uint16_t *dst = (uint16_t *)host;
        for (int i = 0; i < n; i++) {
            const st_tensor *t = parts[i];
            st_dtype want = dt == GPU_BF16 ? ST_BF16 : ST_F16;
            if (t->dtype == want) {
                memcpy(dst, t->data, (size_t)t->numel * 2);
            } else {
                if (st_to_f32(t, tmp)) return -1;
                for (int64_t j = 0; j < t->numel; j++)
                    dst[j] = dt == GPU_BF16 ? duet_f32_to_bf16(tmp[j]) : duet_f32_to_f16(tmp[j]);
            }
            dst += t->numel;
        }
        return 0;
    }
    gpu_wdesc d;
    gpu_wplan_place(p, host, dt, &d);
    const size_t G = (size_t)(p->K / p->group), rb = gpu_wdesc_row_bytes(p->fmt, p->K, dt);
    int64_t row = 0;
    for (int i = 0; i < n; i++) {
        duet_qweight q;
        if (duet_qweight_from_tensor(parts[i], &q)) return -1;
        if (q.cols != p->K || q.group != p->group || row + q.rows > p->N || (size_t)duet_qweight_row_bytes(&q) != rb) {
            duet_qweight_free(&q);
            return duet_errorf("gpu: tensor '%s' does not fit its weight entry (group %d, K %lld)", parts[i]->name,
                               p->group, (long long)p->K);
        }
        memcpy(codes + (size_t)row * rb, q.codes, (size_t)q.rows * rb);
        memcpy((uint16_t *)d.scales + (size_t)row * G, q.scales, (size_t)q.rows * G * 2);
        if (d.zeros) memcpy((uint8_t *)d.zeros + (size_t)row * G, q.zeros, (size_t)q.rows * G);
        if (d.mins) memcpy((uint16_t *)d.mins + (size_t)row * G, q.mins, (size_t)q.rows * G * 2);
        row += q.rows;
        duet_qweight_free(&q);
    }
    return row == p->N ? 0 : duet_errorf("gpu: internal: weight entry has %lld rows, expected %lld", (long long)row,
                                         (long long)p->N);
}

/* uniform random bytes from the same counter hash as gpu_fill_random */
__device__ __forceinline__ uint64_t wmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__global__ void fill_bytes_kernel(uint32_t *p, int64_t n_words, uint64_t key)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_words; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = (uint32_t)(wmix64(key ^ (uint64_t)i) >> 32);
}

extern "C" int gpu_wplan_fill_random(const gpu_wplan *p, void *dev, gpu_dtype dt, uint64_t seed, uint64_t stream,
                                     float mean, float std, gpu_stream s)
{
    gpu_wdesc d;
    gpu_wplan_place(p, dev, dt, &d);
    if (p->fmt == GPU_W_DENSE) return gpu_fill_random(dev, p->N * p->K, dt, seed, stream, mean, std, s);
    size_t code_bytes = (size_t)p->N * gpu_wdesc_row_bytes(p->fmt, p->K, dt), n = (size_t)p->N * (p->K / p->group);
    uint64_t key = (seed * 0x9e3779b97f4a7c15ull) ^ (stream * 0xd1b54a32d192ed03ull) ^ 0x5bd1e995ull;
    fill_bytes_kernel<<<132 * 16, 256, 0, s>>>((uint32_t *)dev, (int64_t)(code_bytes / 4), key);
    LAUNCH_CHECK();
    /* uniform codes: int8 std 73.9; uint4 minus 8 std 4.61 */
    float s0 = std / (p->fmt == GPU_W_I8 ? 73.9f : 4.61f);
    if (gpu_fill_random((void *)d.scales, (int64_t)n, GPU_F16, seed, stream + (1ull << 32), s0, 0.1f * s0, s)) return -1;
    if (d.zeros) CUDA_CHECK(cudaMemsetAsync((void *)d.zeros, 8, n, s));
    if (d.mins && gpu_fill_random((void *)d.mins, (int64_t)n, GPU_F16, seed, stream + (2ull << 32), -8.0f * s0, 0.0f, s))
        return -1;
    return 0;
}
