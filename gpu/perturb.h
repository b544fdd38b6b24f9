/* perturb.h: kernels for tests. A deliberately broken kernel on demand, to show that `duet diff` names the right tap:
 * with DUET_PERTURB=<op> in the environment, that op's launcher scales its output by 1.1 on the
 * device, so every tap from that op on moves and the op's own tap is the first out of tolerance.
 * Ops: rmsnorm (taps attn_norm / ffn_norm / final_norm), swiglu (act), qgemm (every product with
 * weight-only quantized weights: q/k/v first; gemm.cu), w8a8 (every W8A8 product: q/k/v first;
 * w8a8_model.cu). Unset: one cached getenv. */
#ifndef DUET_GPU_PERTURB_H
#define DUET_GPU_PERTURB_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
/* buf: n elements of dt on the device. Returns 0, or -1 + duet_error() on a launch failure. */
int gpu_perturb(const char *op, void *buf, int64_t n, gpu_dtype dt, gpu_stream s);

/* A busy GPU on demand (tests): holds every SM (as many 1024-thread spinning blocks as are resident) for
 * about ms milliseconds on a stream of its own, and returns at once; work queued meanwhile on other streams
 * waits, as it does on a GPU shared with other processes. Returns 0, or -1 + duet_error(). */
int gpu_hog(int ms);
#ifdef __cplusplus
}
#endif
#endif
