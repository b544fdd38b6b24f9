/* rope.h: RoPE in HF rotate-half layout on the fused q|k|v rows, fused with writing K (rotated) and V
 * into the paged KV cache at (seq[t], pos[t]). */
#ifndef DUET_GPU_ROPE_H
#define DUET_GPU_ROPE_H
#include "gpu.h"
#include "kv_cache.h"
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
