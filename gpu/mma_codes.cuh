/* mma_codes.cuh: the tensor-core pieces shared by gpu/qmma.cu and gpu/gemv_tma.cu: mma.sync m16n8k16 with
 * fp32 accumulation, and the decode of weight-only codes (weights.h: GPU_W_I8, GPU_W_U4, GPU_W_U4_MIN) into
 * the exact integer pairs its A fragments hold (qmma.cu's header comment gives the fragment layout and the
 * k mapping that makes a lane's 8 elements of a slot feed two k16 tiles as the pairs (e_i, e_{i+4})). */
#ifndef DUET_GPU_MMA_CODES_CUH
#define DUET_GPU_MMA_CODES_CUH
#include "cuda_check.h"
#include "weights.h"

#include <stdint.h>

/* ---- PTX helpers ------------------------------------------------------------------------------ */

/* c (16x8 fp32) += a (16x16) . b (16x8) */
template <typename T> __device__ __forceinline__ void qm_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void qm_mma<__half>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void qm_mma<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}


/* ---- codes -> exact integer pairs --------------------------------------------------------------- */

/* A slot's 8 codes of one row (U4: word lo, nibble i = element i; I8: lo = e0..e3, hi = e4..e7 bytes) ->
 * p[i] = (e_i - z, e_{i+4} - z) as two T values (z: U4's zero point, 0 otherwise), exact integers. */
template <int WF, typename T> __device__ __forceinline__ void qm_decode(uint32_t lo, uint32_t hi, uint32_t z, uint32_t p[4]);

/* U4's subtrahend: (1024 + z) in both fp16 halves, or (128 + z) in both bf16 halves */
template <typename T> __device__ __forceinline__ uint32_t qm_hz(uint32_t z);
template <> __device__ __forceinline__ uint32_t qm_hz<__half>(uint32_t z) { return 0x64006400u | z | (z << 16); }
template <> __device__ __forceinline__ uint32_t qm_hz<__nv_bfloat16>(uint32_t z) { return 0x43004300u | z | (z << 16); }

/* 8 nibbles -> (q_i - z, q_{i+4} - z), hz = qm_hz(z):
 *   fp16: (1024 + q) - (1024 + z), every term an integer below 2048, exact;
 *   bf16: (128 + q) - (128 + z) (2^7, 7 mantissa bits: 128..255 exact; z <= 15 from the quantizer) */
template <typename T, typename T2>
__device__ __forceinline__ void qm_u4_t(uint32_t lo, uint32_t hz, uint32_t p[4])
{
    const uint32_t bias = qm_hz<T>(0u), mask = 0x000F000Fu;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        /* (lo >> 4 i) & mask | bias in one LOP3 (0xea = (a & b) | c); written out, the compiler takes two */
        uint32_t hb;
        asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(hb) : "r"(lo >> (4 * i)), "r"(mask), "r"(bias));
        T2 d = __hsub2(*(const T2 *)&hb, *(const T2 *)&hz);
        p[i] = *(const uint32_t *)&d;
    }
}
template <typename T> __device__ __forceinline__ void qm_u4(uint32_t lo, uint32_t hz, uint32_t p[4]);
template <> __device__ __forceinline__ void qm_u4<__half>(uint32_t lo, uint32_t hz, uint32_t p[4])
{
    qm_u4_t<__half, __half2>(lo, hz, p);
}
template <> __device__ __forceinline__ void qm_u4<__nv_bfloat16>(uint32_t lo, uint32_t hz, uint32_t p[4])
{
    qm_u4_t<__nv_bfloat16, __nv_bfloat162>(lo, hz, p);
}
template <> __device__ __forceinline__ void qm_decode<GPU_W_U4, __half>(uint32_t lo, uint32_t, uint32_t z, uint32_t p[4])
{
    qm_u4<__half>(lo, qm_hz<__half>(z), p);
}
template <>
__device__ __forceinline__ void qm_decode<GPU_W_U4, __nv_bfloat16>(uint32_t lo, uint32_t, uint32_t z, uint32_t p[4])
{
    qm_u4<__nv_bfloat16>(lo, qm_hz<__nv_bfloat16>(z), p);
}
template <>
__device__ __forceinline__ void qm_decode<GPU_W_U4_MIN, __half>(uint32_t lo, uint32_t hi, uint32_t, uint32_t p[4])
{
    qm_decode<GPU_W_U4, __half>(lo, hi, 0u, p);
}
template <>
__device__ __forceinline__ void qm_decode<GPU_W_U4_MIN, __nv_bfloat16>(uint32_t lo, uint32_t hi, uint32_t, uint32_t p[4])
{
    qm_decode<GPU_W_U4, __nv_bfloat16>(lo, hi, 0u, p);
}
template <> __device__ __forceinline__ void qm_decode<GPU_W_I8, __half>(uint32_t lo, uint32_t hi, uint32_t, uint32_t p[4])
{
    /* byte ^ 0x80 = q + 128; fp16 bits 0x64 | that = 1024 + q + 128; minus 1152: q exactly */
    const uint32_t x = lo ^ 0x80808080u, y = hi ^ 0x80808080u, h1152 = 0x64806480u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint32_t xy = __byte_perm(x, y, (uint32_t)(i | ((4 + i) << 4))); /* bytes: x.b_i, y.b_i */
        uint32_t hb = __byte_perm(xy, 0x64646464u, 0x5140u);              /* xy.b0, 0x64, xy.b1, 0x64 */
        __half2 d = __hsub2(*(const __half2 *)&hb, *(const __half2 *)&h1152);
        p[i] = *(const uint32_t *)&d;
    }
}
template <>
__device__ __forceinline__ void qm_decode<GPU_W_I8, __nv_bfloat16>(uint32_t lo, uint32_t hi, uint32_t, uint32_t p[4])
{
    /* through fp32 (2^23 + q + 128 under the exponent, as gemm.cu's decode8), then to bf16: |q| <= 128 exact */
    const uint32_t x = lo ^ 0x80808080u, y = hi ^ 0x80808080u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float a = __uint_as_float(__byte_perm(x, 0x4B000000u, 0x7440u | i)) - 8388736.0f;
        float b = __uint_as_float(__byte_perm(y, 0x4B000000u, 0x7440u | i)) - 8388736.0f;
        __nv_bfloat162 d = __floats2bfloat162_rn(a, b);
        p[i] = *(const uint32_t *)&d;
    }
}

/* 8 nibbles -> the fp16 subnormal pairs (q_i 2^-24, q_{i+4} 2^-24): the bits of q are the subnormal's
 * mantissa, exact (gemv_tma.cuh scales the products back by 2^24) */
__device__ __forceinline__ void qm_u4_subnormal(uint32_t lo, uint32_t p[4])
{
#pragma unroll
    for (int i = 0; i < 4; i++) p[i] = (lo >> (4 * i)) & 0x000F000Fu;
}

/* qm_decode with U4's subtrahend already made (hz = qm_hz(z); ignored by the other formats) */
template <int WF, typename T> __device__ __forceinline__ void qm_decode_hz(uint32_t lo, uint32_t hi, uint32_t hz, uint32_t p[4])
{
    if (WF == GPU_W_U4) qm_u4<T>(lo, hz, p);
    else if (WF == GPU_W_U4_MIN) qm_u4<T>(lo, qm_hz<T>(0u), p);
    else qm_decode<WF, T>(lo, hi, 0u, p);
}

/* x's 8 elements of a slot (one 16-byte load, words w0 = (e0, e1) .. w3 = (e6, e7)) -> the pairs
 * (e_i, e_{i+4}) the A side uses */
__device__ __forceinline__ void x_pairs(const uint4 &v, uint32_t b[4])
{
    b[0] = __byte_perm(v.x, v.z, 0x5410u); /* (e0, e4) */
    b[1] = __byte_perm(v.x, v.z, 0x7632u); /* (e1, e5) */
    b[2] = __byte_perm(v.y, v.w, 0x5410u); /* (e2, e6) */
    b[3] = __byte_perm(v.y, v.w, 0x7632u); /* (e3, e7) */
}

__device__ __forceinline__ float x_sum8(const uint4 &v, __half)
{
    float f[8];
    cvt8(v, f, __half());
    return ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
}
__device__ __forceinline__ float x_sum8(const uint4 &v, __nv_bfloat16)
{
    float f[8];
    cvt8(v, f, __nv_bfloat16());
    return ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
}

__device__ __forceinline__ float h2f(uint32_t raw) { return __half2float(__ushort_as_half((unsigned short)raw)); }

#endif
