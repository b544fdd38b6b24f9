/* quant.c: see quant.h. The mode table, the one CPU quantizer (one function per rounding rule, each
 * over one group of one row), exact dequantization, and the conversions between the planar form and
 * the stored one (GGUF blocks, or planar tensors with their scales in st_tensor.q).
 *
 * Determinism: plain fp32 arithmetic in a fixed order, C's roundf, duet_f32_to_f16, and no multiply-add
 * fused into an FMA (the pragmas below, whatever -march the build uses): llama.cpp's reference computes
 * x * id + 8.5f as two roundings (and so does gguf-py with numpy), and an FMA would round once and move a
 * code at the rare inputs where the product lands just below a half. Non-finite weights, and weights
 * whose scale (or Q4_1 min) does not fit fp16, are refused rather than quantized into Inf/NaN scales. */
#include "quant.h"
#include "error.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- the mode table ----------------------------------------------------------------------------- */

static const duet_qmode_info modes[DUET_Q_N_MODES] = {
    [DUET_Q_NONE] = {"none", ST_F32, 0, 0, 0, "weights as stored (no quantization)"},
    [DUET_Q_INT8] = {"int8", ST_QI8, 8, 0, 0, "int8 codes, one fp16 scale per row (symmetric, per channel)"},
    [DUET_Q_INT4] = {"int4", ST_QU4, 4, 0, 0, "4-bit codes, one fp16 scale per row, zero point 8 (symmetric, per channel)"},
    [DUET_Q_INT4_G128] = {"int4-g128", ST_QU4, 4, 128, 1, "4-bit codes, fp16 scale and uint8 zero point per 128 (asymmetric)"},
    [DUET_Q_INT4_G64] = {"int4-g64", ST_QU4, 4, 64, 1, "4-bit codes, fp16 scale and uint8 zero point per 64 (asymmetric)"},
    [DUET_Q_Q8_0] = {"q8_0", ST_Q8_0, 8, 32, 0, "GGUF Q8_0 blocks: int8 codes, fp16 scale per 32 (llama.cpp's rounding)"},
    [DUET_Q_Q4_0] = {"q4_0", ST_Q4_0, 4, 32, 0, "GGUF Q4_0 blocks: 4-bit codes, fp16 scale per 32 (llama.cpp's rounding)"},
    [DUET_Q_Q4_1] = {"q4_1", ST_Q4_1, 4, 32, 0, "GGUF Q4_1 blocks: 4-bit codes, fp16 scale and min per 32 (llama.cpp's rounding)"},
};

/* Every mode but none, in table order (tests/test_quant checks it against the table). */
static const char mode_list[] = "int8, int4, int4-g128, int4-g64, q8_0, q4_0, q4_1";

const duet_qmode_info *duet_qmode_get(duet_qmode q)
{
    return (unsigned)q < DUET_Q_N_MODES ? &modes[q] : NULL;
}

const char *duet_qmode_list(void) { return mode_list; }

int duet_qmode_parse(const char *name, duet_qmode *out)
{
    if (!name || !*name) {
        *out = DUET_Q_NONE;
        return 0;
    }
    for (int q = 0; q < DUET_Q_N_MODES; q++)
        if (!strcasecmp(name, modes[q].name)) {
            *out = (duet_qmode)q;
            return 0;
        }
    return duet_errorf("unknown weight quantization mode '%s' (modes: none, %s)", name, mode_list);
}

static int is_plain_float(st_dtype t)
{
    return t == ST_F32 || t == ST_F16 || t == ST_BF16 || t == ST_F64 || t == ST_F8_E4M3;
}

int duet_qmode_of(const st_tensor *t)
{
    if (is_plain_float(t->dtype)) return DUET_Q_NONE;
    switch (t->dtype) {
    case ST_Q8_0: return DUET_Q_Q8_0;
    case ST_Q4_0: return DUET_Q_Q4_0;
    case ST_Q4_1: return DUET_Q_Q4_1;
    case ST_QI8:
    case ST_QU4: {
        if (t->ndim < 1) return -1;
        int64_t cols = t->shape[t->ndim - 1];
        int per_row = t->q.group == 0 || t->q.group == cols; /* per channel: group spelled 0 or K */
        if (t->dtype == ST_QI8) return !t->q.zeros && per_row ? DUET_Q_INT8 : -1;
        if (!t->q.zeros) return per_row ? DUET_Q_INT4 : -1;
        return t->q.group == 128 ? DUET_Q_INT4_G128 : t->q.group == 64 ? DUET_Q_INT4_G64 : -1;
    }
    default: return -1;
    }
}

static const char *nm(const char *what) { return what && *what ? what : "weights"; }

int duet_qmode_check_k(duet_qmode q, int64_t K, const char *what)
{
    if (q == DUET_Q_NONE || !duet_qmode_get(q))
        return duet_errorf("%s: %d is not a quantization mode (modes: %s)", nm(what), (int)q, mode_list);
    const duet_qmode_info *m = &modes[q];
    if (K <= 0 || K > INT_MAX)
        return duet_errorf("%s: mode %s: row length K = %lld is out of range (1 .. %d)", nm(what), m->name, (long long)K,
                           INT_MAX);
    int g = m->group ? m->group : (int)K;
    if (K % g)
        return duet_errorf("%s: mode %s needs rows whose length is a multiple of its group of %d (K = %lld)", nm(what),
                           m->name, g, (long long)K);
    if (m->bits == 4 && K % 2)
        return duet_errorf("%s: mode %s packs two 4-bit codes per byte and needs an even row length (K = %lld)",
                           nm(what), m->name, (long long)K);
    return g;
}

/* ---- the planar matrix -------------------------------------------------------------------------- */

int64_t duet_qweight_row_bytes(const duet_qweight *w)
{
    const duet_qmode_info *m = duet_qmode_get(w->mode);
    return m ? w->cols * m->bits / 8 : 0;
}

void duet_qweight_free(duet_qweight *w)
{
    if (!w) return;
    free(w->codes);
    free(w->scales);
    free(w->zeros);
    free(w->mins);
    memset(w, 0, sizeof *w);
}

/* Zero-filled n bytes (at least one, so that an empty matrix still owns its buffers). */
static void *zalloc(size_t n) { return calloc(n ? n : 1, 1); }

/* Allocates w's buffers for rows x cols in mode q with the given group; w is zeroed first. */
static int qweight_alloc(duet_qweight *w, duet_qmode q, int64_t rows, int64_t cols, int group, const char *what)
{
    const duet_qmode_info *m = &modes[q];
    memset(w, 0, sizeof *w);
    if (rows < 0) return duet_errorf("%s: %lld rows", nm(what), (long long)rows);
    w->mode = q;
    w->rows = rows;
    w->cols = cols;
    w->group = group;
    int64_t row_bytes = cols * m->bits / 8, ngroups = 0, code_bytes, scale_bytes;
    if (__builtin_mul_overflow(rows, row_bytes, &code_bytes) || __builtin_mul_overflow(rows, cols / group, &ngroups) ||
        __builtin_mul_overflow(ngroups, (int64_t)sizeof(uint16_t), &scale_bytes) || (uint64_t)code_bytes > SIZE_MAX ||
        (uint64_t)scale_bytes > SIZE_MAX)
        return duet_errorf("%s: %lld x %lld weights in mode %s overflow the byte count", nm(what), (long long)rows,
                           (long long)cols, m->name);
    w->codes = zalloc((size_t)code_bytes);
    w->scales = zalloc((size_t)scale_bytes);
    if (m->has_zeros) w->zeros = zalloc((size_t)ngroups);
    if (q == DUET_Q_Q4_1) w->mins = zalloc((size_t)scale_bytes);
    if (!w->codes || !w->scales || (m->has_zeros && !w->zeros) || (q == DUET_Q_Q4_1 && !w->mins)) {
        duet_qweight_free(w);
        return duet_errorf("%s: out of memory for %lld x %lld weights in mode %s (%lld bytes of codes)", nm(what),
                           (long long)rows, (long long)cols, m->name, (long long)code_bytes);
    }
    return 0;
}

/* 4-bit planar codes: element e of a row is the low nibble of byte e / 2 when e is even, the high one when odd. */
static int get4(const uint8_t *row, int64_t e) { return (row[e >> 1] >> (4 * (e & 1))) & 0xf; }
static void put4(uint8_t *row, int64_t e, int q) { row[e >> 1] |= (uint8_t)(q << (4 * (e & 1))); }

static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

/* ---- quantizers: one group of n elements each ---------------------------------------------------- */

/* The fp16 of a scale, or -1 (error naming row r, group g) when it does not fit fp16. */
static int to_f16_checked(float v, uint16_t *h, const char *label, const char *what, int64_t r, int64_t g)
{
    *h = duet_f32_to_f16(v);
    if ((*h & 0x7c00) == 0x7c00)
        return duet_errorf("%s: row %lld, group %lld: %s %g does not fit fp16 (weights too large to quantize)", nm(what),
                           (long long)r, (long long)g, label, (double)v);
    return 0;
}

/* max |x[i]| over n elements (0 for an all-zero row) */
static float amax_of(const float *x, int64_t n)
{
    float a = 0.0f;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > a) a = fabsf(x[i]);
    return a;
}

/* int8 (per-channel, n = K): s = fp16(amax / 127); q = clamp(round(w / s), -127, 127); s = 0: q = 0. */
static int quant_int8(const float *x, int64_t n, uint8_t *codes, uint16_t *scale, const char *what, int64_t r)
{
    if (to_f16_checked(amax_of(x, n) / 127.0f, scale, "scale", what, r, 0)) return -1;
    float s = duet_f16_to_f32(*scale);
    for (int64_t i = 0; i < n; i++) codes[i] = (uint8_t)(int8_t)(s == 0.0f ? 0 : (int)clampf(roundf(x[i] / s), -127, 127));
    return 0;
}

/* int4 (per-channel): s = fp16(amax / 7); q = clamp(round(w / s), -8, 7) + 8; s = 0: q = 8. */
static int quant_int4(const float *x, int64_t n, uint8_t *codes, uint16_t *scale, const char *what, int64_t r)
{
    if (to_f16_checked(amax_of(x, n) / 7.0f, scale, "scale", what, r, 0)) return -1;
    float s = duet_f16_to_f32(*scale);
    for (int64_t i = 0; i < n; i++) put4(codes, i, s == 0.0f ? 8 : (int)clampf(roundf(x[i] / s), -8, 7) + 8);
    return 0;
}

/* int4-g*: the range [lo, hi] always holds 0 (so 0 is exact: q = z); s = fp16((hi - lo) / 15);
 * z = clamp(round(-lo / s), 0, 15); q = clamp(round(w / s) + z, 0, 15); s = 0 (an all-zero group): z = q = 0.
 * codes is the row; the group starts at element e0. */
static int quant_int4g(const float *x, int64_t n, uint8_t *codes, int64_t e0, uint16_t *scale, uint8_t *zero,
                       const char *what, int64_t r, int64_t g)
{
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (to_f16_checked((hi - lo) / 15.0f, scale, "scale", what, r, g)) return -1;
    float s = duet_f16_to_f32(*scale);
    if (s == 0.0f) {
        *zero = 0;
        return 0; /* codes are already 0 */
    }
    int z = (int)clampf(roundf(-lo / s), 0, 15);
    *zero = (uint8_t)z;
    for (int64_t i = 0; i < n; i++) put4(codes, e0 + i, (int)clampf(roundf(x[i] / s) + (float)z, 0, 15));
    return 0;
}

/* q8_0 (llama.cpp's quantize_row_q8_0_ref): d = amax / 127, q = round(w * (1 / d)), d stored as fp16. */
static int quant_q8_0(const float *x, uint8_t *codes, uint16_t *scale, const char *what, int64_t r, int64_t g)
{
    const float d = amax_of(x, 32) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (to_f16_checked(d, scale, "scale", what, r, g)) return -1;
    for (int i = 0; i < 32; i++) {
        const float v = x[i] * id;
        codes[i] = (uint8_t)(int8_t)(int)clampf(roundf(v), -127, 127); /* |v| <= 127 (+ rounding): no-op clamp */
    }
    return 0;
}

/* q4_0 (quantize_row_q4_0_ref): m = the first element of largest |w| (0 when all are zero: the reference
 * keeps its initial +0, so d = 0 / -8 = -0), d = m / -8, q = min(15, (int)(w * (1 / d) + 8.5)). */
static int quant_q4_0(const float *x, uint8_t *codes, int64_t e0, uint16_t *scale, const char *what, int64_t r, int64_t g)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 32; i++)
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (to_f16_checked(d, scale, "scale", what, r, g)) return -1;
    for (int i = 0; i < 32; i++) {
        const float v = x[i] * id;
        const float t = v + 8.5f; /* its own rounding: in [0.5, 16.5] */
        put4(codes, e0 + i, (int)clampf(truncf(t), 0, 15));
    }
    return 0;
}

/* q4_1 (quantize_row_q4_1_ref): min and max by strict comparisons from +-FLT_MAX (the first of equal
 * values wins, signed zeros included), d = (max - min) / 15, q = min(15, (int)((w - min) * (1 / d) + 0.5)),
 * d and min stored as fp16. */
static int quant_q4_1(const float *x, uint8_t *codes, int64_t e0, uint16_t *scale, uint16_t *minh, const char *what,
                      int64_t r, int64_t g)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < 32; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (to_f16_checked(d, scale, "scale", what, r, g) || to_f16_checked(min, minh, "min", what, r, g)) return -1;
    for (int i = 0; i < 32; i++) {
        const float v = (x[i] - min) * id;
        const float t = v + 0.5f;
        put4(codes, e0 + i, (int)clampf(truncf(t), 0, 15));
    }
    return 0;
}

int duet_quantize(duet_qmode q, const float *W, int64_t rows, int64_t cols, const char *what, duet_qweight *out)
{
    memset(out, 0, sizeof *out);
    int group = duet_qmode_check_k(q, cols, what);
    if (group < 0) return -1;
    if (qweight_alloc(out, q, rows, cols, group, what)) return -1;
    int64_t row_bytes = duet_qweight_row_bytes(out), G = cols / group;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = W + r * cols;
        for (int64_t i = 0; i < cols; i++)
            if (!isfinite(x[i])) {
                duet_qweight_free(out);
                return duet_errorf("%s: row %lld, column %lld: weight %g is not finite", nm(what), (long long)r,
                                   (long long)i, (double)x[i]);
            }
        uint8_t *codes = out->codes + r * row_bytes;
        uint16_t *sc = out->scales + r * G;
        int rc = 0;
        for (int64_t g = 0; g < G && !rc; g++) {
            const float *xg = x + g * group;
            int64_t e0 = g * group;
            switch (q) {
            case DUET_Q_INT8: rc = quant_int8(xg, cols, codes, sc, what, r); break;
            case DUET_Q_INT4: rc = quant_int4(xg, cols, codes, sc, what, r); break;
            case DUET_Q_INT4_G128:
            case DUET_Q_INT4_G64: rc = quant_int4g(xg, group, codes, e0, &sc[g], &out->zeros[r * G + g], what, r, g); break;
            case DUET_Q_Q8_0: rc = quant_q8_0(xg, codes + e0, &sc[g], what, r, g); break;
            case DUET_Q_Q4_0: rc = quant_q4_0(xg, codes, e0, &sc[g], what, r, g); break;
            case DUET_Q_Q4_1: rc = quant_q4_1(xg, codes, e0, &sc[g], &out->mins[r * G + g], what, r, g); break;
            default: rc = duet_errorf("%s: mode %d has no quantizer", nm(what), (int)q); break;
            }
        }
        if (rc) {
            duet_qweight_free(out);
            return -1;
        }
    }
    return 0;
}

/* ---- exact dequantization ----------------------------------------------------------------------- */

void duet_qweight_to_f32(const duet_qweight *w, float *out)
{
    int64_t row_bytes = duet_qweight_row_bytes(w), G = w->group ? w->cols / w->group : 0;
    for (int64_t r = 0; r < w->rows; r++) {
        const uint8_t *codes = w->codes + r * row_bytes;
        const uint16_t *sc = w->scales + r * G;
        float *y = out + r * w->cols;
        for (int64_t e = 0; e < w->cols; e++) {
            int64_t g = e / w->group;
            float s = duet_f16_to_f32(sc[g]);
            switch (w->mode) {
            case DUET_Q_INT8: y[e] = s * (float)(int8_t)codes[e]; break;
            case DUET_Q_INT4:
            case DUET_Q_Q4_0: y[e] = s * (float)(get4(codes, e) - 8); break;
            case DUET_Q_INT4_G128:
            case DUET_Q_INT4_G64: y[e] = s * (float)(get4(codes, e) - w->zeros[r * G + g]); break;
            case DUET_Q_Q8_0: y[e] = (float)(int8_t)codes[e] * s; break; /* dtype.c's operand order */
            case DUET_Q_Q4_1: {
                float p = s * (float)get4(codes, e); /* rounded (exact, in fact) before the sum */
                y[e] = p + duet_f16_to_f32(w->mins[r * G + g]);
                break;
            }
            default: y[e] = 0.0f; break;
            }
        }
    }
}

/* ---- stored forms ------------------------------------------------------------------------------- */

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

int duet_qweight_to_blocks(const duet_qweight *w, void *dst)
{
    const duet_qmode_info *m = duet_qmode_get(w->mode);
    if (!m || w->mode == DUET_Q_NONE) return duet_errorf("quantized weights: mode %d has no stored form", (int)w->mode);
    int64_t row_bytes = duet_qweight_row_bytes(w), G = w->cols / w->group;
    uint8_t *b = dst;
    if (m->dtype == ST_QI8 || m->dtype == ST_QU4) {
        memcpy(b, w->codes, (size_t)(w->rows * row_bytes));
        return 0;
    }
    for (int64_t r = 0; r < w->rows; r++) {
        const uint8_t *codes = w->codes + r * row_bytes;
        for (int64_t g = 0; g < G; g++) {
            int64_t e0 = g * 32;
            wr16(b, w->scales[r * G + g]);
            if (w->mode == DUET_Q_Q8_0) {
                memcpy(b + 2, codes + e0, 32);
                b += 34;
                continue;
            }
            uint8_t *qs = b + 2;
            if (w->mode == DUET_Q_Q4_1) {
                wr16(b + 2, w->mins[r * G + g]);
                qs = b + 4;
            }
            for (int i = 0; i < 16; i++) /* GGUF: element i low nibble of qs[i], element i + 16 high */
                qs[i] = (uint8_t)(get4(codes, e0 + i) | (get4(codes, e0 + i + 16) << 4));
            b = qs + 16;
        }
    }
    return 0;
}

static const char *tfile(const st_tensor *t) { return t->file ? t->file : "(memory)"; }

int duet_qweight_from_tensor(const st_tensor *t, duet_qweight *out)
{
    memset(out, 0, sizeof *out);
    const char *name = t->name ? t->name : "?";
    int mode = duet_qmode_of(t);
    if (mode <= DUET_Q_NONE) {
        if (t->dtype == ST_QI8 || t->dtype == ST_QU4)
            return duet_errorf("%s: tensor '%s': planar %s codes with group %d and %s zero points match no mode (%s)",
                               tfile(t), name, st_dtype_name(t->dtype), t->q.group, t->q.zeros ? "with" : "without",
                               mode_list);
        return duet_errorf("%s: tensor '%s': dtype %s is not a quantized weight type (Q8_0, Q4_0, Q4_1, QI8, QU4)",
                           tfile(t), name, st_dtype_name(t->dtype));
    }
    if (t->ndim != 2)
        return duet_errorf("%s: tensor '%s': quantized weights must be 2-D (ndim %d)", tfile(t), name, t->ndim);
    int planar = t->dtype == ST_QI8 || t->dtype == ST_QU4;
    if (planar && !t->q.scales) return duet_errorf("%s: tensor '%s': planar %s codes: missing scales", tfile(t), name,
                                                   st_dtype_name(t->dtype));
    int64_t rows = t->shape[0], cols = t->shape[1], numel;
    char what[512];
    snprintf(what, sizeof what, "%s: tensor '%s'", tfile(t), name);
    int group = duet_qmode_check_k((duet_qmode)mode, cols, what);
    if (group < 0) return -1;
    size_t want = __builtin_mul_overflow(rows, cols, &numel) || numel != t->numel ? 0 : st_dtype_bytes(t->dtype, numel);
    if ((!want && numel) || want != t->nbytes || (want && !t->data))
        return duet_errorf("%s: %lld x %lld elements in %zu bytes do not fit dtype %s", what, (long long)rows,
                           (long long)cols, t->nbytes, st_dtype_name(t->dtype));
    if (qweight_alloc(out, (duet_qmode)mode, rows, cols, group, what)) return -1;
    int64_t row_bytes = duet_qweight_row_bytes(out), G = cols / group;
    const uint8_t *b = t->data;
    if (planar) {
        const uint8_t *sb = (const uint8_t *)t->q.scales; /* little-endian fp16, like the data */
        memcpy(out->codes, b, (size_t)(rows * row_bytes));
        for (int64_t i = 0; i < rows * G; i++) out->scales[i] = rd16(sb + 2 * i);
        if (out->zeros) memcpy(out->zeros, t->q.zeros, (size_t)(rows * G));
        return 0;
    }
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *codes = out->codes + r * row_bytes;
        for (int64_t g = 0; g < G; g++) {
            int64_t e0 = g * 32;
            out->scales[r * G + g] = rd16(b);
            if (mode == DUET_Q_Q8_0) {
                memcpy(codes + e0, b + 2, 32);
                b += 34;
                continue;
            }
            const uint8_t *qs = b + 2;
            if (mode == DUET_Q_Q4_1) {
                out->mins[r * G + g] = rd16(b + 2);
                qs = b + 4;
            }
            for (int i = 0; i < 16; i++) {
                put4(codes, e0 + i, qs[i] & 0xf);
                put4(codes, e0 + i + 16, qs[i] >> 4);
            }
            b = qs + 16;
        }
    }
    return 0;
}
