/* w8a8.h (calib/): a model's linear weights made W8A8 from a calibration (calib/calib.h), once on the
 * host, for every backend: the ref emulates the mode with these codes and scales, and a GPU uploads the
 * same ones. Modes (duet_w8a8_mode):
 *   sq          SmoothQuant (smoothquant.h's arithmetic): smoothing folded into the weights, int8 codes
 *               per output channel, activations int8 per token (dynamic);
 *   fp8         FP8 E4M3 (fp8quant.h): codes per output channel, activations per token (dynamic);
 *   fp8-tensor  FP8 E4M3 with one scale per weight tensor and a static activation scale per product
 *               from the calibration (the maximum over the input's channels / 448).
 * The FP8 modes keep the weights and norms as they are. SmoothQuant per layer (D hidden, F ffn, H heads,
 * Hk kv heads, d head_dim, g = H / Hk):
 *   s_qkv[D]   from qkv_in and the column maxima of [wq; wk; wv]; attn_norm' = attn_norm / s_qkv, and
 *              wq, wk, wv columns times s_qkv;
 *   s_o[H d]   from o_in and wo's column maxima, shared by the g query heads of a kv head (the maxima taken
 *              over them: channel h d + j and (h / g) g d + j get one factor), because it is folded into
 *              the rows of wv: row kh d + j divided by s_o[kh g d + j]; wo columns times s_o;
 *   s_gu[D]    from gate_up_in and [w_gate; w_up]; ffn_norm' = ffn_norm / s_gu, gate and up columns times it;
 *   s_down[F]  from down_in and w_down; w_up's row j divided by s_down[j] (silu(gate) * up is linear in
 *              up), w_down's columns times s_down.
 * The folds are exact in real arithmetic; in fp32 each folded weight is rounded once (w * s, or w * s_gu /
 * s_down for up: the column factor first). Then every matrix is quantized per output row to int8
 * (duet_sq_quant_rows). The embedding, the final norm and lm_head stay in the compute type. */
#ifndef DUET_W8A8_H
#define DUET_W8A8_H

#include "calib.h"
#include "config.h"
#include "model.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { DUET_LIN_Q, DUET_LIN_K, DUET_LIN_V, DUET_LIN_O, DUET_LIN_GATE, DUET_LIN_UP, DUET_LIN_DOWN, DUET_LIN_N_LINEAR };

typedef enum { DUET_W8A8_NONE = 0, DUET_W8A8_SQ, DUET_W8A8_FP8, DUET_W8A8_FP8_TENSOR } duet_w8a8_mode;

/* "none", "sq", "fp8", "fp8-tensor" */
const char *duet_w8a8_mode_name(duet_w8a8_mode m);
/* By name; -1 + duet_error() listing the modes. */
int duet_w8a8_mode_parse(const char *name, duet_w8a8_mode *out);

typedef struct duet_w8a8_linear {
    uint8_t *codes; /* (N, K) row-major: sq's int8 codes (two's complement bytes) or E4M3 bytes */
    float *scales;  /* [N] (fp8-tensor: N copies of the tensor's scale) */
    float x_scale;  /* fp8-tensor: the static activation scale; 0: per token */
    int64_t N, K;
} duet_w8a8_linear;

typedef struct duet_w8a8_layer {
    float *attn_norm, *ffn_norm;          /* the norm weights (D), folded with sq */
    float *s_qkv, *s_o, *s_gu, *s_down;   /* sq's factors (D) (H d) (D) (F); NULL otherwise */
    duet_w8a8_linear lin[DUET_LIN_N_LINEAR]; /* q, k, v, o, gate, up, down */
} duet_w8a8_layer;

typedef struct duet_w8a8 {
    duet_config cfg;
    duet_w8a8_mode mode;
    float alpha; /* sq */
    duet_w8a8_layer *layers; /* [n_layers] */
} duet_w8a8;

/* The fp32 weights of one layer as duet_w8a8_sq_layer reads them (row-major, nn.Linear's out x in). */
typedef struct duet_w8a8_src {
    const float *attn_norm, *ffn_norm;
    const float *w[DUET_LIN_N_LINEAR]; /* q (H d, D), k, v (Hk d, D), o (D, H d), gate, up (F, D), down (D, F) */
} duet_w8a8_src;

/* An empty model of shapes cfg in mode m (layers to be made). NULL + duet_error(); sq's alpha must be in
 * [0, 1] (the error names the value). */
duet_w8a8 *duet_w8a8_new(const duet_config *cfg, duet_w8a8_mode m, float alpha);
void duet_w8a8_free(duet_w8a8 *m);

/* The whole model's in mode mode from a model (any weight storage: dequantized exactly first, st_to_f32)
 * and its calibration (made for it: the shapes are checked here, the fingerprint by duet_calib_read);
 * alpha: sq's. NULL + duet_error() naming the layer or the value. */
duet_w8a8 *duet_w8a8_build(const duet_model *m, const duet_calib *cal, duet_w8a8_mode mode, float alpha);

/* Layer l of m (its mode) from its fp32 weights and its calibration maxima. 0, or -1 + duet_error()
 * naming the layer. */
int duet_w8a8_layer_make(duet_w8a8 *m, int l, const duet_calib_layer *cal, const duet_w8a8_src *src);

/* A model of shapes c in mode mode with seeded codes and scales (no calibration; norms 1; fp8-tensor's
 * static scales a placeholder): what `duet bench --w8a8` times on a synthetic model. NULL + duet_error(). */
duet_w8a8 *duet_w8a8_random(const duet_config *c, duet_w8a8_mode mode, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
