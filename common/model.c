/* model.c: opens a model (see model.h): the HF-folder loader here, GGUF in model_gguf.c. */
#include "model.h"
#include "model_quant.h"
#include "error.h"
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const st_tensor *need(duet_model *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
    const st_tensor *t = st_set_find(m->st, name);
    if (!t) {
        duet_errorf("%s: missing tensor '%s'", m->path, name);
        return NULL;
    }
    int64_t shape[2] = {d0, d1};
    if (st_check_shape(t, ndim, shape)) return NULL;
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        duet_errorf("%s: tensor '%s': dtype %s, expected F32, F16 or BF16", t->file, name, st_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

/* A linear weight: <base>.weight in a float type, else duet's planar quantized <base>.qweight with its
 * scales (model_planar.c). */
static const st_tensor *need_linear(duet_model *m, const char *base, int64_t N, int64_t K)
{
    char n[320];
    snprintf(n, sizeof n, "%s.weight", base);
    if (st_set_find(m->st, n)) return need(m, n, 2, N, K);
    return duet_planar_load(m, base, N, K);
}

/* A tensor of a layer the config does not have (model.layers.N.* with N >= num_hidden_layers) means the
 * config and the weights disagree: refuse it by name rather than run fewer layers than were trained. */
static int check_no_extra_layers(const duet_model *m)
{
    static const char prefix[] = "model.layers.";
    for (int f = 0; f < st_set_nfiles(m->st); f++) {
        const st_file *sf = st_set_file(m->st, f);
        for (int i = 0; i < st_count(sf); i++) {
            const st_tensor *t = st_at(sf, i);
            if (strncmp(t->name, prefix, sizeof prefix - 1)) continue;
            const char *p = t->name + sizeof prefix - 1;
            char *end;
            long l = strtol(p, &end, 10);
            if (end != p && *end == '.' && (l < 0 || l >= m->cfg.n_layers))
                return duet_errorf("%s: tensor '%s' is of layer %ld, but config.json has num_hidden_layers %d", t->file,
                                   t->name, l, m->cfg.n_layers);
        }
    }
    return 0;
}

duet_model *duet_model_open(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        duet_errorf("%s: no such model file or folder (run `make model` for the default model, or give -m)", path);
        return NULL;
    }
    duet_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        duet_errorf("out of memory");
        return NULL;
    }
    if (S_ISREG(sb.st_mode)) {
        if (duet_model_open_gguf(m, path)) goto fail;
        duet_model_set_weights_mode(m);
        return m;
    }
    const char *dir = path;
    if (duet_config_load(&m->cfg, dir)) goto fail;
    m->st = st_set_open(dir);
    if (!m->st) goto fail;
    const duet_config *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    if (!(m->embed = need(m, "model.embed_tokens.weight", 2, c->vocab_size, D))) goto fail;
    if (!(m->final_norm = need(m, "model.norm.weight", 1, D, 0))) goto fail;
    if (c->tie_embeddings) {
        m->lm_head = m->embed;
    } else if (!(m->lm_head = need(m, "lm_head.weight", 2, c->vocab_size, D))) {
        goto fail;
    }
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    if (!m->layers) goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        duet_layer_weights *w = &m->layers[l];
        char n[256];
#define NEED(field, suffix, nd, a, b)                                    \
    snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, suffix);      \
    if (!(w->field = need(m, n, nd, a, b))) goto fail;
#define LINEAR(field, suffix, a, b)                                      \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);             \
    if (!(w->field = need_linear(m, n, a, b))) goto fail;
        NEED(attn_norm, "input_layernorm", 1, D, 0);
        LINEAR(wq, "self_attn.q_proj", q, D);
        LINEAR(wk, "self_attn.k_proj", kv, D);
        LINEAR(wv, "self_attn.v_proj", kv, D);
        LINEAR(wo, "self_attn.o_proj", D, q);
        NEED(ffn_norm, "post_attention_layernorm", 1, D, 0);
        LINEAR(w_gate, "mlp.gate_proj", F, D);
        LINEAR(w_up, "mlp.up_proj", F, D);
        LINEAR(w_down, "mlp.down_proj", D, F);
#undef NEED
#undef LINEAR
    }
    if (check_no_extra_layers(m)) goto fail;
    duet_model_set_weights_mode(m);
    return m;
fail:
    duet_model_close(m);
    return NULL;
}

void duet_model_weight_types(const duet_model *m, char *buf, size_t n)
{
    int seen[ST_N_DTYPES] = {0};
    size_t len = 0;
    buf[0] = 0;
    const int per_layer = 9;
    for (int i = -3; i < m->cfg.n_layers * per_layer; i++) {
        const st_tensor *t;
        if (i < 0) t = i == -3 ? m->embed : i == -2 ? m->final_norm : m->lm_head;
        else {
            const duet_layer_weights *w = &m->layers[i / per_layer];
            const st_tensor *all[9] = {w->attn_norm, w->wq, w->wk, w->wv, w->wo, w->ffn_norm, w->w_gate, w->w_up, w->w_down};
            t = all[i % per_layer];
        }
        if (!t || (unsigned)t->dtype >= ST_N_DTYPES || seen[t->dtype]++) continue;
        int k = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", st_dtype_name(t->dtype));
        if (k < 0 || (size_t)k >= n - len) break;
        len += (size_t)k;
    }
}

void duet_model_close(duet_model *m)
{
    if (!m) return;
    st_set_close(m->st);
    gguf_close(m->gguf);
    free(m->owned);
    free(m->owned_data);
    duet_model_quant_free(m->quant);
    free(m->layers);
    free(m->path);
    free(m);
}
