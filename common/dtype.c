/* dtype.c: see dtype.h. The traits table, the fp16/bf16 conversions and one dequantizer per float
 * type. Each block dequantizer reproduces gguf.quants.dequantize (numpy, float32 throughout): the
 * fp16 scales are widened exactly, each product and sum is rounded to fp32 in the package's order,
 * and no multiply-add may be fused into one FMA (that rounds once where numpy rounds twice: the pragmas
 * below, whatever -march or -std the build uses; each product is also a statement of its own).
 * Inputs are read byte by byte (little-endian), so the code depends on neither the host's byte order
 * nor alignment. */
#include "dtype.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- fp16 / bf16 / fp8 ------------------------------------------------------------------------- */

float duet_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN with its payload (as numpy) */
    } else if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t duet_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (absx < 0x38800000u) { /* below the smallest normal 2^-14: subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to zero */
        uint32_t e = absx >> 23, m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* value = m * 2^(e-150); subnormal unit = 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = absx + 0xfff + ((absx >> 13) & 1); /* round mantissa to 10 bits, ties to even */
    return (uint16_t)(sign | (((r >> 23) - 112) << 10) | ((r >> 13) & 0x3ff));
}

float duet_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t duet_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* OCP FP8 E4M3 ("e4m3fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111
 * is NaN. Every value is exact in fp32. */
static float f8e4m3_to_f32(uint8_t v)
{
    uint32_t sign = (uint32_t)(v >> 7) << 31, exp = (v >> 3) & 0xf, mant = v & 7, bits;
    if (exp == 0xf && mant == 7) {
        bits = sign | 0x7fc00000u;
    } else if (exp == 0) {
        float f = (float)mant * (1.0f / 512.0f); /* mant * 2^-9, exact */
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 120) << 23) | (mant << 20);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float duet_f8e4m3_to_f32(uint8_t v) { return f8e4m3_to_f32(v); }

uint8_t duet_f32_to_f8e4m3(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint8_t sign = (uint8_t)((x >> 24) & 0x80);
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7f; /* NaN */
    if (a >= 0x43e00000u) return sign | 0x7e; /* >= 448 (the largest finite value, 1.75 x 2^8): saturate */
    if (a >= 0x3c800000u) {                   /* normal, >= 2^-6: 3 mantissa bits, ties to even at bit 20 */
        const uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);
        /* below 448 the rounding reaches at most 448 (S.1111.110), never the NaN code */
        return sign | (uint8_t)((((r >> 23) - 120u) << 3) | ((r >> 20) & 7u));
    }
    /* subnormal: m x 2^-9, m = 0..7; m = 8 is the smallest normal, 2^-6 (code 0x08). x 512 is exact. */
    float af;
    memcpy(&af, &a, 4);
    return sign | (uint8_t)nearbyintf(af * 512.0f);
}

/* ---- plain types -------------------------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static float f16at(const uint8_t *p) { return duet_f16_to_f32(rd16(p)); }

static void f32_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = rd32(p + 4 * i);
        memcpy(&dst[i], &b, 4);
    }
}

static void f16_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = f16at(p + 2 * i);
}

static void bf16_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = duet_bf16_to_f32(rd16(p + 2 * i));
}

/* Nearest fp32 (round to nearest even, C's conversion). */
static void f64_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint64_t b = (uint64_t)rd32(p + 8 * i) | ((uint64_t)rd32(p + 8 * i + 4) << 32);
        double d;
        memcpy(&d, &b, 8);
        dst[i] = (float)d;
    }
}

static void f8_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = f8e4m3_to_f32(p[i]);
}

/* ---- 32-element blocks -------------------------------------------------------------------------- */

/* Q4_0: x = d * (q - 8). */
static void q4_0_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 32; k++, b += 18, dst += 32) {
        float d = f16at(b);
        for (int i = 0; i < 16; i++) {
            dst[i] = d * (float)((b[2 + i] & 0xf) - 8);
            dst[i + 16] = d * (float)((b[2 + i] >> 4) - 8);
        }
    }
}

/* Q4_1: x = (d * q) + m, the product rounded before the sum. */
static void q4_1_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 32; k++, b += 20, dst += 32) {
        float d = f16at(b), m = f16at(b + 2);
        for (int i = 0; i < 16; i++) {
            float lo = d * (float)(b[4 + i] & 0xf);
            float hi = d * (float)(b[4 + i] >> 4);
            dst[i] = lo + m;
            dst[i + 16] = hi + m;
        }
    }
}

/* Q5_0: q = low nibble | bit i of the u32 qh << 4; x = d * (q - 16). */
static void q5_0_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 32; k++, b += 22, dst += 32) {
        float d = f16at(b);
        uint32_t qh = rd32(b + 2);
        for (int i = 0; i < 16; i++) {
            int lo = (b[6 + i] & 0xf) | (int)(((qh >> i) & 1) << 4);
            int hi = (b[6 + i] >> 4) | (int)(((qh >> (i + 16)) & 1) << 4);
            dst[i] = d * (float)(lo - 16);
            dst[i + 16] = d * (float)(hi - 16);
        }
    }
}

/* Q5_1: x = (d * q) + m. */
static void q5_1_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 32; k++, b += 24, dst += 32) {
        float d = f16at(b), m = f16at(b + 2);
        uint32_t qh = rd32(b + 4);
        for (int i = 0; i < 16; i++) {
            int lo = (b[8 + i] & 0xf) | (int)(((qh >> i) & 1) << 4);
            int hi = (b[8 + i] >> 4) | (int)(((qh >> (i + 16)) & 1) << 4);
            float plo = d * (float)lo;
            float phi = d * (float)hi;
            dst[i] = plo + m;
            dst[i + 16] = phi + m;
        }
    }
}

/* Q8_0: x = q * d. */
static void q8_0_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 32; k++, b += 34, dst += 32) {
        float d = f16at(b);
        for (int i = 0; i < 32; i++) dst[i] = (float)(int8_t)b[2 + i] * d;
    }
}

/* ---- 256-element super-blocks ------------------------------------------------------------------- */

/* The 8 6-bit scales and mins of Q4_K/Q5_K, packed in 12 bytes:
 *   bytes 0-3: scale j (j < 4) in bits 0-5, bits 4-5 of scale j+4 in bits 6-7
 *   bytes 4-7: min j in bits 0-5, bits 4-5 of min j+4 in bits 6-7
 *   bytes 8-11: bits 0-3 of scale j+4 (low nibble) and of min j+4 (high nibble) */
static void k_scale_min(const uint8_t *s, int sc[8], int mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 0x3f;
        mn[j] = s[4 + j] & 0x3f;
        sc[4 + j] = (s[8 + j] & 0x0f) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
}

/* Q4_K: 8 sub-blocks of 32; sub-block 2i is the low nibbles of qs[32i..32i+31], 2i+1 the high ones.
 * x = (d * sc) * q - (dmin * m), each product rounded. */
static void q4_k_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 256; k++, b += 144, dst += 256) {
        float d = f16at(b), dmin = f16at(b + 2);
        int sc[8], mn[8];
        k_scale_min(b + 4, sc, mn);
        const uint8_t *qs = b + 16;
        for (int j = 0; j < 8; j++) {
            float ds = d * (float)sc[j];
            float dm = dmin * (float)mn[j];
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++) {
                float p = ds * (float)((qs[32 * (j >> 1) + l] >> shift) & 0xf);
                dst[32 * j + l] = p - dm;
            }
        }
    }
}

/* Q5_K: as Q4_K, with bit j of qh[l] as bit 4 of element l of sub-block j. */
static void q5_k_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 256; k++, b += 176, dst += 256) {
        float d = f16at(b), dmin = f16at(b + 2);
        int sc[8], mn[8];
        k_scale_min(b + 4, sc, mn);
        const uint8_t *qh = b + 16, *qs = b + 48;
        for (int j = 0; j < 8; j++) {
            float ds = d * (float)sc[j];
            float dm = dmin * (float)mn[j];
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++) {
                int q = ((qs[32 * (j >> 1) + l] >> shift) & 0xf) | (((qh[l] >> j) & 1) << 4);
                float p = ds * (float)q;
                dst[32 * j + l] = p - dm;
            }
        }
    }
}

/* Q6_K: element e (h = e / 128, r = e % 128): low 4 bits from ql[64h + r % 64] (low nibble for
 * r < 64, high otherwise), high 2 bits from qh[32h + r % 32] >> 2 * (r / 32); q - 32 scaled by
 * (d * scales[e / 16]), the scale product rounded first. */
static void q6_k_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t k = 0; k < n / 256; k++, b += 210, dst += 256) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *scales = (const int8_t *)(b + 192);
        float d = f16at(b + 208), ds[16];
        for (int j = 0; j < 16; j++) ds[j] = d * (float)scales[j];
        for (int e = 0; e < 256; e++) {
            int h = e / 128, r = e % 128;
            int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xf;
            int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
            dst[e] = ds[e / 16] * (float)((lo | (hi << 4)) - 32);
        }
    }
}

/* ---- the table ---------------------------------------------------------------------------------- */

static const st_dtype_traits traits[ST_N_DTYPES] = {
    [ST_F32] = {"F32", 1, 4, 0, 1, f32_to_f32},
    [ST_F16] = {"F16", 1, 2, 1, 1, f16_to_f32},
    [ST_BF16] = {"BF16", 1, 2, 30, 1, bf16_to_f32},
    [ST_F64] = {"F64", 1, 8, 28, 1, f64_to_f32},
    [ST_I8] = {"I8", 1, 1, 24, 1, NULL},
    [ST_U8] = {"U8", 1, 1, -1, 1, NULL},
    [ST_I16] = {"I16", 1, 2, 25, 1, NULL},
    [ST_I32] = {"I32", 1, 4, 26, 1, NULL},
    [ST_I64] = {"I64", 1, 8, 27, 1, NULL},
    [ST_F8_E4M3] = {"F8_E4M3", 1, 1, -1, 1, f8_to_f32},
    [ST_BOOL] = {"BOOL", 1, 1, -1, 1, NULL},
    [ST_Q4_0] = {"Q4_0", 32, 18, 2, 0, q4_0_to_f32},
    [ST_Q4_1] = {"Q4_1", 32, 20, 3, 0, q4_1_to_f32},
    [ST_Q5_0] = {"Q5_0", 32, 22, 6, 0, q5_0_to_f32},
    [ST_Q5_1] = {"Q5_1", 32, 24, 7, 0, q5_1_to_f32},
    [ST_Q8_0] = {"Q8_0", 32, 34, 8, 0, q8_0_to_f32},
    [ST_Q4_K] = {"Q4_K", 256, 144, 12, 0, q4_k_to_f32},
    [ST_Q5_K] = {"Q5_K", 256, 176, 13, 0, q5_k_to_f32},
    [ST_Q6_K] = {"Q6_K", 256, 210, 14, 0, q6_k_to_f32},
    [ST_QI8] = {"QI8", 1, 1, -1, 0, NULL},
    [ST_QU4] = {"QU4", 2, 1, -1, 0, NULL},
};

const st_dtype_traits *st_dtype_info(st_dtype t)
{
    return (unsigned)t < ST_N_DTYPES ? &traits[t] : NULL;
}

const char *st_dtype_name(st_dtype t)
{
    const st_dtype_traits *tr = st_dtype_info(t);
    return tr ? tr->name : "?";
}

size_t st_dtype_bytes(st_dtype t, int64_t n)
{
    const st_dtype_traits *tr = st_dtype_info(t);
    if (!tr || n < 0 || n % tr->block) return 0;
    uint64_t blocks = (uint64_t)(n / tr->block);
    if (blocks > SIZE_MAX / (uint64_t)tr->block_bytes) return 0;
    return (size_t)blocks * (size_t)tr->block_bytes;
}

int st_dtype_from_ggml(uint32_t ggml_type)
{
    for (int t = 0; t < ST_N_DTYPES; t++)
        if (traits[t].ggml_type >= 0 && (uint32_t)traits[t].ggml_type == ggml_type) return t;
    return -1;
}

int st_dtype_from_name(const char *name)
{
    for (int t = 0; name && t < ST_N_DTYPES; t++)
        if (!strcmp(traits[t].name, name)) return t;
    return -1;
}
