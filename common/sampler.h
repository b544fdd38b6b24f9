/* sampler.h: picks the next token from a row of logits: greedy (temperature 0), or temperature, then
 * top-k, then top-p (nucleus), as Hugging Face's logits warpers apply them. Draws come from the
 * counter-based PRNG (rng.h) and exp is duet_expf (expf_exact.h, not libm's), so a (seed, step) pair
 * always gives the same token on every machine, and gpu_sample (gpu/sampling.cu) gives the same too. */
#ifndef DUET_SAMPLER_H
#define DUET_SAMPLER_H

#include <stdint.h>

typedef struct duet_sampler {
    float temperature; /* 0: greedy (argmax, lowest id on ties) */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    uint64_t seed;
    uint64_t step;     /* draws so far; the counter of the PRNG */
    int vocab;
    float *probs;      /* (V) scratch */
    int *order;        /* (V) scratch */
} duet_sampler;

/* 0 or -1 + duet_error() for out-of-range parameters (temperature < 0, top_p outside (0, 1], top_k < 0). */
int duet_sampler_init(duet_sampler *s, int vocab, float temperature, int top_k, float top_p, uint64_t seed);
void duet_sampler_free(duet_sampler *s);
int duet_sample(duet_sampler *s, const float *logits);
int duet_argmax(const float *x, int n);

#endif
