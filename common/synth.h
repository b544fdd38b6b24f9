/* synth.h: synthetic LLaMA checkpoints from a seed, written as a Hugging Face folder (config.json +
 * model.safetensors). Promise: the bytes depend only on the options, never on the machine, libc or
 * compiler: every value comes from the counter-based PRNG (rng.h) through integer arithmetic and
 * IEEE basic operations (add, multiply, sqrt), no libm transcendental functions. */
#ifndef DUET_SYNTH_H
#define DUET_SYNTH_H

#include "config.h"
#include "safetensors.h"

#include <stdint.h>

typedef struct duet_synth_opts {
    duet_config cfg;     /* shapes, eps, theta, tied */
    uint64_t seed;
    int n_outliers;      /* K hidden channels whose norm weights are scaled by outlier_scale */
    float outlier_scale; /* S */
    st_dtype dtype;      /* ST_F32, ST_F16 or ST_BF16 */
} duet_synth_opts;

/* Defaults: stories260K's shapes with 2 layers (dim 64, ffn 172, 8 heads, 4 kv heads, head_dim 8,
 * vocab 512, max_pos 512, theta 10000, eps 1e-5), untied, seed 1, no outliers, f32. */
void duet_synth_defaults(duet_synth_opts *o);

/* Writes <dir>/config.json and <dir>/model.safetensors (dir is created when missing). The spec string
 * (duet_synth_spec_format) is stored in the safetensors __metadata__ as "duet_synth". 0 or -1. */
int duet_synth_write(const duet_synth_opts *o, const char *dir);

/* A canonical one-line description, "seed=1 dim=64 ffn=172 ... dtype=f32", that
 * duet_synth_spec_parse reads back to the same options (goldens record it to regenerate their model). */
int duet_synth_spec_format(const duet_synth_opts *o, char *buf, size_t n);
int duet_synth_spec_parse(duet_synth_opts *o, const char *spec);

/* A standard-normal-like value, element `i` of stream `stream`: Irwin-Hall sum of four 16-bit uniforms
 * from one 64-bit draw, centred and scaled to unit variance (range +-3.46). Bit-identical everywhere. */
float duet_synth_normal(uint64_t stream, uint64_t i);

/* The K outlier channels (distinct, ascending) chosen for (seed, dim); out[K]. */
void duet_synth_outlier_channels(uint64_t seed, int dim, int k, int *out);

#endif
