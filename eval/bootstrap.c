/* bootstrap.c: MT19937 as numpy's legacy RandomState runs it, randint's masked rejection, and
 * rouge_score's bootstrap resampling with np.percentile's 'linear' method, operation for operation
 * (column means are summed row by row then divided, as np.mean(axis=0) does on an (n, 3) array). */
#include "bootstrap.h"

#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MT_N 624
#define MT_M 397

void mt19937_seed(mt19937 *mt, uint32_t seed)
{
    for (int i = 0; i < MT_N; i++) {
        mt->key[i] = seed;
        seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)(i + 1);
    }
    mt->pos = MT_N;
}

static void mt_generate(mt19937 *mt)
{
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t *k = mt->key, y;
    int i;
    for (i = 0; i < MT_N - MT_M; i++) {
        y = (k[i] & 0x80000000u) | (k[i + 1] & 0x7fffffffu);
        k[i] = k[i + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
    }
    for (; i < MT_N - 1; i++) {
        y = (k[i] & 0x80000000u) | (k[i + 1] & 0x7fffffffu);
        k[i] = k[i + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
    }
    y = (k[MT_N - 1] & 0x80000000u) | (k[0] & 0x7fffffffu);
    k[MT_N - 1] = k[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
    mt->pos = 0;
}

uint32_t mt19937_next32(mt19937 *mt)
{
    if (mt->pos >= MT_N)
        mt_generate(mt);
    uint32_t y = mt->key[mt->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t mt19937_randint(mt19937 *mt, uint64_t n)
{
    uint64_t rng = n - 1;
    if (rng == 0)
        return 0; /* numpy fills with `low` and draws nothing */
    if (rng == 0xffffffffu)
        return mt19937_next32(mt);
    uint32_t mask = (uint32_t)rng;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    while ((v = mt19937_next32(mt) & mask) > rng)
        ;
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double percentile_linear_sorted(const double *s, size_t n, double q)
{
    double quantile = q / 100.0;
    double vi = (double)(n - 1) * quantile; /* 'linear': (n - 1) * q */
    double prev = floor(vi);
    size_t lo, hi;
    if (vi >= (double)(n - 1)) {
        lo = hi = n - 1;
    } else if (vi < 0) {
        lo = hi = 0;
    } else {
        lo = (size_t)prev;
        hi = lo + 1;
    }
    double gamma = vi - prev;
    double a = s[lo], b = s[hi], diff = b - a;
    /* numpy _lerp: a + diff * t, but b - diff * (1 - t) where t >= 0.5 */
    return gamma >= 0.5 ? b - diff * (1.0 - gamma) : a + diff * gamma;
}

int bootstrap_resample(double *out, const double *matrix, size_t n_rows, size_t n_cols,
                       size_t n_samples, double ci, mt19937 *mt)
{
    if (n_rows == 0)
        return duet_errorf("bootstrap: no items to aggregate");
    if (n_samples == 0)
        return duet_errorf("bootstrap: n_samples must be positive");
    if (!(ci >= 0 && ci <= 1))
        return duet_errorf("bootstrap: confidence_interval %g is not in [0, 1]", ci);
    if ((uint64_t)n_rows > 0xffffffffull)
        return duet_errorf("bootstrap: %zu items is more than 2^32", n_rows);
    double *means = malloc(n_samples * n_cols * sizeof *means); /* (n_samples, n_cols) col-major */
    double *acc = calloc(n_cols, sizeof *acc);
    double *col = malloc(n_samples * sizeof *col);
    if (!means || !acc || !col) {
        free(means);
        free(acc);
        free(col);
        return duet_errorf("bootstrap: out of memory for %zu samples", n_samples);
    }
    for (size_t i = 0; i < n_samples; i++) {
        memset(acc, 0, n_cols * sizeof *acc);
        for (size_t r = 0; r < n_rows; r++) {
            size_t idx = (size_t)mt19937_randint(mt, n_rows);
            for (size_t c = 0; c < n_cols; c++)
                acc[c] += matrix[idx * n_cols + c];
        }
        for (size_t c = 0; c < n_cols; c++)
            means[c * n_samples + i] = acc[c] / (double)n_rows;
    }
    double delta = (1.0 - ci) / 2.0;
    double q[3] = {100.0 * delta, 100.0 * 0.5, 100.0 * (1.0 - delta)};
    for (size_t c = 0; c < n_cols; c++) {
        memcpy(col, means + c * n_samples, n_samples * sizeof *col);
        qsort(col, n_samples, sizeof *col, cmp_double);
        for (int j = 0; j < 3; j++)
            out[j * n_cols + c] = percentile_linear_sorted(col, n_samples, q[j]);
    }
    free(means);
    free(acc);
    free(col);
    return 0;
}
