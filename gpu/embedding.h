/* embedding.h: row gathers: the token embedding (dt table rows -> fp32 residual stream) and a plain
 * row gather in dt (the rows whose logits are asked for). */
#ifndef DUET_GPU_EMBEDDING_H
#define DUET_GPU_EMBEDDING_H
#include "gpu.h"
#ifdef __cplusplus
extern "C" {
#endif
/* x (T, D) fp32 = table (V, D) dt rows tokens[T]. */
int gpu_embedding(float *x, const void *table, const int *tokens, int T, int D, gpu_dtype dt, gpu_stream s);
/* out (R, D) dt = in rows rows[R] of in (*, D) dt. */
int gpu_gather_rows(void *out, const void *in, const int *rows, int R, int D, gpu_dtype dt, gpu_stream s);
#ifdef __cplusplus
}
#endif
#endif
