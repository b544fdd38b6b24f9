/* w8a8_model.h: a model's SmoothQuant W8A8 layers on the device (calib/w8a8.h's codes, uploaded as they
 * are) and the product the engine runs in their place: per layer the int8 codes (N, K) and fp32 row scales
 * of [wq; wk; wv], wo, [w_gate; w_up], w_down (rows stacked as the dense engine stacks them: each row
 * keeps its own scale) and the folded attn_norm / ffn_norm in dt; one scratch of activation codes, token
 * scales and int32 accumulators, grown with the batch. */
#ifndef DUET_GPU_W8A8_MODEL_H
#define DUET_GPU_W8A8_MODEL_H
#include "gpu.h"
#include "w8a8.h"
#ifdef __cplusplus
extern "C" {
#endif

struct duet_w8a8;
enum { GPU_SQ_QKV = 0, GPU_SQ_O, GPU_SQ_GU, GPU_SQ_DOWN, GPU_SQ_N };

typedef struct gpu_sq_layer {
    const int8_t *w[GPU_SQ_N]; /* (N, K) int8 codes */
    const float *ws[GPU_SQ_N]; /* (N) scales */
    int N[GPU_SQ_N], K[GPU_SQ_N];
    void *attn_norm, *ffn_norm; /* (D) dt, folded */
} gpu_sq_layer;

typedef struct gpu_sq_model {
    int n_layers;
    gpu_sq_layer *layers;
    void *buf; /* every layer's codes, scales and norms */
    size_t bytes;
    gpu_i8_gemm *gemm;
    /* scratch for cap_T tokens: codes (T, max K), scales (T), accumulators (T, max N) */
    int cap_T, max_K, max_N;
    int8_t *xcodes;
    float *xscales;
    int32_t *acc;
} gpu_sq_model;

/* Uploads w (mode sq; its shapes must be the engine's config c) in dt. NULL + duet_error(). */
gpu_sq_model *gpu_sq_model_upload(const struct duet_w8a8 *w, const struct duet_config *c, gpu_dtype dt);
void gpu_sq_model_free(gpu_sq_model *m);
/* Room for T tokens in the scratch (before any graph capture: it allocates). */
int gpu_sq_model_reserve(gpu_sq_model *m, int T);
/* y (T, N) in dt = layer l's product `which` of x (T, K) in dt: x quantized per token, the int32 product,
 * dequantized (w8a8.h). */
int gpu_sq_linear(gpu_sq_model *m, int l, int which, void *y, const void *x, int T, gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
