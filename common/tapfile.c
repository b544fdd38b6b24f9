/* tapfile.c: the tap recorder, golden file I/O and the prefill-with-taps driver (see tapfile.h).
 * sha256 comes from Nettle (Debian nettle-dev), a small library already on every machine we build on. */
#include "tapfile.h"
#include "error.h"
#include "safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

duet_tapfile *duet_tapfile_new(void) { return calloc(1, sizeof(duet_tapfile)); }

void duet_tapfile_free(duet_tapfile *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        free(f->taps[i].name);
        free(f->taps[i].data);
    }
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->taps);
    free(f->meta);
    free(f->error);
    free(f);
}

static void sink_error(duet_tapfile *f, const char *msg, const char *name)
{
    if (f->error) return; /* keep the first */
    size_t n = strlen(msg) + strlen(name) + 16;
    f->error = malloc(n);
    if (f->error) snprintf(f->error, n, "tap '%s': %s", name, msg);
}

void duet_tapfile_sink(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols)
{
    duet_tapfile *f = ctx;
    if (duet_tapfile_find(f, name)) {
        sink_error(f, "reported twice in one run", name);
        return;
    }
    if (rows < 0 || cols < 0) {
        sink_error(f, "negative shape", name);
        return;
    }
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        duet_tap *nt = realloc(f->taps, (size_t)cap * sizeof *nt);
        if (!nt) {
            sink_error(f, "out of memory", name);
            return;
        }
        f->taps = nt;
        f->cap = cap;
    }
    size_t nb; /* rows * cols * 4, checked: a wrapped product would allocate less than is copied and read */
    if (__builtin_mul_overflow((size_t)rows, (size_t)cols, &nb) || __builtin_mul_overflow(nb, sizeof(float), &nb)) {
        sink_error(f, "rows * cols * 4 bytes overflows", name);
        return;
    }
    duet_tap *t = &f->taps[f->n];
    t->name = strdup(name);
    t->data = malloc(nb ? nb : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        sink_error(f, "out of memory", name);
        return;
    }
    memcpy(t->data, data, nb);
    t->rows = rows;
    t->cols = cols;
    f->n++;
}

const duet_tap *duet_tapfile_find(const duet_tapfile *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->taps[i].name, name)) return &f->taps[i];
    return NULL;
}

int duet_tapfile_set_meta(duet_tapfile *f, const char *key, const char *value)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[2 * i], key)) {
            char *v = strdup(value);
            if (!v) return duet_errorf("out of memory");
            free(f->meta[2 * i + 1]);
            f->meta[2 * i + 1] = v;
            return 0;
        }
    char **nm = realloc(f->meta, (size_t)(f->n_meta + 1) * 2 * sizeof *nm);
    if (!nm) return duet_errorf("out of memory");
    f->meta = nm;
    f->meta[2 * f->n_meta] = strdup(key);
    f->meta[2 * f->n_meta + 1] = strdup(value);
    f->n_meta++;
    return f->meta[2 * f->n_meta - 2] && f->meta[2 * f->n_meta - 1] ? 0 : duet_errorf("out of memory");
}

const char *duet_tapfile_meta(const duet_tapfile *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

int duet_tapfile_save(const duet_tapfile *f, const char *path)
{
    if (f->error) return duet_errorf("%s: not written: %s", path, f->error);
    st_writer *w = st_writer_new();
    if (!w) return duet_errorf("out of memory");
    int rc = 0;
    for (int i = 0; !rc && i < f->n_meta; i++) rc = st_writer_meta(w, f->meta[2 * i], f->meta[2 * i + 1]);
    for (int i = 0; !rc && i < f->n; i++) {
        int64_t shape[2] = {f->taps[i].rows, f->taps[i].cols};
        rc = st_writer_add(w, f->taps[i].name, ST_F32, 2, shape, f->taps[i].data);
    }
    if (!rc) rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

/* The metadata keys a tap file may carry (st has no iterator over __metadata__). */
static const char *meta_keys[] = {"model_id", "model_sha256", "model_synth", "token_ids", "mode", "backend",
                                  "threads", "blas", "duet_version", "made_by", "weights", "calibrated", NULL};

duet_tapfile *duet_tapfile_load(const char *path)
{
    st_file *st = st_open(path);
    if (!st) return NULL;
    duet_tapfile *f = duet_tapfile_new();
    if (!f) {
        st_close(st);
        duet_errorf("out of memory");
        return NULL;
    }
    for (int i = 0; i < st_count(st); i++) {
        const st_tensor *t = st_at(st, i);
        if (t->dtype != ST_F32 || t->ndim != 2) {
            duet_errorf("%s: tap '%s': %s with %d dims; a tap file holds 2-D F32 tensors (regenerate it with "
                        "`make golden` or `duet golden`)", path, t->name, st_dtype_name(t->dtype), t->ndim);
            goto fail;
        }
        duet_tapfile_sink(f, t->name, t->data, t->shape[0], t->shape[1]);
        if (f->error) {
            duet_errorf("%s: %s", path, f->error);
            goto fail;
        }
    }
    for (int i = 0; meta_keys[i]; i++) {
        const char *v = st_meta(st, meta_keys[i]);
        if (v && duet_tapfile_set_meta(f, meta_keys[i], v)) goto fail;
    }
    st_close(st);
    return f;
fail:
    st_close(st);
    duet_tapfile_free(f);
    return NULL;
}

char *duet_ids_format(const int *ids, int n)
{
    if (n < 0) return NULL;
    size_t cap = (size_t)n * 12 + 1, k = 0; /* "-2147483648," at most per id; n <= INT_MAX: no wrap */
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) k += (size_t)snprintf(s + k, cap - k, i ? ",%d" : "%d", ids[i]);
    return s;
}

int duet_ids_parse(const char *s, int **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    int cap = 16, k = 0;
    int *v = malloc(sizeof(int) * cap);
    if (!v) return duet_errorf("out of memory");
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    int bracket = *p == '[';
    if (bracket) p++;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (!*p || (bracket && *p == ']')) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > 0x7fffffff || (*end && !isspace((unsigned char)*end) && *end != ',' &&
                                                              *end != ']')) {
            free(v);
            return duet_errorf("token ids: '%.20s' is not a non-negative integer", p);
        }
        if (k == cap) {
            int *nv = realloc(v, sizeof(int) * (cap *= 2));
            if (!nv) {
                free(v);
                return duet_errorf("out of memory");
            }
            v = nv;
        }
        v[k++] = (int)x;
        p = end;
    }
    if (bracket && *p != ']') {
        free(v);
        return duet_errorf("token ids: missing ']'");
    }
    *ids = v;
    *n = k;
    return 0;
}

int duet_sha256_file(const char *path, char hex[65])
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return duet_errorf("%s: cannot open: %s", path, strerror(errno));
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0) sha256_update(&ctx, got, buf);
    int err = ferror(fp);
    fclose(fp);
    if (err) return duet_errorf("%s: read error", path);
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* model_id: the folder's base name (trailing slashes ignored). */
static void base_name(const char *dir, char *out, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && dir[b - 1] != '/') b--;
    snprintf(out, n, "%.*s", (int)(len - b), dir + b);
}

duet_tapfile *duet_tapfile_run(const duet_model *m, duet_backend_create_fn create, const char *backend,
                               const char *mode, int threads, const duet_backend_opts *quant, const int *ids, int n)
{
    if (n <= 0) {
        duet_errorf("empty prompt: no token ids to run");
        return NULL;
    }
    if (n > m->cfg.max_pos) {
        duet_errorf("%s: prompt of %d tokens exceeds max_position_embeddings %d", m->path, n, m->cfg.max_pos);
        return NULL;
    }
    duet_backend_opts opts = {.max_seqs = 1, .max_ctx = n, .dtype = mode, .threads = threads};
    if (quant) opts.kv_mode = quant->kv_mode, opts.kv_scales = quant->kv_scales, opts.w8a8 = quant->w8a8;
    duet_tapfile *f = duet_tapfile_new();
    size_t nlog; /* n * V logits, checked */
    if (__builtin_mul_overflow((size_t)n, (size_t)m->cfg.vocab_size * sizeof(float), &nlog)) {
        duet_errorf("%s: %d tokens of %d logits overflow the logits buffer", m->path, n, m->cfg.vocab_size);
        return NULL;
    }
    int *pos = malloc((size_t)n * sizeof *pos), *seq = calloc((size_t)n, sizeof *seq);
    float *logits = malloc(nlog);
    duet_backend *b = NULL;
    if (!f || !pos || !seq || !logits) {
        duet_errorf("out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) pos[i] = i;
    b = create(backend, m, &opts);
    if (!b) goto fail;
    duet_backend_set_tap(b, duet_tapfile_sink, f);
    duet_batch batch = {.n_tokens = n, .tokens = ids, .pos = pos, .seq = seq, .logits_for = NULL};
    if (b->forward(b, &batch, logits)) goto fail;
    if (f->error) {
        duet_errorf("backend %s: %s", backend, f->error);
        goto fail;
    }
    if (!f->n) {
        duet_errorf("backend %s reported no taps", backend);
        goto fail;
    }
    char buf[4096], hex[65];
    base_name(m->path, buf, sizeof buf);
    duet_tapfile_set_meta(f, "model_id", buf);
    snprintf(buf, sizeof buf, "%s/model.safetensors", m->path);
    st_file *st = st_open(buf);
    if (st) { /* one-file checkpoints: the hash pins the exact weights; synth models say how to remake them */
        if (duet_sha256_file(buf, hex)) {
            st_close(st);
            goto fail;
        }
        duet_tapfile_set_meta(f, "model_sha256", hex);
        if (st_meta(st, "duet_synth")) duet_tapfile_set_meta(f, "model_synth", st_meta(st, "duet_synth"));
        st_close(st);
    }
    char *s = duet_ids_format(ids, n);
    if (!s) {
        duet_errorf("out of memory");
        goto fail;
    }
    duet_tapfile_set_meta(f, "token_ids", s);
    free(s);
    duet_tapfile_set_meta(f, "mode", mode);
    duet_tapfile_set_meta(f, "backend", backend);
    snprintf(buf, sizeof buf, "%d", threads);
    duet_tapfile_set_meta(f, "threads", buf);
    duet_backend_free(b);
    free(pos);
    free(seq);
    free(logits);
    return f;
fail:
    if (b) duet_backend_free(b);
    duet_tapfile_free(f);
    free(pos);
    free(seq);
    free(logits);
    return NULL;
}
