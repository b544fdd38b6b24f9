/* model_quant.c: the model's quantized weights (model.h's struct duet_model_quant): duet_model_quantize
 * (every layer's seven linear weights quantized in memory with the CPU quantizer, quant.h), the tensors
 * the planar loader builds (model_planar.c), and what frees them (duet_model_close).
 *
 * Each quantized tensor is an st_tensor the model owns, in the storage of its mode: GGUF blocks
 * (q8_0, q4_0, q4_1: data = the blocks, exactly as a GGUF file would hold them) or planar codes
 * (int8, int4, int4-g*: data = the codes, q = {group, scales, zeros}; quant.h has the layout). */
#include "model.h"
#include "model_quant.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

duet_model_quant *duet_model_quant_new(int n)
{
    duet_model_quant *mq = calloc(1, sizeof *mq);
    if (!mq || !(mq->t = calloc(n > 0 ? (size_t)n : 1, sizeof *mq->t))) {
        free(mq);
        duet_errorf("out of memory");
        return NULL;
    }
    mq->cap = n;
    return mq;
}

void duet_model_quant_free(duet_model_quant *mq)
{
    if (!mq) return;
    for (int i = 0; i < mq->n; i++) {
        duet_qtensor *q = &mq->t[i];
        free(q->t.name);
        free(q->data);
        free(q->scales);
        free(q->zeros);
    }
    free(mq->t);
    free(mq);
}

duet_qtensor *duet_model_quant_add(duet_model_quant *mq, const char *name)
{
    if (mq->n == mq->cap) {
        duet_errorf("internal: more quantized tensors than the %d planned", mq->cap);
        return NULL;
    }
    duet_qtensor *q = &mq->t[mq->n];
    memset(q, 0, sizeof *q);
    if (!(q->t.name = strdup(name))) {
        duet_errorf("out of memory");
        return NULL;
    }
    mq->n++;
    return q;
}

const st_tensor **duet_layer_linear(duet_layer_weights *w, int k)
{
    const st_tensor **all[DUET_N_LINEAR] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
    return all[k];
}

/* Quantizes t (rows x cols, any float storage) into the new model-owned tensor q. */
static int quantize_one(const duet_model *m, duet_qmode mode, const st_tensor *t, duet_qtensor *q)
{
    const duet_qmode_info *info = duet_qmode_get(mode);
    if (t->ndim != 2) return duet_errorf("%s: tensor '%s': %d dims, a linear weight has 2", m->path, t->name, t->ndim);
    int64_t N = t->shape[0], K = t->shape[1];
    char what[512];
    snprintf(what, sizeof what, "%s: tensor '%s'", m->path, t->name);
    int group = duet_qmode_check_k(mode, K, what);
    if (group < 0) return -1;
    if (N <= 0 || K <= 0 || (uint64_t)N > SIZE_MAX / sizeof(float) / (uint64_t)K)
        return duet_errorf("%s: tensor '%s': %lld x %lld elements overflow", m->path, t->name, (long long)N,
                           (long long)K);
    float *W = malloc((size_t)N * (size_t)K * sizeof *W);
    if (!W) return duet_errorf("%s: tensor '%s': out of memory for %lld x %lld floats", m->path, t->name,
                               (long long)N, (long long)K);
    duet_qweight qw = {0};
    int rc = -1;
    if (st_to_f32(t, W)) goto out;
    if (duet_quantize(mode, W, N, K, what, &qw)) goto out;
    size_t nbytes = st_dtype_bytes(info->dtype, N * K);
    int64_t ngroups = K / group;
    if (!nbytes || (uint64_t)ngroups > SIZE_MAX / sizeof(uint16_t) / (uint64_t)N) {
        duet_errorf("%s: tensor '%s': %lld x %lld elements overflow", m->path, t->name, (long long)N, (long long)K);
        goto out;
    }
    size_t nscales = (size_t)N * (size_t)ngroups;
    if (!(q->data = malloc(nbytes))) {
        duet_errorf("%s: tensor '%s': out of memory for %zu bytes", m->path, t->name, nbytes);
        goto out;
    }
    if (duet_qweight_to_blocks(&qw, q->data)) goto out;
    if (info->dtype == ST_QI8 || info->dtype == ST_QU4) {
        /* planar: the codes are the data; the scales (and zero points) are the tensor's q */
        if (!(q->scales = malloc(nscales * sizeof *q->scales)) || (qw.zeros && !(q->zeros = malloc(nscales)))) {
            duet_errorf("%s: tensor '%s': out of memory", m->path, t->name);
            goto out;
        }
        memcpy(q->scales, qw.scales, nscales * sizeof *q->scales);
        if (qw.zeros) memcpy(q->zeros, qw.zeros, nscales);
        q->t.q = (st_quant){.group = group, .scales = q->scales, .zeros = q->zeros};
    }
    q->t.dtype = info->dtype;
    q->t.ndim = 2;
    q->t.shape[0] = N;
    q->t.shape[1] = K;
    q->t.numel = N * K;
    q->t.data = q->data;
    q->t.nbytes = nbytes;
    q->t.file = t->file;
    rc = 0;
out:
    duet_qweight_free(&qw);
    free(W);
    return rc;
}

int duet_model_quantize(duet_model *m, duet_qmode mode, void (*progress)(void *ctx, int done, int total), void *ctx)
{
    if (mode == DUET_Q_NONE) return 0;
    if (!duet_qmode_get(mode)) return duet_errorf("%s: quantization mode %d is not a mode", m->path, (int)mode);
    int L = m->cfg.n_layers;
    if (L > (1 << 24)) return duet_errorf("%s: %d layers", m->path, L);
    duet_model_quant *mq = duet_model_quant_new(DUET_N_LINEAR * L);
    if (!mq) return -1;
    /* The new tensors are built from the current ones (which may be the previous quantization's: a
     * quantized model can be requantized), and only then replace them. */
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < DUET_N_LINEAR; k++) {
            const st_tensor *t = *duet_layer_linear(&m->layers[l], k);
            duet_qtensor *q = duet_model_quant_add(mq, t->name);
            if (!q || quantize_one(m, mode, t, q)) {
                duet_model_quant_free(mq);
                return -1;
            }
        }
        if (progress) progress(ctx, l + 1, L);
    }
    for (int l = 0; l < L; l++)
        for (int k = 0; k < DUET_N_LINEAR; k++) *duet_layer_linear(&m->layers[l], k) = &mq->t[DUET_N_LINEAR * l + k].t;
    duet_model_quant_free(m->quant);
    m->quant = mq;
    mq->quantized_on_load = 1;
    m->weights = mode;
    return 0;
}

void duet_model_set_weights_mode(duet_model *m)
{
    int mode = -1;
    for (int l = 0; l < m->cfg.n_layers && mode != DUET_Q_NONE; l++)
        for (int k = 0; k < DUET_N_LINEAR; k++) {
            int q = duet_qmode_of(*duet_layer_linear(&m->layers[l], k));
            if (q < 0 || (mode >= 0 && q != mode)) q = DUET_Q_NONE;
            mode = q;
            if (mode == DUET_Q_NONE) break;
        }
    m->weights = mode > 0 ? (duet_qmode)mode : DUET_Q_NONE;
}

void duet_model_weights_describe(const duet_model *m, char *buf, size_t n)
{
    char types[96];
    duet_model_weight_types(m, types, sizeof types);
    const duet_qmode_info *info = duet_qmode_get(m->weights);
    if (m->weights == DUET_Q_NONE || !info) snprintf(buf, n, "stored as %s", types);
    else if (m->quant && m->quant->quantized_on_load) snprintf(buf, n, "%s (quantized on load)", info->name);
    else snprintf(buf, n, "stored as %s (linear weights %s)", types, info->name);
}
