/* gemv_tma.h: the one-token GEMV for weight-only quantized weights (GPU_W_I8, GPU_W_U4, GPU_W_U4_MIN) that
 * streams W into shared memory with Hopper's bulk copies (TMA, cp.async.bulk) and multiplies on the tensor
 * cores (gemv_tma.cuh says how). gemm.cu takes it for T = 1 where it fits when $DUET_QGEMV_KERNEL or
 * gemv_tma_preferred says so, the register GEMV of gemv.cuh otherwise; the same inputs and fused outputs
 * (gemv.h's gemv_args). C++ only (gemm.cu and the gemv_tma_<format>.cu files). */
#ifndef DUET_GPU_GEMV_TMA_H
#define DUET_GPU_GEMV_TMA_H
#include "gemv.h"

/* Whether this build and GPU run the kernel: sm_90 code on a compute capability 9.0+ device. */
int gemv_tma_usable(void);

/* Whether the kernel takes a.W at one token: gemv_tma_usable, a quantized format (W.fmt not GPU_W_DENSE),
 * K a multiple of 32, groups of 32, 64, 128 or the whole row, 16-byte aligned codes and x, and its shared
 * memory within TG_SMEM_MAX. */
int gemv_tma_ok(const gemv_args &a, gpu_dtype dt);

/* Whether the engine takes it by default where it fits (gemm.cu; DUET_QGEMV_KERNEL=tma|regs overrides): the
 * formats and activation types where it measured at least as fast as the register GEMV on the H200
 * (gpu/NOTES.md). */
int gemv_tma_preferred(const gpu_wdesc &W, gpu_dtype dt);

/* y = x . W^T for one token (gemv_run's arguments with T = 1); format WF = a.W.fmt. */
template <int WF>
cudaError_t gemv_tma_run(const gemv_args &a, gpu_dtype dt, int y_f32, int fused, int norm, gpu_gemv_out out,
                         cudaStream_t s);
#endif
