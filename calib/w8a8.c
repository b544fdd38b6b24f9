/* w8a8.c: a model's W8A8 weights (w8a8.h): SmoothQuant's folds and int8 codes, FP8's E4M3 codes. */
#include "w8a8.h"

#include "error.h"
#include "fp8quant.h"
#include "smoothquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const mode_names[] = {"none", "sq", "fp8", "fp8-tensor"};

const char *duet_w8a8_mode_name(duet_w8a8_mode m)
{
    return m >= DUET_W8A8_NONE && m <= DUET_W8A8_FP8_TENSOR ? mode_names[m] : "unknown";
}

int duet_w8a8_mode_parse(const char *name, duet_w8a8_mode *out)
{
    for (int i = 0; i <= DUET_W8A8_FP8_TENSOR; i++)
        if (!strcmp(name, mode_names[i])) {
            *out = (duet_w8a8_mode)i;
            return 0;
        }
    return duet_errorf("W8A8 mode '%s' unknown (expected none, sq, fp8 or fp8-tensor)", name);
}

duet_w8a8 *duet_w8a8_new(const duet_config *cfg, duet_w8a8_mode mode, float alpha)
{
    if (mode < DUET_W8A8_SQ || mode > DUET_W8A8_FP8_TENSOR) {
        duet_errorf("W8A8: mode %d is not a W8A8 mode", (int)mode);
        return NULL;
    }
    if (mode == DUET_W8A8_SQ && !(alpha >= 0.0f && alpha <= 1.0f)) {
        duet_errorf("smoothquant: alpha %g is outside [0, 1]", (double)alpha);
        return NULL;
    }
    duet_w8a8 *m = calloc(1, sizeof *m);
    if (m) m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    if (!m || !m->layers) {
        free(m);
        duet_errorf("W8A8: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    m->mode = mode;
    m->alpha = alpha;
    return m;
}

static void layer_free(duet_w8a8_layer *y)
{
    free(y->attn_norm), free(y->ffn_norm), free(y->s_qkv), free(y->s_o), free(y->s_gu), free(y->s_down);
    for (int k = 0; k < DUET_LIN_N_LINEAR; k++) free(y->lin[k].codes), free(y->lin[k].scales);
    memset(y, 0, sizeof *y);
}

void duet_w8a8_free(duet_w8a8 *m)
{
    if (!m) return;
    for (int l = 0; l < m->cfg.n_layers; l++) layer_free(&m->layers[l]);
    free(m->layers);
    free(m);
}

/* wmax[j] = max(wmax[j], max_i |W_ij|) over W (N, K) */
static void col_max(float *wmax, const float *W, int64_t N, int64_t K)
{
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < K; j++) wmax[j] = fmaxf(wmax[j], fabsf(W[i * K + j]));
}

/* codes and scales of W (N, K) in mode mode, with columns times cs[K] (NULL: none) and rows divided by
 * rd[N] (NULL: none); x_max: the calibrated maxima of the input's K channels (fp8-tensor's static scale) */
static int quant_folded(duet_w8a8_mode mode, duet_w8a8_linear *q, const float *W, int64_t N, int64_t K,
                        const float *cs, const float *rd, const float *x_max)
{
    float *tmp = malloc(sizeof(float) * (size_t)(N * K));
    q->codes = malloc((size_t)(N * K));
    q->scales = malloc(sizeof(float) * (size_t)N);
    if (!tmp || !q->codes || !q->scales) {
        free(tmp);
        return duet_errorf("smoothquant: out of memory for a (%lld, %lld) matrix", (long long)N, (long long)K);
    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < K; j++) {
            const float w = cs ? W[i * K + j] * cs[j] : W[i * K + j];
            tmp[i * K + j] = rd ? w / rd[i] : w;
        }
    q->x_scale = 0.0f;
    if (mode == DUET_W8A8_SQ) {
        duet_sq_quant_rows(tmp, N, K, (int8_t *)q->codes, q->scales);
    } else if (mode == DUET_W8A8_FP8) {
        duet_f8_quant_rows(tmp, N, K, q->codes, q->scales);
    } else {
        duet_f8_quant_tensor(tmp, N, K, q->codes, q->scales);
        float xm = 0.0f;
        for (int64_t j = 0; j < K; j++) xm = fmaxf(xm, x_max[j]);
        q->x_scale = duet_f8_scale(xm);
    }
    q->N = N, q->K = K;
    free(tmp);
    return 0;
}

static int sq_layer(duet_w8a8 *m, int l, const duet_calib_layer *cal, const duet_w8a8_src *src)
{
    const duet_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->ffn_dim, H = c->n_heads, Hk = c->n_kv_heads, d = c->head_dim, g = H / Hk;
    const int64_t Q = H * d, KV = Hk * d;
    duet_w8a8_layer *y = &m->layers[l];
    layer_free(y);
    y->attn_norm = malloc(sizeof(float) * D), y->ffn_norm = malloc(sizeof(float) * D);
    y->s_qkv = calloc(D, sizeof(float)), y->s_gu = calloc(D, sizeof(float));
    y->s_o = calloc(Q, sizeof(float)), y->s_down = calloc(F, sizeof(float));
    float *wm = calloc(F > Q ? (F > D ? F : D) : (Q > D ? Q : D), sizeof(float)); /* column maxima */
    float *am = calloc(KV, sizeof(float)), *sk = calloc(KV, sizeof(float));    /* per kv channel */
    int rc = -1;
    if (!y->attn_norm || !y->ffn_norm || !y->s_qkv || !y->s_gu || !y->s_o || !y->s_down || !wm || !am || !sk) {
        duet_errorf("smoothquant: out of memory (layer %d)", l);
        goto out;
    }
    /* q/k/v: one factor per input channel over the three stacked matrices */
    col_max(wm, src->w[DUET_LIN_Q], Q, D), col_max(wm, src->w[DUET_LIN_K], KV, D), col_max(wm, src->w[DUET_LIN_V], KV, D);
    if (duet_sq_factors_max(cal->qkv_in, wm, D, m->alpha, y->s_qkv)) goto fail;
    /* o_proj: its input channel h d + j comes from kv head h / g's v channel j; one factor per kv channel */
    memset(wm, 0, sizeof(float) * Q);
    col_max(wm, src->w[DUET_LIN_O], D, Q);
    float *wk = calloc(KV, sizeof(float));
    if (!wk) {
        duet_errorf("smoothquant: out of memory (layer %d)", l);
        goto out;
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t j = 0; j < d; j++) {
            const int64_t ch = h * d + j, kc = (h / g) * d + j;
            am[kc] = fmaxf(am[kc], cal->o_in[ch]);
            wk[kc] = fmaxf(wk[kc], wm[ch]);
        }
    const int bad = duet_sq_factors_max(am, wk, KV, m->alpha, sk);
    free(wk);
    if (bad) goto fail;
    for (int64_t h = 0; h < H; h++)
        for (int64_t j = 0; j < d; j++) y->s_o[h * d + j] = sk[(h / g) * d + j];
    /* gate/up */
    memset(wm, 0, sizeof(float) * D);
    col_max(wm, src->w[DUET_LIN_GATE], F, D), col_max(wm, src->w[DUET_LIN_UP], F, D);
    if (duet_sq_factors_max(cal->gate_up_in, wm, D, m->alpha, y->s_gu)) goto fail;
    /* down */
    memset(wm, 0, sizeof(float) * F);
    col_max(wm, src->w[DUET_LIN_DOWN], D, F);
    if (duet_sq_factors_max(cal->down_in, wm, F, m->alpha, y->s_down)) goto fail;
    for (int64_t j = 0; j < D; j++) {
        y->attn_norm[j] = src->attn_norm[j] / y->s_qkv[j];
        y->ffn_norm[j] = src->ffn_norm[j] / y->s_gu[j];
    }
    const duet_w8a8_mode md = m->mode;
    if (quant_folded(md, &y->lin[DUET_LIN_Q], src->w[DUET_LIN_Q], Q, D, y->s_qkv, NULL, NULL) ||
        quant_folded(md, &y->lin[DUET_LIN_K], src->w[DUET_LIN_K], KV, D, y->s_qkv, NULL, NULL) ||
        quant_folded(md, &y->lin[DUET_LIN_V], src->w[DUET_LIN_V], KV, D, y->s_qkv, sk, NULL) ||
        quant_folded(md, &y->lin[DUET_LIN_O], src->w[DUET_LIN_O], D, Q, y->s_o, NULL, NULL) ||
        quant_folded(md, &y->lin[DUET_LIN_GATE], src->w[DUET_LIN_GATE], F, D, y->s_gu, NULL, NULL) ||
        quant_folded(md, &y->lin[DUET_LIN_UP], src->w[DUET_LIN_UP], F, D, y->s_gu, y->s_down, NULL) ||
        quant_folded(md, &y->lin[DUET_LIN_DOWN], src->w[DUET_LIN_DOWN], D, F, y->s_down, NULL, NULL))
        goto out;
    rc = 0;
    goto out;
fail:
    duet_error_prefix("layer %d: ", l);
out:
    free(wm), free(am), free(sk);
    if (rc) layer_free(y);
    return rc;
}

/* FP8: the weights and norms as they are, E4M3 codes per row or per tensor */
static int fp8_layer(duet_w8a8 *m, int l, const duet_calib_layer *cal, const duet_w8a8_src *src)
{
    const duet_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->ffn_dim, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim;
    duet_w8a8_layer *y = &m->layers[l];
    layer_free(y);
    y->attn_norm = malloc(sizeof(float) * D), y->ffn_norm = malloc(sizeof(float) * D);
    if (!y->attn_norm || !y->ffn_norm) {
        layer_free(y);
        return duet_errorf("W8A8: out of memory (layer %d)", l);
    }
    memcpy(y->attn_norm, src->attn_norm, sizeof(float) * D);
    memcpy(y->ffn_norm, src->ffn_norm, sizeof(float) * D);
    const duet_w8a8_mode md = m->mode;
    const int64_t shape[DUET_LIN_N_LINEAR][2] = {{Q, D}, {KV, D}, {KV, D}, {D, Q}, {F, D}, {F, D}, {D, F}};
    const float *x_max[DUET_LIN_N_LINEAR] = {cal->qkv_in,     cal->qkv_in,     cal->qkv_in, cal->o_in,
                                             cal->gate_up_in, cal->gate_up_in, cal->down_in};
    for (int k = 0; k < DUET_LIN_N_LINEAR; k++)
        if (quant_folded(md, &y->lin[k], src->w[k], shape[k][0], shape[k][1], NULL, NULL, x_max[k])) {
            layer_free(y);
            return duet_error_prefix("layer %d: ", l);
        }
    return 0;
}

int duet_w8a8_layer_make(duet_w8a8 *m, int l, const duet_calib_layer *cal, const duet_w8a8_src *src)
{
    return m->mode == DUET_W8A8_SQ ? sq_layer(m, l, cal, src) : fp8_layer(m, l, cal, src);
}

/* a tensor's fp32 copy (malloc'd), NULL + duet_error() */
static float *f32_of(const st_tensor *t)
{
    float *p = malloc(sizeof(float) * (size_t)t->numel);
    if (!p) {
        duet_errorf("smoothquant: out of memory for %s", t->name);
        return NULL;
    }
    if (st_to_f32(t, p)) {
        free(p);
        return NULL;
    }
    return p;
}

duet_w8a8 *duet_w8a8_build(const duet_model *m, const duet_calib *cal, duet_w8a8_mode mode, float alpha)
{
    const duet_config *c = &m->cfg, *k = &cal->cfg;
    if (!duet_config_same_layers(k, c)) {
        duet_errorf("W8A8: the calibration was made for other shapes (%d layers, dim %d, ffn %d, %d/%d heads "
                    "of %d) than the model's (%d, %d, %d, %d/%d of %d)",
                    k->n_layers, k->dim, k->ffn_dim, k->n_heads, k->n_kv_heads, k->head_dim, c->n_layers, c->dim,
                    c->ffn_dim, c->n_heads, c->n_kv_heads, c->head_dim);
        return NULL;
    }
    duet_w8a8 *sq = duet_w8a8_new(c, mode, alpha);
    if (!sq) return NULL;
    for (int l = 0; l < c->n_layers; l++) {
        const duet_layer_weights *w = &m->layers[l];
        const st_tensor *ts[DUET_LIN_N_LINEAR + 2] = {w->wq, w->wk, w->wv, w->wo, w->w_gate,
                                                     w->w_up, w->w_down, w->attn_norm, w->ffn_norm};
        float *f[DUET_LIN_N_LINEAR + 2] = {0};
        int ok = 1;
        for (int i = 0; i < DUET_LIN_N_LINEAR + 2 && ok; i++) ok = (f[i] = f32_of(ts[i])) != NULL;
        duet_w8a8_src src = {f[DUET_LIN_N_LINEAR], f[DUET_LIN_N_LINEAR + 1], {f[0], f[1], f[2], f[3], f[4], f[5], f[6]}};
        if (ok) ok = !duet_w8a8_layer_make(sq, l, &cal->layers[l], &src);
        for (int i = 0; i < DUET_LIN_N_LINEAR + 2; i++) free(f[i]);
        if (!ok) {
            duet_w8a8_free(sq);
            return NULL;
        }
    }
    return sq;
}

/* ---- seeded codes for the benchmark -------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *r)
{
    *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
    return *r;
}

/* N x K codes of mode md from the stream r: sq's int8 uniform in [-127, 127] (the byte, -128 made -127);
 * E4M3 with a random sign and mantissa and the exponent field in 4..7 (|value| in [1/8, 2): never NaN);
 * scales giving the rows a norm about that of a std 1 / sqrt(K) matrix. */
static int random_linear(duet_w8a8_mode md, duet_w8a8_linear *q, int64_t N, int64_t K, uint64_t *r)
{
    q->N = N, q->K = K;
    q->codes = malloc((size_t)(N * K));
    q->scales = malloc(sizeof(float) * (size_t)N);
    if (!q->codes || !q->scales) return duet_errorf("W8A8: out of memory for %lld x %lld seeded codes", (long long)N,
                                                    (long long)K);
    for (int64_t i = 0; i < N * K; i += 8) {
        uint64_t v = xorshift(r);
        for (int b = 0; b < 8 && i + b < N * K; b++, v >>= 8) {
            const uint8_t u = (uint8_t)v;
            q->codes[i + b] = md == DUET_W8A8_SQ ? (u == 0x80 ? 0x81 : u) : (uint8_t)((u & 0x87) | ((4 + ((u >> 3) & 3)) << 3));
        }
    }
    const float s = (md == DUET_W8A8_SQ ? 1.0f / 73.0f : 1.0f) / sqrtf((float)K);
    for (int64_t i = 0; i < N; i++) q->scales[i] = s;
    q->x_scale = md == DUET_W8A8_FP8_TENSOR ? 8.0f / DUET_F8_MAX : 0.0f; /* a placeholder range, max |x| 8 */
    return 0;
}

duet_w8a8 *duet_w8a8_random(const duet_config *c, duet_w8a8_mode mode, uint64_t seed)
{
    duet_w8a8 *m = duet_w8a8_new(c, mode, 0.5f);
    if (!m) return NULL;
    const int64_t D = c->dim, F = c->ffn_dim, Q = (int64_t)c->n_heads * c->head_dim,
                  KV = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t shape[DUET_LIN_N_LINEAR][2] = {{Q, D}, {KV, D}, {KV, D}, {D, Q}, {F, D}, {F, D}, {D, F}};
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int l = 0; l < c->n_layers; l++) {
        duet_w8a8_layer *y = &m->layers[l];
        y->attn_norm = malloc(sizeof(float) * D), y->ffn_norm = malloc(sizeof(float) * D);
        if (!y->attn_norm || !y->ffn_norm) {
            duet_errorf("W8A8: out of memory");
            goto fail;
        }
        for (int64_t j = 0; j < D; j++) y->attn_norm[j] = y->ffn_norm[j] = 1.0f;
        for (int k = 0; k < DUET_LIN_N_LINEAR; k++)
            if (random_linear(mode, &y->lin[k], shape[k][0], shape[k][1], &r)) goto fail;
    }
    return m;
fail:
    duet_w8a8_free(m);
    return NULL;
}
