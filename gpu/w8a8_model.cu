/* w8a8_model.cu: a W8A8 model's layers on the device and the product the engine runs with them
 * (w8a8_model.h). */
extern "C" {
#include "calib/w8a8.h"
#include "config.h"
}
#include "cuda_check.h"
#include "perturb.h"
#include "w8a8_model.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN(x) (((x) + 255) & ~(size_t)255)

/* The parts of product `which` in calib/w8a8.h's linears, stacked in this order. */
static int parts_of(int which, int p[3])
{
    switch (which) {
    case GPU_W8_QKV: p[0] = DUET_LIN_Q, p[1] = DUET_LIN_K, p[2] = DUET_LIN_V; return 3;
    case GPU_W8_O: p[0] = DUET_LIN_O; return 1;
    case GPU_W8_GU: p[0] = DUET_LIN_GATE, p[1] = DUET_LIN_UP; return 2;
    default: p[0] = DUET_LIN_DOWN; return 1;
    }
}

extern "C" void gpu_w8a8_model_free(gpu_w8a8_model *m)
{
    if (!m) return;
    gpu_free(m->buf);
    gpu_free(m->xcodes);
    gpu_free(m->xscales);
    gpu_free(m->acc);
    gpu_w8a8_gemm_free(m->gemm);
    free(m->layers);
    free(m);
}

extern "C" gpu_w8a8_model *gpu_w8a8_model_upload(const duet_w8a8 *w, const duet_config *c, gpu_dtype dt)
{
    if (!w || w->mode == DUET_W8A8_NONE) {
        duet_errorf("gpu: no W8A8 model to upload");
        return NULL;
    }
    if (w->mode != DUET_W8A8_SQ && !gpu_f8_supported()) return NULL;
    if (!duet_config_same_layers(&w->cfg, c)) {
        duet_errorf("gpu: the W8A8 model was made for other layer shapes (%d layers, dim %d, ffn %d) than this "
                    "model's (%d, %d, %d)", w->cfg.n_layers, w->cfg.dim, w->cfg.ffn_dim, c->n_layers, c->dim, c->ffn_dim);
        return NULL;
    }
    gpu_w8a8_model *m = (gpu_w8a8_model *)calloc(1, sizeof *m);
    if (!m || !(m->layers = (gpu_w8a8_layer *)calloc((size_t)c->n_layers, sizeof(gpu_w8a8_layer)))) {
        free(m);
        duet_errorf("gpu: out of host memory");
        return NULL;
    }
    m->n_layers = c->n_layers;
    m->mode = w->mode;
    const size_t e = gpu_dtype_size(dt);
    /* sizes, then one allocation */
    size_t total = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const duet_w8a8_layer *y = &w->layers[l];
        for (int k = 0; k < GPU_W8_N; k++) {
            int p[3], n = parts_of(k, p);
            int64_t N = 0;
            for (int i = 0; i < n; i++) N += y->lin[p[i]].N;
            const int64_t K = y->lin[p[0]].K;
            m->layers[l].N[k] = (int)N, m->layers[l].K[k] = (int)K;
            if (gpu_w8a8_shape_check(w->mode != DUET_W8A8_SQ, N, K)) { /* before anything is uploaded */
                static const char *const names[GPU_W8_N] = {"q|k|v", "o", "gate|up", "down"};
                duet_error_prefix("gpu: W8A8 %s: layer %d's %s projection is ", duet_w8a8_mode_name(w->mode), l,
                                  names[k]);
                gpu_w8a8_model_free(m);
                return NULL;
            }
            total += ALIGN((size_t)N * K) + ALIGN(sizeof(float) * N);
            if (K > m->max_K) m->max_K = (int)K;
            if (N > m->max_N) m->max_N = (int)N;
        }
        total += 2 * ALIGN(e * c->dim);
    }
    if (!(m->buf = gpu_alloc(total)) || !(m->gemm = gpu_w8a8_gemm_create())) {
        duet_error_prefix("gpu: W8A8 weights (%.1f MiB): ", total / 1048576.0);
        gpu_w8a8_model_free(m);
        return NULL;
    }
    m->bytes = total;
    char *at = (char *)m->buf;
    for (int l = 0; l < c->n_layers; l++) {
        const duet_w8a8_layer *y = &w->layers[l];
        gpu_w8a8_layer *g = &m->layers[l];
        for (int k = 0; k < GPU_W8_N; k++) {
            int p[3], n = parts_of(k, p);
            uint8_t *codes = (uint8_t *)at;
            at += ALIGN((size_t)g->N[k] * g->K[k]);
            float *scales = (float *)at;
            at += ALIGN(sizeof(float) * g->N[k]);
            size_t row = 0;
            for (int i = 0; i < n; i++) {
                const duet_w8a8_linear *q = &y->lin[p[i]];
                if (gpu_upload_bytes(codes + row * q->K, q->codes, (size_t)q->N * q->K) ||
                    gpu_upload_f32(scales + row, q->scales, q->N)) {
                    gpu_w8a8_model_free(m);
                    return NULL;
                }
                row += (size_t)q->N;
            }
            g->w[k] = codes, g->ws[k] = scales;
            /* the parts of a product read one input: fp8-tensor calibrated one static scale for it */
            g->x_scale[k] = y->lin[p[0]].x_scale;
            for (int i = 1; i < n; i++)
                if (y->lin[p[i]].x_scale != g->x_scale[k]) {
                    duet_errorf("gpu: W8A8 layer %d: the products reading one input have different static "
                                "activation scales (%g, %g)", l, g->x_scale[k], y->lin[p[i]].x_scale);
                    gpu_w8a8_model_free(m);
                    return NULL;
                }
        }
        g->attn_norm = at;
        at += ALIGN(e * c->dim);
        g->ffn_norm = at;
        at += ALIGN(e * c->dim);
        if (gpu_upload(g->attn_norm, y->attn_norm, c->dim, dt) || gpu_upload(g->ffn_norm, y->ffn_norm, c->dim, dt)) {
            gpu_w8a8_model_free(m);
            return NULL;
        }
    }
    return m;
}

extern "C" int gpu_w8a8_model_reserve(gpu_w8a8_model *m, int T)
{
    if (T <= m->cap_T) return 0;
    gpu_free(m->xcodes), gpu_free(m->xscales), gpu_free(m->acc);
    m->xcodes = NULL, m->xscales = NULL, m->acc = NULL, m->cap_T = 0;
    if (!(m->xcodes = (uint8_t *)gpu_alloc((size_t)T * m->max_K)) ||
        !(m->xscales = (float *)gpu_alloc(sizeof(float) * T)) || !(m->acc = gpu_alloc(4 * (size_t)T * m->max_N))) {
        duet_error_prefix("gpu: W8A8 scratch for %d tokens: ", T);
        return -1;
    }
    m->cap_T = T;
    return 0;
}

extern "C" int gpu_w8a8_linear(gpu_w8a8_model *m, int l, int which, void *y, const void *x, int T, gpu_dtype dt,
                             gpu_stream s)
{
    if (T > m->cap_T) return duet_errorf("gpu: W8A8 scratch holds %d tokens, not %d", m->cap_T, T);
    const gpu_w8a8_layer *g = &m->layers[l];
    const int N = g->N[which], K = g->K[which];
    int rc;
    if (m->mode == DUET_W8A8_SQ)
        rc = gpu_sq_quant_tokens((int8_t *)m->xcodes, m->xscales, x, T, K, dt, s) ||
             gpu_sq_gemm_i32(m->gemm, (int32_t *)m->acc, (const int8_t *)m->xcodes, (const int8_t *)g->w[which], T, N,
                             K, s) ||
             gpu_sq_dequant(y, 0, (const int32_t *)m->acc, m->xscales, g->ws[which], T, N, dt, s);
    else
        rc = gpu_f8_quant_tokens(m->xcodes, m->xscales, x, T, K, g->x_scale[which], dt, s) ||
             gpu_f8_gemm_f32(m->gemm, (float *)m->acc, m->xcodes, g->w[which], T, N, K, s) ||
             gpu_f8_dequant(y, 0, (const float *)m->acc, m->xscales, g->ws[which], T, N, dt, s);
    if (rc) return -1;
    return gpu_perturb("w8a8", y, (int64_t)T * N, dt, s); /* DUET_PERTURB=w8a8: a broken W8A8 product */
}
