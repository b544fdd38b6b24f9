/* gemv_tma.cu: whether the bulk-copy GEMV (gemv_tma.cuh) takes a product. */
#include "gemv_tma.cuh"

int gemv_tma_usable(void)
{
    /* the kernel's code exists only when it was compiled for sm_90+ (ptxVersion: the PTX it came from; a
     * build for sm_80 JIT-compiled on a Hopper GPU would run its empty body) and the GPU is one */
    static int usable = -1;
    if (usable < 0) {
        int dev = 0, major = 0;
        cudaFuncAttributes fa;
        usable = cudaGetDevice(&dev) == cudaSuccess &&
                 cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 &&
                 cudaFuncGetAttributes(&fa, gemv_tma_kernel<__half, __half, GV_X, GV_STORE, GPU_W_U4>) == cudaSuccess &&
                 fa.ptxVersion >= 90;
        (void)cudaGetLastError();
    }
    return usable;
}

int gemv_tma_ok(const gemv_args &a, gpu_dtype dt)
{
    const gpu_wdesc &W = a.W;
    if (!gemv_tma_usable() || (W.fmt != GPU_W_I8 && W.fmt != GPU_W_U4 && W.fmt != GPU_W_U4_MIN)) return 0;
    /* groups of 32, 64 or 128 (a 32-element block's group is a shift away) or the whole row */
    if (a.K < 32 || a.K % 32 || W.group <= 0 || a.K % W.group) return 0;
    if (W.group != 32 && W.group != 64 && W.group != 128 && W.group != a.K) return 0;
    if (!W.w || ((uintptr_t)W.w & 15) || !W.scales || (W.fmt == GPU_W_U4_MIN && !W.mins)) return 0;
    if (a.x && ((uintptr_t)a.x & 15)) return 0;
    /* the shared memory depends on the tile count, which the output decides (SwiGLU: N pairs, the others
     * (N + 1) / 2) and which the caller's out does not tell here: both must fit */
    return tg_geom_of(a, dt, a.xr != NULL, 0, tg_n_sm()).smem <= TG_SMEM_MAX &&
           tg_geom_of(a, dt, a.xr != NULL, 1, tg_n_sm()).smem <= TG_SMEM_MAX;
}

int gemv_tma_preferred(const gpu_wdesc &W, gpu_dtype dt)
{
    /* None yet. H200, synthetic LLaMA-7B, fp16, batch-1 decode ms/step, bulk-copy (register) GEMV, one call:
     * int4 2.43 (2.44), int4-g128 2.55 (2.52), q4_0 2.59 (2.54), q4_1 3.34 (2.71), int8 2.81 (2.68), q8_0 3.60
     * (2.80): equal at best, so the register GEMV stays the default (gpu/NOTES.md has the profile). */
    (void)W, (void)dt;
    return 0;
}
