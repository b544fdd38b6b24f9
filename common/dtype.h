/* dtype.h: the storage types of every tensor duet reads or writes, as one traits table (in the manner
 * of ggml's type_traits): name, elements per block, bytes per block, GGML type id, and the exact
 * dequantization to fp32. Plain types (F32, F16, ...) are blocks of one element. safetensors' dtypes
 * and GGUF's ggml types share the table, so a model's tensors keep their stored type whatever file
 * they came from (st_tensor.dtype, safetensors.h).
 *
 * Block layouts (little-endian; d, m: fp16 scale and min; qs: packed codes, low nibble first):
 *   Q8_0  32 elems, 34 B: d, int8 qs[32]                         x = d * q
 *   Q4_0  32 elems, 18 B: d, qs[16] (elem i low nibble of qs[i], i+16 high nibble)   x = d * (q - 8)
 *   Q4_1  32 elems, 20 B: d, m, qs[16]                           x = d * q + m
 *   Q5_0  32 elems, 22 B: d, qh[4] (bit 4 of elem i), qs[16]     x = d * (q - 16)
 *   Q5_1  32 elems, 24 B: d, m, qh[4], qs[16]                    x = d * q + m
 *   Q4_K 256 elems, 144 B: d, dmin, scales[12] (8 x 6-bit scale/min), qs[128]
 *   Q5_K 256 elems, 176 B: d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K 256 elems, 210 B: ql[128], qh[64], int8 scales[16], d
 * Dequantization follows the `gguf` Python package's gguf.quants.dequantize bit for bit (fp32
 * arithmetic in the same order; tests/test_dtype checks committed vectors made with it):
 *   Q4_0, Q5_0, Q8_0: d * q;  Q4_1, Q5_1: (d * q) + m;  Q4_K, Q5_K: ((d * sc) * q) - (dmin * m);
 *   Q6_K: (d * sc) * q; every product and sum rounded to fp32 (never fused into an FMA).
 * Scales are not checked: an Inf or NaN fp16 scale propagates as IEEE arithmetic (and the package)
 * makes it: a NaN scale gives NaNs carrying its payload (quieted), an infinite one gives +-Inf, and
 * NaN (the host's default NaN) where it multiplies a zero code. Plain F16 NaNs keep their payload.
 * F64 rounds to nearest fp32; F8_E4M3 is OCP e4m3fn (no Inf; S.1111.111 -> quiet NaN of that sign). */
#ifndef DUET_DTYPE_H
#define DUET_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I8, ST_U8, ST_I16, ST_I32, ST_I64, ST_F8_E4M3, ST_BOOL,
    ST_Q4_0, ST_Q4_1, ST_Q5_0, ST_Q5_1, ST_Q8_0, ST_Q4_K, ST_Q5_K, ST_Q6_K,
    ST_QI8, ST_QU4, /* duet's planar quantized codes (quant.h): int8, and uint4 two per byte; their scales
                     * and zero points are separate (st_tensor.q), so the table has no to_f32 for them */
    ST_N_DTYPES
} st_dtype;

typedef struct st_dtype_traits {
    const char *name;  /* "F32", "Q4_1", ... as safetensors and gguf-py spell them */
    int block;         /* elements per block (1 for plain types) */
    int block_bytes;   /* bytes per block */
    int ggml_type;     /* GGML type id in GGUF files, -1 when GGUF has none */
    int in_safetensors;/* 1: a safetensors dtype */
    /* Dequantizes n elements (n a multiple of block) from src to dst; NULL for non-float types
     * (integers, bool), which are not weights. */
    void (*to_f32)(const void *src, float *dst, int64_t n);
} st_dtype_traits;

/* The traits of t; NULL when t is out of range. */
const st_dtype_traits *st_dtype_info(st_dtype t);
const char *st_dtype_name(st_dtype t);   /* "?" when out of range */
/* Bytes of n elements of type t (n a multiple of the block); 0 when n is not a multiple or when the
 * product overflows. */
size_t st_dtype_bytes(st_dtype t, int64_t n);
/* The type of a GGML type id, or -1 when duet does not read it. */
int st_dtype_from_ggml(uint32_t ggml_type);
/* By name (safetensors spelling, "F32", "Q4_1", ...); -1 when unknown. */
int st_dtype_from_name(const char *name);

/* fp16 / bf16 <-> fp32, round-to-nearest-even (shared by the loader, quantizers and the GPU tests). */
float duet_f16_to_f32(uint16_t h);
uint16_t duet_f32_to_f16(float f);
float duet_bf16_to_f32(uint16_t h);
uint16_t duet_f32_to_bf16(float f);
/* OCP FP8 E4M3 ("e4m3fn", what Hopper's FP8 tensor cores take) <-> fp32. Encoding rounds to nearest, ties
 * to even, and saturates: |x| >= 448 (infinities included) gives +-448, as CUDA's __NV_SATFINITE; NaN gives
 * the NaN code S.1111.111; -0 keeps its sign. Every code decodes exactly. */
float duet_f8e4m3_to_f32(uint8_t v);
uint8_t duet_f32_to_f8e4m3(float f);

#endif
