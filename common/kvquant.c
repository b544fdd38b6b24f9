/* kvquant.c: the quantized KV cache's codes (kvquant.h). */
#include "kvquant.h"

#include "dtype.h"
#include "error.h"
#include "smoothquant.h"

#include <math.h>
#include <string.h>

int duet_kv_mode_parse(const char *name, duet_kv_mode *out)
{
    if (!strcmp(name, "none")) *out = DUET_KV_F;
    else if (!strcmp(name, "int8")) *out = DUET_KV_INT8;
    else if (!strcmp(name, "fp8")) *out = DUET_KV_FP8;
    else return duet_errorf("KV cache mode '%s' unknown (none, int8, fp8)", name);
    return 0;
}

const char *duet_kv_mode_name(duet_kv_mode m) { return m == DUET_KV_INT8 ? "int8" : m == DUET_KV_FP8 ? "fp8" : "none"; }

float duet_kv_scale(duet_kv_mode m, float absmax)
{
    if (!(absmax > 0.0f)) return 1.0f;
    return absmax / (m == DUET_KV_FP8 ? 448.0f : 127.0f);
}

uint8_t duet_kv_encode(duet_kv_mode m, float x, float scale)
{
    const float y = x / scale;
    return m == DUET_KV_FP8 ? duet_f32_to_f8e4m3(y) : (uint8_t)duet_i8_code(y);
}

float duet_kv_decode(duet_kv_mode m, uint8_t code, float scale)
{
    if (m == DUET_KV_FP8) return duet_f8e4m3_to_f32(code) * scale;
    return (float)(int8_t)code * scale;
}
