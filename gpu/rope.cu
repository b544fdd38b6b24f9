/* rope.cu: RoPE (HF rotate-half) on q and k in place, fused with the paged K/V cache store; one block
 * per (token, head). The angle is computed as the ref and HF do: inv_freq = 1 / theta^(2i/d) in fp32,
 * angle = pos * inv_freq in fp32, full-precision sincosf (not the fast intrinsics). */
#include "cuda_check.h"
#include "kv_codes.cuh"
#include "rope.h"

/* grid (T, H + Hk): block (t, h) rotates head h of token t (h < H: a query head; else key head h - H,
 * which it also stores with the matching value head into the cache); one thread per rotated pair. qkv
 * (T, (H + 2 Hk) d) in T: q heads, then k heads, then v heads; cache blocks (n_blocks, Hk, 16, d) of kv's
 * elements (kv_codes.cuh: the T-rounded rotated k and v, encoded). */
template <typename T>
__global__ void rope_kv_kernel(T *qkv, gpu_kv_view kv, const int *pos, const int *seq, float theta, int H)
{
    pdl_trigger();
    pdl_wait();
    const int Hk = kv.Hk, d = kv.d, t = blockIdx.x, h = blockIdx.y, half = d / 2, p = pos[t];
    const int64_t ld = (int64_t)(H + 2 * Hk) * d;
    T *row = qkv + t * ld;
    T *v = row + (int64_t)h * d;
    const int64_t off =
        h >= H ? gpu_kv_row(gpu_kv_block_of(kv.block_table + (int64_t)seq[t] * kv.max_blocks, p), Hk, h - H, p, d) : 0;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float o1, o2;
        rope_pair(to_f32(v[i]), to_f32(v[i + half]), p, i, d, theta, o1, o2);
        T y1 = from_f32<T>(o1), y2 = from_f32<T>(o2);
        v[i] = y1;
        v[i + half] = y2;
        if (h >= H) {
            kv_store<T>(kv, kv.k, off + i, h - H, 0, y1);
            kv_store<T>(kv, kv.k, off + i + half, h - H, 0, y2);
        }
    }
    if (h >= H) {
        const T *vrow = row + (int64_t)(H + Hk) * d + (int64_t)(h - H) * d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) kv_store<T>(kv, kv.v, off + i, h - H, 1, vrow[i]);
    }
}

extern "C" int gpu_rope_kv(void *qkv, const gpu_kv_view *kv, const int *pos, const int *seq, float theta, int T, int H,
                           gpu_dtype dt, gpu_stream s)
{
    int d = kv->d, Hk = kv->Hk;
    int threads = d / 2 >= 128 ? 128 : ((d / 2 + 31) / 32) * 32;
    dim3 grid(T, H + Hk);
    if (dt == GPU_BF16)
        CUDA_CHECK(gpu_launch(rope_kv_kernel<__nv_bfloat16>, grid, threads, 0, s, (__nv_bfloat16 *)qkv, *kv, pos, seq,
                              theta, H));
    else
        CUDA_CHECK(gpu_launch(rope_kv_kernel<__half>, grid, threads, 0, s, (__half *)qkv, *kv, pos, seq, theta, H));
    LAUNCH_CHECK();
    return 0;
}
