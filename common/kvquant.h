/* kvquant.h: the quantized KV cache's codes (issue 11): K and V stored as int8 or FP8 E4M3 codes with one
 * fp32 scale per (layer, kv head) from calibration (calib.h's k / v maxima, K after RoPE), read back as
 * code x scale. Per head rather than per layer: heads differ in range (the calibration of SmolLM2 shows
 * it), and the attention kernel reads one scale per (token block, head) either way, so it costs nothing.
 *   int8  scale = max|x| / 127, code = round(x / scale) (IEEE division, ties to even), clamped to +-127
 *   fp8   scale = max|x| / 448, code = e4m3(x / scale) (common/dtype.h: ties to even, saturating)
 * A head whose maximum is 0 gets scale 1 (its values are all 0 and stay 0). Values beyond the calibrated
 * maximum saturate. */
#ifndef DUET_KVQUANT_H
#define DUET_KVQUANT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DUET_KV_F = 0, DUET_KV_INT8 = 1, DUET_KV_FP8 = 2 } duet_kv_mode;

/* "none" (the compute type), "int8", "fp8"; -1 + duet_error() listing them for anything else. */
int duet_kv_mode_parse(const char *name, duet_kv_mode *out);
const char *duet_kv_mode_name(duet_kv_mode m);

/* The scale of a head whose calibrated max |x| is absmax. */
float duet_kv_scale(duet_kv_mode m, float absmax);
/* x's code (int8 codes as their two's-complement byte) and its value code x scale. */
uint8_t duet_kv_encode(duet_kv_mode m, float x, float scale);
float duet_kv_decode(duet_kv_mode m, uint8_t code, float scale);

#ifdef __cplusplus
}
#endif

#endif
