/* test_gpu_w8a8.c: SmoothQuant W8A8's GPU kernels (gpu/w8a8.h) against common/smoothquant.h, the
 * arithmetic the ref's emulation runs: the int32 accumulators of the int8 tensor-core product equal
 * duet_sq_gemm_i32's bit for bit (random codes, +-127 included, shapes from 1 to 300 tokens and K up to
 * 11008); the per-token codes and scales equal duet_sq_quant_tokens' on the same fp16 / bf16 values (a zero
 * row included); the dequantized fp32 outputs equal duet_sq_dequant's bit for bit, and the dt outputs are
 * their rounding. Bad shapes get an error. Exits 77 without a CUDA device. */
#include "test_gpu_util.h"

#include "error.h"
#include "gpu/gpu.h"
#include "gpu/w8a8.h"
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
    gpu_i8_gemm *g = gpu_i8_gemm_create();
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
    gpu_i8_gemm_free(g);
}
END_TEST

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
    /* dequantization of arbitrary accumulators with these scales */
    int32_t *acc = malloc(sizeof(int32_t) * T * N);
    float *ws = malloc(sizeof(float) * N), *want_y = malloc(sizeof(float) * T * N), *got_y = malloc(sizeof(float) * T * N);
    for (int64_t i = 0; i < (int64_t)T * N; i++) acc[i] = (int32_t)(next_u32() % 4000001) - 2000000;
    for (int n = 0; n < N; n++) ws[n] = (float)(next_u32() % 1000 + 1) * 1e-5f;
    duet_sq_dequant(acc, want_s, ws, T, N, want_y);
    int32_t *dacc = dev_bytes(acc, sizeof(int32_t) * T * N);
    float *dws = gpu_alloc(sizeof(float) * N), *dy = gpu_alloc(sizeof(float) * T * N);
    ck_assert(dws && dy && gpu_upload_f32(dws, ws, N) == 0 && gpu_upload_f32(ds, want_s, T) == 0);
    ck_assert_msg(gpu_sq_dequant(dy, 1, dacc, ds, dws, T, N, dt, NULL) == 0, "%s", duet_error());
    ck_assert(gpu_sync() == 0 && gpu_download_f32(got_y, dy, (int64_t)T * N) == 0);
    ck_assert_msg(memcmp(got_y, want_y, sizeof(float) * T * N) == 0, "dequant fp32: not the host's bits");
    ck_assert_msg(gpu_sq_dequant(dy, 0, dacc, ds, dws, T, N, dt, NULL) == 0, "%s", duet_error());
    ck_assert(gpu_sync() == 0 && gpu_download(got_y, dy, (int64_t)T * N, dt) == 0);
    gpu_round_host(want_y, (int64_t)T * N, dt);
    ck_assert_msg(memcmp(got_y, want_y, sizeof(float) * T * N) == 0, "dequant %s: not the host's rounding",
                  gpu_dtype_name(dt));
    printf("dequant %s (T %d, N %d): fp32 outputs the host's bits, %s outputs their rounding\n", gpu_dtype_name(dt), T,
           N, gpu_dtype_name(dt));
    free(x), free(want_c), free(got_c), free(want_s), free(got_s), free(acc), free(ws), free(want_y), free(got_y);
    gpu_free(dx), gpu_free(dc), gpu_free(ds), gpu_free(dacc), gpu_free(dws), gpu_free(dy);
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
    return test_run_suite(s);
}
