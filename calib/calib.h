/* calib.h: activation statistics of a model for the calibrated quantization modes (SmoothQuant W8A8, FP8,
 * the int8 / fp8 KV cache), gathered from the ref's taps over calibration prompts, and their file.
 * Per layer l (shapes: D hidden, F ffn, H heads, Hk kv heads, d head_dim):
 *   qkv_in[D]      max |x| per channel of the q/k/v projections' input   (tap layers.l.attn_norm)
 *   o_in[H d]      the same for o_proj's input, the attention output      (tap layers.l.attn)
 *   gate_up_in[D]  the gate/up projections' input                         (tap layers.l.ffn_norm)
 *   down_in[F]     down_proj's input, silu(gate) * up                     (tap layers.l.act)
 *   k[Hk], v[Hk]   max |x| per kv head of what the KV cache stores: K after RoPE (layers.l.k_rope), V
 *                  (layers.l.v); a layer's scale is the max over its heads.
 * The file is JSON (jansson): {"format": "duet-calibration", "version": 1, "model": {the shapes and a
 * fingerprint}, "samples": N, "tokens": M, "source": "...", "layers": [{"qkv_in": [...], ...}, ...]}.
 * Reading checks it against the model: the format, the shapes, the fingerprint (the model's final norm
 * weights hashed: a file made on another model with the same shapes is refused too), every layer present
 * with arrays of the right length holding finite values >= 0; errors name the file and the field. */
#ifndef DUET_CALIB_H
#define DUET_CALIB_H

#include "kvquant.h"
#include "model.h"

#include <stdint.h>

typedef struct duet_calib_layer {
    float *qkv_in, *o_in, *gate_up_in, *down_in, *k, *v;
} duet_calib_layer;

typedef struct duet_calib {
    duet_config cfg;          /* the shapes it was made for */
    uint64_t fingerprint;     /* duet_calib_fingerprint of that model */
    int64_t samples, tokens;  /* prompts and tokens seen */
    char source[256];         /* where the prompts came from (informative) */
    duet_calib_layer *layers; /* [n_layers], every array zero until observed */
} duet_calib;

/* A zeroed set for shapes cfg with that fingerprint. NULL + duet_error(). */
duet_calib *duet_calib_new(const duet_config *cfg, uint64_t fingerprint);
void duet_calib_free(duet_calib *c);

/* FNV-1a 64 over the model's shapes and the fp32 bits of its final norm weights. */
uint64_t duet_calib_fingerprint(const duet_model *m);

/* A tap sink (backend.h's duet_tap_fn; ctx = the duet_calib): folds the taps named above into the
 * maxima; other taps are ignored. */
void duet_calib_tap(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols);

/* The KV cache's scales of mode m from the K / V maxima: out [n_layers][2][n_kv_heads], K then V of each
 * layer (duet_backend_opts.kv_scales' layout), duet_kv_scale of each head's max. */
void duet_calib_kv_scales(const duet_calib *c, duet_kv_mode m, float *out);

/* Writes c to path (JSON). 0, or -1 + duet_error() naming the file. */
int duet_calib_write(const duet_calib *c, const char *path);

/* Reads path and checks it against model m (see above). NULL + duet_error() naming the file and field. */
duet_calib *duet_calib_read(const char *path, const duet_model *m);

/* The same from a buffer, against shapes cfg and a fingerprint: `what` names it in errors (the fuzz
 * harness's entry). */
duet_calib *duet_calib_parse(const char *buf, size_t len, const char *what, const duet_config *cfg,
                             uint64_t fingerprint);

#endif
