/* rng.h: a counter-based PRNG: value i of stream `seed` is a pure function of (seed, i), so synthetic
 * weights and sampling are identical on every machine and can be generated in any order (or on the GPU).
 * The mix is SplitMix64's finaliser applied twice. No libc rand(). */
#ifndef DUET_RNG_H
#define DUET_RNG_H

#include <stdint.h>

/* Callable from CUDA device code too (gpu/sampling.cu draws on the GPU); plain static inline in C. */
#ifdef __CUDACC__
#define DUET_HD __host__ __device__
#else
#define DUET_HD
#endif

static inline DUET_HD uint64_t duet_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 64 random bits: element `counter` of stream `seed`. */
static inline DUET_HD uint64_t duet_rng_u64(uint64_t seed, uint64_t counter)
{
    return duet_mix64(duet_mix64(seed) ^ counter);
}

/* Uniform in [0, 1) with 24 bits (exactly representable as float). */
static inline DUET_HD float duet_rng_uniform(uint64_t seed, uint64_t counter)
{
    return (float)(duet_rng_u64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

#endif
