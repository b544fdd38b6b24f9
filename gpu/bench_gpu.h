/* bench_gpu.h: what `duet bench` needs from the device besides the engine: random fills generated on
 * the GPU (no host upload of a 13 GB model), the device's name and memory, and its two ceilings
 * measured in the same run (device-to-device copy bandwidth, the fp16 GEMM rate of the engine's own
 * gpu_gemm on a large product and on the decode shapes). Plain C declarations: this header compiles
 * without CUDA; the functions exist only when the gpu backend is built (DUET_HAVE_CUDA). */
#ifndef DUET_GPU_BENCH_GPU_H
#define DUET_GPU_BENCH_GPU_H

#include "gpu.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* p[i] (n values of dt) = mean + std * sqrt(3) * (2u - 1), u uniform in [0, 1) from rng.h's mix of
 * (seed, stream, i): a counter-based hash, the same values on any GPU. */
int gpu_fill_random(void *p, int64_t n, gpu_dtype dt, uint64_t seed, uint64_t stream, float mean, float std,
                    gpu_stream s);

/* Name of device 0, its free/total memory now, its multiprocessors. */
int gpu_device_info(char *name, size_t n, size_t *free_b, size_t *total_b, int *n_sm);

/* Median over reps of a device-to-device copy of `bytes`: (bytes read + bytes written) / time, GB/s. */
int gpu_measure_copy(size_t bytes, int reps, double *gbps);

/* ms of one gpu_gemm (T, N, K) in dt with weights in mode `weights` (a duet_qmode; 0: dense): median of 5
 * bursts of reps back-to-back calls, rotating among enough weight copies to defeat the L2, through one
 * path: the engine's choice, cuBLAS (quantized: on W dequantized to dt), the GEMV kernel (T <= 8) or
 * the tensor-core gpu_qmma (quantized, T <= 64) or batch-invariant mode's pinned cuBLASLt product
 * (gpu_gemm_set_invariant); GPU_PATH_GEMV takes the bulk-copy GEMV for one token of quantized weights
 * wherever it fits, GPU_PATH_GEMV_REGS the register GEMV (gpu_gemm_set_qgemv). Random (non-zero) data. */
typedef enum { GPU_PATH_ENGINE, GPU_PATH_CUBLAS, GPU_PATH_GEMV, GPU_PATH_QMMA, GPU_PATH_INVARIANT, GPU_PATH_GEMV_REGS } gpu_gemm_path;
int gpu_measure_gemm(int T, int N, int K, gpu_dtype dt, int weights, gpu_gemm_path path, int reps, double *ms);

#ifdef __cplusplus
}
#endif
#endif
