/* backend.h: the one seam between the shared runtime and an implementation (ref/ on the CPU, gpu/ in
 * CUDA). A backend runs the forward pass of a packed batch: T tokens from any number of sequences,
 * each token with its position and its sequence slot (KV cache slot), no padding. Tokens of one
 * sequence appear in position order; earlier positions are either in this batch or already cached.
 * Taps: when a tap sink is set, the backend calls it at every named intermediate tensor (docs/design.md's
 * tap names) with host fp32 data, shape [T, features], row-major, tokens in batch order. */
#ifndef DUET_BACKEND_H
#define DUET_BACKEND_H

#include "model.h"

#include <stdint.h>

struct duet_sampler; /* sampler.h */

typedef void (*duet_tap_fn)(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols);

typedef struct duet_batch {
    int n_tokens;            /* T */
    const int *tokens;       /* [T] token ids */
    const int *pos;          /* [T] position of each token in its sequence (0-based) */
    const int *seq;          /* [T] sequence slot, 0 <= seq < max_seqs */
    const uint8_t *logits_for; /* [T] nonzero: return logits for this token; NULL: for every token */
} duet_batch;

typedef struct duet_backend_opts {
    int max_seqs;       /* KV cache slots (sequences alive at once) */
    int max_ctx;        /* positions per sequence (<= max_position_embeddings) */
    const char *dtype;  /* "fp32" (ref), "fp16", "bf16" (gpu) */
    int threads;        /* CPU threads for the ref (0: library default) */
    /* KV pool in bytes (0: room for max_seqs x max_ctx positions, every slot full). Slots take blocks of
     * kv_block positions from the pool as their positions are first written; release gives them back. */
    int64_t kv_budget;
    /* With kv_budget 0 and kv_fraction in (0, 1]: the pool takes that fraction of the memory left free
     * once the weights (and the backend's own buffers) are placed: device memory on the gpu, the host's
     * available memory (MemAvailable) on the ref; never more than every slot full. 0: off. */
    double kv_fraction;
    /* Nonzero: every row's sums run in one order fixed per row whatever else is in the batch (the ref
     * computes its products one row at a time), so a sequence's logits do not depend on its batch. */
    int batch_invariant;
    /* The KV cache's storage (kvquant.h): 0 (DUET_KV_F, the compute type), DUET_KV_INT8 or DUET_KV_FP8,
     * with kv_scales [n_layers][2][n_kv_heads] (K then V of each layer; the caller's, kept until free)
     * from calibration. */
    int kv_mode;
    const float *kv_scales;
    /* SmoothQuant W8A8 (calib/w8a8.h: the folded norms, int8 weights per output channel; the caller's,
     * kept until free): the layers' products on int8 codes, activations quantized per token. NULL: off. */
    const struct duet_w8a8 *w8a8;
} duet_backend_opts;

typedef struct duet_backend duet_backend;
struct duet_backend {
    const char *name;
    const duet_model *model; /* NULL for a backend made without a checkpoint (gpu_backend_create_random) */
    const duet_config *cfg;  /* the shapes it runs, always set (the model's, or the synthetic one's) */
    duet_tap_fn tap;  /* NULL in the fast path */
    void *tap_ctx;
    void *impl;
    /* One line saying how the backend holds the model (compute type, stored weight types and what was
     * done to them on load), for the CLI's startup line; set by create. */
    char summary[256];
    /* logits: [rows, V] row-major, one row per token selected by logits_for, in batch order. */
    int (*forward)(duet_backend *b, const duet_batch *batch, float *logits);
    /* Optional (NULL: the caller samples from forward's logits): n_steps decode steps of B sequences run
     * on the device without the logits crossing to the host. Step 0 feeds tok[b] at position pos[b] of
     * slot seq[b] (earlier positions cached); each later step feeds the token drawn at the step before
     * with samplers[b]'s settings, whose step counter advances as duet_sample advances it, so the draws
     * are duet_sample's. out_ids[i * B + b]: the token drawn at step i. Taps are not called. NaN in any
     * step's logits: -1 + duet_error() naming the slot. */
    int (*decode)(duet_backend *b, int B, const int *seq, const int *pos, const int *tok, int n_steps,
                  struct duet_sampler *const *samplers, int *out_ids);
    /* Optional (NULL: the caller samples forward's logits on the host): forward of the batch, then one draw
     * for each row logits_for selects (every row when NULL), row r with samplers[r] (rows in batch order),
     * the id duet_sample would return for that row's logits; each sampler's step counter advances as
     * duet_sample advances it. Only the ids leave the device. NaN in a drawn row's logits: -1 +
     * duet_error() naming the row's slot and position. Taps: as forward. One mixed step of the scheduler. */
    int (*forward_sample)(duet_backend *b, const duet_batch *batch, struct duet_sampler *const *samplers, int *ids);
    /* Gives slot seq's KV blocks back to the pool; its cached positions are forgotten (the slot starts
     * again at position 0). 0, or -1 + duet_error() for a slot out of range. */
    int (*release)(duet_backend *b, int seq);
    void (*free)(duet_backend *b);
    int kv_block;  /* positions per KV block */
    int kv_blocks; /* blocks in the pool: a forward that needs more than are free fails naming the slot */
};

/* How a backend is created: engine/registry.h's duet_backend_create has this type. Code in common/ that
 * needs to create backends takes one from its caller (common/ knows no backend by name). */
typedef duet_backend *(*duet_backend_create_fn)(const char *name, const duet_model *m, const duet_backend_opts *opts);
void duet_backend_free(duet_backend *b);
static inline void duet_backend_set_tap(duet_backend *b, duet_tap_fn fn, void *ctx)
{
    b->tap = fn;
    b->tap_ctx = ctx;
}

/* Checks a batch against the options and the model (ids in vocab, positions < max_ctx, slots valid). */
int duet_batch_validate(const duet_batch *batch, const duet_config *cfg, const duet_backend_opts *opts);

#endif
