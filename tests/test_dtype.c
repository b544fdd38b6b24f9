/* test_dtype.c: the storage-type table (common/dtype.h). Every float type's dequantizer is compared
 * bit for bit with tests/data/dtype/<TYPE>.bin, made by scripts/make_dtype_vectors.py with the `gguf`
 * Python package's gguf.quants.dequantize (numpy's cast for F64, exact arithmetic for F8_E4M3):
 * random codes, extreme fp16 scales (max, subnormal, zero, inf, NaN with payloads) in every pairing.
 * NaNs compare equal only as identical bits; the vectors were made on x86-64, whose default NaN
 * (0 * inf) is 0xffc00000, as on the machines duet's tests run on. Also checks st_to_f32 through the
 * table, the byte counts and the name/GGML-id look-ups; duet_f32_to_f8e4m3 against a brute-force
 * nearest-code search. Needs no shared data. */
#include "test_util.h"

#include "dtype.h"
#include "error.h"
#include "file.h"
#include "safetensors.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vectors {
    char *buf;
    int block, block_bytes;
    uint64_t n_blocks;
    const unsigned char *raw;
    const unsigned char *want; /* n_blocks * block fp32, little-endian */
} vectors;

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void load(const char *name, vectors *v)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/dtype/%s.bin", name);
    char *path = test_src_path(rel);
    size_t len = 0;
    v->buf = duet_read_file(path, &len);
    ck_assert_msg(v->buf != NULL, "%s", duet_error());
    ck_assert_uint_ge(len, 32);
    const unsigned char *p = (const unsigned char *)v->buf;
    ck_assert_msg(!memcmp(p, "DUETDTV1", 8), "%s: bad magic", path);
    ck_assert_msg(!strncmp((const char *)p + 8, name, 8), "%s: holds type %.8s", path, (const char *)p + 8);
    v->block = (int)rd32(p + 16);
    v->block_bytes = (int)rd32(p + 20);
    v->n_blocks = (uint64_t)rd32(p + 24) | ((uint64_t)rd32(p + 28) << 32);
    ck_assert_uint_eq(len, 32 + v->n_blocks * (uint64_t)v->block_bytes + v->n_blocks * (uint64_t)v->block * 4);
    v->raw = p + 32;
    v->want = v->raw + v->n_blocks * v->block_bytes;
    free(path);
}

/* Dequantizes the file's blocks with the table and compares every float's bits; returns the NaNs seen. */
static int check_type(const char *name)
{
    vectors v;
    load(name, &v);
    int t = st_dtype_from_name(name);
    ck_assert_int_ge(t, 0);
    const st_dtype_traits *tr = st_dtype_info((st_dtype)t);
    ck_assert_int_eq(tr->block, v.block);
    ck_assert_int_eq(tr->block_bytes, v.block_bytes);
    ck_assert_ptr_nonnull(tr->to_f32);
    int64_t n = (int64_t)v.n_blocks * v.block;
    float *got = malloc((size_t)n * sizeof *got);
    ck_assert_ptr_nonnull(got);
    tr->to_f32(v.raw, got, n);
    int bad = 0, nans = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t g, w = rd32(v.want + 4 * i);
        memcpy(&g, &got[i], 4);
        if ((w & 0x7f800000u) == 0x7f800000u && (w & 0x7fffffu)) nans++;
        if (g != w && bad++ < 5)
            fprintf(stderr, "%s: element %lld (block %lld): got %08x, gguf-py %08x\n", name, (long long)i,
                    (long long)(i / v.block), g, w);
    }
    ck_assert_msg(bad == 0, "%s: %d of %lld floats differ from gguf.quants.dequantize", name, bad, (long long)n);

    /* the same through st_to_f32, as a tensor of one row */
    st_tensor ten = {.name = "v", .dtype = (st_dtype)t, .ndim = 1, .shape = {n}, .numel = n, .data = v.raw,
                     .nbytes = st_dtype_bytes((st_dtype)t, n), .file = "vectors"};
    ck_assert_uint_eq(ten.nbytes, v.n_blocks * v.block_bytes);
    float *got2 = malloc((size_t)n * sizeof *got2);
    ck_assert_int_eq(st_to_f32(&ten, got2), 0);
    ck_assert_msg(!memcmp(got, got2, (size_t)n * 4), "%s: st_to_f32 differs from the table's to_f32", name);
    free(got2);
    free(got);
    free(v.buf);
    fprintf(stderr, "%s: %lld floats bit-identical (%d NaNs)\n", name, (long long)n, nans);
    return nans;
}

START_TEST(test_plain_types) /* F16 and BF16: all 65536 patterns */
{
    check_type("F32");
    check_type("F16");
    check_type("BF16");
    check_type("F64");
    check_type("F8_E4M3");
}
END_TEST

START_TEST(test_block_types)
{
    const char *names[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(check_type(names[i]) > 0, "%s: the vectors hold no NaN scale", names[i]);
}
END_TEST

START_TEST(test_table)
{
    /* (type, name, block, bytes, GGML id, safetensors) as llama.cpp's ggml.h and the safetensors spec */
    static const struct { st_dtype t; const char *name; int block, bytes, ggml, st; } want[] = {
        {ST_F32, "F32", 1, 4, 0, 1},       {ST_F16, "F16", 1, 2, 1, 1},     {ST_BF16, "BF16", 1, 2, 30, 1},
        {ST_F64, "F64", 1, 8, 28, 1},      {ST_I8, "I8", 1, 1, 24, 1},      {ST_U8, "U8", 1, 1, -1, 1},
        {ST_I16, "I16", 1, 2, 25, 1},      {ST_I32, "I32", 1, 4, 26, 1},    {ST_I64, "I64", 1, 8, 27, 1},
        {ST_F8_E4M3, "F8_E4M3", 1, 1, -1, 1}, {ST_BOOL, "BOOL", 1, 1, -1, 1},
        {ST_Q4_0, "Q4_0", 32, 18, 2, 0},   {ST_Q4_1, "Q4_1", 32, 20, 3, 0}, {ST_Q5_0, "Q5_0", 32, 22, 6, 0},
        {ST_Q5_1, "Q5_1", 32, 24, 7, 0},   {ST_Q8_0, "Q8_0", 32, 34, 8, 0}, {ST_Q4_K, "Q4_K", 256, 144, 12, 0},
        {ST_Q5_K, "Q5_K", 256, 176, 13, 0}, {ST_Q6_K, "Q6_K", 256, 210, 14, 0},
        {ST_QI8, "QI8", 1, 1, -1, 0},      {ST_QU4, "QU4", 2, 1, -1, 0}, /* duet's planar codes (quant.h) */
    };
    ck_assert_int_eq((int)(sizeof want / sizeof want[0]), ST_N_DTYPES);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const st_dtype_traits *tr = st_dtype_info(want[i].t);
        ck_assert_ptr_nonnull(tr);
        ck_assert_str_eq(tr->name, want[i].name);
        ck_assert_str_eq(st_dtype_name(want[i].t), want[i].name);
        ck_assert_int_eq(tr->block, want[i].block);
        ck_assert_int_eq(tr->block_bytes, want[i].bytes);
        ck_assert_int_eq(tr->ggml_type, want[i].ggml);
        ck_assert_int_eq(tr->in_safetensors, want[i].st);
        ck_assert_int_eq(st_dtype_from_name(want[i].name), (int)want[i].t);
        if (want[i].ggml >= 0) ck_assert_int_eq(st_dtype_from_ggml((uint32_t)want[i].ggml), (int)want[i].t);
        /* plain types keep st_dtype_size; block types have none */
        ck_assert_uint_eq(st_dtype_size(want[i].t), want[i].block == 1 ? (size_t)want[i].bytes : 0);
        int is_int = want[i].t == ST_I8 || want[i].t == ST_U8 || want[i].t == ST_I16 || want[i].t == ST_I32 ||
                     want[i].t == ST_I64 || want[i].t == ST_BOOL;
        int planar = want[i].t == ST_QI8 || want[i].t == ST_QU4; /* scales apart: st_to_f32 through quant.h */
        ck_assert_int_eq(tr->to_f32 == NULL, is_int || planar);
    }
    ck_assert_ptr_null(st_dtype_info(ST_N_DTYPES));
    ck_assert_ptr_null(st_dtype_info((st_dtype)-1));
    ck_assert_str_eq(st_dtype_name(ST_N_DTYPES), "?");
    ck_assert_int_eq(st_dtype_from_name("Q4_2"), -1);
    ck_assert_int_eq(st_dtype_from_name(NULL), -1);
    ck_assert_int_eq(st_dtype_from_ggml(16), -1); /* IQ2_XXS: not read */
    ck_assert_int_eq(st_dtype_from_ggml(9), -1);  /* Q8_1 */
    ck_assert_int_eq(st_dtype_from_ggml(1000), -1);
}
END_TEST

START_TEST(test_bytes)
{
    ck_assert_uint_eq(st_dtype_bytes(ST_F32, 10), 40);
    ck_assert_uint_eq(st_dtype_bytes(ST_Q4_1, 64), 40);
    ck_assert_uint_eq(st_dtype_bytes(ST_Q6_K, 512), 420);
    ck_assert_uint_eq(st_dtype_bytes(ST_Q4_1, 33), 0);  /* not a whole block */
    ck_assert_uint_eq(st_dtype_bytes(ST_Q4_K, 128), 0);
    ck_assert_uint_eq(st_dtype_bytes(ST_F32, -4), 0);
    ck_assert_uint_eq(st_dtype_bytes(ST_F64, INT64_MAX / 2), 0); /* 2^65 bytes: overflows size_t */
    ck_assert_uint_eq(st_dtype_bytes(ST_N_DTYPES, 4), 0);
}
END_TEST

START_TEST(test_to_f32_refuses)
{
    int32_t iv[2] = {1, 2};
    float out[32];
    st_tensor t = {.name = "ids", .dtype = ST_I32, .ndim = 1, .shape = {2}, .numel = 2, .data = iv, .nbytes = 8,
                   .file = "mem"};
    ck_assert_int_eq(st_to_f32(&t, out), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'ids'"));
    ck_assert_ptr_nonnull(strstr(duet_error(), "I32"));
    /* a Q8_0 tensor whose element count is not whole blocks */
    unsigned char blk[34] = {0};
    st_tensor q = {.name = "q", .dtype = ST_Q8_0, .ndim = 1, .shape = {16}, .numel = 16, .data = blk, .nbytes = 34,
                   .file = "mem"};
    ck_assert_int_eq(st_to_f32(&q, out), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "Q8_0"));
}
END_TEST

/* A hand-made block of each 32-element type, so a layout error shows as a readable value. */
START_TEST(test_hand_blocks)
{
    float out[32];
    unsigned char q8[34] = {0x00, 0x40}; /* d = 2.0 */
    for (int i = 0; i < 32; i++) q8[2 + i] = (unsigned char)(int8_t)(i - 16);
    st_dtype_info(ST_Q8_0)->to_f32(q8, out, 32);
    for (int i = 0; i < 32; i++) ck_assert_float_eq(out[i], 2.0f * (i - 16));

    unsigned char q41[20] = {0x00, 0x3c, 0x00, 0xbc}; /* d = 1, m = -1 */
    for (int i = 0; i < 16; i++) q41[4 + i] = (unsigned char)(i | ((15 - i) << 4));
    st_dtype_info(ST_Q4_1)->to_f32(q41, out, 32);
    for (int i = 0; i < 16; i++) {
        ck_assert_float_eq(out[i], (float)i - 1.0f);
        ck_assert_float_eq(out[i + 16], (float)(15 - i) - 1.0f);
    }

    unsigned char q50[22] = {0x00, 0x3c, 0x01, 0x00, 0x01, 0x80}; /* d = 1; qh bits 0, 16, 31 */
    st_dtype_info(ST_Q5_0)->to_f32(q50, out, 32);
    ck_assert_float_eq(out[0], 0.0f);   /* 16 - 16 */
    ck_assert_float_eq(out[1], -16.0f); /* 0 - 16 */
    ck_assert_float_eq(out[16], 0.0f);
    ck_assert_float_eq(out[31], 0.0f);
    ck_assert_float_eq(out[30], -16.0f);
}
END_TEST

/* The E4M3 code nearest to x by search over the 254 finite codes (ties: the even code, i.e. the even
 * mantissa); beyond +-448 the largest; NaN the NaN code; zero keeps the sign of x. */
static uint8_t e4m3_nearest(float x)
{
    if (isnan(x)) return signbit(x) ? 0xff : 0x7f;
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    const double a = fabs((double)x);
    if (a >= 448.0) return sign | 0x7e;
    int best = 0;
    double best_d = INFINITY;
    for (int c = 0; c < 0x7f; c++) { /* 0x00 .. 0x7e, ascending in value */
        const double d = fabs((double)duet_f8e4m3_to_f32((uint8_t)c) - a);
        if (d < best_d || (d == best_d && (c & 1) == 0)) best = c, best_d = d;
    }
    return sign | (uint8_t)best;
}

START_TEST(test_f8e4m3_encode)
{
    /* every code round-trips (the NaN codes to the NaN code of their sign) */
    for (int c = 0; c < 256; c++) {
        const uint8_t want = (c & 0x7f) == 0x7f ? (uint8_t)(c | 0x7f) : (uint8_t)c;
        ck_assert_msg(duet_f32_to_f8e4m3(duet_f8e4m3_to_f32((uint8_t)c)) == want, "code 0x%02x", c);
    }
    /* the midpoints of neighbouring codes (ties), and one fp32 ulp either side */
    int n = 0;
    for (int c = 0; c < 0x7e; c++) {
        const float lo = duet_f8e4m3_to_f32((uint8_t)c), hi = duet_f8e4m3_to_f32((uint8_t)(c + 1));
        const float mid = (float)(((double)lo + (double)hi) / 2.0); /* exact: a few bits more than E4M3 */
        const float xs[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++)
            for (int s = 0; s < 2; s++, n++) {
                const float x = s ? -xs[i] : xs[i];
                ck_assert_msg(duet_f32_to_f8e4m3(x) == e4m3_nearest(x), "x %a: 0x%02x, nearest 0x%02x", (double)x,
                              duet_f32_to_f8e4m3(x), e4m3_nearest(x));
            }
    }
    ck_assert_int_eq(duet_f32_to_f8e4m3(0.5f * (duet_f8e4m3_to_f32(0x7d) + 448.0f)), 0x7e); /* 432 -> 448 (even) */
    /* a sweep of fp32 bit patterns over the whole range, both signs, infinities and NaNs included */
    for (uint64_t u = 0; u <= 0xffffffffull; u += 4093, n++) {
        const uint32_t b = (uint32_t)u;
        float x;
        memcpy(&x, &b, 4);
        ck_assert_msg(duet_f32_to_f8e4m3(x) == e4m3_nearest(x), "bits 0x%08x: 0x%02x, nearest 0x%02x", b,
                      duet_f32_to_f8e4m3(x), e4m3_nearest(x));
    }
    ck_assert_int_eq(duet_f32_to_f8e4m3(INFINITY), 0x7e);
    ck_assert_int_eq(duet_f32_to_f8e4m3(-INFINITY), 0xfe);
    ck_assert_int_eq(duet_f32_to_f8e4m3(-0.0f), 0x80);
    ck_assert_int_eq(duet_f32_to_f8e4m3(1.0f / 1024.0f), 0x00);  /* 2^-10: half the smallest subnormal, even */
    ck_assert_int_eq(duet_f32_to_f8e4m3(3.0f / 1024.0f), 0x02);  /* 1.5 x 2^-9: tie, to the even 2 x 2^-9 */
    ck_assert_int_eq(duet_f32_to_f8e4m3(240.0f), 0x77);          /* 1.875 x 2^7 */
    ck_assert(n > 1000000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("dtype");
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_plain_types);
    tcase_add_test(tc, test_block_types);
    tcase_add_test(tc, test_to_f32_refuses);
    tcase_add_test(tc, test_hand_blocks);
    tcase_add_test(tc, test_f8e4m3_encode);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
