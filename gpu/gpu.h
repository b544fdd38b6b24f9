/* gpu.h: what every part of the CUDA backend shares, callable from C: the storage dtype, the device
 * query, and plain device-memory helpers (allocate, upload with conversion, download to fp32, poison).
 * Every function returns 0 / a pointer, or -1 / NULL + duet_error() naming the CUDA call, file and line.
 * Launchers in the other gpu/ headers take device pointers and a stream (NULL: the default stream). */
#ifndef DUET_GPU_H
#define DUET_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GPU_F16 = 0, GPU_BF16 = 1 } gpu_dtype;
typedef struct CUstream_st *gpu_stream; /* = cudaStream_t, without the CUDA headers */

/* "fp16" (also NULL) or "bf16"; anything else is an error naming the value and the flag. */
int gpu_dtype_parse(const char *s, gpu_dtype *out);
const char *gpu_dtype_name(gpu_dtype dt);
size_t gpu_dtype_size(gpu_dtype dt);

/* Number of CUDA devices; 0 when there is none or no driver, with the reason in why[n] (may be NULL). */
int gpu_device_count(char *why, size_t n);

void *gpu_alloc(size_t bytes);
void gpu_free(void *p);
int gpu_sync(void);
/* Host fp32 -> device dt (round to nearest even), device dt -> host fp32. */
int gpu_upload(void *dst, const float *src, int64_t n, gpu_dtype dt);
int gpu_download(float *dst, const void *src, int64_t n, gpu_dtype dt);
int gpu_upload_f32(float *dst, const float *src, int64_t n);
int gpu_download_f32(float *dst, const float *src, int64_t n);
int gpu_upload_i32(int *dst, const int *src, int64_t n);
int gpu_download_i32(int *dst, const int *src, int64_t n);
/* Raw bytes (quantized codes and scales), unconverted. */
int gpu_upload_bytes(void *dst, const void *src, size_t n);
int gpu_download_bytes(void *dst, const void *src, size_t n);
/* Fills n elements of size `elem` (2 or 4) with NaN so that unwritten outputs show. */
int gpu_poison(void *p, int64_t n, size_t elem);
/* Host-side rounding of fp32 values through dt (what an upload keeps). */
void gpu_round_host(float *x, int64_t n, gpu_dtype dt);

#ifdef __cplusplus
}
#endif
#endif
