/* convert.c: HF folder <-> GGUF file (convert.h).
 *
 * q/k permutation (the inverse of model_gguf.c's un-permute): llama.cpp's converter interleaves the
 * two halves of each head's rows for its GPT-J style RoPE; per head h of d rows,
 *     gguf[h*d + 2*i + j] = hf[h*d + j*d/2 + i]     (i < d/2, j in {0, 1}),
 * whole rows moved, so the values are untouched and the loader's un-permute gives them back.
 * Type changes go through fp32 (F16 and BF16 widen exactly; narrowing rounds to nearest even);
 * a tensor kept in its own type is copied byte for byte. */
#include "convert.h"
#include "error.h"
#include "gguf.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "tokenizer_export.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The 9 weights of a layer with their HF and GGUF names, in duet_layer_weights' order. */
static const char *const hf_part[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                                       "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                                       "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
static const char *const gguf_part[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                         "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};

static const st_tensor *layer_tensor(const duet_layer_weights *w, int k)
{
    const st_tensor *all[9] = {w->attn_norm, w->wq, w->wk, w->wv, w->wo, w->ffn_norm, w->w_gate, w->w_up, w->w_down};
    return all[k];
}

/* Every tensor of the model in file order: name and tensor (GGUF or HF names); n of them. */
typedef struct {
    char name[96];
    const st_tensor *t;
    int heads; /* q/k: heads to permute (0: none) */
} conv_tensor;

static int list_tensors(const duet_model *m, int gguf_names, conv_tensor **out, int *n)
{
    const duet_config *c = &m->cfg;
    int cap = 3 + 9 * c->n_layers, k = 0;
    conv_tensor *v = calloc((size_t)cap, sizeof *v);
    if (!v) return duet_errorf("out of memory");
    snprintf(v[k].name, sizeof v[k].name, "%s", gguf_names ? "token_embd.weight" : "model.embed_tokens.weight");
    v[k++].t = m->embed;
    for (int l = 0; l < c->n_layers; l++)
        for (int p = 0; p < 9; p++) {
            if (gguf_names) snprintf(v[k].name, sizeof v[k].name, "blk.%d.%s.weight", l, gguf_part[p]);
            else snprintf(v[k].name, sizeof v[k].name, "model.layers.%d.%s.weight", l, hf_part[p]);
            v[k].t = layer_tensor(&m->layers[l], p);
            v[k++].heads = p == 1 ? c->n_heads : p == 2 ? c->n_kv_heads : 0;
        }
    snprintf(v[k].name, sizeof v[k].name, "%s", gguf_names ? "output_norm.weight" : "model.norm.weight");
    v[k++].t = m->final_norm;
    if (!c->tie_embeddings) {
        snprintf(v[k].name, sizeof v[k].name, "%s", gguf_names ? "output.weight" : "lm_head.weight");
        v[k++].t = m->lm_head;
    }
    *out = v;
    *n = k;
    return 0;
}

/* t's values as type `to` (F32, F16, BF16) into a malloc'ed buffer of *nbytes. */
static void *tensor_as(const st_tensor *t, st_dtype to, size_t *nbytes)
{
    if (t->dtype == to) {
        void *p = malloc(t->nbytes ? t->nbytes : 1);
        if (!p) {
            duet_errorf("%s: out of memory for %zu bytes", t->name, t->nbytes);
            return NULL;
        }
        memcpy(p, t->data, t->nbytes);
        *nbytes = t->nbytes;
        return p;
    }
    if ((uint64_t)t->numel > SIZE_MAX / sizeof(float)) {
        duet_errorf("%s: %lld elements overflow", t->name, (long long)t->numel);
        return NULL;
    }
    float *f = malloc((size_t)t->numel * sizeof *f + 1);
    if (!f) {
        duet_errorf("%s: out of memory for %lld elements", t->name, (long long)t->numel);
        return NULL;
    }
    if (st_to_f32(t, f)) {
        free(f);
        return NULL;
    }
    *nbytes = st_dtype_bytes(to, t->numel);
    if (to == ST_F32) return f;
    uint16_t *h = (uint16_t *)f; /* narrowing in place: element i is read before slot i is written */
    for (int64_t i = 0; i < t->numel; i++) h[i] = to == ST_F16 ? duet_f32_to_f16(f[i]) : duet_f32_to_bf16(f[i]);
    return f;
}

/* Permutes the rows of a q/k matrix (heads * d rows of `row` bytes) from HF to GGUF order. */
static int permute_rows(void *data, int64_t rows, size_t row, int heads)
{
    int64_t d = rows / heads;
    if (d * heads != rows || d % 2) return duet_errorf("q/k rows %lld do not split into %d heads of even size", (long long)rows, heads);
    char *tmp = malloc((size_t)rows * row), *src = data;
    if (!tmp) return duet_errorf("out of memory");
    for (int64_t h = 0; h < heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < d / 2; i++)
                memcpy(tmp + (size_t)(h * d + 2 * i + j) * row, src + (size_t)(h * d + j * (d / 2) + i) * row, row);
    memcpy(data, tmp, (size_t)rows * row);
    free(tmp);
    return 0;
}

static void progress(const duet_convert_opts *o, const char *name, int done, int total)
{
    if (o->progress) o->progress(o->progress_ctx, name, done, total);
}

static int check_type(int type)
{
    if (type != -1 && type != ST_F32 && type != ST_F16 && type != ST_BF16)
        return duet_errorf("type %s: converted weights are F32, F16 or BF16", st_dtype_name((st_dtype)type));
    return 0;
}

/* out must not exist unless force; then it must be of the right kind (a folder or not). */
static int check_output(const char *out, int force, int want_dir)
{
    struct stat sb;
    if (stat(out, &sb) != 0) return 0;
    if (!force) return duet_errorf("%s: already exists (give --force to replace it)", out);
    if (want_dir && !S_ISDIR(sb.st_mode)) return duet_errorf("%s: exists and is not a folder", out);
    if (!want_dir && !S_ISREG(sb.st_mode)) return duet_errorf("%s: exists and is not a regular file", out);
    return 0;
}

/* The architecture fields of two configs (not bos/eos, which each format takes from elsewhere). */
static int same_config(const duet_config *a, const duet_config *b)
{
    return a->dim == b->dim && a->ffn_dim == b->ffn_dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->vocab_size == b->vocab_size &&
           a->max_pos == b->max_pos && a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
           a->tie_embeddings == b->tie_embeddings;
}

/* Opens what was written and checks config and tokenizer (and, when check_weights, the weights: see
 * same_weights) against the source. */
static int same_weights(const char *path, const duet_model *a, const duet_model *b);
static int verify(const char *path, const duet_model *src, const duet_tokenizer *src_tok, int check_weights)
{
    duet_model *m = duet_model_open(path);
    if (!m) return duet_error_prefix("reading back %s: ", path);
    int rc = 0;
    if (!same_config(&m->cfg, &src->cfg)) rc = duet_errorf("%s: its config differs from the source's", path);
    if (!rc && check_weights) rc = same_weights(path, src, m);
    duet_tokenizer *t = rc ? NULL : duet_model_tokenizer(m);
    if (!rc && !t) rc = duet_error_prefix("reading back the tokenizer of %s: ", path);
    char why[512];
    if (t && duet_tokenizer_compare(src_tok, t, why, sizeof why))
        rc = duet_errorf("%s: the tokenizer written does not read back as the source's: %s", path, why);
    duet_tokenizer_free(t);
    duet_model_close(m);
    return rc;
}

/* tokenizer_config.json's chat_template (a string), malloc'ed, or NULL when there is none. */
static char *hf_chat_template(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    const char *s = json_string_value(json_object_get(root, "chat_template"));
    char *copy = s ? strdup(s) : NULL;
    json_decref(root);
    return copy;
}

static const char *base_name(const char *path, char *buf, size_t n)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(buf, n, "%.*s", (int)(len - start), path + start);
    return buf;
}

static int set_llama_meta(gguf_writer *w, const duet_config *c, const char *name)
{
    return gguf_writer_set_str(w, "general.architecture", "llama", 5) ||
           gguf_writer_set_str(w, "general.name", name, strlen(name)) ||
           gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->max_pos) ||
           gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->dim) ||
           gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->ffn_dim) ||
           gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers) ||
           gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads) ||
           gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads) ||
           gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim) ||
           gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim) ||
           gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim) ||
           gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size) ||
           gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps) ||
           gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_theta);
}

/* The written model's weights equal the source's byte for byte, tensor by tensor (q/k in HF row order on
 * both sides: the GGUF loader un-permutes them), planar scales and zero points included. */
static int same_weights(const char *path, const duet_model *a, const duet_model *b)
{
    conv_tensor *la = NULL, *lb = NULL;
    int na = 0, nb = 0, rc = 0;
    if (list_tensors(a, 0, &la, &na) || list_tensors(b, 0, &lb, &nb)) rc = -1;
    for (int i = 0; !rc && i < na && i < nb; i++) {
        const st_tensor *x = la[i].t, *y = lb[i].t;
        int same = x->dtype == y->dtype && x->numel == y->numel && x->nbytes == y->nbytes &&
                   !memcmp(x->data, y->data, x->nbytes);
        if (x->dtype != y->dtype && x->numel == y->numel) { /* widened (GGUF blocks to F32): the values */
            float *fx = NULL, *fy = NULL;
            if ((uint64_t)x->numel > SIZE_MAX / sizeof(float) || !(fx = malloc((size_t)x->numel * sizeof *fx + 1)) ||
                !(fy = malloc((size_t)x->numel * sizeof *fy + 1))) {
                free(fx);
                rc = duet_errorf("%s: out of memory comparing tensor '%s'", path, la[i].name);
                break;
            }
            same = !st_to_f32(x, fx) && !st_to_f32(y, fy) && !memcmp(fx, fy, (size_t)x->numel * sizeof *fx);
            free(fx);
            free(fy);
        }
        if (same && (x->dtype == ST_QI8 || x->dtype == ST_QU4)) {
            size_t ng = (size_t)(x->numel / x->q.group);
            same = x->q.group == y->q.group && !memcmp(x->q.scales, y->q.scales, ng * 2) && !x->q.zeros == !y->q.zeros &&
                   (!x->q.zeros || !memcmp(x->q.zeros, y->q.zeros, ng));
        }
        if (!same) rc = duet_errorf("%s: tensor '%s' does not read back as the source's (%s)", path, la[i].name,
                                    st_dtype_name(x->dtype));
    }
    if (!rc && na != nb) rc = duet_errorf("%s: %d tensors read back, the source has %d", path, nb, na);
    free(la);
    free(lb);
    return rc;
}

/* The model's chat template (GGUF tokenizer.chat_template, or tokenizer_config.json's), malloc'ed, or NULL. */
static char *model_chat_template(const duet_model *m)
{
    if (!m->gguf) return hf_chat_template(m->path);
    gguf_str t = {0};
    if (gguf_get_str(m->gguf, "tokenizer.chat_template", &t) != 0 || !t.s) return NULL;
    char *copy = malloc(t.len + 1);
    if (copy) memcpy(copy, t.s, t.len), copy[t.len] = 0;
    return copy;
}

/* LLAMA_FTYPE of a matrix type (llama.cpp's general.file_type: "mostly" that type), -1 when it has none. */
static int file_type_of(st_dtype t)
{
    switch (t) {
    case ST_F32: return 0;
    case ST_F16: return 1;
    case ST_Q4_0: return 2;
    case ST_Q4_1: return 3;
    case ST_Q8_0: return 7;
    case ST_BF16: return 32;
    default: return -1;
    }
}

/* Writes the opened model m (an HF folder or GGUF file, possibly quantized in memory: block tensors are
 * written as they are, their rows permuted whole) as one GGUF file; check_weights: what was written must
 * read back with m's weights byte for byte. */
static int write_gguf(const duet_model *m, const char *out, const duet_convert_opts *o, int check_weights)
{
    duet_tokenizer *tok = duet_model_tokenizer(m);
    char *tmpl = NULL, tmp[4200], name[256];
    conv_tensor *list = NULL;
    int n = 0, rc = -1, file_type = -2;
    gguf_writer *w = gguf_writer_new();
    snprintf(tmp, sizeof tmp, "%s.tmp-convert", out);
    if (!tok) {
        duet_error_prefix("%s: the tokenizer: ", m->path);
        goto out;
    }
    if (!w || list_tensors(m, 1, &list, &n)) goto out;
    gguf_str gname = {0};
    if (m->gguf && gguf_get_str(m->gguf, "general.name", &gname) == 0 && gname.len && gname.len < sizeof name)
        snprintf(name, sizeof name, "%.*s", (int)gname.len, gname.s);
    else base_name(m->path, name, sizeof name);
    if (set_llama_meta(w, &m->cfg, name)) goto out;
    progress(o, "tokenizer", 0, 0);
    if (duet_tokenizer_to_gguf(tok, w, m->path)) goto out;
    if ((tmpl = model_chat_template(m)) && gguf_writer_set_str(w, "tokenizer.chat_template", tmpl, strlen(tmpl))) goto out;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = list[i].t;
        /* as llama.cpp's converter: a chosen 16-bit type is for the matrices, norms stay F32 */
        st_dtype to = o->type < 0 ? t->dtype : t->ndim == 1 && o->type != ST_F32 ? ST_F32 : (st_dtype)o->type;
        size_t nbytes;
        void *data = tensor_as(t, to, &nbytes);
        if (!data) goto out;
        /* rows are whole blocks (K is a multiple of the block), so a permuted row keeps its blocks intact */
        int bad = list[i].heads && permute_rows(data, t->shape[0], nbytes / (size_t)t->shape[0], list[i].heads);
        bad = bad || gguf_writer_add_tensor(w, list[i].name, to, t->ndim, t->shape, data);
        free(data);
        if (bad) goto out;
        /* general.file_type from the layers' matrices (llama.cpp's LLAMA_FTYPE: 0 all F32, 1 mostly F16,
         * 2 Q4_0, 3 Q4_1, 7 Q8_0, 32 BF16); absent when they are mixed */
        int ft = file_type_of(to);
        if (t->ndim == 2 && strncmp(list[i].name, "blk.", 4) == 0)
            file_type = (file_type == -2 || file_type == ft) && ft >= 0 ? ft : -1;
        progress(o, list[i].name, i + 1, n);
    }
    if (file_type >= 0 && gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type)) goto out;
    progress(o, "writing", 0, 0);
    if (gguf_writer_save(w, tmp)) goto out;
    gguf_writer_free(w);
    w = NULL;
    progress(o, "checking what was written", 0, 0);
    if (verify(tmp, m, tok, check_weights)) goto out;
    if (rename(tmp, out) != 0) {
        duet_errorf("%s: cannot rename to %s: %s", tmp, out, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (rc) unlink(tmp);
    gguf_writer_free(w);
    free(list);
    free(tmpl);
    duet_tokenizer_free(tok);
    return rc;
}

int duet_convert_hf_to_gguf(const char *dir, const char *out, const duet_convert_opts *o)
{
    if (check_type(o->type) || check_output(out, o->force, 0)) return -1;
    progress(o, "reading the model", 0, 0);
    duet_model *m = duet_model_open(dir);
    if (!m) return -1;
    int rc = m->gguf ? duet_errorf("%s: is a GGUF file, not a Hugging Face folder", dir) : write_gguf(m, out, o, 0);
    duet_model_close(m);
    return rc;
}

static const char *const hf_files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
#define N_HF_FILES (sizeof hf_files / sizeof *hf_files)

static void remove_tmp_dir(const char *tmp)
{
    char p[4300];
    for (size_t i = 0; i < N_HF_FILES; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, hf_files[i]);
        unlink(p);
    }
    rmdir(tmp);
}

/* Moves the written folder into place: a rename, or file by file into an existing folder (a file the
 * source had none of, such as tokenizer_config.json, is removed there). */
static int move_into(const char *tmp, const char *out)
{
    struct stat sb;
    if (stat(out, &sb) != 0) {
        if (rename(tmp, out) != 0) return duet_errorf("%s: cannot rename to %s: %s", tmp, out, strerror(errno));
        return 0;
    }
    char a[4300], b[4300];
    for (size_t i = 0; i < N_HF_FILES; i++) {
        snprintf(a, sizeof a, "%s/%s", tmp, hf_files[i]);
        snprintf(b, sizeof b, "%s/%s", out, hf_files[i]);
        if (access(a, F_OK) != 0) {
            unlink(b);
            continue;
        }
        if (rename(a, b) != 0) return duet_errorf("%s: cannot move into %s: %s", a, out, strerror(errno));
    }
    rmdir(tmp);
    return 0;
}

/* Copies <src>/<name> to <dst>/<name> byte for byte; a missing source file is fine when !required. */
static int copy_file(const char *src, const char *dst, const char *name, int required)
{
    char a[4300], b[4300];
    snprintf(a, sizeof a, "%s/%s", src, name);
    snprintf(b, sizeof b, "%s/%s", dst, name);
    FILE *in = fopen(a, "rb");
    if (!in) return required ? duet_errorf("%s: cannot open: %s", a, strerror(errno)) : 0;
    FILE *o = fopen(b, "wb");
    if (!o) {
        fclose(in);
        return duet_errorf("%s: cannot create: %s", b, strerror(errno));
    }
    char buf[65536];
    size_t got;
    int ok = 1;
    while (ok && (got = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, got, o) == got;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(o) != 0 || !ok) return duet_errorf("%s: copying to %s failed: %s", a, b, strerror(errno));
    return 0;
}

/* Adds linear weight t (planar ST_QI8 / ST_QU4) as <base>.qweight, .scales and .zeros (model_planar.c's
 * layout); name is its "<base>.weight". */
static int add_planar(st_writer *w, const char *name, const st_tensor *t)
{
    char base[96], n[128];
    size_t len = strlen(name);
    if (len < 7 || strcmp(name + len - 7, ".weight")) return duet_errorf("tensor '%s': not a .weight", name);
    snprintf(base, sizeof base, "%.*s", (int)(len - 7), name);
    int64_t N = t->shape[0], K = t->shape[1], G = t->q.group;
    if (t->ndim != 2 || G <= 0 || K % G) return duet_errorf("tensor '%s': not a planar quantized matrix", name);
    int64_t qshape[2] = {N, t->dtype == ST_QU4 ? K / 2 : K}, sshape[2] = {N, K / G};
    snprintf(n, sizeof n, "%s.qweight", base);
    if (st_writer_add(w, n, t->dtype == ST_QU4 ? ST_U8 : ST_I8, 2, qshape, t->data)) return -1;
    snprintf(n, sizeof n, "%s.scales", base);
    if (st_writer_add(w, n, ST_F16, 2, sshape, t->q.scales)) return -1;
    snprintf(n, sizeof n, "%s.zeros", base);
    if (t->q.zeros && st_writer_add(w, n, ST_U8, 2, sshape, t->q.zeros)) return -1;
    return 0;
}

/* Writes the opened model m as an HF folder: config.json, model.safetensors (planar quantized weights
 * in model_planar.c's layout with their duet.weights / duet.group_size metadata; the other tensors in
 * o->type, else as stored when keep_types and safetensors has the type, else F32: GGUF blocks widen
 * exactly), and the tokenizer: an HF source's tokenizer.json / tokenizer_config.json copied, a GGUF
 * source's written from its vocabulary. keep_types also checks the weights read back byte for byte. */
static int write_hf(const duet_model *m, const char *out, const duet_convert_opts *o, int keep_types)
{
    duet_tokenizer *tok = duet_model_tokenizer(m);
    conv_tensor *list = NULL;
    int n = 0, rc = -1;
    char tmp[4200], file[4300];
    st_writer *w = st_writer_new();
    snprintf(tmp, sizeof tmp, "%s.tmp-convert", out);
    if (!tok) {
        duet_error_prefix("%s: the tokenizer: ", m->path);
        goto out;
    }
    remove_tmp_dir(tmp); /* a leftover of an interrupted run */
    if (mkdir(tmp, 0777) != 0) {
        duet_errorf("%s: cannot create folder: %s", tmp, strerror(errno));
        goto out;
    }
    snprintf(file, sizeof file, "%s/config.json", tmp);
    if (!w || duet_config_write(&m->cfg, file) || list_tensors(m, 0, &list, &n) || st_writer_meta(w, "format", "pt"))
        goto fail;
    const duet_qmode_info *qi = duet_qmode_get(m->weights);
    if (qi && (qi->dtype == ST_QI8 || qi->dtype == ST_QU4)) {
        char g[16];
        if (qi->group) snprintf(g, sizeof g, "%d", qi->group);
        else snprintf(g, sizeof g, "row");
        if (st_writer_meta(w, "duet.weights", qi->name) || st_writer_meta(w, "duet.group_size", g)) goto fail;
    }
    for (int i = 0; i < n; i++) {
        const st_tensor *t = list[i].t;
        if (t->dtype == ST_QI8 || t->dtype == ST_QU4) {
            if (!qi || (qi->dtype != ST_QI8 && qi->dtype != ST_QU4) || duet_qmode_of(t) != (int)m->weights) {
                duet_errorf("%s: tensor '%s': planar weights of a mode the model's other weights do not share", m->path,
                            list[i].name);
                goto fail;
            }
            if (add_planar(w, list[i].name, t)) goto fail;
        } else {
            st_dtype to = o->type >= 0 ? (st_dtype)o->type
                          : keep_types && (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) ? t->dtype
                                                                                                         : ST_F32;
            size_t nbytes;
            void *data = tensor_as(t, to, &nbytes); /* q/k: the loader's un-permuted rows, HF order */
            if (!data) goto fail;
            int bad = st_writer_add(w, list[i].name, to, t->ndim, t->shape, data);
            free(data);
            if (bad) goto fail;
        }
        progress(o, list[i].name, i + 1, n);
    }
    progress(o, "writing", 0, 0);
    snprintf(file, sizeof file, "%s/model.safetensors", tmp);
    if (st_writer_save(w, file)) goto fail;
    st_writer_free(w);
    w = NULL;
    progress(o, "tokenizer", 0, 0);
    if (m->gguf) {
        gguf_str tmpl = {0};
        if (gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl) < 0) goto fail;
        if (duet_tokenizer_write_json(tok, tmp, tmpl.s, (size_t)tmpl.len)) goto fail;
    } else if (copy_file(m->path, tmp, "tokenizer.json", 1) || copy_file(m->path, tmp, "tokenizer_config.json", 0)) {
        goto fail;
    }
    progress(o, "checking what was written", 0, 0);
    if (verify(tmp, m, tok, keep_types) || move_into(tmp, out)) goto fail;
    rc = 0;
    goto out;
fail:
    remove_tmp_dir(tmp);
out:
    st_writer_free(w);
    free(list);
    duet_tokenizer_free(tok);
    return rc;
}

int duet_convert_gguf_to_hf(const char *path, const char *out, const duet_convert_opts *o)
{
    if (check_type(o->type) || check_output(out, o->force, 1)) return -1;
    progress(o, "reading the model", 0, 0);
    duet_model *m = duet_model_open(path);
    if (!m) return -1;
    int rc = !m->gguf ? duet_errorf("%s: is a Hugging Face folder, not a GGUF file", path) : write_hf(m, out, o, 0);
    duet_model_close(m);
    return rc;
}

int duet_model_save_gguf(const duet_model *m, const char *out, const duet_convert_opts *o)
{
    if (check_type(o->type) || check_output(out, o->force, 0)) return -1;
    return write_gguf(m, out, o, 1);
}

int duet_model_save_hf(const duet_model *m, const char *out, const duet_convert_opts *o)
{
    if (check_type(o->type) || check_output(out, o->force, 1)) return -1;
    return write_hf(m, out, o, 1);
}

int duet_convert(const char *in, const char *out, const duet_convert_opts *o)
{
    struct stat sb;
    if (stat(in, &sb) != 0) return duet_errorf("%s: no such model file or folder", in);
    if (S_ISDIR(sb.st_mode)) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", in);
        if (access(cfg, R_OK) != 0)
            return duet_errorf("%s: not a model: a folder without config.json (a Hugging Face model folder has "
                               "config.json and *.safetensors)", in);
        return duet_convert_hf_to_gguf(in, out, o);
    }
    char magic[4] = {0};
    FILE *f = fopen(in, "rb");
    size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    if (got != 4 || memcmp(magic, "GGUF", 4))
        return duet_errorf("%s: not a model: neither a GGUF file (no GGUF magic) nor a Hugging Face folder", in);
    return duet_convert_gguf_to_hf(in, out, o);
}
