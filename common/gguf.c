/* gguf.c: see gguf.h. The reader maps the file and walks it with a bounds-checked cursor: every read
 * first checks the bytes left, and every count (kv pairs, tensors, array elements) is checked against
 * the smallest number of bytes that many entries could occupy before anything is allocated for them,
 * so an absurd count fails at once with a message instead of a huge malloc. Then the alignment,
 * the tensors' types, dims, offsets and sizes are validated, and keys and tensor names are checked
 * for duplicates (sorted, n log n). The writer serialises each value when it is set, and lays the file
 * out as gguf-py's GGUFWriter does (each tensor's data padded to 32 bytes, the last one too). */
#include "gguf.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* GGML type names by id (ggml.h), for the errors about types duet does not read; NULL: no such id
 * (never assigned, or removed from ggml). */
static const char *const ggml_names[] = {
    "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
    "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
    "I32", "I64", "F64", "IQ1_M", "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0", NULL, NULL, NULL, "MXFP4",
};

static const char *vtype_name(uint32_t t)
{
    static const char *const n[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    return t < sizeof n / sizeof n[0] ? n[t] : "?";
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown types. */
static size_t vtype_size(uint32_t t)
{
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static int vtype_is_int(uint32_t t)
{
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 || t == GGUF_I32 ||
           t == GGUF_U64 || t == GGUF_I64;
}

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;
    uint32_t elem;            /* element type of an ARRAY */
    uint64_t n;               /* element count of an ARRAY */
    const unsigned char *val; /* the value (for an ARRAY, its first element) inside the mapping */
    gguf_str *strs;           /* the items of an ARRAY of STRING */
} gguf_kv;

struct gguf_file {
    char *path;
    void *map;
    size_t size;
    uint32_t version;
    gguf_kv *kv;
    uint64_t n_kv;
    st_tensor *t;
    int n_t;
    uint32_t alignment;
    size_t data_off; /* start of the data section */
};

/* ---- little-endian reads ------------------------------------------------------------------------ */

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

/* The cursor: `pos` bytes of `size` consumed. */
typedef struct cursor {
    const char *path;
    const unsigned char *p;
    size_t pos, size;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

/* Fails unless n more bytes are there; `what` names the field for the message. */
static int need(cursor *c, uint64_t n, const char *what)
{
    if (n > left(c))
        return duet_errorf("%s: truncated: %s at offset %zu needs %llu bytes, %zu left", c->path, what, c->pos,
                           (unsigned long long)n, left(c));
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what)
{
    if (need(c, 4, what)) return -1;
    *v = le32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what)
{
    if (need(c, 8, what)) return -1;
    *v = le64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

static int rd_str(cursor *c, gguf_str *s, const char *what)
{
    uint64_t len;
    if (rd_u64(c, &len, what)) return -1;
    if (len > left(c))
        return duet_errorf("%s: %s: string length %llu at offset %zu runs past the end of the file (%zu bytes left)",
                           c->path, what, (unsigned long long)len, c->pos - 8, left(c));
    s->s = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}

/* ---- opening ------------------------------------------------------------------------------------ */

/* Keys and names in messages: at most 200 bytes of them. */
#define SHOWN(x) (int)((x).len < 200 ? (x).len : 200), (x).s

/* Checks one value of type `type` (not ARRAY) at the cursor and steps over it. */
static int skip_scalar(cursor *c, uint32_t type, const gguf_str *key)
{
    char what[256];
    snprintf(what, sizeof what, "key '%.*s': value", SHOWN(*key));
    if (type == GGUF_STRING) {
        gguf_str s;
        return rd_str(c, &s, what);
    }
    size_t sz = vtype_size(type);
    if (!sz) return duet_errorf("%s: key '%.*s': unknown value type %u", c->path, SHOWN(*key), type);
    if (need(c, sz, what)) return -1;
    if (type == GGUF_BOOL && c->p[c->pos] > 1)
        return duet_errorf("%s: key '%.*s': BOOL value %u is neither 0 nor 1", c->path, SHOWN(*key), c->p[c->pos]);
    c->pos += sz;
    return 0;
}

static int read_kv(cursor *c, gguf_kv *kv, uint64_t i)
{
    char what[256];
    snprintf(what, sizeof what, "key of kv pair %llu", (unsigned long long)i);
    if (rd_str(c, &kv->key, what)) return -1;
    if (!kv->key.len) return duet_errorf("%s: kv pair %llu: empty key", c->path, (unsigned long long)i);
    const gguf_str *k = &kv->key;
    snprintf(what, sizeof what, "key '%.*s': value type", SHOWN(*k));
    if (rd_u32(c, &kv->type, what)) return -1;
    if (kv->type != GGUF_ARRAY) {
        kv->val = c->p + c->pos;
        return skip_scalar(c, kv->type, k);
    }
    snprintf(what, sizeof what, "key '%.*s': array header", SHOWN(*k));
    if (rd_u32(c, &kv->elem, what) || rd_u64(c, &kv->n, what)) return -1;
    kv->val = c->p + c->pos;
    if (kv->elem == GGUF_ARRAY)
        return duet_errorf("%s: key '%.*s': arrays of arrays are not supported", c->path, SHOWN(*k));
    /* the least each element can take: its size, or a string's 8-byte length */
    size_t min = kv->elem == GGUF_STRING ? 8 : vtype_size(kv->elem);
    if (!min) return duet_errorf("%s: key '%.*s': unknown array element type %u", c->path, SHOWN(*k), kv->elem);
    if (kv->n > left(c) / min)
        return duet_errorf("%s: key '%.*s': array length %llu of %s runs past the end of the file (%zu bytes left)",
                           c->path, SHOWN(*k), (unsigned long long)kv->n, vtype_name(kv->elem), left(c));
    if (kv->elem != GGUF_STRING) {
        for (uint64_t j = 0; kv->elem == GGUF_BOOL && j < kv->n; j++)
            if (c->p[c->pos + j] > 1)
                return duet_errorf("%s: key '%.*s': BOOL element %llu is %u, neither 0 nor 1", c->path, SHOWN(*k),
                                   (unsigned long long)j, c->p[c->pos + j]);
        c->pos += (size_t)kv->n * min;
        return 0;
    }
    kv->strs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->strs); /* n <= bytes left / 8 */
    if (!kv->strs)
        return duet_errorf("%s: key '%.*s': out of memory for %llu strings", c->path, SHOWN(*k), (unsigned long long)kv->n);
    for (uint64_t j = 0; j < kv->n; j++) {
        snprintf(what, sizeof what, "key '%.*s': string %llu", SHOWN(*k), (unsigned long long)j);
        if (rd_str(c, &kv->strs[j], what)) return -1;
    }
    return 0;
}

static int cmp_str(const gguf_str *a, const gguf_str *b)
{
    int r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

static int cmp_kv_key(const void *a, const void *b)
{
    return cmp_str(&(*(const gguf_kv *const *)a)->key, &(*(const gguf_kv *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static int cmp_tensor_off(const void *a, const void *b)
{
    const char *x = (*(const st_tensor *const *)a)->data, *y = (*(const st_tensor *const *)b)->data;
    return (x > y) - (x < y);
}

static const gguf_kv *find_kv(const gguf_file *f, const char *key)
{
    size_t len = strlen(key);
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (f->kv[i].key.len == len && !memcmp(f->kv[i].key.s, key, len)) return &f->kv[i];
    return NULL;
}

static int check_duplicate_keys(const gguf_file *f)
{
    if (f->n_kv < 2) return 0;
    const gguf_kv **idx = malloc((size_t)f->n_kv * sizeof *idx);
    if (!idx) return duet_errorf("%s: out of memory", f->path);
    for (uint64_t i = 0; i < f->n_kv; i++) idx[i] = &f->kv[i];
    qsort(idx, (size_t)f->n_kv, sizeof *idx, cmp_kv_key);
    int rc = 0;
    for (uint64_t i = 1; i < f->n_kv && !rc; i++)
        if (!cmp_str(&idx[i - 1]->key, &idx[i]->key))
            rc = duet_errorf("%s: duplicate key '%.*s'", f->path, SHOWN(idx[i]->key));
    free(idx);
    return rc;
}

static int read_alignment(gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = find_kv(f, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_U32)
        return duet_errorf("%s: general.alignment: type %s, expected UINT32", f->path, vtype_name(kv->type));
    uint32_t a = le32(kv->val);
    if (!a || (a & (a - 1)))
        return duet_errorf("%s: general.alignment: %u is not a power of two", f->path, a);
    f->alignment = a;
    return 0;
}

/* One tensor info: name, n_dims, ne[], type, offset (relative to the data section, checked later). */
static int read_tensor_info(cursor *c, st_tensor *t, uint64_t *offset, int i)
{
    char what[256];
    snprintf(what, sizeof what, "name of tensor %d", i);
    gguf_str name;
    if (rd_str(c, &name, what)) return -1;
    if (!name.len) return duet_errorf("%s: tensor %d: empty name", c->path, i);
    if (memchr(name.s, 0, (size_t)name.len)) return duet_errorf("%s: tensor %d: name holds a NUL byte", c->path, i);
    t->name = strndup(name.s, (size_t)name.len);
    if (!t->name) return duet_errorf("%s: out of memory", c->path);
    uint32_t ndims, type;
    snprintf(what, sizeof what, "tensor '%.*s': info", SHOWN(name));
    if (rd_u32(c, &ndims, what)) return -1;
    if (ndims > GGUF_MAX_DIMS)
        return duet_errorf("%s: tensor '%s': n_dims %u, at most %d", c->path, t->name, ndims, GGUF_MAX_DIMS);
    t->ndim = (int)ndims;
    t->numel = 1;
    for (uint32_t d = 0; d < ndims; d++) {
        uint64_t ne;
        if (rd_u64(c, &ne, what)) return -1;
        if (ne == 0) return duet_errorf("%s: tensor '%s': ne[%u] is 0", c->path, t->name, d);
        if (ne > (uint64_t)INT64_MAX / (uint64_t)t->numel)
            return duet_errorf("%s: tensor '%s': dims product overflows at ne[%u] = %llu", c->path, t->name, d,
                               (unsigned long long)ne);
        t->numel *= (int64_t)ne;
        t->shape[ndims - 1 - d] = (int64_t)ne; /* row-major: GGUF's ne[] reversed */
    }
    if (rd_u32(c, &type, what) || rd_u64(c, offset, what)) return -1;
    int dt = st_dtype_from_ggml(type);
    if (dt < 0) {
        const char *tn = type < sizeof ggml_names / sizeof ggml_names[0] ? ggml_names[type] : NULL;
        if (tn) return duet_errorf("%s: tensor '%s': GGML type %s (%u) is not supported", c->path, t->name, tn, type);
        return duet_errorf("%s: tensor '%s': unknown GGML type id %u", c->path, t->name, type);
    }
    t->dtype = (st_dtype)dt;
    const st_dtype_traits *tr = st_dtype_info(t->dtype);
    int64_t inner = ndims ? t->shape[ndims - 1] : 1;
    if (inner % tr->block)
        return duet_errorf("%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %d", c->path,
                           t->name, (long long)inner, tr->name, tr->block);
    t->nbytes = st_dtype_bytes(t->dtype, t->numel);
    if (!t->nbytes) return duet_errorf("%s: tensor '%s': %lld elements of %s overflow the address space", c->path,
                                       t->name, (long long)t->numel, tr->name);
    t->file = c->path;
    return 0;
}

/* Offsets: aligned, inside the data section; then no two tensors overlap. */
static int check_tensors(gguf_file *f, const uint64_t *offs)
{
    size_t data_size = f->size - f->data_off;
    for (int i = 0; i < f->n_t; i++) {
        st_tensor *t = &f->t[i];
        if (offs[i] % f->alignment)
            return duet_errorf("%s: tensor '%s': offset %llu is not a multiple of the alignment %u", f->path, t->name,
                               (unsigned long long)offs[i], f->alignment);
        if (offs[i] > data_size || t->nbytes > data_size - offs[i])
            return duet_errorf("%s: tensor '%s': bytes [%llu, %llu + %zu) run past the end of the data section "
                               "(%zu bytes): truncated file?",
                               f->path, t->name, (unsigned long long)offs[i], (unsigned long long)offs[i], t->nbytes,
                               data_size);
        t->data = (const char *)f->map + f->data_off + offs[i];
    }
    if (f->n_t < 2) return 0;
    const st_tensor **idx = malloc((size_t)f->n_t * sizeof *idx);
    if (!idx) return duet_errorf("%s: out of memory", f->path);
    for (int i = 0; i < f->n_t; i++) idx[i] = &f->t[i];
    int rc = 0;
    qsort(idx, (size_t)f->n_t, sizeof *idx, cmp_tensor_name);
    for (int i = 1; i < f->n_t && !rc; i++)
        if (!strcmp(idx[i - 1]->name, idx[i]->name)) rc = duet_errorf("%s: duplicate tensor '%s'", f->path, idx[i]->name);
    qsort(idx, (size_t)f->n_t, sizeof *idx, cmp_tensor_off);
    for (int i = 1; i < f->n_t && !rc; i++)
        if ((const char *)idx[i - 1]->data + idx[i - 1]->nbytes > (const char *)idx[i]->data)
            rc = duet_errorf("%s: tensors '%s' and '%s' overlap in the data section", f->path, idx[i - 1]->name,
                             idx[i]->name);
    free(idx);
    return rc;
}

static int parse(gguf_file *f)
{
    cursor c = {f->path, f->map, 0, f->size};
    if (f->size < 4 || memcmp(f->map, "GGUF", 4)) {
        if (f->size < 4) return duet_errorf("%s: truncated: %zu bytes, not even the magic 'GGUF'", f->path, f->size);
        const unsigned char *m = f->map;
        return duet_errorf("%s: bad magic %02x %02x %02x %02x (expected 'GGUF'): not a GGUF file", f->path, m[0], m[1],
                           m[2], m[3]);
    }
    c.pos = 4;
    uint64_t n_t, n_kv;
    if (rd_u32(&c, &f->version, "version")) return -1;
    if (f->version == 1)
        return duet_errorf("%s: GGUF version 1 is not supported (only versions 2 and 3; re-convert the model)", f->path);
    if (f->version != 2 && f->version != 3)
        return duet_errorf("%s: unsupported GGUF version %u (%s)", f->path, f->version,
                           (f->version & 0xffff) == 0 ? "a big-endian file?" : "duet reads versions 2 and 3");
    if (rd_u64(&c, &n_t, "tensor count") || rd_u64(&c, &n_kv, "kv count")) return -1;
    /* the least a kv pair takes: key length 8 + 1 byte of key + type 4 + 1 byte of value; a tensor
     * info: name length 8 + 1 byte of name + n_dims 4 + type 4 + offset 8 */
    if (n_kv > left(&c) / 14 || n_kv > INT_MAX)
        return duet_errorf("%s: kv count %llu is more than the file's %zu remaining bytes can hold", f->path,
                           (unsigned long long)n_kv, left(&c));
    if (n_t > left(&c) / 25 || n_t > INT_MAX)
        return duet_errorf("%s: tensor count %llu is more than the file's %zu remaining bytes can hold", f->path,
                           (unsigned long long)n_t, left(&c));
    f->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *f->kv);
    f->t = calloc((size_t)(n_t ? n_t : 1), sizeof *f->t);
    if (!f->kv || !f->t) return duet_errorf("%s: out of memory", f->path);
    for (uint64_t i = 0; i < n_kv; i++) {
        f->n_kv = i + 1; /* so that close frees what is read so far */
        if (read_kv(&c, &f->kv[i], i)) return -1;
    }
    if (check_duplicate_keys(f) || read_alignment(f)) return -1;
    uint64_t *offs = calloc((size_t)(n_t ? n_t : 1), sizeof *offs);
    if (!offs) return duet_errorf("%s: out of memory", f->path);
    for (uint64_t i = 0; i < n_t; i++) {
        f->n_t = (int)i + 1;
        if (read_tensor_info(&c, &f->t[i], &offs[i], (int)i)) {
            free(offs);
            return -1;
        }
    }
    /* the data section starts at the next multiple of the alignment (a file without tensors may end
     * before the padding) */
    size_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    if (n_t && need(&c, pad, "padding before the data section")) {
        free(offs);
        return -1;
    }
    f->data_off = pad <= left(&c) ? c.pos + pad : f->size;
    int rc = check_tensors(f, offs);
    free(offs);
    return rc;
}

gguf_file *gguf_open(const char *path)
{
    gguf_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        duet_errorf("%s: out of memory", path);
        return NULL;
    }
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
    if (f->size) {
        f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            close(fd);
            duet_errorf("%s: mmap failed: %s", path, strerror(errno));
            goto fail;
        }
    }
    close(fd);
    if (!f->map) {
        duet_errorf("%s: truncated: empty file, not even the magic 'GGUF'", path);
        goto fail;
    }
    if (parse(f)) goto fail;
    return f;
fail:
    gguf_close(f);
    return NULL;
}

void gguf_close(gguf_file *f)
{
    if (!f) return;
    for (uint64_t i = 0; f->kv && i < f->n_kv; i++) free(f->kv[i].strs);
    for (int i = 0; f->t && i < f->n_t; i++) free(f->t[i].name);
    free(f->kv);
    free(f->t);
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    free(f);
}

const char *gguf_path(const gguf_file *f) { return f->path; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }

/* ---- metadata ----------------------------------------------------------------------------------- */

int gguf_n_kv(const gguf_file *f) { return (int)f->n_kv; }

int gguf_kv_at(const gguf_file *f, int i, gguf_str *key, gguf_vtype *type, gguf_vtype *elem, uint64_t *n)
{
    if (i < 0 || (uint64_t)i >= f->n_kv) return duet_errorf("%s: kv index %d out of range", f->path, i);
    const gguf_kv *kv = &f->kv[i];
    if (key) *key = kv->key;
    if (type) *type = (gguf_vtype)kv->type;
    if (elem) *elem = (gguf_vtype)(kv->type == GGUF_ARRAY ? kv->elem : kv->type);
    if (n) *n = kv->type == GGUF_ARRAY ? kv->n : 1;
    return 0;
}

int gguf_has_key(const gguf_file *f, const char *key) { return find_kv(f, key) != NULL; }

int gguf_key_type(const gguf_file *f, const char *key, gguf_vtype *type, gguf_vtype *elem, uint64_t *n)
{
    const gguf_kv *kv = find_kv(f, key);
    return kv ? gguf_kv_at(f, (int)(kv - f->kv), NULL, type, elem, n) : 1;
}

static int wrong_type(const gguf_file *f, const char *key, const gguf_kv *kv, const char *want)
{
    if (kv->type == GGUF_ARRAY)
        return duet_errorf("%s: key '%s': ARRAY of %s, expected %s", f->path, key, vtype_name(kv->elem), want);
    return duet_errorf("%s: key '%s': %s, expected %s", f->path, key, vtype_name(kv->type), want);
}

/* One integer of type t at p; 0, or -1 when a UINT64 does not fit int64. */
static int int_at(uint32_t t, const unsigned char *p, int64_t *v)
{
    switch (t) {
    case GGUF_U8: *v = p[0]; return 0;
    case GGUF_I8: *v = (int8_t)p[0]; return 0;
    case GGUF_U16: *v = le16(p); return 0;
    case GGUF_I16: *v = (int16_t)le16(p); return 0;
    case GGUF_U32: *v = le32(p); return 0;
    case GGUF_I32: *v = (int32_t)le32(p); return 0;
    case GGUF_I64: *v = (int64_t)le64(p); return 0;
    case GGUF_U64: {
        uint64_t u = le64(p);
        if (u > INT64_MAX) return -1;
        *v = (int64_t)u;
        return 0;
    }
    default: return -1;
    }
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (!vtype_is_int(kv->type)) return wrong_type(f, key, kv, "an integer");
    if (int_at(kv->type, kv->val, out))
        return duet_errorf("%s: key '%s': UINT64 %llu does not fit int64", f->path, key,
                           (unsigned long long)le64(kv->val));
    return 0;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (kv->type == GGUF_F32) {
        uint32_t b = le32(kv->val);
        float x;
        memcpy(&x, &b, 4);
        *out = x;
    } else if (kv->type == GGUF_F64) {
        uint64_t b = le64(kv->val);
        memcpy(out, &b, 8);
    } else {
        return wrong_type(f, key, kv, "FLOAT32 or FLOAT64");
    }
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_BOOL) return wrong_type(f, key, kv, "BOOL");
    *out = kv->val[0];
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_STRING) return wrong_type(f, key, kv, "STRING");
    out->len = le64(kv->val);
    out->s = (const char *)kv->val + 8;
    return 0;
}

int gguf_get_str_arr(const gguf_file *f, const char *key, const gguf_str **items, uint64_t *n)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_ARRAY || kv->elem != GGUF_STRING) return wrong_type(f, key, kv, "ARRAY of STRING");
    *items = kv->strs;
    *n = kv->n;
    return 0;
}

int gguf_get_int_arr(const gguf_file *f, const char *key, int64_t **out, uint64_t *n)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_ARRAY || !vtype_is_int(kv->elem)) return wrong_type(f, key, kv, "ARRAY of integers");
    int64_t *v = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *v); /* n was checked against the file size */
    if (!v) return duet_errorf("%s: key '%s': out of memory for %llu integers", f->path, key, (unsigned long long)kv->n);
    size_t sz = vtype_size(kv->elem);
    for (uint64_t i = 0; i < kv->n; i++)
        if (int_at(kv->elem, kv->val + i * sz, &v[i])) {
            free(v);
            return duet_errorf("%s: key '%s': element %llu (UINT64 %llu) does not fit int64", f->path, key,
                               (unsigned long long)i, (unsigned long long)le64(kv->val + i * sz));
        }
    *out = v;
    *n = kv->n;
    return 0;
}

int gguf_get_f32_arr(const gguf_file *f, const char *key, float **out, uint64_t *n)
{
    const gguf_kv *kv = find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_ARRAY || kv->elem != GGUF_F32) return wrong_type(f, key, kv, "ARRAY of FLOAT32");
    float *v = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *v);
    if (!v) return duet_errorf("%s: key '%s': out of memory for %llu floats", f->path, key, (unsigned long long)kv->n);
    for (uint64_t i = 0; i < kv->n; i++) {
        uint32_t b = le32(kv->val + 4 * i);
        memcpy(&v[i], &b, 4);
    }
    *out = v;
    *n = kv->n;
    return 0;
}

/* ---- tensors ------------------------------------------------------------------------------------ */

int gguf_n_tensors(const gguf_file *f) { return f->n_t; }
const st_tensor *gguf_tensor_at(const gguf_file *f, int i) { return i >= 0 && i < f->n_t ? &f->t[i] : NULL; }

const st_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    for (int i = 0; i < f->n_t; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------------------------------- */

typedef struct wkv {
    char *key;
    size_t key_len;
    unsigned char *val; /* value type (u32) and the value, serialised */
    size_t len;
} wkv;

typedef struct wtensor {
    char *name;
    st_dtype type;
    int ndim;
    int64_t shape[GGUF_MAX_DIMS]; /* row-major */
    void *data;
    size_t nbytes;
} wtensor;

struct gguf_writer {
    wkv *kv;
    int n_kv, cap_kv;
    wtensor *t;
    int n_t, cap_t;
};

/* A growable byte buffer for one value. */
typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_le(wbuf *b, uint64_t v, int bytes)
{
    unsigned char x[8];
    for (int i = 0; i < bytes; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, (size_t)bytes);
}

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

/* Takes the serialised value in b (freed on error). */
static int add_kv(gguf_writer *w, const char *key, wbuf *b)
{
    size_t klen = strlen(key);
    int rc = 0;
    if (!klen) rc = duet_errorf("gguf writer: empty key");
    for (int i = 0; !rc && i < w->n_kv; i++)
        if (w->kv[i].key_len == klen && !memcmp(w->kv[i].key, key, klen)) rc = duet_errorf("gguf writer: key '%s' set twice", key);
    if (!rc && b->oom) rc = duet_errorf("gguf writer: key '%s': out of memory", key);
    if (!rc && w->n_kv == w->cap_kv) {
        int cap = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv *nk = realloc(w->kv, (size_t)cap * sizeof *nk);
        if (!nk) rc = duet_errorf("gguf writer: out of memory");
        else {
            w->kv = nk;
            w->cap_kv = cap;
        }
    }
    char *k = rc ? NULL : strdup(key);
    if (!rc && !k) rc = duet_errorf("gguf writer: out of memory");
    if (rc) {
        free(b->p);
        return rc;
    }
    w->kv[w->n_kv++] = (wkv){k, klen, b->p, b->len};
    return 0;
}

static void put_scalar(wbuf *b, gguf_vtype t, const void *v)
{
    size_t sz = vtype_size(t);
    uint64_t x = 0;
    switch (sz) {
    case 1: x = *(const uint8_t *)v; break;
    case 2: x = *(const uint16_t *)v; break;
    case 4: x = *(const uint32_t *)v; break;
    case 8: x = *(const uint64_t *)v; break;
    }
    put_le(b, x, (int)sz);
}

int gguf_writer_set(gguf_writer *w, const char *key, gguf_vtype type, const void *v)
{
    if (!vtype_size(type)) return duet_errorf("gguf writer: key '%s': type %s is not a fixed-size scalar", key, vtype_name(type));
    if (type == GGUF_BOOL && *(const uint8_t *)v > 1) return duet_errorf("gguf writer: key '%s': BOOL must be 0 or 1", key);
    wbuf b = {0};
    put_le(&b, type, 4);
    put_scalar(&b, type, v);
    return add_kv(w, key, &b);
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype type, const void *v, uint64_t n)
{
    size_t sz = vtype_size(type);
    if (!sz) return duet_errorf("gguf writer: key '%s': array type %s is not a fixed-size scalar", key, vtype_name(type));
    if (n > SIZE_MAX / 8) return duet_errorf("gguf writer: key '%s': array length %llu", key, (unsigned long long)n);
    wbuf b = {0};
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, type, 4);
    put_le(&b, n, 8);
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *e = (const unsigned char *)v + i * sz;
        if (type == GGUF_BOOL && *e > 1) {
            free(b.p);
            return duet_errorf("gguf writer: key '%s': BOOL element %llu must be 0 or 1", key, (unsigned long long)i);
        }
        put_scalar(&b, type, e);
    }
    return add_kv(w, key, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { return gguf_writer_set(w, key, GGUF_U32, &v); }
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { return gguf_writer_set(w, key, GGUF_I32, &v); }
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { return gguf_writer_set(w, key, GGUF_F32, &v); }

int gguf_writer_set_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return gguf_writer_set(w, key, GGUF_BOOL, &b);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, size_t len)
{
    wbuf b = {0};
    put_le(&b, GGUF_STRING, 4);
    put_le(&b, len, 8);
    put(&b, s, len);
    return add_kv(w, key, &b);
}

int gguf_writer_set_str_arr(gguf_writer *w, const char *key, const char *const *s, const size_t *len, uint64_t n)
{
    wbuf b = {0};
    put_le(&b, GGUF_ARRAY, 4);
    put_le(&b, GGUF_STRING, 4);
    put_le(&b, n, 8);
    for (uint64_t i = 0; i < n; i++) {
        size_t l = len ? len[i] : strlen(s[i]);
        put_le(&b, l, 8);
        put(&b, s[i], l);
    }
    return add_kv(w, key, &b);
}

int gguf_writer_set_i32_arr(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    return gguf_writer_set_arr(w, key, GGUF_I32, v, n);
}

int gguf_writer_set_f32_arr(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    return gguf_writer_set_arr(w, key, GGUF_F32, v, n);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, st_dtype type, int ndim, const int64_t *shape,
                           const void *data)
{
    const st_dtype_traits *tr = st_dtype_info(type);
    if (!name || !*name) return duet_errorf("gguf writer: tensor with an empty name");
    if (!tr || tr->ggml_type < 0)
        return duet_errorf("gguf writer: tensor '%s': dtype %s has no GGML type", name, st_dtype_name(type));
    if (ndim < 0 || ndim > GGUF_MAX_DIMS)
        return duet_errorf("gguf writer: tensor '%s': %d dims, at most %d", name, ndim, GGUF_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0 || numel > INT64_MAX / shape[d])
            return duet_errorf("gguf writer: tensor '%s': shape[%d] = %lld is not positive or overflows", name, d,
                               (long long)shape[d]);
        numel *= shape[d];
    }
    if ((ndim ? shape[ndim - 1] : 1) % tr->block)
        return duet_errorf("gguf writer: tensor '%s': innermost dim %lld is not a multiple of the %s block size %d",
                           name, (long long)(ndim ? shape[ndim - 1] : 1), tr->name, tr->block);
    size_t nbytes = st_dtype_bytes(type, numel);
    if (!nbytes) return duet_errorf("gguf writer: tensor '%s': %lld elements overflow", name, (long long)numel);
    for (int i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return duet_errorf("gguf writer: tensor '%s' added twice", name);
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return duet_errorf("gguf writer: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return duet_errorf("gguf writer: tensor '%s': out of memory for %zu bytes", name, nbytes);
    }
    memcpy(t->data, data, nbytes);
    t->type = type;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = nbytes;
    w->n_t++;
    return 0;
}

static size_t align_up(size_t x) { return (x + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT; }

int gguf_writer_save(gguf_writer *w, const char *path)
{
    /* the header, kv pairs and tensor infos in one buffer; then each tensor's data, 32-aligned */
    wbuf b = {0};
    put(&b, "GGUF", 4);
    put_le(&b, 3, 4);
    put_le(&b, (uint64_t)w->n_t, 8);
    put_le(&b, (uint64_t)w->n_kv, 8);
    for (int i = 0; i < w->n_kv; i++) {
        put_le(&b, w->kv[i].key_len, 8);
        put(&b, w->kv[i].key, w->kv[i].key_len);
        put(&b, w->kv[i].val, w->kv[i].len);
    }
    size_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        put_le(&b, nl, 8);
        put(&b, t->name, nl);
        put_le(&b, (uint64_t)t->ndim, 4);
        for (int d = t->ndim - 1; d >= 0; d--) put_le(&b, (uint64_t)t->shape[d], 8); /* ne[]: innermost first */
        put_le(&b, (uint64_t)st_dtype_info(t->type)->ggml_type, 4);
        put_le(&b, off, 8);
        off = align_up(off + t->nbytes);
    }
    static const unsigned char zeros[GGUF_DEFAULT_ALIGNMENT];
    put(&b, zeros, align_up(b.len) - b.len);
    if (b.oom) {
        free(b.p);
        return duet_errorf("%s: out of memory", path);
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(b.p);
        return duet_errorf("%s: cannot create: %s", path, strerror(errno));
    }
    int ok = fwrite(b.p, 1, b.len, fp) == b.len;
    free(b.p);
    for (int i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t pad = align_up(t->nbytes) - t->nbytes;
        ok = fwrite(t->data, 1, t->nbytes, fp) == t->nbytes && fwrite(zeros, 1, pad, fp) == pad; /* as gguf-py, after the last too */
    }
    if (fclose(fp) != 0 || !ok) return duet_errorf("%s: write failed: %s", path, strerror(errno));
    return 0;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (int i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}
