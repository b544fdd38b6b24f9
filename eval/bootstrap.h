/* bootstrap.h: numpy's legacy global RNG (RandomState: MT19937 seeded by np.random.seed(int),
 * randint's masked-rejection bounded integers) and rouge_score's BootstrapAggregator resampling
 * (scoring.py _bootstrap_resample + np.percentile 'linear'), reproduced bit for bit so that the
 * intervals equal what rouge_score computes after np.random.seed(seed). */
#ifndef DUET_BOOTSTRAP_H
#define DUET_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t key[624];
    int pos;
} mt19937;

/* np.random.seed(seed) for an int seed: MT19937 init_genrand (not init_by_array). */
void mt19937_seed(mt19937 *mt, uint32_t seed);

/* The next 32-bit output (genrand_int32 with tempering). */
uint32_t mt19937_next32(mt19937 *mt);

/* np.random.randint(0, n) one value at a time, as the legacy RandomState draws it for the default
 * int64 dtype: rng = n - 1; rng == 0 draws nothing and returns 0; otherwise 32-bit outputs masked
 * with the smallest all-ones mask >= rng, rejected while > rng. Requires 1 <= n <= 2^32. */
uint64_t mt19937_randint(mt19937 *mt, uint64_t n);

/* rouge_score BootstrapAggregator._bootstrap_resample on an (n_rows, n_cols) row-major matrix:
 * n_samples times draw n_rows row indices (np.random.choice(np.arange(n_rows), size=n_rows), which
 * is randint(0, n_rows, n_rows)) and take the column means; then np.percentile of those means at
 * 100 * [(1 - ci) / 2, 0.5, 1 - (1 - ci) / 2] with linear interpolation. out is (3, n_cols):
 * low, mid, high. Consumes the stream of `mt`. Returns 0, or -1 with duet_error() set. */
int bootstrap_resample(double *out, const double *matrix, size_t n_rows, size_t n_cols,
                       size_t n_samples, double ci, mt19937 *mt);

/* np.percentile(sorted, q) with method 'linear' on an ascending array of n >= 1 values, q in [0,100]. */
double percentile_linear_sorted(const double *sorted, size_t n, double q);

#endif
