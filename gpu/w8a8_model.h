/* w8a8_model.h: a model's W8A8 layers on the device (calib/w8a8.h's codes and scales, uploaded as they are:
 * SmoothQuant's int8 or FP8's E4M3) and the product the engine runs in their place: per layer the codes
 * (N, K) and fp32 row scales of [wq; wk; wv], wo, [w_gate; w_up], w_down (rows stacked as the dense engine
 * stacks them: each row keeps its own scale; fp8-tensor's per-tensor scales are N copies), the static
 * activation scale of each product (fp8-tensor; 0: per token) and the norms in dt (folded with sq); one
 * scratch of activation codes, token scales and 4-byte accumulators (int32 or fp32), grown with the batch. */
#ifndef DUET_GPU_W8A8_MODEL_H
#define DUET_GPU_W8A8_MODEL_H
#include "gpu.h"
#include "w8a8.h"
#ifdef __cplusplus
extern "C" {
#endif

struct duet_w8a8;
struct duet_config;
enum { GPU_W8_QKV = 0, GPU_W8_O, GPU_W8_GU, GPU_W8_DOWN, GPU_W8_N };

typedef struct gpu_w8a8_layer {
    const uint8_t *w[GPU_W8_N]; /* (N, K) codes: int8 (two's complement) or E4M3 bytes */
    const float *ws[GPU_W8_N];  /* (N) scales */
    float x_scale[GPU_W8_N];    /* fp8-tensor: the static activation scale; 0: per token */
    int N[GPU_W8_N], K[GPU_W8_N];
    void *attn_norm, *ffn_norm; /* (D) dt (sq: folded) */
} gpu_w8a8_layer;

typedef struct gpu_w8a8_model {
    int mode; /* duet_w8a8_mode */
    int n_layers;
    gpu_w8a8_layer *layers;
    void *buf; /* every layer's codes, scales and norms */
    size_t bytes;
    gpu_w8a8_gemm *gemm;
    /* scratch for cap_T tokens: codes (T, max K), scales (T), accumulators (T, max N) */
    int cap_T, max_K, max_N;
    uint8_t *xcodes;
    float *xscales;
    void *acc;
} gpu_w8a8_model;

/* Uploads w (its shapes must be the engine's config c) in dt; the FP8 modes need gpu_f8_supported(). NULL +
 * duet_error(). */
gpu_w8a8_model *gpu_w8a8_model_upload(const struct duet_w8a8 *w, const struct duet_config *c, gpu_dtype dt);
void gpu_w8a8_model_free(gpu_w8a8_model *m);
/* Room for T tokens in the scratch (before any graph capture: it allocates). */
int gpu_w8a8_model_reserve(gpu_w8a8_model *m, int T);
/* y (T, N) in dt = layer l's product `which` of x (T, K) in dt: x quantized per token (or with the static
 * scale), the int32 or fp32 product, dequantized (w8a8.h). */
int gpu_w8a8_linear(gpu_w8a8_model *m, int l, int which, void *y, const void *x, int T, gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
