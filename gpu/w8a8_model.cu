/* w8a8_model.cu: a SmoothQuant model's layers on the device and the product the engine runs with them
 * (w8a8_model.h). */
extern "C" {
#include "calib/w8a8.h"
#include "config.h"
}
#include "cuda_check.h"
#include "w8a8_model.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN(x) (((x) + 255) & ~(size_t)255)

/* The parts of product `which` in calib/w8a8.h's linears, stacked in this order. */
static int parts_of(int which, int p[3])
{
    switch (which) {
    case GPU_SQ_QKV: p[0] = DUET_LIN_Q, p[1] = DUET_LIN_K, p[2] = DUET_LIN_V; return 3;
    case GPU_SQ_O: p[0] = DUET_LIN_O; return 1;
    case GPU_SQ_GU: p[0] = DUET_LIN_GATE, p[1] = DUET_LIN_UP; return 2;
    default: p[0] = DUET_LIN_DOWN; return 1;
    }
}

extern "C" void gpu_sq_model_free(gpu_sq_model *m)
{
    if (!m) return;
    gpu_free(m->buf);
    gpu_free(m->xcodes);
    gpu_free(m->xscales);
    gpu_free(m->acc);
    gpu_i8_gemm_free(m->gemm);
    free(m->layers);
    free(m);
}

extern "C" gpu_sq_model *gpu_sq_model_upload(const duet_w8a8 *w, const duet_config *c, gpu_dtype dt)
{
    if (!w || w->mode != DUET_W8A8_SQ) {
        duet_errorf("gpu: W8A8 mode %s has no gpu kernels yet (sq has)", w ? duet_w8a8_mode_name(w->mode) : "none");
        return NULL;
    }
    if (!duet_config_same_layers(&w->cfg, c)) {
        duet_errorf("gpu: the W8A8 model was made for other layer shapes (%d layers, dim %d, ffn %d) than this "
                    "model's (%d, %d, %d)", w->cfg.n_layers, w->cfg.dim, w->cfg.ffn_dim, c->n_layers, c->dim, c->ffn_dim);
        return NULL;
    }
    gpu_sq_model *m = (gpu_sq_model *)calloc(1, sizeof *m);
    if (!m || !(m->layers = (gpu_sq_layer *)calloc((size_t)c->n_layers, sizeof(gpu_sq_layer)))) {
        free(m);
        duet_errorf("gpu: out of host memory");
        return NULL;
    }
    m->n_layers = c->n_layers;
    const size_t e = gpu_dtype_size(dt);
    /* sizes, then one allocation */
    size_t total = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const duet_w8a8_layer *y = &w->layers[l];
        for (int k = 0; k < GPU_SQ_N; k++) {
            int p[3], n = parts_of(k, p);
            int64_t N = 0;
            for (int i = 0; i < n; i++) N += y->lin[p[i]].N;
            const int64_t K = y->lin[p[0]].K;
            m->layers[l].N[k] = (int)N, m->layers[l].K[k] = (int)K;
            total += ALIGN((size_t)N * K) + ALIGN(sizeof(float) * N);
            if (K > m->max_K) m->max_K = (int)K;
            if (N > m->max_N) m->max_N = (int)N;
        }
        total += 2 * ALIGN(e * c->dim);
    }
    if (!(m->buf = gpu_alloc(total)) || !(m->gemm = gpu_i8_gemm_create())) {
        duet_error_prefix("gpu: SmoothQuant weights (%.1f MiB): ", total / 1048576.0);
        gpu_sq_model_free(m);
        return NULL;
    }
    m->bytes = total;
    char *at = (char *)m->buf;
    for (int l = 0; l < c->n_layers; l++) {
        const duet_w8a8_layer *y = &w->layers[l];
        gpu_sq_layer *g = &m->layers[l];
        for (int k = 0; k < GPU_SQ_N; k++) {
            int p[3], n = parts_of(k, p);
            int8_t *codes = (int8_t *)at;
            at += ALIGN((size_t)g->N[k] * g->K[k]);
            float *scales = (float *)at;
            at += ALIGN(sizeof(float) * g->N[k]);
            size_t row = 0;
            for (int i = 0; i < n; i++) {
                const duet_w8a8_linear *q = &y->lin[p[i]];
                if (gpu_upload_bytes(codes + row * q->K, q->codes, (size_t)q->N * q->K) ||
                    gpu_upload_f32(scales + row, q->scales, q->N)) {
                    gpu_sq_model_free(m);
                    return NULL;
                }
                row += (size_t)q->N;
            }
            g->w[k] = codes, g->ws[k] = scales;
        }
        g->attn_norm = at;
        at += ALIGN(e * c->dim);
        g->ffn_norm = at;
        at += ALIGN(e * c->dim);
        if (gpu_upload(g->attn_norm, y->attn_norm, c->dim, dt) || gpu_upload(g->ffn_norm, y->ffn_norm, c->dim, dt)) {
            gpu_sq_model_free(m);
            return NULL;
        }
    }
    return m;
}

extern "C" int gpu_sq_model_reserve(gpu_sq_model *m, int T)
{
    if (T <= m->cap_T) return 0;
    gpu_free(m->xcodes), gpu_free(m->xscales), gpu_free(m->acc);
    m->xcodes = NULL, m->xscales = NULL, m->acc = NULL, m->cap_T = 0;
    if (!(m->xcodes = (int8_t *)gpu_alloc((size_t)T * m->max_K)) ||
        !(m->xscales = (float *)gpu_alloc(sizeof(float) * T)) ||
        !(m->acc = (int32_t *)gpu_alloc(sizeof(int32_t) * (size_t)T * m->max_N))) {
        duet_error_prefix("gpu: SmoothQuant scratch for %d tokens: ", T);
        return -1;
    }
    m->cap_T = T;
    return 0;
}

extern "C" int gpu_sq_linear(gpu_sq_model *m, int l, int which, void *y, const void *x, int T, gpu_dtype dt,
                             gpu_stream s)
{
    if (T > m->cap_T) return duet_errorf("gpu: SmoothQuant scratch holds %d tokens, not %d", m->cap_T, T);
    const gpu_sq_layer *g = &m->layers[l];
    const int N = g->N[which], K = g->K[which];
    if (gpu_sq_quant_tokens(m->xcodes, m->xscales, x, T, K, dt, s) ||
        gpu_sq_gemm_i32(m->gemm, m->acc, m->xcodes, g->w[which], T, N, K, s) ||
        gpu_sq_dequant(y, 0, m->acc, m->xscales, g->ws[which], T, N, dt, s))
        return -1;
    return 0;
}
