/* rope.cu: RoPE (HF rotate-half) on q and k in place, fused with the paged K/V cache store; one block
 * per token. The angle is computed as the ref and HF do: inv_freq = 1 / theta^(2i/d) in fp32,
 * angle = pos * inv_freq in fp32, full-precision sincosf (not the fast intrinsics). */
#include "cuda_check.h"
#include "rope.h"

template <typename T>
__global__ void rope_kv_kernel(T *qkv, T *kc, T *vc, const int *table, int max_blocks, const int *pos, const int *seq,
                               float theta, int H, int Hk, int d)
{
    int t = blockIdx.x, half = d / 2, p = pos[t];
    int64_t ld = (int64_t)(H + 2 * Hk) * d;
    T *row = qkv + t * ld;
    int blk = table[(int64_t)seq[t] * max_blocks + p / GPU_KV_BLOCK];
    int slot = p % GPU_KV_BLOCK;
    int n_pairs = (H + Hk) * half;
    for (int j = threadIdx.x; j < n_pairs; j += blockDim.x) {
        int h = j / half, i = j - h * half; /* h < H: query head; else key head h - H */
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)d);
        float angle = (float)p * inv_freq, c, s;
        sincosf(angle, &s, &c);
        T *v = row + (int64_t)h * d;
        float x1 = to_f32(v[i]), x2 = to_f32(v[i + half]);
        T y1 = from_f32<T>(x1 * c - x2 * s), y2 = from_f32<T>(x2 * c + x1 * s);
        v[i] = y1;
        v[i + half] = y2;
        if (h >= H) {
            int64_t off = (((int64_t)blk * Hk + (h - H)) * GPU_KV_BLOCK + slot) * d;
            kc[off + i] = y1;
            kc[off + i + half] = y2;
        }
    }
    const T *vrow = row + (int64_t)(H + Hk) * d;
    for (int j = threadIdx.x; j < Hk * d; j += blockDim.x) {
        int h = j / d, i = j - h * d;
        vc[(((int64_t)blk * Hk + h) * GPU_KV_BLOCK + slot) * d + i] = vrow[j];
    }
}

extern "C" int gpu_rope_kv(void *qkv, const gpu_kv_view *kv, const int *pos, const int *seq, float theta, int T, int H,
                           gpu_dtype dt, gpu_stream s)
{
    int d = kv->d, Hk = kv->Hk, work = (H + Hk) * d / 2;
    int threads = work >= 256 ? 256 : ((work + 31) / 32) * 32;
    if (dt == GPU_BF16)
        rope_kv_kernel<<<T, threads, 0, s>>>((__nv_bfloat16 *)qkv, (__nv_bfloat16 *)kv->k, (__nv_bfloat16 *)kv->v,
                                             kv->block_table, kv->max_blocks, pos, seq, theta, H, Hk, d);
    else
        rope_kv_kernel<<<T, threads, 0, s>>>((__half *)qkv, (__half *)kv->k, (__half *)kv->v, kv->block_table,
                                             kv->max_blocks, pos, seq, theta, H, Hk, d);
    LAUNCH_CHECK();
    return 0;
}
