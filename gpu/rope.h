/* rope.h: RoPE in HF rotate-half layout on the fused q|k|v rows, fused with writing K (rotated) and V
 * into the paged KV cache at (seq[t], pos[t]). */
#ifndef DUET_GPU_ROPE_H
#define DUET_GPU_ROPE_H
#include "gpu.h"
#include "kv_cache.h"
#ifdef __CUDACC__
/* RoPE of one rotated pair (x1, x2) at position p, frequency index i of head dim d, in fp32 as HF: the one
 * definition, used by gpu_rope_kv and the fused qkv GEMV (gemv.cuh). */
__device__ __forceinline__ void rope_pair(float x1, float x2, int p, int i, int d, float theta, float &y1, float &y2)
{
    float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)d);
    float angle = (float)p * inv_freq, c, s;
    sincosf(angle, &s, &c);
    y1 = x1 * c - x2 * s;
    y2 = x2 * c + x1 * s;
}
#endif
#ifdef __cplusplus
extern "C" {
#endif
/* qkv (T, (H + 2 Hk) d) dt, each row [q (H d) | k (Hk d) | v (Hk d)]: q and k rotated in place (pair
 * (i, i + d/2) of each head, angle pos[t] * theta^(-2i/d), fp32 math as HF), then k and v stored in kv
 * for slot seq[t], position pos[t] (blocks must already be assigned). pos, seq: device (T). */
int gpu_rope_kv(void *qkv, const gpu_kv_view *kv, const int *pos, const int *seq, float theta, int T, int H,
                gpu_dtype dt, gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
