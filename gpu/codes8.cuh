/* codes8.cuh: the two 1-byte codes on the device, the host's bit for bit (common/smoothquant.h's
 * duet_i8_code, dtype.h's duet_f32_to_f8e4m3), given y = x / scale already divided (one IEEE fp32
 * division: nvcc's `/` without --use_fast_math):
 *   int8  rint(y) (ties to even), clamped to +-127, NaN -> 0 (SmoothQuant's activations, the int8 KV cache)
 *   E4M3  round to nearest even, saturating to +-448, NaN kept (cvt.rn.satfinite; FP8 W8A8's activations,
 *         the fp8 KV cache) */
#ifndef DUET_GPU_CODES8_CUH
#define DUET_GPU_CODES8_CUH
#include <cuda_fp8.h>
#include <stdint.h>

__device__ __forceinline__ uint8_t code_i8(float y)
{
    if (isnan(y)) return 0;
    return (uint8_t)(int8_t)(int)fminf(fmaxf(rintf(y), -127.0f), 127.0f);
}

__device__ __forceinline__ uint8_t code_e4m3(float y)
{
    return (uint8_t)__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3);
}

#endif
