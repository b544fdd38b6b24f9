/* test_gpu_quant.c: the weight-only quantized matrix products (gpu/weights.h, gpu/gemm.h) against the ref
 * ops in the same mode, every mode, fp16 and bf16 activations, on fresh random inputs with poisoned
 * outputs (NaN never passes: check() wants every element finite).
 *
 * Each matrix goes the way a model's does: the CPU quantizer (common/quant.h) makes the codes, they are
 * stored as the model holds them (GGUF blocks for q8_0/q4_0/q4_1, planar codes + st_tensor.q otherwise),
 * staged and uploaded by gpu_wplan_stage, and the device bytes are read back and compared with the
 * quantizer's planar codes, scales, zero points and mins bit for bit. The ref's weights are
 * duet_qweight_to_f32 of the same codes (which st_to_f32 of the stored tensor must equal bit for bit), so
 * the GEMV (T <= 8) sees the ref's weights exactly and the bound is the activation dtype's rounding
 * (test_gpu_ops' BOUND). Above T = 8 the product dequantizes to the dtype first (each weight rounded once,
 * about the same size as the output rounding) and uses cuBLAS: the same bound. The tensor-core product
 * (gpu/qmma.h, T up to 64) sees the ref's weights exactly, as the GEMV: the same bound, and 1e-5 in fp32. */
#include "test_gpu_util.h"

#include "error.h"
#include "gpu/gemm.h"
#include "gpu/gpu.h"
#include "gpu/qmma.h"
#include "gpu/weights.h"
#include "quant.h"
#include "ref/ops.h"
#include "safetensors.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double BOUND[2] = {1e-3, 1e-2}; /* [GPU_F16], [GPU_BF16]: as test_gpu_ops */

static const duet_qmode MODES[] = {DUET_Q_INT8, DUET_Q_INT4, DUET_Q_INT4_G128, DUET_Q_INT4_G64,
                                   DUET_Q_Q8_0, DUET_Q_Q4_0, DUET_Q_Q4_1};
#define N_MODES (int)(sizeof MODES / sizeof MODES[0])

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static float frand(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *rand_vec(int64_t n, float scale, gpu_dtype dt, int round)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = frand() * scale;
    if (round) gpu_round_host(x, n, dt);
    return x;
}

static void check(const char *what, duet_qmode mode, gpu_dtype dt, const float *got, const float *want, int64_t n,
                  double bound)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(got[i]), "%s %s %s: non-finite %g at %lld (want %g)", what, duet_qmode_get(mode)->name,
                      gpu_dtype_name(dt), got[i], (long long)i, want[i]);
        double e = (double)got[i] - want[i];
        num += e * e;
        den += (double)want[i] * want[i];
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    printf("%-40s %-9s %s rel_l2 %.2e bound %.0e\n", what, duet_qmode_get(mode)->name, gpu_dtype_name(dt), rel, bound);
    ck_assert_msg(rel <= bound, "%s %s %s: rel_l2 %.3e > %.0e", what, duet_qmode_get(mode)->name, gpu_dtype_name(dt),
                  rel, bound);
}

/* A quantized (N, K) matrix on the host and the device. */
typedef struct qmat {
    duet_qweight q;   /* the CPU quantizer's planar output */
    st_tensor t;      /* as a model stores it */
    void *stored;     /* t.data */
    float *wref;      /* the ref's weights (N, K) */
    gpu_wplan plan;
    void *dev;
    gpu_wdesc d;
} qmat;

static void qmat_make(qmat *m, duet_qmode mode, int N, int K, gpu_dtype dt)
{
    memset(m, 0, sizeof *m);
    float *W = rand_vec((int64_t)N * K, 1.0f / sqrtf((float)K), dt, 0);
    for (int i = 0; i < K; i++) W[i] = 0.0f; /* an all-zero row: scale 0 */
    ck_assert_msg(duet_quantize(mode, W, N, K, "test", &m->q) == 0, "%s", duet_error());
    free(W);
    m->wref = malloc(sizeof(float) * N * K);
    duet_qweight_to_f32(&m->q, m->wref);
    const duet_qmode_info *info = duet_qmode_get(mode);
    m->t.name = "w";
    m->t.file = "test_gpu_quant";
    m->t.dtype = info->dtype;
    m->t.ndim = 2;
    m->t.shape[0] = N;
    m->t.shape[1] = K;
    m->t.numel = (int64_t)N * K;
    m->t.nbytes = st_dtype_bytes(info->dtype, m->t.numel);
    ck_assert(m->t.nbytes > 0);
    m->stored = malloc(m->t.nbytes);
    ck_assert_msg(duet_qweight_to_blocks(&m->q, m->stored) == 0, "%s", duet_error());
    m->t.data = m->stored;
    if (info->dtype == ST_QI8 || info->dtype == ST_QU4) {
        m->t.q.group = m->q.group;
        m->t.q.scales = m->q.scales;
        m->t.q.zeros = m->q.zeros;
    }
    /* the ref reads the stored tensor: exactly the quantizer's weights */
    float *viaref = malloc(sizeof(float) * N * K);
    ck_assert_msg(st_to_f32(&m->t, viaref) == 0, "%s", duet_error());
    ck_assert_msg(memcmp(viaref, m->wref, sizeof(float) * N * K) == 0, "%s: st_to_f32 differs from the quantizer",
                  info->name);
    free(viaref);
    /* stage, upload, read back */
    const st_tensor *parts[1] = {&m->t};
    m->plan = gpu_wplan_of(parts, 1, dt);
    ck_assert_msg(m->plan.fmt != GPU_W_DENSE, "%s (%d, %d): no quantized plan", info->name, N, K);
    size_t bytes = gpu_wplan_bytes(&m->plan, dt);
    char *host = malloc(bytes), *back = malloc(bytes);
    memset(host, 0, bytes);
    ck_assert_msg(gpu_wplan_stage(&m->plan, parts, 1, dt, host, NULL) == 0, "%s", duet_error());
    m->dev = gpu_alloc(bytes);
    ck_assert(m->dev && gpu_upload_bytes(m->dev, host, bytes) == 0);
    gpu_wplan_place(&m->plan, m->dev, dt, &m->d);
    ck_assert_msg(gpu_wdesc_check(&m->d, N, K, dt, info->name) == 0, "%s", duet_error());
    ck_assert(gpu_download_bytes(back, m->dev, bytes) == 0);
    gpu_wdesc hb;
    gpu_wplan_place(&m->plan, back, dt, &hb);
    size_t G = (size_t)(K / m->q.group), n = (size_t)N * G;
    ck_assert_msg(memcmp(hb.w, m->q.codes, (size_t)N * duet_qweight_row_bytes(&m->q)) == 0, "%s: device codes differ",
                  info->name);
    ck_assert_msg(memcmp(hb.scales, m->q.scales, n * 2) == 0, "%s: device scales differ", info->name);
    ck_assert_msg(!m->q.zeros == !hb.zeros && (!hb.zeros || memcmp(hb.zeros, m->q.zeros, n) == 0),
                  "%s: device zero points differ", info->name);
    ck_assert_msg(!m->q.mins == !hb.mins && (!hb.mins || memcmp(hb.mins, m->q.mins, n * 2) == 0),
                  "%s: device mins differ", info->name);
    free(host);
    free(back);
}

static void qmat_free(qmat *m)
{
    duet_qweight_free(&m->q);
    free(m->stored);
    free(m->wref);
    gpu_free(m->dev);
}

static void *dev_of(const float *x, int64_t n, gpu_dtype dt)
{
    void *p = gpu_alloc(2 * (n ? n : 1));
    ck_assert_msg(p && gpu_upload(p, x, n, dt) == 0, "%s", duet_error());
    return p;
}

/* y = x . W^T, y in dt, through each path of gpu_gemm: T = 1, 2, 5, 8 on the GEMV (small_t_q 8; T = 1 on
 * the bulk-copy GEMV of gemv_tma.h where the GPU has it, then again on the register GEMV), 24 on
 * dequantize + cuBLAS (qmma off) and 80 on the defaults (beyond qmma: dequantize + cuBLAS); T = 1 also
 * with fp32 y. (test_qmma covers gpu_qmma itself.) */
static void gemm_case(duet_qmode mode, gpu_dtype dt, int N, int K)
{
    qmat m;
    qmat_make(&m, mode, N, K, dt);
    gpu_gemm_ctx *g = gpu_gemm_create();
    ck_assert_msg(g && gpu_gemm_reserve_dequant(g, (size_t)N * K * 2) == 0, "%s", duet_error());
    const int Ts[] = {1, 1, 2, 5, 8, 24, 80};
    for (int i = 0; i < 7; i++) {
        int T = Ts[i];
        gpu_gemm_set_qgemv(g, i == 0 ? GPU_QGEMV_TMA : GPU_QGEMV_REGS);
        if (i == 0 && gpu_gemv_tma_usable()) /* a Hopper GPU: the bulk-copy GEMV takes every shape here */
            ck_assert_msg(gpu_gemv_tma_takes(&m.d, N, K, dt, 0), "the bulk-copy GEMV refuses %s (%d, %d)",
                          duet_qmode_get(mode)->name, N, K);
        gpu_gemm_set_small_t_q(g, T <= 8 ? 8 : 2);
        gpu_gemm_set_qmma_max_t(g, T == 24 ? 0 : 64);
        float *x = rand_vec((int64_t)T * K, 1.0f, dt, 1), *want = malloc(sizeof(float) * T * N),
              *got = malloc(sizeof(float) * T * N);
        ref_matmul(want, x, m.wref, T, N, K);
        void *dx = dev_of(x, (int64_t)T * K, dt), *dy = gpu_alloc(4 * (size_t)T * N);
        ck_assert(gpu_poison(dy, (int64_t)T * N, 2) == 0);
        ck_assert_msg(gpu_gemm(g, dy, 0, dx, &m.d, T, N, K, dt, NULL) == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download(got, dy, (int64_t)T * N, dt) == 0);
        char what[64];
        snprintf(what, sizeof what, "gemm T %d (%d, %d)%s", T, N, K, T > 8 ? " cuBLAS" : i == 0 ? " GEMV (tma)" : " GEMV");
        check(what, mode, dt, got, want, (int64_t)T * N, BOUND[dt]);
        if (T == 1) { /* fp32 output: only the fp32 summation order differs from the ref */
            ck_assert(gpu_poison(dy, (int64_t)T * N, 4) == 0);
            ck_assert_msg(gpu_gemm(g, dy, 1, dx, &m.d, T, N, K, dt, NULL) == 0, "%s", duet_error());
            ck_assert(gpu_sync() == 0 && gpu_download_f32(got, dy, (int64_t)T * N) == 0);
            snprintf(what, sizeof what, "gemm T 1 (%d, %d) fp32 out%s", N, K, i == 0 ? " (tma)" : "");
            check(what, mode, dt, got, want, (int64_t)T * N, 1e-5);
        }
        free(x), free(want), free(got);
        gpu_free(dx), gpu_free(dy);
    }
    gpu_gemm_free(g);
    qmat_free(&m);
}

/* Loop index i -> (mode, dtype); the product cases on SmolLM2's 576 and 1536 (576 has no group of 128:
 * it ends in a partial 128-element chunk), LLaMA-7B's 4096 and 11008 (the bulk-copy GEMV's K in 3 stages
 * of 4-bit codes, 6 of int8, the last one shorter); odd N for the row pairs and partial 16-row tiles. */
static void each_shape(void (*product_case)(duet_qmode, gpu_dtype, int, int), int i)
{
    gpu_dtype dt = (gpu_dtype)(i % 2);
    duet_qmode mode = MODES[i / 2];
    product_case(mode, dt, 67, 1536);
    product_case(mode, dt, 130, 4096);
    product_case(mode, dt, 21, 11008);
    if (mode != DUET_Q_INT4_G128) product_case(mode, dt, 96, 576);
}

START_TEST(test_gemm)
{
    each_shape(gemm_case, _i);
}
END_TEST

/* The tensor-core product (gpu/qmma.h) on the same matrices: y in dt against BOUND, and fp32 y, where only
 * the fp32 summation order differs from the ref, at 1e-5; T across its token tiles (8, 16, 32, 64) and
 * their partial fills. */
static void qmma_case(duet_qmode mode, gpu_dtype dt, int N, int K)
{
    qmat m;
    qmat_make(&m, mode, N, K, dt);
    const int Ts[] = {1, 8, 9, 16, 33, 64};
    for (int i = 0; i < (int)(sizeof Ts / sizeof Ts[0]); i++) {
        int T = Ts[i];
        float *x = rand_vec((int64_t)T * K, 1.0f, dt, 1), *want = malloc(sizeof(float) * T * N),
              *got = malloc(sizeof(float) * T * N);
        ref_matmul(want, x, m.wref, T, N, K);
        void *dx = dev_of(x, (int64_t)T * K, dt), *dy = gpu_alloc(4 * (size_t)T * N);
        ck_assert_msg(gpu_qmma_ok(dx, &m.d, T, N, K, dt), "gpu_qmma refuses %s (%d, %d) T %d",
                      duet_qmode_get(mode)->name, N, K, T);
        ck_assert(gpu_poison(dy, (int64_t)T * N, 2) == 0);
        ck_assert_msg(gpu_qmma(dy, 0, dx, &m.d, T, N, K, dt, NULL) == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download(got, dy, (int64_t)T * N, dt) == 0);
        char what[64];
        snprintf(what, sizeof what, "qmma T %d (%d, %d)", T, N, K);
        check(what, mode, dt, got, want, (int64_t)T * N, BOUND[dt]);
        ck_assert(gpu_poison(dy, (int64_t)T * N, 4) == 0);
        ck_assert_msg(gpu_qmma(dy, 1, dx, &m.d, T, N, K, dt, NULL) == 0, "%s", duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download_f32(got, dy, (int64_t)T * N) == 0);
        snprintf(what, sizeof what, "qmma T %d (%d, %d) fp32 out", T, N, K);
        check(what, mode, dt, got, want, (int64_t)T * N, 1e-5);
        free(x), free(want), free(got);
        gpu_free(dx), gpu_free(dy);
    }
    qmat_free(&m);
}

START_TEST(test_qmma)
{
    each_shape(qmma_case, _i);
}
END_TEST

/* The fused decode GEMVs with quantized weights: RMSNorm input -> store, x -> SwiGLU, x -> residual add;
 * at T = 1 on the bulk-copy GEMV (gemv_tma.h) and on the register GEMV, at T = 2 on the register GEMV. */
START_TEST(test_fused)
{
    gpu_dtype dt = (gpu_dtype)(_i % 2);
    duet_qmode mode = MODES[_i / 2];
    const int D = 1024, F = 384;
    gpu_gemm_ctx *g = gpu_gemm_create();
    ck_assert(g);
    for (int it = 0; it < 3; it++) {
        const int T = it < 2 ? 1 : 2;
        gpu_gemm_set_qgemv(g, it == 0 ? GPU_QGEMV_TMA : GPU_QGEMV_REGS);
        char what[64];
        /* rmsnorm(xr) * nw . W^T, W (F, D) */
        qmat w, gu, dn;
        qmat_make(&w, mode, F, D, dt);
        float *xr = rand_vec((int64_t)T * D, 2.0f, dt, 0), *nw = rand_vec(D, 1.0f, dt, 1);
        float *xn = malloc(sizeof(float) * T * D), *want = malloc(sizeof(float) * T * 2 * F),
              *got = malloc(sizeof(float) * T * 2 * F);
        ref_rmsnorm(xn, xr, nw, 1e-5f, T, D);
        ref_matmul(want, xn, w.wref, T, F, D);
        float *dxr = gpu_alloc(sizeof(float) * T * D);
        void *dnw = dev_of(nw, D, dt), *dy = gpu_alloc(4 * (size_t)T * 2 * F);
        ck_assert(gpu_upload_f32(dxr, xr, (int64_t)T * D) == 0 && gpu_poison(dy, (int64_t)T * F, 2) == 0);
        ck_assert_msg(gpu_gemv_fused_ok(g, &w.d, T, D, dt), "fused GEMV refuses %s", duet_qmode_get(mode)->name);
        if (it == 0 && gpu_gemv_tma_usable())
            ck_assert_msg(gpu_gemv_tma_takes(&w.d, F, D, dt, 1), "the bulk-copy GEMV refuses %s (%d, %d)",
                          duet_qmode_get(mode)->name, F, D);
        ck_assert_msg(gpu_gemv_fused(g, dy, GPU_GEMV_STORE, NULL, dxr, dnw, 1e-5f, &w.d, T, F, D, dt, NULL) == 0, "%s",
                      duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download(got, dy, (int64_t)T * F, dt) == 0);
        snprintf(what, sizeof what, "fused norm->store T %d%s", T, it == 0 ? " (tma)" : "");
        check(what, mode, dt, got, want, (int64_t)T * F, BOUND[dt]);
        /* x . [Wg; Wu]^T -> silu(g) * u: g and u rounded to dt first, as the kernel (gemm.h) */
        qmat_make(&gu, mode, 2 * F, D, dt);
        float *x = rand_vec((int64_t)T * D, 1.0f, dt, 1), *gg = malloc(sizeof(float) * T * 2 * F),
              *g2 = malloc(sizeof(float) * T * F), *u2 = malloc(sizeof(float) * T * F);
        ref_matmul(gg, x, gu.wref, T, 2 * F, D);
        gpu_round_host(gg, (int64_t)T * 2 * F, dt);
        for (int t = 0; t < T; t++) {
            memcpy(g2 + t * F, gg + (int64_t)t * 2 * F, sizeof(float) * F);
            memcpy(u2 + t * F, gg + (int64_t)t * 2 * F + F, sizeof(float) * F);
        }
        ref_swiglu(want, g2, u2, T, F);
        void *dx = dev_of(x, (int64_t)T * D, dt);
        ck_assert(gpu_poison(dy, (int64_t)T * F, 2) == 0);
        ck_assert_msg(gpu_gemv_fused(g, dy, GPU_GEMV_SWIGLU, dx, NULL, NULL, 0.0f, &gu.d, T, F, D, dt, NULL) == 0, "%s",
                      duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download(got, dy, (int64_t)T * F, dt) == 0);
        snprintf(what, sizeof what, "fused x->swiglu T %d%s", T, it == 0 ? " (tma)" : "");
        check(what, mode, dt, got, want, (int64_t)T * F, BOUND[dt]);
        /* resid (T, D) fp32 += a . Wd^T, Wd (D, F), the product rounded to dt */
        qmat_make(&dn, mode, D, F, dt);
        if (it == 0 && gpu_gemv_tma_usable())
            ck_assert_msg(gpu_gemv_tma_takes(&dn.d, D, F, dt, 0), "the bulk-copy GEMV refuses %s (%d, %d)",
                          duet_qmode_get(mode)->name, D, F);
        float *a = rand_vec((int64_t)T * F, 1.0f, dt, 1), *res = rand_vec((int64_t)T * D, 1.0f, dt, 0),
              *prod = malloc(sizeof(float) * T * D);
        ref_matmul(prod, a, dn.wref, T, D, F);
        gpu_round_host(prod, (int64_t)T * D, dt);
        float *wres = malloc(sizeof(float) * T * D), *gres = malloc(sizeof(float) * T * D);
        for (int64_t i = 0; i < (int64_t)T * D; i++) wres[i] = res[i] + prod[i];
        void *da = dev_of(a, (int64_t)T * F, dt);
        float *dres = gpu_alloc(sizeof(float) * T * D);
        ck_assert(gpu_upload_f32(dres, res, (int64_t)T * D) == 0);
        ck_assert_msg(gpu_gemv_fused(g, dres, GPU_GEMV_RESID, da, NULL, NULL, 0.0f, &dn.d, T, D, F, dt, NULL) == 0, "%s",
                      duet_error());
        ck_assert(gpu_sync() == 0 && gpu_download_f32(gres, dres, (int64_t)T * D) == 0);
        /* the residual is fp32: the error is the product's dt rounding relative to the sum */
        snprintf(what, sizeof what, "fused x->resid T %d%s", T, it == 0 ? " (tma)" : "");
        check(what, mode, dt, gres, wres, (int64_t)T * D, BOUND[dt]);
        free(xr), free(nw), free(xn), free(want), free(got), free(x), free(gg), free(g2), free(u2), free(a), free(res),
            free(prod), free(wres), free(gres);
        gpu_free(dxr), gpu_free(dnw), gpu_free(dy), gpu_free(dx), gpu_free(da), gpu_free(dres);
        qmat_free(&w), qmat_free(&gu), qmat_free(&dn);
    }
    gpu_gemm_free(g);
}
END_TEST

/* The prefill path's dequantized weights are the ref's, rounded to dt once. */
START_TEST(test_dequant)
{
    gpu_dtype dt = (gpu_dtype)(_i % 2);
    duet_qmode mode = MODES[_i / 2];
    const int N = 40, K = 1536;
    qmat m;
    qmat_make(&m, mode, N, K, dt);
    void *dst = gpu_alloc(2 * (size_t)N * K);
    float *got = malloc(sizeof(float) * N * K), *want = malloc(sizeof(float) * N * K);
    ck_assert(gpu_poison(dst, (int64_t)N * K, 2) == 0);
    ck_assert_msg(gpu_dequant(dst, &m.d, N, K, dt, NULL) == 0, "%s", duet_error());
    ck_assert(gpu_sync() == 0 && gpu_download(got, dst, (int64_t)N * K, dt) == 0);
    memcpy(want, m.wref, sizeof(float) * N * K);
    gpu_round_host(want, (int64_t)N * K, dt);
    ck_assert_msg(memcmp(got, want, sizeof(float) * N * K) == 0, "%s %s: dequantized weights differ from the ref's "
                  "rounded to the dtype", duet_qmode_get(mode)->name, gpu_dtype_name(dt));
    free(got), free(want);
    gpu_free(dst);
    qmat_free(&m);
}
END_TEST

/* Descriptors the kernels cannot take are refused by name. */
START_TEST(test_bad_desc)
{
    gpu_wdesc d = {GPU_W_U4, 128, (void *)(uintptr_t)256, (const uint16_t *)(uintptr_t)256, NULL, NULL};
    ck_assert(gpu_wdesc_check(&d, 10, 576, GPU_F16, "wq") != 0);
    ck_assert_msg(strstr(duet_error(), "wq") && strstr(duet_error(), "576"), "%s", duet_error());
    d.group = 64;
    ck_assert(gpu_wdesc_check(&d, 10, 576, GPU_F16, "wq") == 0);
    d.scales = NULL;
    ck_assert(gpu_wdesc_check(&d, 10, 576, GPU_F16, "wq") != 0 && strstr(duet_error(), "scales"));
    gpu_wdesc m = {GPU_W_U4_MIN, 32, (void *)(uintptr_t)256, (const uint16_t *)(uintptr_t)256, NULL, NULL};
    ck_assert(gpu_wdesc_check(&m, 10, 576, GPU_F16, "wk") != 0 && strstr(duet_error(), "mins"));
    gpu_wdesc i8 = {GPU_W_I8, 8, (void *)(uintptr_t)256, (const uint16_t *)(uintptr_t)256, NULL, NULL};
    ck_assert(gpu_wdesc_check(&i8, 10, 576, GPU_F16, "wv") != 0); /* group below the 16-element load */
}
END_TEST

int main(void)
{
    if (test_gpu_absent()) return TEST_EXIT_SKIP;
    Suite *s = suite_create("gpu_quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_gemm, 0, 2 * N_MODES);
    tcase_add_loop_test(tc, test_fused, 0, 2 * N_MODES);
    tcase_add_loop_test(tc, test_qmma, 0, 2 * N_MODES);
    tcase_add_loop_test(tc, test_dequant, 0, 2 * N_MODES);
    tcase_add_test(tc, test_bad_desc);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
