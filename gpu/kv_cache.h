/* kv_cache.h: the paged KV cache. Memory is a pool of fixed-size blocks of GPU_KV_BLOCK positions; each
 * sequence slot owns a block table (its i-th block holds positions [i*B, (i+1)*B)), so many sequences
 * of different lengths share one pool and a packed batch may mix prefill and decode tokens.
 * Per layer: K pool and V pool, each (n_blocks, Hk, B, d) elements; block tables (S, max_blocks) int32,
 * -1 where no block is assigned. An element is the compute type dt (mode DUET_KV_F) or one byte, an int8
 * or FP8 E4M3 code of common/kvquant.h with one fp32 scale per (layer, kv head): value = code x scale
 * (gpu/kv_codes.cuh encodes and decodes on the device). The block manager is host-side bookkeeping; the
 * engine uploads the table when it changes. */
#ifndef DUET_GPU_KV_CACHE_H
#define DUET_GPU_KV_CACHE_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif

#define GPU_KV_BLOCK 16

/* One layer's view of the cache, as kernels receive it. */
typedef struct gpu_kv_view {
    void *k, *v;            /* (n_blocks, Hk, B, d) dt each */
    const int *block_table; /* (S, max_blocks) device */
    int max_blocks;         /* blocks per slot = ceil(max_ctx / B) */
    int Hk, d;
    int mode;               /* duet_kv_mode (common/kvquant.h): 0 elements in dt, else 1-byte codes */
    const float *k_scale;   /* (Hk) device: this layer's K and V scales (mode != 0; unused otherwise) */
    const float *v_scale;
} gpu_kv_view;

/* The paged addressing, in one place: the pool block holding position pos of a slot whose block-table row
 * is tab (block_table + slot * max_blocks), and the element offset of the row (block blk, kv head kvh,
 * position pos) in a K or V pool laid out (n_blocks, Hk, GPU_KV_BLOCK, d). */
#ifdef __CUDACC__
__device__ __forceinline__ int gpu_kv_block_of(const int *tab, int pos) { return tab[pos / GPU_KV_BLOCK]; }
__device__ __forceinline__ int64_t gpu_kv_row(int blk, int Hk, int kvh, int pos, int d)
{
    return (((int64_t)blk * Hk + kvh) * GPU_KV_BLOCK + pos % GPU_KV_BLOCK) * d;
}
#endif

/* Bytes of one cache element: dt's size for mode 0, 1 for the int8 and FP8 codes. */
size_t gpu_kv_elem_size(int mode, gpu_dtype dt);

typedef struct gpu_block_mgr {
    int n_blocks, max_seqs, max_blocks;
    int *table;    /* (S, max_blocks) host, -1 = none */
    int *n_alloc;  /* (S) blocks held by each slot */
    int *free_ids; /* stack of free block ids */
    int n_free;
    int dirty;     /* table changed since the last upload */
} gpu_block_mgr;

int gpu_block_mgr_init(gpu_block_mgr *m, int n_blocks, int max_seqs, int max_ctx);
void gpu_block_mgr_free(gpu_block_mgr *m);
/* Makes sure slot `seq` has blocks for positions [0, n_pos); error when the pool is exhausted. */
int gpu_block_mgr_reserve(gpu_block_mgr *m, int seq, int n_pos);
/* Returns the slot's blocks to the pool. */
void gpu_block_mgr_release(gpu_block_mgr *m, int seq);

/* Test/debug: copies the cache of slots [0, S) to fp32 k_out, v_out (S, C, Hk*d) (C = max_ctx), codes
 * decoded (code x scale); positions without a block read NaN. */
int gpu_kv_gather(float *k_out, float *v_out, const gpu_kv_view *kv, int S, int C, gpu_dtype dt, gpu_stream s);
/* Test: the raw 1-byte codes of a quantized cache (mode != 0) of slots [0, S), (S, C, Hk*d) each, device
 * k_out, v_out; positions without a block read 0. */
int gpu_kv_gather_codes(uint8_t *k_out, uint8_t *v_out, const gpu_kv_view *kv, int S, int C, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
