/* test_quant.c: duet's weight quantizer (common/quant.h). The mode table; each rounding rule on
 * hand-computed rows (ties half away from zero, all-zero and constant rows and groups, q4_0's signed
 * max, clamping at -127/127 and 0/15, the signed zeros where llama.cpp's C reference and gguf-py part);
 * q8_0/q4_0/q4_1 against tests/data/quant (gguf.quants.quantize, tests/data/quant/make_vectors.py: its
 * inputs hold no -0.0, the one place gguf-py and the C reference differ, quant.h); block dequantization
 * through the dtype table == duet_qweight_to_f32 bit for bit; GGUF blocks and planar tensors back to
 * the planar form bit for bit for every mode; st_to_f32 on planar tensors; every error path; and the
 * accuracy of each mode on random normal rows. Needs no shared data. */
#include "test_util.h"

#include "dtype.h"
#include "error.h"
#include "file.h"
#include "quant.h"
#include "rng.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t h(float f) { return duet_f32_to_f16(f); }
static int code4(const duet_qweight *w, int64_t r, int64_t e)
{
    const uint8_t *row = w->codes + r * duet_qweight_row_bytes(w);
    return (row[e / 2] >> (4 * (e & 1))) & 0xf;
}
static int code8(const duet_qweight *w, int64_t r, int64_t e)
{
    return (int8_t)w->codes[r * duet_qweight_row_bytes(w) + e];
}
static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Random normal floats (Box-Muller over the counter-based rng), deterministic. */
static void normal_fill(float *x, int64_t n, uint64_t seed, float sigma)
{
    for (int64_t i = 0; i < n; i++) {
        double u1 = (duet_rng_uniform(seed, 2 * (uint64_t)i) + 0.5 / 16777216.0), u2 = duet_rng_uniform(seed, 2 * (uint64_t)i + 1);
        x[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)) * sigma;
    }
}

/* Quantizes, and checks that dequantization is s * (q - z) (or (d * q) + m) for every element. */
static void quant_ok(duet_qmode q, const float *W, int64_t rows, int64_t cols, duet_qweight *w)
{
    ck_assert_msg(duet_quantize(q, W, rows, cols, "test", w) == 0, "%s", duet_error());
    ck_assert_int_eq(w->mode, q);
    ck_assert_int_eq(w->rows, rows);
    ck_assert_int_eq(w->cols, cols);
}

/* ---- the table ---------------------------------------------------------------------------------- */

START_TEST(test_modes)
{
    char list[256] = "";
    for (int q = 1; q < DUET_Q_N_MODES; q++) {
        const duet_qmode_info *m = duet_qmode_get((duet_qmode)q);
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_nonnull(m->about);
        ck_assert_int_gt((int)strlen(m->about), 10);
        snprintf(list + strlen(list), sizeof list - strlen(list), q > 1 ? ", %s" : "%s", m->name);
        duet_qmode got = DUET_Q_NONE;
        ck_assert_int_eq(duet_qmode_parse(m->name, &got), 0);
        ck_assert_int_eq(got, q);
        ck_assert(m->bits == 8 || m->bits == 4);
        ck_assert_int_eq(m->has_zeros, q == DUET_Q_INT4_G128 || q == DUET_Q_INT4_G64);
    }
    ck_assert_str_eq(duet_qmode_list(), list);
    ck_assert_str_eq(duet_qmode_list(), "int8, int4, int4-g128, int4-g64, q8_0, q4_0, q4_1");
    ck_assert_str_eq(duet_qmode_get(DUET_Q_NONE)->name, "none");
    ck_assert_ptr_null(duet_qmode_get(DUET_Q_N_MODES));
    ck_assert_ptr_null(duet_qmode_get((duet_qmode)-1));
    ck_assert_int_eq(duet_qmode_get(DUET_Q_INT4_G128)->group, 128);
    ck_assert_int_eq(duet_qmode_get(DUET_Q_INT4_G64)->group, 64);
    ck_assert_int_eq(duet_qmode_get(DUET_Q_INT8)->group, 0);
    ck_assert_int_eq(duet_qmode_get(DUET_Q_Q4_1)->dtype, ST_Q4_1);
    ck_assert_int_eq(duet_qmode_get(DUET_Q_INT4)->dtype, ST_QU4);
    ck_assert_int_eq(duet_qmode_get(DUET_Q_INT8)->dtype, ST_QI8);

    duet_qmode got = DUET_Q_INT8;
    ck_assert_int_eq(duet_qmode_parse("none", &got), 0);
    ck_assert_int_eq(got, DUET_Q_NONE);
    got = DUET_Q_INT8;
    ck_assert_int_eq(duet_qmode_parse("", &got), 0);
    ck_assert_int_eq(got, DUET_Q_NONE);
    ck_assert_int_eq(duet_qmode_parse("Q4_1", &got), 0); /* GGUF's spelling of the type */
    ck_assert_int_eq(got, DUET_Q_Q4_1);
    ck_assert_int_eq(duet_qmode_parse("int3", &got), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'int3'"));
    ck_assert_ptr_nonnull(strstr(duet_error(), duet_qmode_list()));

    /* duet_qmode_of: the mode a stored tensor is */
    st_tensor t = {.name = "w", .ndim = 2, .shape = {4, 256}, .numel = 1024};
    static const struct { st_dtype dt; int group, zeros, want; } of[] = {
        {ST_F32, 0, 0, DUET_Q_NONE},   {ST_BF16, 0, 0, DUET_Q_NONE},    {ST_F16, 0, 0, DUET_Q_NONE},
        {ST_Q8_0, 0, 0, DUET_Q_Q8_0},  {ST_Q4_0, 0, 0, DUET_Q_Q4_0},    {ST_Q4_1, 0, 0, DUET_Q_Q4_1},
        {ST_Q4_K, 0, 0, -1},           {ST_Q6_K, 0, 0, -1},             {ST_I32, 0, 0, -1},
        {ST_QI8, 0, 0, DUET_Q_INT8},   {ST_QI8, 256, 0, DUET_Q_INT8},   {ST_QI8, 64, 0, -1},
        {ST_QI8, 256, 1, -1},          {ST_QU4, 0, 0, DUET_Q_INT4},     {ST_QU4, 256, 0, DUET_Q_INT4},
        {ST_QU4, 128, 1, DUET_Q_INT4_G128}, {ST_QU4, 64, 1, DUET_Q_INT4_G64}, {ST_QU4, 32, 1, -1},
        {ST_QU4, 64, 0, -1},
    };
    uint8_t zeros[1];
    for (size_t i = 0; i < sizeof of / sizeof of[0]; i++) {
        t.dtype = of[i].dt;
        t.q.group = of[i].group;
        t.q.zeros = of[i].zeros ? zeros : NULL;
        ck_assert_msg(duet_qmode_of(&t) == of[i].want, "row %zu: %s group %d zeros %d: got %d, want %d", i,
                      st_dtype_name(of[i].dt), of[i].group, of[i].zeros, duet_qmode_of(&t), of[i].want);
    }
}
END_TEST

START_TEST(test_check_k)
{
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_INT4_G128, 576, "layer 0 q_proj"), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "layer 0 q_proj"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "int4-g128"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "576"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "128"));
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_INT4_G64, 576, "x"), 64);
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_INT4_G128, 1536, "x"), 128);
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_INT8, 577, "x"), 577); /* per channel: any K */
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_INT4, 576, "x"), 576);
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_INT4, 577, "odd"), -1); /* two codes per byte */
    ck_assert_ptr_nonnull(strstr(duet_error(), "odd"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "577"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "even"));
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_Q8_0, 576, "x"), 32);
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_Q4_0, 100, "x"), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "32"));
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_Q4_1, 0, "x"), -1);
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_NONE, 64, "x"), -1);
    ck_assert_int_eq(duet_qmode_check_k(DUET_Q_N_MODES, 64, "x"), -1);

    /* duet_quantize refuses what check_k refuses, and leaves *out empty */
    float W[2 * 576] = {0};
    duet_qweight w;
    ck_assert_int_eq(duet_quantize(DUET_Q_INT4_G128, W, 2, 576, "blk.0.ffn_down", &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "blk.0.ffn_down"));
    ck_assert_ptr_null(w.codes);
    ck_assert_int_eq(duet_quantize(DUET_Q_INT4_G64, W, 2, 576, "x", &w), 0);
    duet_qweight_free(&w);
    ck_assert_int_eq(duet_quantize(DUET_Q_INT4, W, 1, 575, "x", &w), -1);
    ck_assert_int_eq(duet_quantize(DUET_Q_NONE, W, 1, 64, "x", &w), -1);
}
END_TEST

/* ---- hand-computed rounding --------------------------------------------------------------------- */

START_TEST(test_int8_rules)
{
    /* max |w| 127: s = 1 exactly, so q = round(w) with ties away from zero */
    float W[8] = {127.0f, 0.5f, -0.5f, 1.5f, -2.5f, 126.49f, -127.0f, 0.0f};
    const int want[8] = {127, 1, -1, 2, -3, 126, -127, 0};
    duet_qweight w;
    quant_ok(DUET_Q_INT8, W, 1, 8, &w);
    ck_assert_int_eq(w.group, 8);
    ck_assert_uint_eq(w.scales[0], 0x3c00);
    ck_assert_ptr_null(w.zeros);
    ck_assert_ptr_null(w.mins);
    float y[8];
    duet_qweight_to_f32(&w, y);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(code8(&w, 0, i), want[i]);
        ck_assert_float_eq(y[i], (float)want[i]);
    }
    duet_qweight_free(&w);

    /* clamping: a / 127 = 1.49 fp16 subnormal units rounds down to one unit (2^-24), so max |w| / s =
     * 127 * 1.49 = 189 > 127 */
    float a = 127.0f * 1.49f * 0x1p-24f;
    float C[4] = {a, -a, a / 2, 0.0f};
    quant_ok(DUET_Q_INT8, C, 1, 4, &w);
    ck_assert_uint_eq(w.scales[0], 0x0001);
    ck_assert_int_eq(code8(&w, 0, 0), 127);
    ck_assert_int_eq(code8(&w, 0, 1), -127);
    ck_assert_int_eq(code8(&w, 0, 2), (int)roundf((a / 2) / 0x1p-24f)); /* 94.6 -> 95, not clamped */
    ck_assert_int_eq(code8(&w, 0, 2), 95);
    ck_assert_int_eq(code8(&w, 0, 3), 0);
    duet_qweight_free(&w);

    /* all-zero row: s = 0, q = 0; constant row: q = 127 against s = fp16(c / 127); two rows at once */
    float Z[2 * 6] = {0, 0, 0, 0, 0, 0, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
    quant_ok(DUET_Q_INT8, Z, 2, 6, &w);
    ck_assert_uint_eq(w.scales[0], 0);
    ck_assert_uint_eq(w.scales[1], h(0.3f / 127.0f));
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(code8(&w, 0, i), 0);
        ck_assert_int_eq(code8(&w, 1, i), 127);
    }
    float yz[12];
    duet_qweight_to_f32(&w, yz);
    for (int i = 0; i < 6; i++) {
        ck_assert_uint_eq(bits(yz[i]), 0);
        ck_assert_float_eq(yz[6 + i], duet_f16_to_f32(w.scales[1]) * 127.0f);
    }
    duet_qweight_free(&w);
}
END_TEST

START_TEST(test_int4_rules)
{
    /* max |w| 7: s = 1; q = round(w) + 8 */
    float W[8] = {7.0f, 3.5f, -3.5f, 2.5f, -0.5f, 0.49f, -7.0f, 0.0f};
    const int want[8] = {15, 12, 4, 11, 7, 8, 1, 8};
    duet_qweight w;
    quant_ok(DUET_Q_INT4, W, 1, 8, &w);
    ck_assert_uint_eq(w.scales[0], 0x3c00);
    ck_assert_int_eq(duet_qweight_row_bytes(&w), 4);
    float y[8];
    duet_qweight_to_f32(&w, y);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(code4(&w, 0, i), want[i]);
        ck_assert_float_eq(y[i], (float)(want[i] - 8));
    }
    ck_assert_uint_eq(w.codes[0], 15 | (12 << 4)); /* element 2j low nibble, 2j + 1 high */
    duet_qweight_free(&w);

    /* clamping to -8..7: s = one fp16 subnormal unit for a / 7 = 1.49 units; -a / s = -10.43 -> -8 */
    float a = 7.0f * 1.49f * 0x1p-24f;
    float C[4] = {a, -a, 0.0f, -a / 2};
    quant_ok(DUET_Q_INT4, C, 1, 4, &w);
    ck_assert_uint_eq(w.scales[0], 0x0001);
    ck_assert_int_eq(code4(&w, 0, 0), 15);
    ck_assert_int_eq(code4(&w, 0, 1), 0);
    ck_assert_int_eq(code4(&w, 0, 2), 8);
    ck_assert_int_eq(code4(&w, 0, 3), 8 - 5); /* -5.2 -> -5 */
    duet_qweight_free(&w);

    /* all zero: s = 0, every code 8; constant: 7 + 8 */
    float Z[2 * 4] = {0, 0, 0, 0, -1.25f, -1.25f, -1.25f, -1.25f};
    quant_ok(DUET_Q_INT4, Z, 2, 4, &w);
    ck_assert_uint_eq(w.scales[0], 0);
    ck_assert_uint_eq(w.scales[1], h(1.25f / 7.0f));
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(code4(&w, 0, i), 8);
        ck_assert_int_eq(code4(&w, 1, i), 1);
    }
    duet_qweight_free(&w);
}
END_TEST

START_TEST(test_int4g_rules)
{
    /* 4 groups of 64: [-1, 14] (s = 1, z = 1); [0, 15] all >= 0 (s = 1, z = 0); [-15, 0] all <= 0
     * (s = 1, z = 15); all zero (s = 0, z = 0, q = 0) */
    float W[256] = {0};
    float *g0 = W, *g1 = W + 64, *g2 = W + 128;
    const float v0[] = {-1.0f, 14.0f, 0.5f, -0.5f, 2.5f, 0.49f, 6.5f};
    const int q0[] = {0, 15, 2, 0, 4, 1, 8}; /* round(w) + 1 */
    const float v1[] = {15.0f, 1.5f, 7.5f, 0.49f, 3.0f};
    const int q1[] = {15, 2, 8, 0, 3};
    const float v2[] = {-15.0f, -0.5f, -7.5f, -14.5f, -0.49f};
    const int q2[] = {0, 14, 7, 0, 15}; /* round(w) + 15: -15 + 15, -1 + 15, -8 + 15, -15 + 15, 0 + 15 */
    memcpy(g0, v0, sizeof v0);
    memcpy(g1, v1, sizeof v1);
    memcpy(g2, v2, sizeof v2);
    duet_qweight w;
    quant_ok(DUET_Q_INT4_G64, W, 1, 256, &w);
    ck_assert_int_eq(w.group, 64);
    ck_assert_ptr_nonnull(w.zeros);
    const uint16_t ws[4] = {0x3c00, 0x3c00, 0x3c00, 0};
    const uint8_t wz[4] = {1, 0, 15, 0};
    for (int g = 0; g < 4; g++) {
        ck_assert_uint_eq(w.scales[g], ws[g]);
        ck_assert_uint_eq(w.zeros[g], wz[g]);
    }
    for (size_t i = 0; i < sizeof q0 / sizeof q0[0]; i++) ck_assert_int_eq(code4(&w, 0, i), q0[i]);
    for (size_t i = 0; i < sizeof q1 / sizeof q1[0]; i++) ck_assert_int_eq(code4(&w, 0, 64 + i), q1[i]);
    for (size_t i = 0; i < sizeof q2 / sizeof q2[0]; i++) ck_assert_int_eq(code4(&w, 0, 128 + i), q2[i]);
    for (int i = 20; i < 64; i++) { /* the zeros of each group are exact: q = z */
        ck_assert_int_eq(code4(&w, 0, i), 1);
        ck_assert_int_eq(code4(&w, 0, 64 + i), 0);
        ck_assert_int_eq(code4(&w, 0, 128 + i), 15);
        ck_assert_int_eq(code4(&w, 0, 192 + i), 0);
    }
    float y[256];
    duet_qweight_to_f32(&w, y);
    for (int i = 0; i < 256; i++) {
        int g = i / 64;
        float want = duet_f16_to_f32(ws[g]) * (float)(code4(&w, 0, i) - wz[g]);
        ck_assert_uint_eq(bits(y[i]), bits(want));
    }
    ck_assert_float_eq(y[0], -1.0f);
    ck_assert_float_eq(y[2], 1.0f); /* 0.5: tie away from zero */
    ck_assert_float_eq(y[3], -1.0f);
    ck_assert_float_eq(y[128 + 2], -8.0f); /* -7.5 */
    ck_assert_uint_eq(bits(y[200]), 0);
    duet_qweight_free(&w);

    /* clamping at 0 and 15: (hi - lo) / 15 = 1.49 fp16 units -> s = 1 unit. Group 0 all >= 0: the max
     * gives round(22.35) = 22 -> 15; group 1 all <= 0: z = round(22.35) -> 15, the min round(-22.35) + 15 = -7 -> 0 */
    float a = 15.0f * 1.49f * 0x1p-24f;
    float C[128] = {0};
    C[0] = a;
    C[64] = -a;
    C[65] = -a / 4; /* round(-5.59) + 15 = 9 */
    quant_ok(DUET_Q_INT4_G64, C, 1, 128, &w);
    ck_assert_uint_eq(w.scales[0], 0x0001);
    ck_assert_uint_eq(w.scales[1], 0x0001);
    ck_assert_uint_eq(w.zeros[0], 0);
    ck_assert_uint_eq(w.zeros[1], 15);
    ck_assert_int_eq(code4(&w, 0, 0), 15);
    ck_assert_int_eq(code4(&w, 0, 1), 0);
    ck_assert_int_eq(code4(&w, 0, 64), 0);
    ck_assert_int_eq(code4(&w, 0, 65), 9);
    ck_assert_int_eq(code4(&w, 0, 66), 15);
    duet_qweight_free(&w);

    /* a constant row in int4-g128: lo = 0, s = fp16(c / 15), q = round(c / s) = 15 */
    float K[128];
    for (int i = 0; i < 128; i++) K[i] = 0.7f;
    quant_ok(DUET_Q_INT4_G128, K, 1, 128, &w);
    ck_assert_uint_eq(w.scales[0], h(0.7f / 15.0f));
    ck_assert_uint_eq(w.zeros[0], 0);
    for (int i = 0; i < 128; i++) ck_assert_int_eq(code4(&w, 0, i), 15);
    duet_qweight_free(&w);
}
END_TEST

START_TEST(test_q8_0_rules)
{
    /* block 0: max |w| 127 -> d = 1, q = roundf(w); block 1 all zero -> d = 0, q = 0 */
    float W[64] = {0};
    const float v[] = {127.0f, 0.5f, -0.5f, 1.5f, -2.5f, 126.5f, -126.5f, 3.49f};
    const int q[] = {127, 1, -1, 2, -3, 127, -127, 3};
    memcpy(W, v, sizeof v);
    duet_qweight w;
    quant_ok(DUET_Q_Q8_0, W, 1, 64, &w);
    ck_assert_int_eq(w.group, 32);
    ck_assert_uint_eq(w.scales[0], 0x3c00);
    ck_assert_uint_eq(w.scales[1], 0);
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) ck_assert_int_eq(code8(&w, 0, i), q[i]);
    for (int i = 32; i < 64; i++) ck_assert_int_eq(code8(&w, 0, i), 0);
    uint8_t b[68];
    ck_assert_int_eq(duet_qweight_to_blocks(&w, b), 0);
    ck_assert_uint_eq(b[0], 0x00);
    ck_assert_uint_eq(b[1], 0x3c);
    ck_assert_uint_eq(b[2], 127);
    ck_assert_uint_eq(b[4], 0xff); /* -1 */
    ck_assert_uint_eq(b[34], 0);
    ck_assert_uint_eq(b[35], 0);
    duet_qweight_free(&w);
}
END_TEST

START_TEST(test_q4_0_rules)
{
    /* block 0: the largest |w| is -8 (negative) -> d = -8 / -8 = 1, q = min(15, (int)(w + 8.5));
     * block 1: the largest is +8 -> d = -1, q = (int)(8.5 - w): the positive max gets code 0;
     * block 2: |-3| = |3|, the first (3) wins -> d = -3 / 8 = -0.375; block 3: -3 first -> d = 0.375;
     * block 4: all zero -> d = 0 / -8 = -0 (0x8000), q = 8 */
    float W[5 * 32] = {0};
    const float v0[] = {-8.0f, 7.0f, 7.6f, -3.5f, 3.5f, -0.5f, 0.49f, -7.9f};
    const int q0[] = {0, 15, 15, 5, 12, 8, 8, 0};
    const float v1[] = {8.0f, -7.6f, 3.5f, -3.5f, 0.5f};
    const int q1[] = {0, 15, 5, 12, 8};
    memcpy(W, v0, sizeof v0);
    memcpy(W + 32, v1, sizeof v1);
    W[64] = 3.0f, W[65] = -3.0f, W[66] = 1.5f;
    W[96] = -3.0f, W[97] = 3.0f;
    duet_qweight w;
    quant_ok(DUET_Q_Q4_0, W, 1, 160, &w);
    ck_assert_uint_eq(w.scales[0], 0x3c00);
    ck_assert_uint_eq(w.scales[1], 0xbc00);
    ck_assert_uint_eq(w.scales[2], h(-0.375f));
    ck_assert_uint_eq(w.scales[3], h(0.375f));
    ck_assert_uint_eq(w.scales[4], 0x8000);
    for (size_t i = 0; i < sizeof q0 / sizeof q0[0]; i++) ck_assert_int_eq(code4(&w, 0, i), q0[i]);
    for (size_t i = 0; i < sizeof q1 / sizeof q1[0]; i++) ck_assert_int_eq(code4(&w, 0, 32 + i), q1[i]);
    ck_assert_int_eq(code4(&w, 0, 64), 0);  /* 3 * (1 / -0.375) + 8.5 = 0.5 */
    ck_assert_int_eq(code4(&w, 0, 65), 15); /* 16.5 -> 16 -> 15: the other sign clamps */
    ck_assert_int_eq(code4(&w, 0, 66), 4);  /* -4 + 8.5 */
    ck_assert_int_eq(code4(&w, 0, 96), 0);
    ck_assert_int_eq(code4(&w, 0, 97), 15);
    for (int i = 128; i < 160; i++) ck_assert_int_eq(code4(&w, 0, i), 8);
    float y[160];
    duet_qweight_to_f32(&w, y);
    ck_assert_float_eq(y[0], -8.0f);
    ck_assert_float_eq(y[2], 7.0f);  /* 7.6 clamped to the top code */
    ck_assert_float_eq(y[3], -3.0f); /* -3.5: the +8.5 offset rounds ties up */
    ck_assert_float_eq(y[32], 8.0f);
    ck_assert_float_eq(y[65], -2.625f); /* -0.375 * 7: 8 - 1 steps of the clamped side */
    /* GGUF order: element i low nibble of qs[i], i + 16 high */
    uint8_t b[5 * 18];
    ck_assert_int_eq(duet_qweight_to_blocks(&w, b), 0);
    ck_assert_uint_eq(b[2], (uint8_t)(q0[0] | (8 << 4)));
    ck_assert_uint_eq(b[3], (uint8_t)(q0[1] | (8 << 4)));
    ck_assert_uint_eq(b[4 * 18 + 1], 0x80);
    duet_qweight_free(&w);

    /* C's rule where gguf-py differs: an all-zero block led by -0.0 still has d = -0 (numpy: +0) */
    float Z[32] = {-0.0f, 0.0f, -0.0f};
    quant_ok(DUET_Q_Q4_0, Z, 1, 32, &w);
    ck_assert_uint_eq(w.scales[0], 0x8000);
    duet_qweight_free(&w);
}
END_TEST

START_TEST(test_q4_1_rules)
{
    /* block 0: min -1, max 14 -> d = 1, q = (int)((w + 1) + 0.5), m = -1; block 1 constant 0.3 -> d = 0,
     * q = 0, m = fp16(0.3); blocks 2 and 3: min is a zero, the first of +0 / -0 gives m's sign */
    float W[4 * 32];
    for (int i = 0; i < 32; i++) W[i] = 3.0f, W[32 + i] = 0.3f, W[64 + i] = 1.0f, W[96 + i] = 2.0f;
    const float v0[] = {-1.0f, 14.0f, 0.5f, -0.5f, 13.6f, 6.49f};
    const int q0[] = {0, 15, 2, 1, 15, 7};
    memcpy(W, v0, sizeof v0);
    W[64] = 0.0f, W[65] = -0.0f;
    W[96] = -0.0f, W[97] = 0.0f;
    duet_qweight w;
    quant_ok(DUET_Q_Q4_1, W, 1, 128, &w);
    ck_assert_ptr_nonnull(w.mins);
    ck_assert_uint_eq(w.scales[0], 0x3c00);
    ck_assert_uint_eq(w.mins[0], 0xbc00);
    ck_assert_uint_eq(w.scales[1], 0);
    ck_assert_uint_eq(w.mins[1], h(0.3f));
    ck_assert_uint_eq(w.mins[2], 0x0000);
    ck_assert_uint_eq(w.mins[3], 0x8000);
    ck_assert_uint_eq(w.scales[2], h(1.0f / 15.0f));
    ck_assert_uint_eq(w.scales[3], h(2.0f / 15.0f));
    for (size_t i = 0; i < sizeof q0 / sizeof q0[0]; i++) ck_assert_int_eq(code4(&w, 0, i), q0[i]);
    for (int i = 32; i < 64; i++) ck_assert_int_eq(code4(&w, 0, i), 0);
    float y[128];
    duet_qweight_to_f32(&w, y);
    ck_assert_float_eq(y[0], -1.0f);
    ck_assert_float_eq(y[2], 1.0f);  /* 0.5 + 1 + 0.5 = 2: ties up */
    ck_assert_float_eq(y[3], 0.0f);  /* -0.5 -> code 1 */
    ck_assert_float_eq(y[4], 14.0f); /* 13.6 + 1.5 = 16.1 -> 15 */
    ck_assert_float_eq(y[40], duet_f16_to_f32(h(0.3f)));
    uint8_t b[4 * 20];
    ck_assert_int_eq(duet_qweight_to_blocks(&w, b), 0);
    ck_assert_uint_eq(b[2] | (b[3] << 8), 0xbc00);
    ck_assert_uint_eq(b[4], (uint8_t)(q0[0] | (code4(&w, 0, 16) << 4)));
    duet_qweight_free(&w);
}
END_TEST

START_TEST(test_refusals)
{
    float W[64];
    for (int i = 0; i < 64; i++) W[i] = 0.1f * (float)i;
    duet_qweight w;
    W[5] = NAN;
    ck_assert_int_eq(duet_quantize(DUET_Q_Q8_0, W, 2, 32, "wq", &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "wq"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "not finite"));
    ck_assert_ptr_null(w.codes);
    W[5] = INFINITY;
    ck_assert_int_eq(duet_quantize(DUET_Q_INT8, W, 1, 64, "wq", &w), -1);
    W[5] = 1e7f; /* 1e7 / 127 > 65504: the scale does not fit fp16 */
    ck_assert_int_eq(duet_quantize(DUET_Q_INT8, W, 1, 64, "wq", &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "fp16"));
    ck_assert_int_eq(duet_quantize(DUET_Q_Q8_0, W, 1, 64, "wq", &w), -1);
    W[5] = 6e5f; /* q4_0: d = 6e5 / 8 = 75000 */
    ck_assert_int_eq(duet_quantize(DUET_Q_Q4_0, W, 1, 64, "wq", &w), -1);
    ck_assert_int_eq(duet_quantize(DUET_Q_Q8_0, W, 1, 64, "wq", &w), 0); /* d = 4724: fits */
    duet_qweight_free(&w);
    W[5] = -7e4f; /* q4_1: the min does not fit */
    ck_assert_int_eq(duet_quantize(DUET_Q_Q4_1, W, 1, 64, "wq", &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "min"));
    ck_assert_int_eq(duet_quantize(DUET_Q_INT8, W, -1, 64, "wq", &w), -1);
    ck_assert_int_eq(duet_quantize(DUET_Q_INT8, W, INT64_MAX / 8, 64, "huge", &w), -1); /* byte count overflows */
    ck_assert_ptr_nonnull(strstr(duet_error(), "huge"));
    ck_assert_int_eq(duet_quantize(DUET_Q_INT8, W, 0, 64, "empty", &w), 0); /* no rows: nothing to do */
    duet_qweight_free(&w);
    duet_qweight_free(&w); /* twice: harmless */
    duet_qweight_free(NULL);
}
END_TEST

/* ---- gguf-py vectors ---------------------------------------------------------------------------- */

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static char *read_data(const char *name, size_t *len)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/quant/%s", name);
    char *path = test_src_path(rel);
    char *buf = duet_read_file(path, len);
    ck_assert_msg(buf != NULL, "%s", duet_error());
    free(path);
    return buf;
}

/* A 2-D tensor over data (GGUF blocks or planar codes). */
static st_tensor tensor(const char *name, st_dtype dt, int64_t rows, int64_t cols, const void *data)
{
    st_tensor t = {.name = (char *)name, .dtype = dt, .ndim = 2, .shape = {rows, cols}, .numel = rows * cols,
                   .data = data, .file = "mem"};
    t.nbytes = st_dtype_bytes(dt, rows * cols);
    return t;
}

/* w and v hold the same bits. */
static void same_qweight(const duet_qweight *w, const duet_qweight *v)
{
    ck_assert_int_eq(v->mode, w->mode);
    ck_assert_int_eq(v->rows, w->rows);
    ck_assert_int_eq(v->cols, w->cols);
    ck_assert_int_eq(v->group, w->group);
    int64_t ng = w->rows * (w->cols / w->group);
    ck_assert(!memcmp(v->codes, w->codes, (size_t)(w->rows * duet_qweight_row_bytes(w))));
    ck_assert(!memcmp(v->scales, w->scales, (size_t)ng * 2));
    ck_assert_int_eq(v->zeros == NULL, w->zeros == NULL);
    if (w->zeros) ck_assert(!memcmp(v->zeros, w->zeros, (size_t)ng));
    ck_assert_int_eq(v->mins == NULL, w->mins == NULL);
    if (w->mins) ck_assert(!memcmp(v->mins, w->mins, (size_t)ng * 2));
}

static void same_bits(const float *a, const float *b, int64_t n, const char *what)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (bits(a[i]) != bits(b[i]) && bad++ < 5)
            fprintf(stderr, "%s: element %lld: %08x vs %08x\n", what, (long long)i, bits(a[i]), bits(b[i]));
    ck_assert_msg(bad == 0, "%s: %lld of %lld floats differ", what, (long long)bad, (long long)n);
}

START_TEST(test_gguf_vectors)
{
    size_t len = 0;
    char *in = read_data("input.f32", &len);
    const unsigned char *p = (const unsigned char *)in;
    ck_assert_uint_ge(len, 16);
    ck_assert(!memcmp(p, "DUETQV1\0", 8));
    int64_t rows = rd32(p + 8), cols = rd32(p + 12);
    ck_assert_uint_eq(len, 16 + (size_t)(rows * cols) * 4);
    float *W = malloc((size_t)(rows * cols) * sizeof *W);
    for (int64_t i = 0; i < rows * cols; i++) {
        uint32_t b = rd32(p + 16 + 4 * i);
        memcpy(&W[i], &b, 4);
        ck_assert_msg(b != 0x80000000u, "input.f32 holds -0.0 (make_vectors.py avoids it)");
    }
    static const struct { duet_qmode q; const char *file; } vec[] = {
        {DUET_Q_Q8_0, "Q8_0.bin"}, {DUET_Q_Q4_0, "Q4_0.bin"}, {DUET_Q_Q4_1, "Q4_1.bin"}};
    for (size_t k = 0; k < 3; k++) {
        const duet_qmode_info *m = duet_qmode_get(vec[k].q);
        size_t blen = 0;
        char *want = read_data(vec[k].file, &blen);
        size_t n = st_dtype_bytes(m->dtype, rows * cols);
        ck_assert_uint_eq(blen, n);
        duet_qweight w;
        quant_ok(vec[k].q, W, rows, cols, &w);
        unsigned char *got = malloc(n);
        ck_assert_int_eq(duet_qweight_to_blocks(&w, got), 0);
        size_t bad = 0, bs = (size_t)st_dtype_info(m->dtype)->block_bytes;
        for (size_t i = 0; i < n; i++)
            if (got[i] != (unsigned char)want[i] && bad++ < 5)
                fprintf(stderr, "%s: block %zu byte %zu: %02x, gguf-py %02x\n", m->name, i / bs, i % bs, got[i],
                        (unsigned char)want[i]);
        ck_assert_msg(bad == 0, "%s: %zu of %zu bytes differ from gguf.quants.quantize", m->name, bad, n);

        /* the dtype table's dequantizer (st_to_f32 on the blocks) == duet_qweight_to_f32, bit for bit */
        float *a = malloc((size_t)(rows * cols) * sizeof *a), *b = malloc((size_t)(rows * cols) * sizeof *b);
        st_tensor t = tensor("blk.0.attn_q.weight", m->dtype, rows, cols, got);
        ck_assert_int_eq(st_to_f32(&t, a), 0);
        duet_qweight_to_f32(&w, b);
        same_bits(a, b, rows * cols, m->name);

        /* and back: the blocks' planar form is w */
        duet_qweight v;
        ck_assert_msg(duet_qweight_from_tensor(&t, &v) == 0, "%s", duet_error());
        same_qweight(&w, &v);
        duet_qweight_free(&v);
        duet_qweight_free(&w);
        free(a);
        free(b);
        free(got);
        free(want);
        fprintf(stderr, "%s: %zu bytes identical to gguf.quants.quantize\n", m->name, n);
    }
    free(W);
    free(in);
}
END_TEST

/* ---- round trips, planar tensors ---------------------------------------------------------------- */

START_TEST(test_round_trips)
{
    const int64_t rows = 6, cols = 256;
    float *W = malloc(rows * cols * sizeof *W), *a = malloc(rows * cols * sizeof *a), *b = malloc(rows * cols * sizeof *b);
    normal_fill(W, rows * cols, 11, 0.05f);
    W[3] = 0.0f, W[300] = -0.0f, W[700] = 0.4f; /* an outlier */
    for (int i = 512; i < 640; i++) W[i] = 0.0f; /* an all-zero group of every mode */
    for (int q = 1; q < DUET_Q_N_MODES; q++) {
        const duet_qmode_info *m = duet_qmode_get((duet_qmode)q);
        duet_qweight w, v;
        quant_ok((duet_qmode)q, W, rows, cols, &w);
        size_t n = st_dtype_bytes(m->dtype, rows * cols);
        ck_assert_uint_eq(n, (size_t)(rows * duet_qweight_row_bytes(&w)) +
                                 (m->dtype == ST_QI8 || m->dtype == ST_QU4 ? 0 : (size_t)(rows * cols / 32) * (q == DUET_Q_Q4_1 ? 4 : 2)));
        void *blocks = malloc(n);
        ck_assert_int_eq(duet_qweight_to_blocks(&w, blocks), 0);
        st_tensor t = tensor("model.layers.0.mlp.up_proj.weight", m->dtype, rows, cols, blocks);
        if (m->dtype == ST_QI8 || m->dtype == ST_QU4) {
            ck_assert(!memcmp(blocks, w.codes, n)); /* planar: the codes themselves */
            t.q.group = w.group;
            t.q.scales = w.scales; /* little-endian host */
            t.q.zeros = w.zeros;
        }
        ck_assert_int_eq(duet_qmode_of(&t), q);
        ck_assert_msg(duet_qweight_from_tensor(&t, &v) == 0, "%s: %s", m->name, duet_error());
        same_qweight(&w, &v);
        duet_qweight_free(&v);
        /* st_to_f32 (the table for blocks, quant.h for planar tensors) == duet_qweight_to_f32 */
        ck_assert_msg(st_to_f32(&t, a) == 0, "%s", duet_error());
        duet_qweight_to_f32(&w, b);
        same_bits(a, b, rows * cols, m->name);
        for (int i = 512; i < 640; i++) ck_assert_float_eq(b[i], 0.0f);
        /* a per-channel planar tensor may spell its group 0 */
        if (m->group == 0) {
            t.q.group = 0;
            ck_assert_int_eq(duet_qweight_from_tensor(&t, &v), 0);
            ck_assert_int_eq(v.group, cols);
            duet_qweight_free(&v);
        }
        duet_qweight_free(&w);
        free(blocks);
    }
    free(W);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_tensor_errors)
{
    uint8_t codes[4 * 64] = {0};
    uint16_t scales[8] = {0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00};
    float out[4 * 128];
    duet_qweight w;

    /* a planar tensor without its scales */
    st_tensor t = tensor("model.layers.3.self_attn.o_proj.weight", ST_QU4, 4, 128, codes);
    t.q.group = 128;
    ck_assert_int_eq(st_to_f32(&t, out), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "missing scales"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "'model.layers.3.self_attn.o_proj.weight'"));
    ck_assert_int_eq(duet_qweight_from_tensor(&t, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "missing scales"));

    /* with them it reads: int4 per channel, every code 0 -> s * (0 - 8) */
    t.q.scales = scales;
    ck_assert_msg(st_to_f32(&t, out) == 0, "%s", duet_error());
    for (int i = 0; i < 4 * 128; i++) ck_assert_float_eq(out[i], -8.0f);

    /* zero points with a group no mode has */
    uint8_t zeros[16] = {0};
    t.q.zeros = zeros;
    t.q.group = 32;
    ck_assert_int_eq(duet_qweight_from_tensor(&t, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "o_proj"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "no mode"));
    t.q.group = 64; /* int4-g64: 2 groups a row, zero points 0 -> s * q = 0 */
    ck_assert_msg(st_to_f32(&t, out) == 0, "%s", duet_error());
    ck_assert_float_eq(out[0], 0.0f);

    /* odd K for 4-bit codes, K not a multiple of the group, not 2-D, wrong byte count, not quantized */
    st_tensor o = tensor("odd", ST_QU4, 2, 5, codes);
    o.q.scales = scales;
    ck_assert_int_eq(duet_qweight_from_tensor(&o, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'odd'"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "even"));
    st_tensor g = tensor("g128", ST_QU4, 1, 192, codes);
    g.q.scales = scales;
    g.q.zeros = zeros;
    g.q.group = 128;
    ck_assert_int_eq(duet_qweight_from_tensor(&g, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'g128'"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "192"));
    st_tensor one = tensor("bias", ST_Q8_0, 1, 64, codes);
    one.ndim = 1;
    one.shape[0] = 64;
    ck_assert_int_eq(duet_qweight_from_tensor(&one, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'bias'"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "2-D"));
    st_tensor short_t = tensor("short", ST_Q8_0, 2, 64, codes);
    short_t.nbytes -= 1;
    ck_assert_int_eq(duet_qweight_from_tensor(&short_t, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'short'"));
    st_tensor f = tensor("norm", ST_F32, 2, 32, codes);
    ck_assert_int_eq(duet_qweight_from_tensor(&f, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'norm'"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "F32"));
    st_tensor k = tensor("q4k", ST_Q4_K, 1, 256, codes);
    ck_assert_int_eq(duet_qweight_from_tensor(&k, &w), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "Q4_K"));
    ck_assert_ptr_null(w.codes);
}
END_TEST

/* ---- accuracy ----------------------------------------------------------------------------------- */

/* Relative L2 error of dequant(quant(W)) for 64 x 1024 N(0, 1) weights, against two bounds. (1) The
 * rounding estimate of the scales the quantizer chose: a code that is the nearest one for its scale errs
 * by at most half a step, uniformly, so the error is sqrt(sum over groups of n * step^2 / 12) / ||W||;
 * the measured error must be within 10% of it (a code one step off anywhere would show). (2) A ceiling
 * per mode, from the step the mode's group gives N(0, 1) rows (step = E[max |w|] / 127, / 7, or
 * E[range] / 15, E[max |w|] / 8 over the group's n elements; / sqrt(12)), with 10-25% margin.
 * Measured (seed 7; estimate in brackets): int8 0.0079 (0.0079), int4 0.1425 (0.1427), int4-g128 0.1004
 * (0.1004), int4-g64 0.0913 (0.0912), q8_0 0.0054 (0.0054), q4_0 0.0860 (0.0863), q4_1 0.0785 (0.0809). */
START_TEST(test_accuracy)
{
    const int64_t rows = 64, cols = 1024, n = rows * cols;
    float *W = malloc(n * sizeof *W), *y = malloc(n * sizeof *y);
    normal_fill(W, n, 7, 1.0f);
    static const struct { duet_qmode q; double ceiling; } acc[] = {
        {DUET_Q_INT8, 1e-2},     {DUET_Q_INT4, 0.16},  {DUET_Q_INT4_G128, 0.11}, {DUET_Q_INT4_G64, 0.1},
        {DUET_Q_Q8_0, 6.5e-3},   {DUET_Q_Q4_0, 0.1},   {DUET_Q_Q4_1, 0.095},
    };
    double norm2 = 0;
    for (int64_t i = 0; i < n; i++) norm2 += (double)W[i] * W[i];
    for (size_t k = 0; k < sizeof acc / sizeof acc[0]; k++) {
        duet_qweight w;
        quant_ok(acc[k].q, W, rows, cols, &w);
        duet_qweight_to_f32(&w, y);
        double rel = test_rel_l2(y, W, n), est = 0;
        for (int64_t g = 0; g < rows * (cols / w.group); g++) {
            double s = duet_f16_to_f32(w.scales[g]);
            est += (double)w.group * s * s / 12.0;
        }
        est = sqrt(est / norm2);
        fprintf(stderr, "%-9s rel L2 %.4f (uniform-rounding estimate %.4f)\n", duet_qmode_get(acc[k].q)->name, rel, est);
        ck_assert_msg(rel < acc[k].ceiling, "%s: rel L2 %g >= %g", duet_qmode_get(acc[k].q)->name, rel, acc[k].ceiling);
        ck_assert_msg(rel < 1.1 * est, "%s: rel L2 %g, above the rounding estimate %g", duet_qmode_get(acc[k].q)->name,
                      rel, est);
        duet_qweight_free(&w);
    }
    free(W);
    free(y);
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_add_test(tc, test_modes);
    tcase_add_test(tc, test_check_k);
    tcase_add_test(tc, test_int8_rules);
    tcase_add_test(tc, test_int4_rules);
    tcase_add_test(tc, test_int4g_rules);
    tcase_add_test(tc, test_q8_0_rules);
    tcase_add_test(tc, test_q4_0_rules);
    tcase_add_test(tc, test_q4_1_rules);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_gguf_vectors);
    tcase_add_test(tc, test_round_trips);
    tcase_add_test(tc, test_tensor_errors);
    tcase_add_test(tc, test_accuracy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(quant_suite()); }
