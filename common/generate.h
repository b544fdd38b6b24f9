/* generate.h: single-sequence generation on any backend: one prefill of the prompt, then one-token
 * decode steps, sampling each next token, until max_new tokens or EOS. Used by `duet generate` and eval.
 * On a backend with a device decode (the gpu), the decode steps run there in chunks (CUDA graphs,
 * sampling on the GPU); on_token still sees every token in order. */
#ifndef DUET_GENERATE_H
#define DUET_GENERATE_H

#include "backend.h"
#include "sampler.h"

typedef struct duet_gen_opts {
    int max_new;          /* tokens to generate at most */
    int eos_id;           /* stop after emitting it; -1: never stop early */
    int seq;              /* KV cache slot to use */
    /* Position of the prompt's first token (0: a fresh sequence). Positions 0..start_pos-1 of slot seq
     * must already be cached (an earlier prefill + decode of this slot, e.g. a chat's previous turns):
     * the prompt then holds only the new tokens, and the run continues that sequence. */
    int start_pos;
    duet_sampler *sampler;
    /* Called with each generated token as soon as it is sampled (may be NULL). Nonzero return stops. */
    int (*on_token)(void *ctx, int id);
    void *ctx;
    /* Nonzero: sample on the host from forward's logits even when the backend can decode on the device
     * (backend.h's decode: DUET_DECODE_CHUNK steps per call, the draws identical to duet_sample's). */
    int host_sampling;
} duet_gen_opts;

/* Decode steps per backend decode call: tokens after EOS in the last chunk are computed and dropped. */
#define DUET_DECODE_CHUNK 16

typedef struct duet_gen_stats {
    int n_prompt, n_generated;
    double prefill_s, decode_s; /* wall seconds of the prefill and of all decode steps */
} duet_gen_stats;

/* Monotonic wall-clock seconds (the clock of duet_gen_stats; the CLI times with it too). */
double duet_now(void);

/* out: room for opts->max_new ids. Checks start_pos + prompt + max_new against the backend's context first.
 * On return the slot caches positions 0..start_pos + n_prompt + n_generated - 2: every token but the
 * last one generated, which was sampled and never fed back (a continuation feeds it first).
 * Returns 0 or -1 + duet_error(); NaN in any step's logits is an error naming the position (the sampler
 * alone would still pick an id from such a row). */
int duet_generate(duet_backend *b, const duet_backend_opts *bo, const int *prompt, int n_prompt,
                  const duet_gen_opts *opts, int *out, duet_gen_stats *stats);

#endif
