/* kv_cache.cu: the block manager of the paged KV cache (host bookkeeping) and a gather kernel that
 * reads the paged layout back into a dense one (for tests and debugging). See kv_cache.h. */
#include "cuda_check.h"
#include "kv_cache.h"
#include "kv_codes.cuh"

#include <stdlib.h>

extern "C" int gpu_block_mgr_init(gpu_block_mgr *m, int n_blocks, int max_seqs, int max_ctx)
{
    m->n_blocks = n_blocks;
    m->max_seqs = max_seqs;
    m->max_blocks = (max_ctx + GPU_KV_BLOCK - 1) / GPU_KV_BLOCK;
    m->table = (int *)malloc(sizeof(int) * (size_t)max_seqs * m->max_blocks);
    m->n_alloc = (int *)calloc((size_t)max_seqs, sizeof(int));
    m->free_ids = (int *)malloc(sizeof(int) * (size_t)n_blocks);
    if (!m->table || !m->n_alloc || !m->free_ids) {
        gpu_block_mgr_free(m);
        return duet_errorf("gpu kv cache: out of host memory for the block tables (%d slots x %d blocks)", max_seqs,
                           m->max_blocks);
    }
    for (int64_t i = 0; i < (int64_t)max_seqs * m->max_blocks; i++) m->table[i] = -1;
    /* stack: block 0 on top, so a fresh cache fills blocks in order */
    for (int i = 0; i < n_blocks; i++) m->free_ids[i] = n_blocks - 1 - i;
    m->n_free = n_blocks;
    m->dirty = 1;
    return 0;
}

extern "C" void gpu_block_mgr_free(gpu_block_mgr *m)
{
    free(m->table);
    free(m->n_alloc);
    free(m->free_ids);
    m->table = m->n_alloc = m->free_ids = NULL;
}

extern "C" int gpu_block_mgr_reserve(gpu_block_mgr *m, int seq, int n_pos)
{
    int need = (n_pos + GPU_KV_BLOCK - 1) / GPU_KV_BLOCK;
    if (need > m->max_blocks)
        return duet_errorf("gpu kv cache: slot %d needs %d positions, more than max_ctx allows (%d blocks of %d)", seq,
                           n_pos, m->max_blocks, GPU_KV_BLOCK);
    if (need - m->n_alloc[seq] > m->n_free) /* all or nothing */
        return duet_errorf("gpu kv cache: out of blocks: slot %d needs %d more blocks, %d of %d are free", seq,
                           need - m->n_alloc[seq], m->n_free, m->n_blocks);
    while (m->n_alloc[seq] < need) {
        m->table[(int64_t)seq * m->max_blocks + m->n_alloc[seq]++] = m->free_ids[--m->n_free];
        m->dirty = 1;
    }
    return 0;
}

extern "C" void gpu_block_mgr_release(gpu_block_mgr *m, int seq)
{
    while (m->n_alloc[seq] > 0) {
        int64_t i = (int64_t)seq * m->max_blocks + --m->n_alloc[seq];
        m->free_ids[m->n_free++] = m->table[i];
        m->table[i] = -1;
        m->dirty = 1;
    }
}

extern "C" size_t gpu_kv_elem_size(int mode, gpu_dtype dt) { return mode == DUET_KV_F ? gpu_dtype_size(dt) : 1; }

/* Slot s's positions [0, C) of every kv head, one block per (position, slot): CODES, the raw bytes (a
 * missing block gives 0); else the values in fp32 (kv_value: codes times their scale; a missing block
 * gives NaN). Outputs (S, C, Hk d). */
template <typename T, bool CODES>
__global__ void kv_gather_kernel(void *k_out, void *v_out, gpu_kv_view kv, int C)
{
    const int p = blockIdx.x, s = blockIdx.y, Hk = kv.Hk, d = kv.d, kvd = Hk * d;
    const int blk = gpu_kv_block_of(kv.block_table + (int64_t)s * kv.max_blocks, p);
    const int64_t o = ((int64_t)s * C + p) * kvd;
    for (int j = threadIdx.x; j < kvd; j += blockDim.x) {
        const int h = j / d, i = j - h * d;
        const int64_t off = blk < 0 ? 0 : gpu_kv_row(blk, Hk, h, p, d) + i;
        if (CODES) {
            ((uint8_t *)k_out)[o + j] = blk < 0 ? 0 : ((const uint8_t *)kv.k)[off];
            ((uint8_t *)v_out)[o + j] = blk < 0 ? 0 : ((const uint8_t *)kv.v)[off];
        } else {
            ((float *)k_out)[o + j] = blk < 0 ? __int_as_float(0x7fffffff) : kv_value<T>(kv, kv.k, off, kv.mode ? kv.k_scale[h] : 1.0f);
            ((float *)v_out)[o + j] = blk < 0 ? __int_as_float(0x7fffffff) : kv_value<T>(kv, kv.v, off, kv.mode ? kv.v_scale[h] : 1.0f);
        }
    }
}

extern "C" int gpu_kv_gather(float *k_out, float *v_out, const gpu_kv_view *kv, int S, int C, gpu_dtype dt,
                             gpu_stream s)
{
    dim3 grid(C, S);
    if (dt == GPU_BF16) kv_gather_kernel<__nv_bfloat16, false><<<grid, 128, 0, s>>>(k_out, v_out, *kv, C);
    else kv_gather_kernel<__half, false><<<grid, 128, 0, s>>>(k_out, v_out, *kv, C);
    LAUNCH_CHECK();
    return 0;
}

extern "C" int gpu_kv_gather_codes(uint8_t *k_out, uint8_t *v_out, const gpu_kv_view *kv, int S, int C, gpu_stream s)
{
    if (kv->mode == DUET_KV_F) return duet_errorf("gpu_kv_gather_codes: the cache holds no codes (mode none)");
    kv_gather_kernel<__half, true><<<dim3(C, S), 128, 0, s>>>(k_out, v_out, *kv, C);
    LAUNCH_CHECK();
    return 0;
}
