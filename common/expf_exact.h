/* expf_exact.h: duet_expf(x) = e^x in float, specified down to the bit so that the host (C) and the GPU
 * (CUDA) give the same value: the host sampler (sampler.c) and gpu_sample (gpu/sampling.cu) both use it,
 * which is what lets a draw on the GPU equal the draw on the host. libm's expf and CUDA's expf differ
 * from each other (and between libm versions) in the last bit; this one does not depend on either.
 *
 * Method: in double, k = round(x / ln 2), r = x - k ln 2 (ln 2 split into a double and its remainder, so
 * r is exact to ~2^-100), e^r by its Taylor series to r^13 (|r| <= ln2 / 2: the truncation is < 2^-57
 * relative), times 2^k (exact), rounded once to float. Every operation is a correctly rounded IEEE
 * operation written out (explicit fused multiply-adds; nothing is left for a compiler to contract), so the
 * result is the same on every conforming machine. Accuracy: within a few double ulps before the final
 * rounding, i.e. the correctly rounded float except within ~1e-15 relative of a rounding midpoint. The
 * coefficients are 1/n! rounded to double. */
#ifndef DUET_EXPF_EXACT_H
#define DUET_EXPF_EXACT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define DUET_EXPF_HD __host__ __device__
#else
#define DUET_EXPF_HD
#endif

static inline DUET_EXPF_HD double duet_fma_exact(double a, double b, double c)
{
#ifdef __CUDA_ARCH__
    return __fma_rn(a, b, c);
#else
    return fma(a, b, c);
#endif
}

static inline DUET_EXPF_HD double duet_sub_exact(double a, double b)
{
#ifdef __CUDA_ARCH__
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}

static inline DUET_EXPF_HD float duet_expf(float x)
{
    if (x != x) return x;               /* NaN */
    if (x > 89.0f) return INFINITY;     /* e^88.73 > FLT_MAX */
    if (x < -104.0f) return 0.0f;       /* e^-104 < half the smallest subnormal; also -inf */
    const double INV_LN2 = 0x1.71547652b82fep+0, LN2_HI = 0x1.62e42fefa39efp-1, LN2_LO = 0x1.abc9e3b39803fp-56;
    const double SHIFT = 0x1.8p+52; /* adding it rounds to an integer (round to nearest even) */
    const double xd = (double)x;
    const double kd = duet_sub_exact(duet_fma_exact(xd, INV_LN2, SHIFT), SHIFT); /* -150 <= k <= 129 */
    double r = duet_fma_exact(-kd, LN2_HI, xd);
    r = duet_fma_exact(-kd, LN2_LO, r);
    /* e^r = sum r^n / n!, Horner from n = 13 */
    double p = 0x1.6124613a86d09p-33;
    p = duet_fma_exact(p, r, 0x1.1eed8eff8d898p-29);
    p = duet_fma_exact(p, r, 0x1.ae64567f544e4p-26);
    p = duet_fma_exact(p, r, 0x1.27e4fb7789f5cp-22);
    p = duet_fma_exact(p, r, 0x1.71de3a556c734p-19);
    p = duet_fma_exact(p, r, 0x1.a01a01a01a01ap-16);
    p = duet_fma_exact(p, r, 0x1.a01a01a01a01ap-13);
    p = duet_fma_exact(p, r, 0x1.6c16c16c16c17p-10);
    p = duet_fma_exact(p, r, 0x1.1111111111111p-7);
    p = duet_fma_exact(p, r, 0x1.5555555555555p-5);
    p = duet_fma_exact(p, r, 0x1.5555555555555p-3);
    p = duet_fma_exact(p, r, 0x1.0000000000000p-1);
    p = duet_fma_exact(p, r, 1.0);
    p = duet_fma_exact(p, r, 1.0);
    /* 2^k from its bits (k + 1023 is in [873, 1152]: a normal double), then an exact multiply */
    const uint64_t bits = (uint64_t)((int64_t)kd + 1023) << 52;
    double two_k;
#ifdef __CUDA_ARCH__
    two_k = __longlong_as_double((long long)bits);
    return __double2float_rn(__dmul_rn(p, two_k));
#else
    memcpy(&two_k, &bits, sizeof two_k);
    return (float)(p * two_k);
#endif
}

#endif
