/* quant.h: duet's weight-only quantization modes, the one CPU quantizer, and exact dequantization.
 *
 * A mode turns a weight matrix W (rows N, cols K; nn.Linear's out x in, row-major) into integer codes
 * and per-group fp16 scales (and zero points or mins), always along a row: group g holds elements
 * [g G, (g + 1) G) of a row, G the mode's group size (G = K for the per-channel modes). The modes:
 *
 *   name        storage   codes                         group  value (exact in fp32)
 *   int8        ST_QI8    int8, -127..127               K      w = s * q
 *   int4        ST_QU4    uint4 0..15 (zero point 8)    K      w = s * (q - 8)
 *   int4-g128   ST_QU4    uint4 0..15, uint8 zero z     128    w = s * (q - z)
 *   int4-g64    ST_QU4    uint4 0..15, uint8 zero z     64     w = s * (q - z)
 *   q8_0        ST_Q8_0   int8 (GGUF block)             32     w = d * q
 *   q4_0        ST_Q4_0   uint4 (GGUF block)            32     w = d * (q - 8)
 *   q4_1        ST_Q4_1   uint4 + fp16 min m            32     w = (d * q) + m
 *
 * s, d and m are fp16. (q - z) is a small integer and s * (q - z) is exact in fp32, so every backend
 * that applies a scale after an integer product computes the same weights; only Q4_1's "+ m" rounds
 * (once, to fp32: gguf-py's order, dtype.h). The GGUF modes are stored as their GGUF blocks (dtype.h);
 * duet's own modes as a "planar" tensor: dtype ST_QI8 or ST_QU4 holding only the codes, row-major,
 * 4-bit codes packed two per byte (element 2j in the low nibble of byte j of its row, 2j+1 in the high),
 * and st_tensor.q pointing at the scales (N, K / G) fp16 and the zero points (N, K / G) uint8 (int4-g*;
 * NULL: the mode's fixed zero point, 0 for int8 and 8 for int4).
 *
 * Rounding rules (deterministic: the same input gives the same bytes on every host). round() below is
 * C's roundf: half away from zero; fp16() is round-to-nearest-even (duet_f32_to_f16).
 *   int8:      a = max |w| of the row; s = fp16(a / 127); q = clamp(round(w / s), -127, 127)  (s = 0: q = 0)
 *   int4:      a = max |w| of the row; s = fp16(a / 7);   q = clamp(round(w / s), -8, 7) + 8  (s = 0: q = 8)
 *   int4-g*:   lo = min(0, min w), hi = max(0, max w) of the group (0 is always exact, as GPTQ does);
 *              s = fp16((hi - lo) / 15); z = clamp(round(-lo / s), 0, 15); q = clamp(round(w / s) + z, 0, 15)
 *              (s = 0: z = 0, q = 0)
 *   q8_0, q4_0, q4_1: llama.cpp's reference quantizers (quantize_row_q8_0_ref and friends), which gguf-py's
 *              gguf.quants.quantize reproduces: q8_0 d = amax / 127, q = round(w / d); q4_0 d = m / -8 where m
 *              is the element of largest |w| (the first such), q = min(15, (int)(w / d + 8.5)); q4_1
 *              d = (max - min) / 15, q = min(15, (int)((w - min) / d + 0.5)); all with the fp32 d (1/d
 *              multiplied, as llama.cpp does), then d (and min) stored as fp16. Where the two differ, duet
 *              follows the C reference; they differ only in the sign of a zero: C's q4_0 max starts at +0 and
 *              moves on a strictly larger |w| (an all-zero block has d = -0 even when w[0] is -0.0, where
 *              numpy's argmax gives +0), and C's q4_1 min/max keep the first of equal signed zeros (numpy's
 *              may pick either). tests/data/quant's gguf-py vectors therefore hold no -0.0; tests/test_quant
 *              checks those cases by hand.
 * The codes of duet's modes are computed against the stored (fp16-rounded) scale, so they are the best
 * codes for the scale a backend will use. Weights must be finite, and every scale (and Q4_1 min) must fit
 * fp16: otherwise duet_quantize refuses them (an error naming the row) instead of storing Inf scales. */
#ifndef DUET_QUANT_H
#define DUET_QUANT_H

#include "safetensors.h"

#include <stdint.h>

typedef enum duet_qmode {
    DUET_Q_NONE = 0, /* weights as stored (no quantization) */
    DUET_Q_INT8, DUET_Q_INT4, DUET_Q_INT4_G128, DUET_Q_INT4_G64, DUET_Q_Q8_0, DUET_Q_Q4_0, DUET_Q_Q4_1,
    DUET_Q_N_MODES
} duet_qmode;

typedef struct duet_qmode_info {
    const char *name;  /* "int8", "int4-g128", "q4_1", ... (the --weights spelling) */
    st_dtype dtype;    /* ST_QI8 / ST_QU4 (planar) or the GGUF block type */
    int bits;          /* 8 or 4 */
    int group;         /* elements per scale along a row; 0: the whole row (per-channel) */
    int has_zeros;     /* 1: a uint8 zero point per group (int4-g*) */
    const char *about; /* one line for --help */
} duet_qmode_info;

/* The info of mode q; NULL when out of range (DUET_Q_NONE has name "none"). */
const duet_qmode_info *duet_qmode_get(duet_qmode q);
/* By name; DUET_Q_NONE for "none" or "", -1 + duet_error() listing the modes for anything else. */
int duet_qmode_parse(const char *name, duet_qmode *out);
/* "int8, int4, int4-g128, int4-g64, q8_0, q4_0, q4_1" (for --help and errors). */
const char *duet_qmode_list(void);
/* The mode whose storage a tensor of this dtype and group is (GGUF blocks, or planar ST_QI8/ST_QU4 with
 * their group and zeros); DUET_Q_NONE for plain float types; -1 for anything else. */
int duet_qmode_of(const st_tensor *t);

/* Group size of mode q for rows of K elements (K itself for per-channel modes). Error (-1 +
 * duet_error() naming `what`, the mode, K and the group) when K is not a multiple of the group, or, for
 * 4-bit planar modes, K is odd. */
int duet_qmode_check_k(duet_qmode q, int64_t K, const char *what);

/* A quantized matrix in host memory, as the quantizer makes it (planar for every mode; the GGUF modes
 * are packed into blocks by duet_qweight_to_blocks):
 *   codes  (N, row_bytes): int8 for 8-bit modes; uint4 packed as above for 4-bit modes (GGUF's own nibble
 *          order is converted: q4_0/q4_1 block element i (low) / i + 16 (high) of qs[i]);
 *   scales (N, G) fp16 bits, G = K / group;
 *   zeros  (N, G) uint8 (int4-g*); NULL otherwise;
 *   mins   (N, G) fp16 bits (q4_1); NULL otherwise. */
typedef struct duet_qweight {
    duet_qmode mode;
    int64_t rows, cols;
    int group;
    uint8_t *codes;
    uint16_t *scales;
    uint8_t *zeros;
    uint16_t *mins;
} duet_qweight;

/* Bytes of one row's codes (cols * bits / 8). */
int64_t duet_qweight_row_bytes(const duet_qweight *w);
/* Quantizes W (rows x cols fp32, row-major) in mode q (not DUET_Q_NONE) into *out (allocated; free with
 * duet_qweight_free). -1 + duet_error() naming `what` when cols does not fit the mode or out of memory. */
int duet_quantize(duet_qmode q, const float *W, int64_t rows, int64_t cols, const char *what, duet_qweight *out);
void duet_qweight_free(duet_qweight *w);
/* Exact dequantization (the table above) into out (rows x cols). */
void duet_qweight_to_f32(const duet_qweight *w, float *out);

/* The stored form: the GGUF blocks of a q8_0/q4_0/q4_1 matrix into dst (st_dtype_bytes(dtype, N K)
 * bytes), or, for planar modes, a copy of codes (dst) — the scales and zeros are the tensor's q. */
int duet_qweight_to_blocks(const duet_qweight *w, void *dst);
/* The planar form of a stored quantized tensor (GGUF Q8_0/Q4_0/Q4_1 blocks, or planar ST_QI8/ST_QU4):
 * *out allocated and filled bit for bit (the inverse of duet_qweight_to_blocks). -1 + duet_error() naming
 * the tensor for any other dtype or a shape that is not 2-D. */
int duet_qweight_from_tensor(const st_tensor *t, duet_qweight *out);

#endif
