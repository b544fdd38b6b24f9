/* rng.c: the parts of the counter-based PRNG that need libm (see rng.h). */
#include "rng.h"

#include <math.h>

float duet_rng_normal(uint64_t seed, uint64_t counter)
{
    uint64_t r = duet_rng_u64(seed, counter);
    /* u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1). */
    double u1 = ((double)(r >> 32) + 1.0) / 4294967296.0;
    double u2 = (double)(r & 0xffffffffu) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
