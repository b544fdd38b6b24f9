/* gpu_backend.h: the CUDA backend behind the backend seam (common/backend.h): weights uploaded once in
 * fp16 or bf16, paged KV cache, cuBLAS GEMMs with fp32 accumulation, fp32 residual stream. */
#ifndef DUET_GPU_BACKEND_H
#define DUET_GPU_BACKEND_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* opts->dtype: "fp16" (default when NULL) or "bf16"; "fp32" is an error naming the flag. NULL +
 * duet_error() when there is no device, the options do not fit the model, or the weights and KV cache
 * do not fit in GPU memory (the message gives the sizes in MiB). */
duet_backend *gpu_backend_create(const duet_model *m, const duet_backend_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
