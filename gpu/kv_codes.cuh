/* kv_codes.cuh: the paged KV cache's elements on the device (kv_cache.h): the compute type T (mode
 * DUET_KV_F) or a 1-byte code of common/kvquant.h, value = code x scale of the element's (layer, kv head).
 * Encoding is the host's bit for bit (tests/test_gpu_ops.c's test_kv_quant checks it): code_i8 or
 * code_e4m3 (codes8.cuh) of x / scale.
 * x is the value as the compute type holds it (the T-rounded K after RoPE, and V), so a test can
 * recompute every code from the qkv rows the kernel leaves behind. Decoding to fp32 is exact in both. */
#ifndef DUET_GPU_KV_CODES_CUH
#define DUET_GPU_KV_CODES_CUH
#include "codes8.cuh"
#include "cuda_check.h"
#include "kv_cache.h"
#include "kvquant.h"

#include <cuda_fp8.h>

__device__ __forceinline__ uint8_t kv_encode_i8(float x, float scale) { return code_i8(x / scale); }

__device__ __forceinline__ uint8_t kv_encode_f8(float x, float scale) { return code_e4m3(x / scale); }

/* Stores value val (compute type T) as element off of cache (a K or V pool of kv), head kvh. */
template <typename T>
__device__ __forceinline__ void kv_store(const gpu_kv_view &kv, void *cache, int64_t off, int kvh, int is_v, T val)
{
    if (kv.mode == DUET_KV_F) {
        ((T *)cache)[off] = val;
        return;
    }
    const float sc = (is_v ? kv.v_scale : kv.k_scale)[kvh];
    ((uint8_t *)cache)[off] = kv.mode == DUET_KV_INT8 ? kv_encode_i8(to_f32(val), sc) : kv_encode_f8(to_f32(val), sc);
}

/* The value of element off (fp32; for codes, code x scale). */
template <typename T> __device__ __forceinline__ float kv_value(const gpu_kv_view &kv, const void *cache, int64_t off, float scale)
{
    if (kv.mode == DUET_KV_F) return to_f32(((const T *)cache)[off]);
    const uint8_t c = ((const uint8_t *)cache)[off];
    if (kv.mode == DUET_KV_INT8) return (float)(int8_t)c * scale;
    return __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)c, __NV_E4M3))) * scale;
}

/* Eight consecutive codes (8 bytes) as fp32 codes (not yet times the scale): exact. int8 without the
 * I2F conversion unit (16 per clock per SM, the decode attention's bound at HBM speed): the biased byte
 * b + 128 goes into the low mantissa byte of 2^23 (a byte permute), and 2^23 + 128 is subtracted. fp8
 * two at a time through the E4M3x2 -> f16x2 unpack. */
__device__ __forceinline__ void cvt8_codes(const uint2 &r, float f[8], int mode)
{
    const uint32_t w[2] = {r.x, r.y};
    if (mode == DUET_KV_INT8) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t u = w[i >> 2] ^ 0x80808080u; /* bytes b + 128 */
            f[i] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7650u | (uint32_t)(i & 3))) - 8388736.0f;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __half2 h = __half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w[i >> 1] >> (16 * (i & 1))), __NV_E4M3));
            float2 v = __half22float2(h);
            f[2 * i] = v.x, f[2 * i + 1] = v.y;
        }
    }
}

#endif
