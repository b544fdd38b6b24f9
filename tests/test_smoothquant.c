/* test_smoothquant.c: common/smoothquant.h, the one definition of SmoothQuant W8A8's codes and scales:
 *  - smoothing factors by hand and at alpha 0, 0.5 and 1; folding them (X / s, W diag(s)) keeps the
 *    product within fp32 rounding; alpha outside [0, 1], a negative or NaN calibration max are errors;
 *  - per-row / per-token codes: the largest |x| of a row maps to +-127, ties go to even, every value is
 *    within half a step of its code, a zero row gets scale 0 and codes 0;
 *  - the int32 product equals a 64-bit one, at the extremes too (127 x -127 over K = 4096), and the
 *    dequantized result is acc x scale_t x scale_i in that order. */
#include "test_util.h"

#include "error.h"
#include "rng.h"
#include "smoothquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(factors_by_hand_and_errors)
{
    const float act[2] = {4.0f, 1.0f}, W[4] = {1.0f, 2.0f, -3.0f, 0.5f}; /* columns' max |W|: 3, 2 */
    float s[2];
    ck_assert_int_eq(duet_sq_factors(act, W, 2, 2, 0.5f, s), 0);
    ck_assert_float_eq_tol(s[0], 2.0f / sqrtf(3.0f), 1e-6f);
    ck_assert_float_eq_tol(s[1], 1.0f / sqrtf(2.0f), 1e-6f);
    ck_assert_int_eq(duet_sq_factors(act, W, 2, 2, 1.0f, s), 0); /* alpha 1: s = max|X| */
    ck_assert_float_eq(s[0], 4.0f);
    ck_assert_float_eq(s[1], 1.0f);
    ck_assert_int_eq(duet_sq_factors(act, W, 2, 2, 0.0f, s), 0); /* alpha 0: s = 1 / max|W| */
    ck_assert_float_eq_tol(s[0], 1.0f / 3.0f, 1e-7f);
    ck_assert_float_eq_tol(s[1], 0.5f, 1e-7f);
    const float zero[2] = {0.0f, 0.0f}; /* both maxima floored at 1e-5: s = 1 */
    const float Wz[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    ck_assert_int_eq(duet_sq_factors(zero, Wz, 2, 2, 0.5f, s), 0);
    ck_assert_float_eq_tol(s[0], 1.0f, 1e-6f);
    ck_assert_int_eq(duet_sq_factors(act, W, 2, 2, 1.5f, s), -1);
    ck_assert_msg(strstr(duet_error(), "alpha 1.5"), "%s", duet_error());
    ck_assert_int_eq(duet_sq_factors(act, W, 2, 2, -0.1f, s), -1);
    const float neg[2] = {1.0f, -2.0f}, nan2[2] = {NAN, 1.0f};
    ck_assert_int_eq(duet_sq_factors(neg, W, 2, 2, 0.5f, s), -1);
    ck_assert_msg(strstr(duet_error(), "channel 1"), "%s", duet_error());
    ck_assert_int_eq(duet_sq_factors(nan2, W, 2, 2, 0.5f, s), -1);
}
END_TEST

START_TEST(folding_keeps_the_product)
{
    enum { T = 5, N = 7, K = 64 };
    float X[T * K], W[N * K], act[K] = {0}, s[K], Xs[T * K], Ws[N * K];
    for (int i = 0; i < T * K; i++) X[i] = (float)(duet_rng_uniform(3, (uint64_t)i) - 0.5) * (i % K == 5 ? 60.0f : 2.0f);
    for (int i = 0; i < N * K; i++) W[i] = (float)(duet_rng_uniform(4, (uint64_t)i) - 0.5);
    for (int i = 0; i < T * K; i++) act[i % K] = fmaxf(act[i % K], fabsf(X[i]));
    ck_assert_int_eq(duet_sq_factors(act, W, N, K, 0.5f, s), 0);
    for (int i = 0; i < T * K; i++) Xs[i] = X[i] / s[i % K];
    for (int i = 0; i < N * K; i++) Ws[i] = W[i] * s[i % K];
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double a = 0.0, b = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                a += (double)X[t * K + k] * W[n * K + k];
                b += (double)Xs[t * K + k] * Ws[n * K + k];
                mag += fabs((double)X[t * K + k] * W[n * K + k]);
            }
            ck_assert_msg(fabs(a - b) <= 4e-7 * mag, "t %d n %d: %g vs %g", t, n, a, b);
        }
    /* the outlier channel 5 is flattened: its max |X'| comes down to the others' range */
    ck_assert(act[5] / s[5] < act[5] / 4.0f);
}
END_TEST

START_TEST(codes_and_scales)
{
    const float row[6] = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, -127.0f}; /* scale 1: ties to even */
    int8_t c[6];
    float sc;
    duet_sq_quant_rows(row, 1, 6, c, &sc);
    ck_assert_float_eq(sc, 1.0f);
    const int8_t want[6] = {127, 0, 2, 2, -2, -127};
    ck_assert(!memcmp(c, want, 6));
    const float z[3] = {0.0f, -0.0f, 0.0f};
    duet_sq_quant_tokens(z, 1, 3, c, &sc);
    ck_assert_float_eq(sc, 0.0f);
    ck_assert(c[0] == 0 && c[1] == 0 && c[2] == 0);
    enum { T = 9, K = 333 };
    float *x = malloc(sizeof(float) * T * K), xs[T];
    int8_t *q = malloc(T * K);
    for (int i = 0; i < T * K; i++) x[i] = (float)(duet_rng_uniform(5, (uint64_t)i) - 0.5) * (float)(1 + i / K);
    duet_sq_quant_tokens(x, T, K, q, xs);
    for (int t = 0; t < T; t++) {
        int top = 0;
        float amax = 0.0f;
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(x[t * K + k]));
        ck_assert_float_eq(xs[t], amax / 127.0f);
        for (int k = 0; k < K; k++) {
            const int v = q[t * K + k];
            ck_assert(v >= -127 && v <= 127);
            ck_assert_msg(fabsf(x[t * K + k] - (float)v * xs[t]) <= 0.5f * xs[t] * (1.0f + 1e-5f), "t %d k %d", t, k);
            top |= v == 127 || v == -127;
        }
        ck_assert_msg(top, "token %d: no code reaches +-127", t);
    }
    free(x);
    free(q);
}
END_TEST

START_TEST(int32_product_exact)
{
    enum { T = 3, N = 4, K = 4096 };
    int8_t *xq = malloc(T * K), *wq = malloc(N * K);
    int32_t acc[T * N];
    for (int i = 0; i < T * K; i++) xq[i] = (int8_t)((int)(duet_rng_u64(6, (uint64_t)i) % 255) - 127);
    for (int i = 0; i < N * K; i++) wq[i] = (int8_t)((int)(duet_rng_u64(7, (uint64_t)i) % 255) - 127);
    for (int k = 0; k < K; k++) xq[k] = 127, wq[k] = -127; /* token 0, row 0: the extreme -127^2 K */
    duet_sq_gemm_i32(xq, wq, T, N, K, acc);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            int64_t r = 0;
            for (int k = 0; k < K; k++) r += (int64_t)xq[t * K + k] * wq[n * K + k];
            ck_assert_int_eq(acc[t * N + n], r);
        }
    ck_assert_int_eq(acc[0], -127 * 127 * K);
    const float xs[T] = {0.5f, 0.25f, 3.0f}, ws[N] = {0.01f, 0.02f, 0.03f, 0.04f};
    float y[T * N];
    duet_sq_dequant(acc, xs, ws, T, N, y);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            const float want = (float)acc[t * N + n] * xs[t] * ws[n];
            ck_assert(y[t * N + n] == want);
        }
    free(xq);
    free(wq);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("smoothquant");
    TCase *tc = tcase_create("arithmetic");
    tcase_add_test(tc, factors_by_hand_and_errors);
    tcase_add_test(tc, folding_keeps_the_product);
    tcase_add_test(tc, codes_and_scales);
    tcase_add_test(tc, int32_product_exact);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
