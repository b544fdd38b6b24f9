/* safetensors.c: see safetensors.h. The header is parsed with jansson; every entry's dtype, shape and
 * data_offsets are checked against the file size before a pointer into the mapping is handed out. */
#include "safetensors.h"
#include "error.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20) /* the format's own limit on the JSON header: 100 MB */

struct st_file {
    char *path;
    void *map;
    size_t size;
    st_tensor *tensors;
    int n;
    json_t *meta; /* __metadata__ object or NULL */
};

size_t st_dtype_size(st_dtype t)
{
    const st_dtype_traits *tr = st_dtype_info(t);
    return tr && tr->block == 1 ? (size_t)tr->block_bytes : 0;
}

/* A safetensors dtype by name; the GGUF block types (Q4_1, ...) have no safetensors spelling. */
static int parse_dtype(const char *s, st_dtype *t)
{
    int d = st_dtype_from_name(s);
    if (d < 0 || !st_dtype_info((st_dtype)d)->in_safetensors) return -1;
    *t = (st_dtype)d;
    return 0;
}

/* Data order: by begin, then by end (an empty tensor sorts before a non-empty one at the same offset). */
static int cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* The format requires the tensors (sorted by offset) to tile the data section exactly: each begins
 * where the one before ends, the first at 0, the last ends at the end of the file ("the byte buffer needs
 * to be entirely indexed, and cannot contain holes"). A header length off by a byte shifts every tensor
 * and shows up here as a leading or trailing byte nobody owns. */
static int check_coverage(const char *path, const st_tensor *t, int n, const char *base, size_t data_size)
{
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)((const char *)t[i].data - base);
        if (b < at)
            return duet_errorf("%s: tensors '%s' and '%s' overlap in the data section", path, t[i - 1].name, t[i].name);
        if (b > at)
            return duet_errorf("%s: data section bytes [%zu, %zu) before tensor '%s' belong to no tensor (a hole; "
                               "wrong header length?)", path, at, b, t[i].name);
        at = b + t[i].nbytes;
    }
    if (at != data_size)
        return duet_errorf("%s: the tensors cover %zu bytes of the %zu-byte data section; the rest belongs to no "
                           "tensor (trailing bytes or a wrong header length)", path, at, data_size);
    return 0;
}

/* Validates one header entry and fills t; `base`/`data_size` describe the data section. */
static int parse_entry(const char *path, const char *name, json_t *e, const char *base, size_t data_size, st_tensor *t)
{
    if (!json_is_object(e)) return duet_errorf("%s: tensor '%s': header entry is not an object", path, name);
    if (parse_dtype(json_string_value(json_object_get(e, "dtype")), &t->dtype))
        return duet_errorf("%s: tensor '%s': unknown or missing dtype '%s'", path, name,
                           json_string_value(json_object_get(e, "dtype")) ? json_string_value(json_object_get(e, "dtype")) : "(none)");
    json_t *shape = json_object_get(e, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS)
        return duet_errorf("%s: tensor '%s': 'shape' must be an array of at most %d integers", path, name, ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *v = json_array_get(shape, d);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > ((int64_t)1 << 40))
            return duet_errorf("%s: tensor '%s': shape[%d] is not a valid size", path, name, d);
        t->shape[d] = json_integer_value(v);
        if (t->shape[d] && t->numel > INT64_MAX / t->shape[d])
            return duet_errorf("%s: tensor '%s': shape overflows", path, name);
        t->numel *= t->shape[d];
    }
    json_t *off = json_object_get(e, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1)))
        return duet_errorf("%s: tensor '%s': 'data_offsets' must be [begin, end]", path, name);
    json_int_t b = json_integer_value(json_array_get(off, 0)), end = json_integer_value(json_array_get(off, 1));
    if (b < 0 || end < b || (uint64_t)end > data_size)
        return duet_errorf("%s: tensor '%s': data_offsets [%lld, %lld] out of range (data section is %zu bytes)",
                           path, name, (long long)b, (long long)end, data_size);
    size_t want = st_dtype_bytes(t->dtype, t->numel); /* 0 when numel * size overflows (2^62 F32 would wrap) */
    if (!want && t->numel)
        return duet_errorf("%s: tensor '%s': %lld elements of dtype %s overflow the byte count", path, name,
                           (long long)t->numel, st_dtype_name(t->dtype));
    if ((size_t)(end - b) != want)
        return duet_errorf("%s: tensor '%s': %lld bytes for dtype %s shape of %lld elements (expected %zu bytes)",
                           path, name, (long long)(end - b), st_dtype_name(t->dtype), (long long)t->numel, want);
    t->name = strdup(name);
    t->data = base + b;
    t->nbytes = want;
    t->file = path;
    return t->name ? 0 : duet_errorf("out of memory");
}

st_file *st_open(const char *path)
{
    st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = strdup(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        duet_errorf("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        duet_errorf("%s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        duet_errorf("%s: truncated: %zu bytes, shorter than the 8-byte header length", path, f->size);
        goto fail;
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        duet_errorf("%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > f->size - 8) {
        duet_errorf("%s: header length %llu runs past the end of the file (%zu bytes): truncated or not safetensors",
                    path, (unsigned long long)hlen, f->size);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        duet_errorf("%s: header length %llu exceeds the format's 100 MB limit", path, (unsigned long long)hlen);
        goto fail;
    }
    json_error_t jerr;
    json_t *hdr = json_loadb((const char *)p + 8, (size_t)hlen, 0, &jerr);
    if (!hdr || !json_is_object(hdr)) {
        duet_errorf("%s: header is not a JSON object (%s)", path, hdr ? "wrong type" : jerr.text);
        json_decref(hdr);
        goto fail;
    }
    const char *base = (const char *)p + 8 + hlen;
    size_t data_size = f->size - 8 - (size_t)hlen;
    f->tensors = calloc(json_object_size(hdr) + 1, sizeof *f->tensors);
    if (!f->tensors) {
        duet_errorf("%s: out of memory for %zu header entries", path, json_object_size(hdr));
        json_decref(hdr);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(hdr, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                duet_errorf("%s: __metadata__ must be an object of strings", path);
                json_decref(hdr);
                goto fail;
            }
            f->meta = json_incref(val);
            continue;
        }
        if (parse_entry(f->path, key, val, base, data_size, &f->tensors[f->n])) {
            json_decref(hdr);
            goto fail;
        }
        f->n++;
    }
    json_decref(hdr);
    qsort(f->tensors, f->n, sizeof *f->tensors, cmp_offset);
    if (check_coverage(path, f->tensors, f->n, base, data_size)) goto fail;
    return f;
fail:
    st_close(f);
    return NULL;
}

void st_close(st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->size);
    json_decref(f->meta);
    free(f->path);
    free(f);
}

int st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->tensors[i] : NULL; }
const char *st_path(const st_file *f) { return f->path; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    return f->meta ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

/* ---- sharded sets ------------------------------------------------------------------------------- */

struct st_set {
    st_file **files;
    int n;
};

static int set_add(st_set *s, const char *path)
{
    st_file *f = st_open(path);
    if (!f) return -1;
    st_file **nf = realloc(s->files, (s->n + 1) * sizeof *nf);
    if (!nf) {
        st_close(f);
        return duet_errorf("out of memory");
    }
    s->files = nf;
    s->files[s->n++] = f;
    return 0;
}

st_set *st_set_open(const char *dir)
{
    char path[4096];
    struct stat st;
    st_set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &st) == 0) {
        json_error_t jerr;
        json_t *idx = json_load_file(path, 0, &jerr);
        json_t *map = idx ? json_object_get(idx, "weight_map") : NULL;
        if (!idx || !json_is_object(map)) {
            duet_errorf("%s: %s", path, idx ? "missing object 'weight_map'" : jerr.text);
            json_decref(idx);
            goto fail;
        }
        const char *name;
        json_t *v;
        json_object_foreach(map, name, v) {
            const char *shard = json_string_value(v);
            if (!shard || strchr(shard, '/')) {
                duet_errorf("%s: weight_map['%s'] must be a file name in the same folder", path, name);
                json_decref(idx);
                goto fail;
            }
            char spath[4096];
            snprintf(spath, sizeof spath, "%s/%s", dir, shard);
            int have = 0;
            for (int i = 0; i < s->n; i++)
                if (!strcmp(st_path(s->files[i]), spath)) have = 1;
            if (!have && set_add(s, spath)) {
                duet_error_prefix("%s: shard of weight '%s': ", path, name);
                json_decref(idx);
                goto fail;
            }
            if (!st_set_find(s, name)) {
                duet_errorf("%s: weight_map names '%s' in %s, which does not hold it", path, name, shard);
                json_decref(idx);
                goto fail;
            }
        }
        json_decref(idx);
        return s;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &st) != 0) {
        duet_errorf("%s: no model.safetensors or model.safetensors.index.json", dir);
        goto fail;
    }
    if (set_add(s, path)) goto fail;
    return s;
fail:
    st_set_close(s);
    return NULL;
}

void st_set_close(st_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) st_close(s->files[i]);
    free(s->files);
    free(s);
}

int st_set_nfiles(const st_set *s) { return s->n; }
const st_file *st_set_file(const st_set *s, int i) { return i >= 0 && i < s->n ? s->files[i] : NULL; }

const st_tensor *st_set_find(const st_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++) {
        const st_tensor *t = st_find(s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

/* ---- checks and conversion ---------------------------------------------------------------------- */

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int st_check_shape(const st_tensor *t, int ndim, const int64_t *shape)
{
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (ok) return 0;
    char got[128], want[128];
    shape_str(got, sizeof got, t->ndim, t->shape);
    shape_str(want, sizeof want, ndim, shape);
    return duet_errorf("%s: tensor '%s': shape %s, expected %s", t->file, t->name, got, want);
}

int st_to_f32(const st_tensor *t, float *out)
{
    if (t->dtype == ST_QI8 || t->dtype == ST_QU4) { /* planar codes: the scales are the tensor's q (quant.h) */
        duet_qweight w;
        if (duet_qweight_from_tensor(t, &w)) return -1;
        duet_qweight_to_f32(&w, out);
        duet_qweight_free(&w);
        return 0;
    }
    const st_dtype_traits *tr = st_dtype_info(t->dtype);
    if (!tr || !tr->to_f32)
        return duet_errorf("%s: tensor '%s': dtype %s cannot be read as floats (need a float or quantized type)",
                           t->file, t->name, st_dtype_name(t->dtype));
    if (t->numel % tr->block || st_dtype_bytes(t->dtype, t->numel) != t->nbytes)
        return duet_errorf("%s: tensor '%s': %lld elements in %zu bytes do not fit dtype %s", t->file, t->name,
                           (long long)t->numel, t->nbytes, tr->name);
    tr->to_f32(t->data, out, t->numel);
    return 0;
}

/* ---- writer ------------------------------------------------------------------------------------- */

struct st_writer {
    st_tensor *t;
    int n, cap;
    json_t *meta;
};

st_writer *st_writer_new(void)
{
    st_writer *w = calloc(1, sizeof *w);
    if (w) w->meta = json_object();
    return w;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    if (ndim < 0 || ndim > ST_MAX_DIMS) return duet_errorf("tensor '%s': %d dims, at most %d", name, ndim, ST_MAX_DIMS);
    if (!st_dtype_info(dtype) || !st_dtype_info(dtype)->in_safetensors)
        return duet_errorf("tensor '%s': dtype %s has no safetensors form", name, st_dtype_name(dtype));
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return duet_errorf("tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) return duet_errorf("out of memory");
        w->t = nt;
        w->cap = cap;
    }
    st_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        if (shape[d] < 0 || __builtin_mul_overflow(t->numel, shape[d], &t->numel))
            return duet_errorf("tensor '%s': shape[%d] = %lld is negative or overflows the element count", name, d,
                               (long long)shape[d]);
    }
    t->nbytes = st_dtype_bytes(dtype, t->numel);
    if (!t->nbytes && t->numel) return duet_errorf("tensor '%s': %lld elements overflow the byte count", name, (long long)t->numel);
    void *copy = malloc(t->nbytes ? t->nbytes : 1);
    t->name = strdup(name);
    if (!copy || !t->name) {
        free(copy);
        free(t->name);
        return duet_errorf("out of memory copying tensor '%s' (%zu bytes)", name, t->nbytes);
    }
    memcpy(copy, data, t->nbytes);
    t->data = copy;
    w->n++;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *value)
{
    return json_object_set_new(w->meta, key, json_string(value)) ? duet_errorf("bad metadata '%s'", key) : 0;
}

int st_writer_save(st_writer *w, const char *path)
{
    json_t *hdr = json_object();
    if (json_object_size(w->meta)) json_object_set(hdr, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_tensor *t = &w->t[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(hdr, t->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(t->dtype), "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(hdr);
    if (!text) return duet_errorf("%s: cannot serialise header", path);
    size_t hlen = strlen(text), padded = (hlen + 7) & ~(size_t)7; /* data starts 8-byte aligned */
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(text);
        return duet_errorf("%s: cannot create: %s", path, strerror(errno));
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len, 1, 8, fp) == 8 && fwrite(text, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < w->n; i++) ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, fp) == w->t[i].nbytes;
    free(text);
    if (fclose(fp) != 0 || !ok) return duet_errorf("%s: write failed: %s", path, strerror(errno));
    return 0;
}

void st_writer_free(st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free((void *)w->t[i].data);
    }
    free(w->t);
    json_decref(w->meta);
    free(w);
}
