/* test_gpu_w8a8.c: the W8A8 GPU kernels (gpu/w8a8.h) against the arithmetic the ref's emulation runs.
 * SmoothQuant (common/smoothquant.h): the int32 accumulators of the int8 tensor-core product equal
 * duet_sq_gemm_i32's bit for bit (random codes, +-127 included, shapes from 1 to 300 tokens and K up to
 * 11008); the per-token codes and scales equal duet_sq_quant_tokens' on the same fp16 / bf16 values (a zero
 * row included); the dequantized fp32 outputs equal duet_sq_dequant's bit for bit, and the dt outputs are
 * their rounding. FP8 E4M3 (common/fp8quant.h), where the GPU has it: per-token and static codes and
 * scales bit for bit (saturation at +-448 included); the fp32 product of random E4M3 codes (every finite
 * byte, +-448 and the subnormals included) against the exact sum (double: every product of two E4M3 values
 * and the whole sum are exact in it) within F8_ACC_BOUND of sum |x w| per output; the dequantization bit
 * for bit. Outputs are poisoned (NaN) first. Bad shapes get an error. Exits 77 without a CUDA device. */
#include "test_gpu_util.h"

#include "error.h"
#include "gpu/gpu.h"
#include "gpu/w8a8.h"
#include "dtype.h"
#include "fp8quant.h"
#include "smoothquant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static void *dev_bytes(const void *h, size_t n)
{
    void *d = gpu_alloc(n ? n : 1);
    ck_assert_msg(d && gpu_upload_bytes(d, h, n) == 0, "%s", duet_error());
    return d;
}

START_TEST(test_i32_product)
{
    const int shapes[][3] = {{1, 256, 512}, {2, 4096, 4096}, {3, 688, 256}, {17, 1000, 1024}, {64, 4096, 4096},
                             {300, 512, 11008}, {5, 12, 64}};
    gpu_w8a8_gemm *g = gpu_w8a8_gemm_create();
    ck_assert_msg(g != NULL, "%s", duet_error());
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int T = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        int8_t *x = malloc((size_t)T * K), *w = malloc((size_t)N * K);
        for (size_t i = 0; i < (size_t)T * K; i++) x[i] = (int8_t)(next_u32() % 255 - 127);
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (int8_t)(next_u32() % 255 - 127);
        for (int j = 0; j < K; j++) x[j] = 127, w[j] = j % 2 ? -127 : 127; /* row 0 at the extremes */
        int32_t *want = malloc(sizeof(int32_t) * T * N), *got = malloc(sizeof(int32_t) * T * N);
        duet_sq_gemm_i32(x, w, T, N, K, want);
        int8_t *dx = dev_bytes(x, (size_t)T * K), *dw = dev_bytes(w, (size_t)N * K);
        int32_t *dacc = gpu_alloc(sizeof(int32_t) * T * N);
        ck_assert_msg(dacc && gpu_sq_gemm_i32(g, dacc, dx, dw, T, N, K, NULL) == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download_bytes(got, dacc, sizeof(int32_t) * T * N) == 0);
        for (int64_t i = 0; i < (int64_t)T * N; i++)
            ck_assert_msg(got[i] == want[i], "int8 gemm T %d N %d K %d: acc (%lld, %lld) = %d, the host's %d", T, N, K,
                          (long long)(i / N), (long long)(i % N), got[i], want[i]);
        printf("int8 gemm T %3d N %4d K %5d: %lld int32 accumulators equal to the host's\n", T, N, K,
               (long long)T * N);
        free(x), free(w), free(want), free(got);
        gpu_free(dx), gpu_free(dw), gpu_free(dacc);
    }
    int32_t *d = gpu_alloc(64);
    ck_assert(gpu_sq_gemm_i32(g, d, (const int8_t *)d, (const int8_t *)d, 1, 4, 6, NULL) == -1);
    ck_assert_msg(strstr(duet_error(), "multiple of 4"), "message: %s", duet_error());
    gpu_free(d);
    gpu_w8a8_gemm_free(g);
}
END_TEST

/* The dequantization of arbitrary accumulators (f8: fp32 ones, gpu_f8_dequant; else int32, gpu_sq_dequant)
 * with token scales xs (T) and random row scales: the fp32 outputs are the host's bits, the dt outputs
 * their rounding. */
static void check_dequant(int f8, gpu_dtype dt, const float *xs, int T, int N)
{
    void *acc = malloc(4 * (size_t)T * N);
    float *ws = malloc(sizeof(float) * N), *want = malloc(sizeof(float) * T * N), *got = malloc(sizeof(float) * T * N);
    for (int64_t i = 0; i < (int64_t)T * N; i++) {
        if (f8) ((float *)acc)[i] = ((float)(next_u32() >> 8) / 16777216.0f - 0.5f) * 3e5f;
        else ((int32_t *)acc)[i] = (int32_t)(next_u32() % 4000001) - 2000000;
    }
    for (int n = 0; n < N; n++) ws[n] = (float)(next_u32() % 1000 + 1) * 1e-5f;
    if (f8) duet_f8_dequant(acc, xs, ws, T, N, want);
    else duet_sq_dequant(acc, xs, ws, T, N, want);
    void *dacc = dev_bytes(acc, 4 * (size_t)T * N);
    float *dxs = gpu_alloc(sizeof(float) * T), *dws = gpu_alloc(sizeof(float) * N), *dy = gpu_alloc(sizeof(float) * T * N);
    ck_assert(dxs && dws && dy && gpu_upload_f32(dws, ws, N) == 0 && gpu_upload_f32(dxs, xs, T) == 0);
    for (int y_f32 = 1; y_f32 >= 0; y_f32--) {
        ck_assert(gpu_poison(dy, (int64_t)T * N, 4) == 0);
        const int rc = f8 ? gpu_f8_dequant(dy, y_f32, dacc, dxs, dws, T, N, dt, NULL)
                          : gpu_sq_dequant(dy, y_f32, dacc, dxs, dws, T, N, dt, NULL);
        ck_assert_msg(rc == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 &&
                  (y_f32 ? gpu_download_f32(got, dy, (int64_t)T * N) : gpu_download(got, dy, (int64_t)T * N, dt)) == 0);
        if (!y_f32) gpu_round_host(want, (int64_t)T * N, dt);
        ck_assert_msg(memcmp(got, want, sizeof(float) * T * N) == 0, "%s dequant %s: not the host's %s",
                      f8 ? "fp8" : "int8", y_f32 ? "fp32" : gpu_dtype_name(dt), y_f32 ? "bits" : "rounding");
    }
    printf("%sdequant %s (T %d, N %d): fp32 outputs the host's bits, %s outputs their rounding\n", f8 ? "fp8 " : "",
           gpu_dtype_name(dt), T, N, gpu_dtype_name(dt));
    free(acc), free(ws), free(want), free(got);
    gpu_free(dacc), gpu_free(dxs), gpu_free(dws), gpu_free(dy);
}

START_TEST(test_quant_dequant)
{
    const gpu_dtype dt = (gpu_dtype)_i;
    const int T = 37, K = 4096, N = 300;
    float *x = malloc(sizeof(float) * T * K);
    for (int64_t i = 0; i < (int64_t)T * K; i++)
        x[i] = ((float)(next_u32() >> 8) / 16777216.0f - 0.5f) * (1.0f + (float)(i / K % 7)) * 8.0f;
    for (int j = 0; j < K; j++) x[5 * K + j] = 0.0f; /* a zero row: scale 0, codes 0 */
    gpu_round_host(x, (int64_t)T * K, dt);
    int8_t *want_c = malloc((size_t)T * K), *got_c = malloc((size_t)T * K);
    float *want_s = malloc(sizeof(float) * T), *got_s = malloc(sizeof(float) * T);
    duet_sq_quant_tokens(x, T, K, want_c, want_s);
    void *dx = gpu_alloc(2 * (size_t)T * K);
    int8_t *dc = gpu_alloc((size_t)T * K);
    float *ds = gpu_alloc(sizeof(float) * T);
    ck_assert(dx && dc && ds && gpu_upload(dx, x, (int64_t)T * K, dt) == 0);
    ck_assert_msg(gpu_sq_quant_tokens(dc, ds, dx, T, K, dt, NULL) == 0, "%s", duet_error());
    ck_assert(gpu_sync() == 0 && gpu_download_bytes(got_c, dc, (size_t)T * K) == 0 &&
              gpu_download_f32(got_s, ds, T) == 0);
    for (int t = 0; t < T; t++)
        ck_assert_msg(memcmp(&got_s[t], &want_s[t], 4) == 0, "%s token %d: scale %a, the host's %a", gpu_dtype_name(dt),
                      t, got_s[t], want_s[t]);
    for (int64_t i = 0; i < (int64_t)T * K; i++)
        ck_assert_msg(got_c[i] == want_c[i], "%s token %lld elem %lld (x %a): code %d, the host's %d", gpu_dtype_name(dt),
                      (long long)(i / K), (long long)(i % K), x[i], got_c[i], want_c[i]);
    ck_assert(want_s[5] == 0.0f);
    printf("quant tokens %s (T %d, K %d): codes and scales equal to the host's\n", gpu_dtype_name(dt), T, K);
    check_dequant(0, dt, want_s, T, N);
    free(x), free(want_c), free(got_c), free(want_s), free(got_s);
    gpu_free(dx), gpu_free(dc), gpu_free(ds);
}
END_TEST

/* The FP8 product's error bound, relative to sum_j |x_j w_j| of each output: Hopper's FP8 MMA adds its
 * products into partial sums of about 14 significant bits before cuBLASLt (fast accumulation off) promotes
 * them into fp32 accumulators (DeepSeek-V3's report, section 3.3.2), so one partial sum may be off by
 * 2^-14 of its magnitude. 2^-12 was the first bound; the H200 measured up to 3.99e-4 (T 5, N 12, K 64;
 * 3.29e-4 at K 256: the whole K in one partial sum), hence 2^-11. An fp32 accumulation in any order would
 * be within K 2^-24 (3.8e-6 at K = 64). The measured maximum is printed per shape. */
#define F8_ACC_BOUND (1.0 / 2048)

static uint8_t random_e4m3(void)
{
    for (;;) {
        const uint8_t b = (uint8_t)next_u32();
        if ((b & 0x7F) != 0x7F) return b; /* every byte but the two NaNs */
    }
}

START_TEST(test_f8_product)
{
    if (!gpu_f8_supported()) {
        printf("FP8 product: skipped (%s)\n", duet_error());
        return;
    }
    const int shapes[][3] = {{1, 256, 512}, {2, 4096, 4096}, {3, 688, 256}, {17, 1000, 1024}, {64, 4096, 4096},
                             {300, 512, 11008}, {5, 12, 64}};
    gpu_w8a8_gemm *g = gpu_w8a8_gemm_create();
    ck_assert_msg(g != NULL, "%s", duet_error());
    double worst_all = 0.0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int T = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        uint8_t *x = malloc((size_t)T * K), *w = malloc((size_t)N * K);
        for (size_t i = 0; i < (size_t)T * K; i++) x[i] = random_e4m3();
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = random_e4m3();
        for (int j = 0; j < K; j++) x[j] = 0x7E, w[j] = j % 2 ? 0xFE : 0x7E; /* row 0 at +-448 */
        float *xf = malloc(sizeof(float) * T * K), *wf = malloc(sizeof(float) * N * K);
        for (size_t i = 0; i < (size_t)T * K; i++) xf[i] = duet_f8e4m3_to_f32(x[i]);
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = duet_f8e4m3_to_f32(w[i]);
        float *got = malloc(sizeof(float) * T * N);
        uint8_t *dx = dev_bytes(x, (size_t)T * K), *dw = dev_bytes(w, (size_t)N * K);
        float *dacc = gpu_alloc(sizeof(float) * T * N);
        ck_assert(dacc && gpu_poison(dacc, (int64_t)T * N, 4) == 0); /* NaN poison */
        ck_assert_msg(gpu_f8_gemm_f32(g, dacc, dx, dw, T, N, K, NULL) == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download_f32(got, dacc, (int64_t)T * N) == 0);
        double worst = 0.0;
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) {
                double exact = 0.0, mag = 0.0;
                for (int j = 0; j < K; j++) {
                    const double p = (double)xf[(size_t)t * K + j] * wf[(size_t)n * K + j];
                    exact += p, mag += fabs(p);
                }
                const double v = got[(size_t)t * N + n];
                ck_assert_msg(isfinite(v), "FP8 gemm T %d N %d K %d: acc (%d, %d) = %g", T, N, K, t, n, v);
                const double e = mag > 0 ? fabs(v - exact) / mag : fabs(v);
                if (e > worst) worst = e;
                ck_assert_msg(e <= F8_ACC_BOUND, "FP8 gemm T %d N %d K %d: acc (%d, %d) = %.9g, exact %.9g (error %.3g of "
                              "sum |x w| %.6g, bound %.3g)", T, N, K, t, n, v, exact, e, mag, F8_ACC_BOUND);
            }
        if (worst > worst_all) worst_all = worst;
        printf("fp8 gemm T %3d N %4d K %5d: max error %.3g of sum |x w| (bound %.3g)\n", T, N, K, worst, F8_ACC_BOUND);
        free(x), free(w), free(xf), free(wf), free(got);
        gpu_free(dx), gpu_free(dw), gpu_free(dacc);
    }
    printf("fp8 gemm: worst %.3g of sum |x w| over every shape\n", worst_all);
    float *d = gpu_alloc(64);
    ck_assert(gpu_f8_gemm_f32(g, d, (const uint8_t *)d, (const uint8_t *)d, 1, 4, 24, NULL) == -1);
    ck_assert_msg(strstr(duet_error(), "multiple of 16"), "message: %s", duet_error());
    gpu_free(d);
    gpu_w8a8_gemm_free(g);
}
END_TEST

START_TEST(test_f8_quant_dequant)
{
    const gpu_dtype dt = (gpu_dtype)_i;
    if (!gpu_f8_supported()) {
        printf("FP8 quant: skipped (%s)\n", duet_error());
        return;
    }
    const int T = 37, K = 4096, N = 300;
    float *x = malloc(sizeof(float) * T * K);
    for (int64_t i = 0; i < (int64_t)T * K; i++)
        x[i] = ((float)(next_u32() >> 8) / 16777216.0f - 0.5f) * (1.0f + (float)(i / K % 7)) * 8.0f;
    for (int j = 0; j < K; j++) x[5 * K + j] = 0.0f; /* a zero row: scale 0, codes 0 */
    x[7 * K + 3] = 1e-6f;                            /* a subnormal code */
    gpu_round_host(x, (int64_t)T * K, dt);
    uint8_t *want_c = malloc((size_t)T * K), *got_c = malloc((size_t)T * K);
    float *want_s = malloc(sizeof(float) * T), *got_s = malloc(sizeof(float) * T);
    void *dx = gpu_alloc(2 * (size_t)T * K);
    uint8_t *dc = gpu_alloc((size_t)T * K);
    float *ds = gpu_alloc(sizeof(float) * T);
    ck_assert(dx && dc && ds && gpu_upload(dx, x, (int64_t)T * K, dt) == 0);
    /* per token (x_scale 0), then static with a scale that saturates the larger rows (max |x| 4 of up to 28) */
    const float statics[2] = {0.0f, duet_f8_scale(4.0f)};
    for (int k = 0; k < 2; k++) {
        if (statics[k] > 0.0f) {
            duet_f8_quant_static(x, T, K, statics[k], want_c);
            for (int t = 0; t < T; t++) want_s[t] = statics[k];
        } else {
            duet_f8_quant_tokens(x, T, K, want_c, want_s);
        }
        ck_assert(gpu_poison(dc, (int64_t)T * K / 2, 2) == 0 && gpu_poison(ds, T, 4) == 0); /* 0xFF: NaN codes */
        ck_assert_msg(gpu_f8_quant_tokens(dc, ds, dx, T, K, statics[k], dt, NULL) == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download_bytes(got_c, dc, (size_t)T * K) == 0 &&
                  gpu_download_f32(got_s, ds, T) == 0);
        int n_sat = 0;
        for (int t = 0; t < T; t++)
            ck_assert_msg(memcmp(&got_s[t], &want_s[t], 4) == 0, "%s token %d: scale %a, the host's %a",
                          gpu_dtype_name(dt), t, got_s[t], want_s[t]);
        for (int64_t i = 0; i < (int64_t)T * K; i++) {
            ck_assert_msg(got_c[i] == want_c[i], "%s %s token %lld elem %lld (x %a): code 0x%02x, the host's 0x%02x",
                          gpu_dtype_name(dt), k ? "static" : "per token", (long long)(i / K), (long long)(i % K), x[i],
                          got_c[i], want_c[i]);
            n_sat += (want_c[i] & 0x7F) == 0x7E;
        }
        if (k) ck_assert_msg(n_sat > 0, "the static case saturates nothing");
        printf("fp8 quant tokens %s %s (T %d, K %d): codes and scales equal to the host's (%d at +-448)\n",
               gpu_dtype_name(dt), k ? "static" : "per token", T, K, n_sat);
    }
    duet_f8_quant_tokens(x, T, K, want_c, want_s);
    ck_assert(want_s[5] == 0.0f);
    check_dequant(1, dt, want_s, T, N);
    free(x), free(want_c), free(got_c), free(want_s), free(got_s);
    gpu_free(dx), gpu_free(dc), gpu_free(ds);
}
END_TEST

int main(void)
{
    if (test_gpu_absent()) return TEST_EXIT_SKIP;
    Suite *s = suite_create("gpu_w8a8");
    TCase *tc = tcase_create("sq");
    tcase_add_test(tc, test_i32_product);
    tcase_add_loop_test(tc, test_quant_dequant, 0, 2);
    suite_add_tcase(s, tc);
    TCase *t8 = tcase_create("fp8");
    tcase_set_timeout(t8, 300);
    tcase_add_test(t8, test_f8_product);
    tcase_add_loop_test(t8, test_f8_quant_dequant, 0, 2);
    suite_add_tcase(s, t8);
    return test_run_suite(s);
}
