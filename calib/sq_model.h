/* sq_model.h (calib/): a model's linear weights made SmoothQuant W8A8 (smoothquant.h's arithmetic) from a
 * calibration (calib/calib.h), once on the host, for every backend: the ref emulates the mode with these
 * codes and scales, and a GPU uploads the same ones. Per layer (D hidden, F ffn, H heads, Hk kv heads, d
 * head_dim, g = H / Hk):
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
 * (duet_sq_quant_rows). The embedding, the final norm and lm_head stay fp32. */
#ifndef DUET_SQ_MODEL_H
#define DUET_SQ_MODEL_H

#include "calib.h"
#include "config.h"
#include "model.h"

#include <stdint.h>

enum { DUET_SQ_Q, DUET_SQ_K, DUET_SQ_V, DUET_SQ_O, DUET_SQ_GATE, DUET_SQ_UP, DUET_SQ_DOWN, DUET_SQ_N_LINEAR };

typedef struct duet_sq_linear {
    int8_t *codes; /* (N, K) row-major */
    float *scales; /* [N] */
    int64_t N, K;
} duet_sq_linear;

typedef struct duet_sq_layer {
    float *attn_norm, *ffn_norm;          /* the folded norm weights (D) */
    float *s_qkv, *s_o, *s_gu, *s_down;   /* the factors (D) (H d) (D) (F) */
    duet_sq_linear lin[DUET_SQ_N_LINEAR]; /* q, k, v, o, gate, up, down */
} duet_sq_layer;

typedef struct duet_sq_model {
    duet_config cfg;
    float alpha;
    duet_sq_layer *layers; /* [n_layers] */
} duet_sq_model;

/* The fp32 weights of one layer as duet_sq_layer_make reads them (row-major, nn.Linear's out x in). */
typedef struct duet_sq_src {
    const float *attn_norm, *ffn_norm;
    const float *w[DUET_SQ_N_LINEAR]; /* q (H d, D), k, v (Hk d, D), o (D, H d), gate, up (F, D), down (D, F) */
} duet_sq_src;

/* An empty model of shapes cfg (layers to be made). NULL + duet_error(). alpha in [0, 1] is checked here:
 * -1 + duet_error() naming the value otherwise. */
duet_sq_model *duet_sq_model_new(const duet_config *cfg, float alpha);
void duet_sq_model_free(duet_sq_model *m);

/* The whole model's from a model (any weight storage: dequantized exactly first, st_to_f32) and its
 * calibration (made for it: the shapes are checked here, the fingerprint by duet_calib_read); alpha in
 * [0, 1]. NULL + duet_error() naming the layer or the value. */
duet_sq_model *duet_sq_model_build(const duet_model *m, const duet_calib *cal, float alpha);

/* Layer l of m from its fp32 weights and its calibration maxima. 0, or -1 + duet_error() naming the layer. */
int duet_sq_layer_make(duet_sq_model *m, int l, const duet_calib_layer *cal, const duet_sq_src *src);

#endif
