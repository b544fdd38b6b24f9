/* gpu_backend.h: the CUDA backend behind the backend seam (common/backend.h): weights uploaded once in
 * fp16 or bf16, or as weight-only quantized codes with fp16 scales (weights.h), paged KV cache, cuBLAS GEMMs with fp32 accumulation, fp32 residual stream. */
#ifndef DUET_GPU_BACKEND_H
#define DUET_GPU_BACKEND_H

#include "backend.h"
#include "sampling.h"

#ifdef __cplusplus
extern "C" {
#endif

/* opts->dtype: "fp16" (default when NULL) or "bf16"; "fp32" is an error naming the flag. NULL +
 * duet_error() when there is no device, the options do not fit the model, or the weights and KV cache
 * do not fit in GPU memory (the message gives the sizes in MiB). */
duet_backend *gpu_backend_create(const duet_model *m, const duet_backend_opts *opts);

/* The same engine with random weights generated on the GPU (no checkpoint, nothing uploaded; `duet
 * bench`): matrices uniform with std 1/sqrt(in), embedding std 1, lm_head std 4/sqrt(D), norm weights
 * 1 + uniform of std 0.1, from a counter-based hash of (seed, tensor, index). be->model is NULL. */
duet_backend *gpu_backend_create_random(const duet_config *cfg, const duet_backend_opts *opts, uint64_t seed,
                                        int weights);
/* weights (a duet_qmode, quant.h): DUET_Q_NONE, or every layer matrix built directly in that mode's
 * device layout: uniform random codes, scales near the dense std over the codes' std, zero points 8
 * (nothing quantized: the codes are the seeded data). */

/* The device descriptor of layer `layer`'s matrix entry ("wqkv", "wo", "w_gate_up", "w_down") and its
 * shape (tests read the codes and scales back). */
struct gpu_wdesc;
int gpu_backend_weight(duet_backend *be, int layer, const char *entry, struct gpu_wdesc *out, int64_t *N, int64_t *K);

/* Like forward, but returns the greedy (argmax, lowest id on ties) token of each row that logits_for
 * selects (every row when NULL) in ids[R], computed on the GPU: no logits cross to the host. No taps. */
int gpu_backend_forward_argmax(duet_backend *be, const duet_batch *b, int *ids);

/* n_steps greedy decode steps of B sequences (distinct slots seq[B]) on the GPU: step 0 feeds tok[b] at
 * position pos[b] (the cache holds positions < pos[b]); each later step feeds the argmax of the one
 * before. out_ids[i * B + b] = the token chosen at step i (for position pos[b] + i + 1). Each step is one
 * replay of a CUDA graph captured per (B, max pos + n_steps) (eager launches when taps are set or
 * $DUET_NO_GRAPHS is nonzero); one host synchronization at the end. Needs pos[b] + n_steps <= max_ctx. */
int gpu_backend_decode_greedy(duet_backend *be, int B, const int *seq, const int *pos, const int *tok, int n_steps,
                              int *out_ids);

/* The same with a draw instead of the argmax: row b samples with params[b] (host array) and draw counter
 * steps[b] (host, in and out: advanced as duet_sample advances its step), on the GPU (gpu_sample: the
 * host sampler's algorithm). params NULL: greedy, steps unused. */
int gpu_backend_decode(duet_backend *be, int B, const int *seq, const int *pos, const int *tok, int n_steps,
                       const gpu_sample_params *params, uint64_t *steps, int *out_ids);

#ifdef __cplusplus
}
#endif
#endif
