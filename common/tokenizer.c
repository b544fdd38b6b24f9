/* tokenizer.c: loading tokenizer.json / tokenizer_config.json into the tables of tokenizer.h.
 * Each accepted field mirrors the Rust `tokenizers` structure of the same name; every type we do
 * not implement is refused with the file, the JSON path and the type. Encoding lives in
 * tokenizer_encode.c, decoding in tokenizer_decode.c. Out of memory is an error like any other. */
#include "tokenizer_impl.h"

#include "error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- small utilities shared by the tokenizer files ------------------------------------------ */

void *tk_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) duet_errorf("tokenizer: out of memory (%zu bytes)", n);
    return p;
}

/* count * size bytes, NULL + error on overflow or out of memory. */
void *tk_malloc_n(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        duet_errorf("tokenizer: allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    return tk_malloc(count * size);
}

/* As realloc(p, count * size); on failure p stays valid (and owned by the caller). */
void *tk_realloc_n(void *p, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        duet_errorf("tokenizer: allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    size_t bytes = count * size;
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) duet_errorf("tokenizer: out of memory (%zu bytes)", bytes);
    return q;
}

char *tk_memdup(const char *s, size_t n)
{
    char *p = n < SIZE_MAX ? tk_malloc(n + 1) : NULL;
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int tk_buf_put(tk_buf *b, const char *s, size_t n)
{
    if (b->failed) return -1;
    if (n > SIZE_MAX / 4 - b->n) {
        b->failed = 1;
        return duet_errorf("tokenizer: string of %zu + %zu bytes is too long", b->n, n);
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = tk_realloc_n(b->p, cap, 1);
        if (!p) {
            b->failed = 1;
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* FNV-1a over the bytes. */
static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* ---- string -> id map (open addressing, keys owned) ----------------------------------------- */

int tk_strmap_init(tk_strmap *m, size_t expect)
{
    size_t cap = 16;
    while (cap < expect * 2) cap *= 2;
    m->e = tk_malloc_n(cap, sizeof *m->e);
    if (!m->e) return -1;
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < cap; i++) m->e[i].key = NULL;
    return 0;
}

static void strmap_free(tk_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->e[i].key);
    free(m->e);
    m->e = NULL;
    m->cap = 0;
}

int tk_strmap_get(const tk_strmap *m, const char *s, size_t n)
{
    if (!m->cap) return -1;
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct tk_strmap_entry *e = &m->e[i];
        if (!e->key) return -1;
        if (e->hash == h && e->len == n && !memcmp(e->key, s, n)) return e->value;
    }
}

/* Inserts or overwrites; 0, or -1 + error when out of memory (the map is unchanged then). */
int tk_strmap_put(tk_strmap *m, const char *s, size_t n, int value)
{
    if (!m->cap && tk_strmap_init(m, 8)) return -1;
    if ((m->n + 1) * 2 > m->cap) {
        tk_strmap old = *m;
        if (tk_strmap_init(m, m->cap)) {
            *m = old;
            return -1;
        }
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].key) {
                struct tk_strmap_entry *oe = &old.e[i];
                for (size_t j = oe->hash & (m->cap - 1);; j = (j + 1) & (m->cap - 1))
                    if (!m->e[j].key) {
                        m->e[j] = *oe;
                        break;
                    }
                m->n++;
            }
        free(old.e);
    }
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct tk_strmap_entry *e = &m->e[i];
        if (!e->key) {
            if (!(e->key = tk_memdup(s, n))) return -1;
            e->len = n;
            e->hash = h;
            e->value = value;
            m->n++;
            return 0;
        }
        if (e->hash == h && e->len == n && !memcmp(e->key, s, n)) {
            e->value = value;
            return 0;
        }
    }
}

/* ---- merge map: (left id, right id) -> (rank, merged id) ------------------------------------ */

int tk_mergemap_init(tk_mergemap *m, size_t expect)
{
    size_t cap = 16;
    while (cap < expect * 2) cap *= 2;
    m->e = tk_malloc_n(cap, sizeof *m->e);
    if (!m->e) return -1;
    m->cap = cap;
    for (size_t i = 0; i < cap; i++) m->e[i].key = UINT64_MAX;
    return 0;
}

/* The map is sized for all merges up front (tk_mergemap_init), so this never grows it. */
void tk_mergemap_put(tk_mergemap *m, int a, int b, int rank, int new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = hash_u64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == UINT64_MAX || m->e[i].key == key) {
            /* a later duplicate overwrites, as Rust's HashMap collect does */
            m->e[i].key = key;
            m->e[i].rank = rank;
            m->e[i].new_id = new_id;
            return;
        }
    }
}

int tk_mergemap_get(const tk_mergemap *m, int a, int b, int *rank, int *new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = hash_u64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == UINT64_MAX) return 0;
        if (m->e[i].key == key) {
            *rank = m->e[i].rank;
            *new_id = m->e[i].new_id;
            return 1;
        }
    }
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid. Decoded code point in *cp. */
size_t tk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Offset of the first invalid byte, or n when all of s is valid UTF-8. */
size_t tk_utf8_check(const char *s, size_t n)
{
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (!l) return i;
        i += l;
    }
    return n;
}

/* Rust's char::is_whitespace (Unicode White_Space). */
int tk_is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* ---- loading -------------------------------------------------------------------------------- */

struct loadctx {
    const char *file;
};

#define LOAD_ERR(L, ...) (duet_errorf("file %s: " __VA_ARGS__), (void)(L))

static json_t *load_json(const char *path)
{
    json_error_t err;
    struct stat st;
    if (stat(path, &st) != 0) {
        duet_errorf("file %s: cannot open: No such file or directory", path);
        return NULL;
    }
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &err);
    if (!j) {
        duet_errorf("file %s: not valid JSON (line %d, column %d): %s", path, err.line, err.column,
                    err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        duet_errorf("file %s: top level is not a JSON object", path);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A JSON string as (ptr, len); NULL when not a string. */
static const char *jstr(json_t *v, size_t *n)
{
    if (!json_is_string(v)) return NULL;
    *n = json_string_length(v);
    return json_string_value(v);
}

/* Reads a string field that must be a single character; stores its UTF-8. */
static int one_char(const char *file, const char *field, json_t *v, char out[8])
{
    size_t n;
    uint32_t cp;
    const char *s = jstr(v, &n);
    if (!s || n == 0 || n > 4 || tk_utf8_next((const unsigned char *)s, n, &cp) != n)
        return duet_errorf("file %s: field '%s': expected a string of one character", file, field);
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int tk_compile_regex(const char *where, const char *pat, size_t n, pcre2_code **out)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) return duet_errorf("%s: out of memory compiling a regex", where);
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF); /* Oniguruma (Ruby syntax): only \n ends a line */
    /* Oniguruma's Ruby syntax, as `tokenizers` uses it: ^ and $ match at every line, UTF-8,
     * Unicode-aware \s \w \d. */
    *out = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &errcode,
                         &erroff, cc);
    pcre2_compile_context_free(cc);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return duet_errorf("%s: regex \"%.*s\" does not compile at offset %zu: %s", where, (int)n,
                           pat, (size_t)erroff, (char *)msg);
    }
    return 0;
}

/* A "pattern" object: {"String": "..."} or {"Regex": "..."}. */
static int load_pattern(const char *file, const char *field, json_t *pat, tk_replace *r)
{
    size_t n;
    const char *s;
    if (!json_is_object(pat))
        return duet_errorf("file %s: field '%s': expected {\"String\": ...} or {\"Regex\": ...}",
                           file, field);
    if ((s = jstr(json_object_get(pat, "String"), &n))) {
        if (n == 0) return duet_errorf("file %s: field '%s': empty String pattern", file, field);
        if (!(r->pattern = tk_memdup(s, n))) return -1;
        r->pattern_len = n;
        return 0;
    }
    if ((s = jstr(json_object_get(pat, "Regex"), &n))) {
        char where[256];
        snprintf(where, sizeof where, "file %s: field '%s'", file, field);
        if (!(r->pattern = tk_memdup(s, n))) return -1;
        r->pattern_len = n;
        return tk_compile_regex(where, s, n, &r->re);
    }
    return duet_errorf("file %s: field '%s': expected {\"String\": ...} or {\"Regex\": ...}", file,
                       field);
}

static int load_replace(const char *file, const char *field, json_t *o, tk_replace *r)
{
    char f[160];
    size_t n;
    snprintf(f, sizeof f, "%s.pattern", field);
    if (load_pattern(file, f, json_object_get(o, "pattern"), r)) return -1;
    const char *c = jstr(json_object_get(o, "content"), &n);
    if (!c) return duet_errorf("file %s: field '%s.content': expected a string", file, field);
    if (!(r->content = tk_memdup(c, n))) return -1;
    r->content_len = n;
    return 0;
}

static const char *type_of(json_t *o)
{
    const char *t = json_string_value(json_object_get(o, "type"));
    return t ? t : "(no type)";
}

/* Appends n; on failure frees what n owns. */
int tk_add_norm(duet_tokenizer *t, tk_norm *n)
{
    tk_norm *p = tk_realloc_n(t->norms, (size_t)t->n_norms + 1, sizeof *t->norms);
    if (!p) {
        tk_replace_free(&n->r);
        return -1;
    }
    t->norms = p;
    t->norms[t->n_norms++] = *n;
    return 0;
}

static int load_normalizer(duet_tokenizer *t, const char *file, const char *field, json_t *o)
{
    char f[160];
    if (json_is_null(o)) return 0;
    if (!json_is_object(o))
        return duet_errorf("file %s: field '%s': expected an object or null", file, field);
    const char *type = type_of(o);
    tk_norm n;
    memset(&n, 0, sizeof n);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(o, "normalizers");
        if (!json_is_array(list))
            return duet_errorf("file %s: field '%s.normalizers': expected an array", file, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.normalizers[%zu]", field, i);
            if (load_normalizer(t, file, f, json_array_get(list, i))) return -1;
        }
        return 0;
    } else if (!strcmp(type, "Prepend")) {
        size_t len;
        const char *s = jstr(json_object_get(o, "prepend"), &len);
        if (!s) return duet_errorf("file %s: field '%s.prepend': expected a string", file, field);
        n.type = TK_NORM_PREPEND;
        if (!(n.r.content = tk_memdup(s, len))) return -1;
        n.r.content_len = len;
    } else if (!strcmp(type, "Replace")) {
        n.type = TK_NORM_REPLACE;
        if (load_replace(file, field, o, &n.r)) {
            tk_replace_free(&n.r);
            return -1;
        }
    } else if (!strcmp(type, "Strip")) {
        n.type = TK_NORM_STRIP;
        n.strip_left = json_is_true(json_object_get(o, "strip_left"));
        n.strip_right = json_is_true(json_object_get(o, "strip_right"));
    } else {
        return duet_errorf("file %s: field '%s.type': unsupported normalizer type \"%s\" "
                           "(supported: Sequence, Prepend, Replace, Strip, null)",
                           file, field, type);
    }
    return tk_add_norm(t, &n);
}

static int load_metaspace(duet_tokenizer *t, const char *file, json_t *o)
{
    t->metaspace = 1;
    if (one_char(file, "pre_tokenizer.replacement", json_object_get(o, "replacement"),
                 t->ms_replacement))
        return -1;
    json_t *ps = json_object_get(o, "prepend_scheme");
    if (json_is_string(ps)) {
        const char *s = json_string_value(ps);
        if (!strcmp(s, "always")) t->ms_prepend = TK_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) t->ms_prepend = TK_PREPEND_FIRST;
        else if (!strcmp(s, "never")) t->ms_prepend = TK_PREPEND_NEVER;
        else
            return duet_errorf("file %s: field 'pre_tokenizer.prepend_scheme': unknown value \"%s\" "
                               "(always, first, never)",
                               file, s);
    } else {
        /* older files: add_prefix_space */
        json_t *aps = json_object_get(o, "add_prefix_space");
        t->ms_prepend = (!aps || json_is_true(aps)) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
    }
    json_t *split = json_object_get(o, "split");
    t->ms_split = split ? json_is_true(split) : 1;
    return 0;
}

/* A boolean field with a default when absent. */
static int get_bool(const char *file, const char *field, json_t *o, const char *key, int dflt,
                    int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return duet_errorf("file %s: field '%s.%s': expected true or false", file, field, key);
    *out = json_is_true(v);
    return 0;
}

static int load_split(const char *file, const char *field, json_t *o, tk_pre *p)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    static const int values[] = {TK_SPLIT_REMOVED, TK_SPLIT_ISOLATED, TK_SPLIT_MERGED_PREV,
                                 TK_SPLIT_MERGED_NEXT, TK_SPLIT_CONTIGUOUS};
    char f[200];
    snprintf(f, sizeof f, "%s.pattern", field);
    if (load_pattern(file, f, json_object_get(o, "pattern"), &p->r)) return -1;
    const char *b = json_string_value(json_object_get(o, "behavior"));
    p->behavior = -1;
    for (size_t i = 0; b && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(b, names[i])) p->behavior = values[i];
    if (p->behavior < 0)
        return duet_errorf("file %s: field '%s.behavior': unknown value \"%s\" (Removed, Isolated, "
                           "MergedWithPrevious, MergedWithNext, Contiguous)",
                           file, field, b ? b : "(not a string)");
    return get_bool(file, field, o, "invert", 0, &p->invert);
}

/* One pre-tokenizer step of a Sequence (or the whole pre_tokenizer). */
static int load_pre_step(duet_tokenizer *t, const char *file, const char *field, json_t *o,
                         int top)
{
    char f[200];
    if (!json_is_object(o))
        return duet_errorf("file %s: field '%s': expected an object or null", file, field);
    const char *type = type_of(o);
    tk_pre p;
    memset(&p, 0, sizeof p);
    int rc = 0;
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(o, "pretokenizers");
        if (!json_is_array(list))
            return duet_errorf("file %s: field '%s.pretokenizers': expected an array", file, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.pretokenizers[%zu]", field, i);
            if (load_pre_step(t, file, f, json_array_get(list, i), 0)) return -1;
        }
        return 0;
    } else if (!strcmp(type, "Metaspace")) {
        if (!top)
            return duet_errorf("file %s: field '%s.type': Metaspace inside a Sequence is not "
                               "supported",
                               file, field);
        return load_metaspace(t, file, o);
    } else if (!strcmp(type, "Split")) {
        p.type = TK_PRE_SPLIT;
        rc = load_split(file, field, o, &p);
    } else if (!strcmp(type, "Digits")) {
        /* tokenizers splits on char::is_numeric (\p{N}): each digit alone, or runs of them */
        int individual = 0;
        p.type = TK_PRE_SPLIT;
        p.behavior = TK_SPLIT_ISOLATED;
        rc = get_bool(file, field, o, "individual_digits", 0, &individual);
        snprintf(f, sizeof f, "file %s: field '%s'", file, field);
        const char *pat = individual ? "\\p{N}" : "\\p{N}+";
        if (!rc && !(p.r.pattern = tk_memdup(pat, strlen(pat)))) rc = -1;
        if (!rc) p.r.pattern_len = strlen(pat);
        if (!rc) rc = tk_compile_regex(f, pat, strlen(pat), &p.r.re);
    } else if (!strcmp(type, "ByteLevel")) {
        int use_regex = 1;
        p.type = TK_PRE_BYTE_LEVEL;
        rc = get_bool(file, field, o, "add_prefix_space", 1, &p.add_prefix_space);
        if (!rc) rc = get_bool(file, field, o, "use_regex", 1, &use_regex);
        snprintf(f, sizeof f, "file %s: field '%s'", file, field);
        if (!rc && use_regex) {
            if (!(p.r.pattern = tk_memdup(TK_GPT2_REGEX, strlen(TK_GPT2_REGEX)))) rc = -1;
            if (!rc) p.r.pattern_len = strlen(TK_GPT2_REGEX);
            if (!rc) rc = tk_compile_regex(f, TK_GPT2_REGEX, strlen(TK_GPT2_REGEX), &p.r.re);
        }
        t->byte_level = 1;
    } else {
        return duet_errorf("file %s: field '%s.type': unsupported pre-tokenizer type \"%s\" "
                           "(supported: Metaspace, ByteLevel, Split, Digits, Sequence, null)",
                           file, field, type);
    }
    if (rc) {
        tk_replace_free(&p.r);
        return -1;
    }
    if (t->n_pres && t->pres[t->n_pres - 1].type == TK_PRE_BYTE_LEVEL) {
        tk_replace_free(&p.r);
        return duet_errorf("file %s: field '%s': a pre-tokenizer after ByteLevel is not supported "
                           "(ByteLevel must be the last step)",
                           file, field);
    }
    return tk_add_pre(t, &p);
}

static int load_pretokenizer(duet_tokenizer *t, const char *file, json_t *o)
{
    if (json_is_null(o) || !o) return 0;
    return load_pre_step(t, file, "pre_tokenizer", o, 1);
}

/* Appends d; on failure frees what d owns. */
int tk_add_dec(duet_tokenizer *t, const tk_dec *d)
{
    tk_dec *p = tk_realloc_n(t->decs, (size_t)t->n_decs + 1, sizeof *t->decs);
    if (!p) {
        tk_replace_free((tk_replace *)&d->r);
        return -1;
    }
    t->decs = p;
    t->decs[t->n_decs++] = *d;
    return 0;
}

/* Appends p; on failure frees what p owns. */
int tk_add_pre(duet_tokenizer *t, const tk_pre *p)
{
    tk_pre *q = tk_realloc_n(t->pres, (size_t)t->n_pres + 1, sizeof *t->pres);
    if (!q) {
        tk_replace_free((tk_replace *)&p->r);
        return -1;
    }
    t->pres = q;
    t->pres[t->n_pres++] = *p;
    return 0;
}

static int load_decoder(duet_tokenizer *t, const char *file, const char *field, json_t *o)
{
    char f[160];
    tk_dec d;
    memset(&d, 0, sizeof d);
    if (!json_is_object(o))
        return duet_errorf("file %s: field '%s': expected an object or null", file, field);
    const char *type = type_of(o);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(o, "decoders");
        if (!json_is_array(list))
            return duet_errorf("file %s: field '%s.decoders': expected an array", file, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.decoders[%zu]", field, i);
            if (load_decoder(t, file, f, json_array_get(list, i))) return -1;
        }
        return 0;
    } else if (!strcmp(type, "Replace")) {
        d.type = TK_DEC_REPLACE;
        if (load_replace(file, field, o, &d.r)) {
            tk_replace_free(&d.r);
            return -1;
        }
    } else if (!strcmp(type, "ByteFallback")) {
        d.type = TK_DEC_BYTE_FALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d.type = TK_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        d.type = TK_DEC_STRIP;
        snprintf(f, sizeof f, "%s.content", field);
        if (one_char(file, f, json_object_get(o, "content"), d.ch)) return -1;
        json_t *a = json_object_get(o, "start"), *b = json_object_get(o, "stop");
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) < 0)
            return duet_errorf("file %s: field '%s.start/stop': expected integers >= 0", file,
                               field);
        d.start = (size_t)json_integer_value(a);
        d.stop = (size_t)json_integer_value(b);
    } else if (!strcmp(type, "ByteLevel")) {
        d.type = TK_DEC_BYTE_LEVEL; /* add_prefix_space, trim_offsets: offsets only */
    } else if (!strcmp(type, "Metaspace")) {
        d.type = TK_DEC_METASPACE;
        snprintf(f, sizeof f, "%s.replacement", field);
        if (one_char(file, f, json_object_get(o, "replacement"), d.ch)) return -1;
        json_t *ps = json_object_get(o, "prepend_scheme");
        json_t *aps = json_object_get(o, "add_prefix_space");
        if (json_is_string(ps)) d.start = strcmp(json_string_value(ps), "never") != 0;
        else d.start = !aps || json_is_true(aps);
    } else {
        return duet_errorf("file %s: field '%s.type': unsupported decoder type \"%s\" (supported: "
                           "Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel, "
                           "null)",
                           file, field, type);
    }
    return tk_add_dec(t, &d);
}

/* Puts id -> token into the id table, growing it. A token string must be UTF-8 without a NUL
 * byte: Hugging Face holds tokens as (UTF-8) Rust strings and jansson checks tokenizer.json's, but
 * GGUF strings are raw bytes; and duet_tokenizer_token() gives a token back as a C string, so one
 * with a NUL in it could not be named again (duet_tokenizer_token_id of its string: -1). */
int tk_set_token(duet_tokenizer *t, const char *where, int id, const char *s, size_t n,
                 int overwrite)
{
    if (id < 0 || id >= TK_MAX_ID)
        return duet_errorf("%s: id %d out of range [0, %d)", where, id, TK_MAX_ID);
    size_t bad = tk_utf8_check(s, n);
    if (bad < n)
        return duet_errorf("%s: token %d is not valid UTF-8 (byte 0x%02X at offset %zu)", where,
                           id, (unsigned char)s[bad], bad);
    const char *nul = memchr(s, '\0', n);
    if (nul)
        return duet_errorf("%s: token %d holds a NUL byte (offset %zu)", where, id,
                           (size_t)(nul - s));
    if (id >= t->n_tokens) {
        int cap = t->n_tokens ? t->n_tokens : 256;
        while (cap <= id) cap *= 2;
        tk_token *p = tk_realloc_n(t->tokens, (size_t)cap, sizeof *t->tokens);
        if (!p) return -1;
        memset(p + t->n_tokens, 0, (size_t)(cap - t->n_tokens) * sizeof *p);
        t->tokens = p;
        t->n_tokens = cap;
    }
    if (t->tokens[id].s && !overwrite)
        return duet_errorf("%s: id %d given to both \"%s\" and \"%.*s\"", where, id,
                           t->tokens[id].s, (int)n, s);
    char *copy = tk_memdup(s, n);
    if (!copy) return -1;
    free(t->tokens[id].s);
    t->tokens[id].s = copy;
    t->tokens[id].len = n;
    if (id + 1 > t->vocab_size) t->vocab_size = id + 1;
    return 0;
}

int tk_add_token(duet_tokenizer *t, const char *where, const tk_added *a)
{
    if (t->n_added % 64 == 0) {
        tk_added *p = tk_realloc_n(t->added, (size_t)t->n_added + 64, sizeof *t->added);
        if (!p) return -1;
        t->added = p;
    }
    tk_added *d = &t->added[t->n_added];
    *d = *a;
    if (!(d->s = tk_memdup(a->s, a->len))) return -1;
    t->n_added++;
    if (tk_set_token(t, where, a->id, a->s, a->len, 1)) return -1;
    t->tokens[a->id].special = a->special;
    if (tk_strmap_put(&t->added_map, a->s, a->len, a->id)) return -1;
    t->first_byte[(uint8_t)a->s[0]] = 1;
    return 0;
}

void tk_find_byte_ids(duet_tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = tk_strmap_get(&t->vocab, name, 6);
    }
}

static int load_model(duet_tokenizer *t, const char *file, json_t *m)
{
    if (!json_is_object(m))
        return duet_errorf("file %s: field 'model': missing or not an object", file);
    json_t *jt = json_object_get(m, "type");
    const char *type = json_string_value(jt);
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!type && json_is_object(vocab) && merges) type = "BPE"; /* old files omit model.type */
    if (!type) return duet_errorf("file %s: field 'model.type': missing", file);
    if (strcmp(type, "BPE"))
        return duet_errorf("file %s: field 'model.type': unsupported model type \"%s\" "
                           "(supported: BPE)",
                           file, type);
    json_t *v;
    if ((v = json_object_get(m, "dropout")) && !json_is_null(v) &&
        !(json_is_number(v) && json_number_value(v) == 0.0))
        return duet_errorf("file %s: field 'model.dropout': BPE dropout is not supported", file);
    if ((v = json_object_get(m, "continuing_subword_prefix")) && !json_is_null(v))
        return duet_errorf("file %s: field 'model.continuing_subword_prefix': not supported", file);
    if ((v = json_object_get(m, "end_of_word_suffix")) && !json_is_null(v))
        return duet_errorf("file %s: field 'model.end_of_word_suffix': not supported", file);
    t->byte_fallback = json_is_true(json_object_get(m, "byte_fallback"));
    t->fuse_unk = json_is_true(json_object_get(m, "fuse_unk"));
    t->ignore_merges = json_is_true(json_object_get(m, "ignore_merges"));

    if (!json_is_object(vocab))
        return duet_errorf("file %s: field 'model.vocab': missing or not an object", file);
    if (tk_strmap_init(&t->vocab, json_object_size(vocab))) return -1;
    char where[256];
    snprintf(where, sizeof where, "file %s: field 'model.vocab'", file);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val)
    {
        if (!json_is_integer(val))
            return duet_errorf("file %s: field 'model.vocab': token \"%s\" has a non-integer id "
                               "(%s)",
                               file, key, json_is_string(val) ? json_string_value(val)
                                                              : "not a number");
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= TK_MAX_ID)
            return duet_errorf("file %s: field 'model.vocab': token \"%s\" has id %lld out of "
                               "range [0, %d)",
                               file, key, (long long)id, TK_MAX_ID);
        size_t klen = strlen(key); /* jansson object keys are NUL-terminated */
        if (tk_strmap_put(&t->vocab, key, klen, (int)id) ||
            tk_set_token(t, where, (int)id, key, klen, 0))
            return -1;
    }

    json_t *unk = json_object_get(m, "unk_token");
    t->unk_id = -1;
    if (json_is_string(unk)) {
        t->unk_id = tk_strmap_get(&t->vocab, json_string_value(unk), json_string_length(unk));
        if (t->unk_id < 0)
            return duet_errorf("file %s: field 'model.unk_token': \"%s\" is not in model.vocab",
                               file, json_string_value(unk));
    }
    tk_find_byte_ids(t);

    if (!json_is_array(merges))
        return duet_errorf("file %s: field 'model.merges': missing or not an array", file);
    size_t nm = json_array_size(merges);
    if (tk_mergemap_init(&t->merges, nm)) return -1;
    tk_buf joined = {0};
    for (size_t i = 0; i < nm; i++) {
        json_t *e = json_array_get(merges, i);
        const char *a, *b;
        size_t na, nb;
        if (json_is_string(e)) {
            const char *s = json_string_value(e);
            const char *sp = strchr(s, ' ');
            if (!sp) {
                free(joined.p);
                return duet_errorf("file %s: field 'model.merges[%zu]': \"%s\" is not \"a b\"",
                                   file, i, s);
            }
            a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(sp + 1);
        } else if (json_is_array(e) && json_array_size(e) == 2 &&
                   (a = jstr(json_array_get(e, 0), &na)) && (b = jstr(json_array_get(e, 1), &nb))) {
        } else {
            free(joined.p);
            return duet_errorf("file %s: field 'model.merges[%zu]': expected \"a b\" or [a, b]", file,
                               i);
        }
        int ia = tk_strmap_get(&t->vocab, a, na), ib = tk_strmap_get(&t->vocab, b, nb);
        joined.n = 0;
        tk_buf_put(&joined, a, na);
        if (tk_buf_put(&joined, b, nb)) {
            free(joined.p);
            return -1;
        }
        int inew = tk_strmap_get(&t->vocab, joined.p, joined.n);
        if (ia < 0 || ib < 0 || inew < 0) {
            duet_errorf("file %s: field 'model.merges[%zu]': token \"%.*s\" is not in model.vocab",
                        file, i, ia < 0 ? (int)na : ib < 0 ? (int)nb : (int)joined.n,
                        ia < 0 ? a : ib < 0 ? b : joined.p);
            free(joined.p);
            return -1;
        }
        tk_mergemap_put(&t->merges, ia, ib, (int)i, inew);
    }
    free(joined.p);
    return 0;
}

static int load_added(duet_tokenizer *t, const char *file, json_t *list)
{
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list))
        return duet_errorf("file %s: field 'added_tokens': expected an array", file);
    size_t n = json_array_size(list);
    if (tk_strmap_init(&t->added_map, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        size_t len;
        const char *s = jstr(json_object_get(o, "content"), &len);
        json_t *id = json_object_get(o, "id");
        if (!s || !json_is_integer(id))
            return duet_errorf("file %s: field 'added_tokens[%zu]': needs \"id\" (integer) and "
                               "\"content\" (string)",
                               file, i);
        if (len == 0)
            return duet_errorf("file %s: field 'added_tokens[%zu].content': empty", file, i);
        if (json_is_true(json_object_get(o, "single_word")))
            return duet_errorf("file %s: field 'added_tokens[%zu].single_word': true is not "
                               "supported",
                               file, i);
        tk_added a = {.s = (char *)s, .len = len, .id = (int)json_integer_value(id)};
        if (json_integer_value(id) < 0 || json_integer_value(id) >= TK_MAX_ID)
            return duet_errorf("file %s: field 'added_tokens[%zu].id': %lld out of range [0, %d)",
                               file, i, (long long)json_integer_value(id), TK_MAX_ID);
        a.special = json_is_true(json_object_get(o, "special"));
        a.lstrip = json_is_true(json_object_get(o, "lstrip"));
        a.rstrip = json_is_true(json_object_get(o, "rstrip"));
        json_t *nz = json_object_get(o, "normalized");
        a.normalized = nz ? json_is_true(nz) : !a.special;
        char where[256];
        snprintf(where, sizeof where, "file %s: field 'added_tokens[%zu]'", file, i);
        if (tk_add_token(t, where, &a)) return -1;
    }
    return 0;
}

/* The id of a special-token name as tokenizer_config.json gives it: "<s>" or {"content": "<s>"}. */
static int config_token(duet_tokenizer *t, const char *file, const char *field, json_t *v, int *id)
{
    *id = -1;
    if (!v || json_is_null(v)) return 0;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return duet_errorf("file %s: field '%s': expected a string or {\"content\": ...}", file,
                           field);
    *id = duet_tokenizer_token_id(t, json_string_value(v), json_string_length(v));
    if (*id < 0)
        return duet_errorf("file %s: field '%s': token \"%s\" is not in the vocabulary", file,
                           field, json_string_value(v));
    return 0;
}

static int load_config(duet_tokenizer *t, const char *file)
{
    json_t *c = load_json(file);
    if (!c) return -1;
    int rc = -1;
    json_t *v;
    if ((v = json_object_get(c, "add_bos_token")) && !json_is_boolean(v)) {
        duet_errorf("file %s: field 'add_bos_token': expected true or false", file);
        goto out;
    }
    t->add_bos = v ? json_is_true(v) : 1;
    if ((v = json_object_get(c, "add_eos_token")) && !json_is_boolean(v)) {
        duet_errorf("file %s: field 'add_eos_token': expected true or false", file);
        goto out;
    }
    t->add_eos = v ? json_is_true(v) : 0;
    if ((v = json_object_get(c, "bos_token"))) {
        if (config_token(t, file, "bos_token", v, &t->bos_id)) goto out;
    } else {
        t->bos_id = duet_tokenizer_token_id(t, "<s>", 3);
    }
    if ((v = json_object_get(c, "eos_token"))) {
        if (config_token(t, file, "eos_token", v, &t->eos_id)) goto out;
    } else {
        t->eos_id = duet_tokenizer_token_id(t, "</s>", 4);
    }
    if (t->add_bos && t->bos_id < 0) {
        duet_errorf("file %s: field 'add_bos_token': true but there is no bos_token", file);
        goto out;
    }
    if (t->add_eos && t->eos_id < 0) {
        duet_errorf("file %s: field 'add_eos_token': true but there is no eos_token", file);
        goto out;
    }
    if (t->add_bos) t->prefix[t->n_prefix++] = t->bos_id;
    if (t->add_eos) t->suffix[t->n_suffix++] = t->eos_id;
    rc = 0;
out:
    json_decref(c);
    return rc;
}

/* Without tokenizer_config.json: the special tokens of post_processor (TemplateProcessing
 * "single"), as tokenizers' encode(add_special_tokens=True) adds them. */
static int load_template(duet_tokenizer *t, const char *file, const char *field, json_t *pp)
{
    json_t *single = json_object_get(pp, "single"), *specials = json_object_get(pp, "special_tokens");
    if (!json_is_array(single))
        return duet_errorf("file %s: field '%s.single': expected an array", file, field);
    int seen_seq = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
        json_t *e = json_array_get(single, i), *st;
        if (json_object_get(e, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        st = json_object_get(e, "SpecialToken");
        const char *name = json_string_value(json_object_get(st, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids))
            return duet_errorf("file %s: field '%s.single[%zu]': special token not "
                               "found in %s.special_tokens",
                               file, field, i, field);
        for (size_t k = 0; k < json_array_size(ids); k++) {
            json_t *id = json_array_get(ids, k);
            if (!json_is_integer(id))
                return duet_errorf("file %s: field '%s.special_tokens.%s.ids': bad id (not an integer)", file,
                                   field, name);
            /* In range is not enough: the vocabulary may have holes, and an id without a token
             * would be encoded but could not be decoded. */
            json_int_t x = json_integer_value(id);
            if (x < 0 || x >= t->vocab_size || !t->tokens[x].s)
                return duet_errorf("file %s: field '%s.special_tokens.%s.ids': id %lld is not a token of "
                                   "the vocabulary (size %d)",
                                   file, field, name, (long long)x, t->vocab_size);
            int *arr = seen_seq ? t->suffix : t->prefix;
            int *n = seen_seq ? &t->n_suffix : &t->n_prefix;
            if (*n >= TK_MAX_AFFIX)
                return duet_errorf("file %s: field '%s.single': too many special tokens",
                                   file, field);
            arr[(*n)++] = (int)json_integer_value(id);
        }
    }
    return 0;
}

/* TemplateProcessing, ByteLevel (offsets only: nothing to do for ids), or a Sequence of them. */
static int load_post_step(duet_tokenizer *t, const char *file, const char *field, json_t *pp)
{
    const char *type = type_of(pp);
    if (!strcmp(type, "TemplateProcessing")) return load_template(t, file, field, pp);
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(pp, "processors");
        char f[200];
        if (!json_is_array(list))
            return duet_errorf("file %s: field '%s.processors': expected an array", file, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.processors[%zu]", field, i);
            if (load_post_step(t, file, f, json_array_get(list, i))) return -1;
        }
        return 0;
    }
    return duet_errorf("file %s: field '%s.type': unsupported post-processor type \"%s\" "
                       "(supported: TemplateProcessing, ByteLevel, Sequence, null; or give a "
                       "tokenizer_config.json)",
                       file, field, type);
}

static int load_post_processor(duet_tokenizer *t, const char *file, json_t *pp)
{
    t->bos_id = duet_tokenizer_token_id(t, "<s>", 3);
    t->eos_id = duet_tokenizer_token_id(t, "</s>", 4);
    if (!pp || json_is_null(pp)) return 0;
    if (load_post_step(t, file, "post_processor", pp)) return -1;
    if (t->n_prefix) t->bos_id = t->prefix[0];
    if (t->n_suffix) t->eos_id = t->suffix[t->n_suffix - 1];
    return 0;
}

duet_tokenizer *tk_new(void)
{
    duet_tokenizer *t = tk_malloc(sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->bos_id = t->eos_id = t->unk_id = -1;
    for (int b = 0; b < 256; b++) t->byte_ids[b] = -1;
    return t;
}

duet_tokenizer *duet_tokenizer_load_files(const char *tokenizer_json, const char *config_json)
{
    json_t *j = load_json(tokenizer_json);
    if (!j) return NULL;
    duet_tokenizer *t = tk_new();
    if (!t) {
        json_decref(j);
        return NULL;
    }
    const char *f = tokenizer_json;
    json_t *model = json_object_get(j, "model");
    if (!model) {
        duet_errorf("file %s: field 'model': missing (is this a Hugging Face tokenizer.json?)", f);
        goto fail;
    }
    t->parse_special = 1; /* tokenizers matches added tokens in the text by default */
    if (load_model(t, f, model)) goto fail;
    if (load_added(t, f, json_object_get(j, "added_tokens"))) goto fail;
    if (load_normalizer(t, f, "normalizer", json_object_get(j, "normalizer"))) goto fail;
    if (load_pretokenizer(t, f, json_object_get(j, "pre_tokenizer"))) goto fail;
    json_t *dec = json_object_get(j, "decoder");
    t->has_decoder = dec && !json_is_null(dec);
    if (t->has_decoder && load_decoder(t, f, "decoder", dec)) goto fail;
    if (config_json) {
        if (load_config(t, config_json)) goto fail;
    } else if (load_post_processor(t, f, json_object_get(j, "post_processor"))) {
        goto fail;
    }
    json_decref(j);
    return t;
fail:
    json_decref(j);
    duet_tokenizer_free(t);
    return NULL;
}

/* Does the file start with GGUF's magic? */
static int is_gguf(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && !memcmp(magic, "GGUF", 4);
}

duet_tokenizer *duet_tokenizer_load(const char *path)
{
    struct stat st;
    char *tj = NULL, *cfg = NULL;
    size_t n = strlen(path);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        if (is_gguf(path)) return duet_tokenizer_load_gguf(path);
        const char *slash = strrchr(path, '/');
        size_t dn = slash ? (size_t)(slash - path) : 1;
        if ((tj = tk_memdup(path, n)) && (cfg = tk_malloc_n(dn + 32, 1)))
            snprintf(cfg, dn + 32, "%.*s/tokenizer_config.json", (int)dn, slash ? path : ".");
    } else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if ((tj = tk_malloc_n(n + 32, 1)) && (cfg = tk_malloc_n(n + 32, 1))) {
            snprintf(tj, n + 32, "%s/tokenizer.json", path);
            snprintf(cfg, n + 32, "%s/tokenizer_config.json", path);
        }
    } else {
        duet_errorf("file %s: cannot open: No such file or directory", path);
        return NULL;
    }
    duet_tokenizer *t = NULL;
    if (tj && cfg) t = duet_tokenizer_load_files(tj, stat(cfg, &st) == 0 ? cfg : NULL);
    free(tj);
    free(cfg);
    return t;
}

void tk_replace_free(tk_replace *r)
{
    free(r->pattern);
    free(r->content);
    if (r->re) pcre2_code_free(r->re);
}

void duet_tokenizer_free(duet_tokenizer *t)
{
    if (!t) return;
    strmap_free(&t->vocab);
    strmap_free(&t->added_map);
    free(t->merges.e);
    for (int i = 0; i < t->n_tokens; i++) free(t->tokens[i].s);
    free(t->tokens);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].s);
    free(t->added);
    for (int i = 0; i < t->n_norms; i++) tk_replace_free(&t->norms[i].r);
    free(t->norms);
    for (int i = 0; i < t->n_decs; i++) tk_replace_free(&t->decs[i].r);
    free(t->decs);
    for (int i = 0; i < t->n_pres; i++) tk_replace_free(&t->pres[i].r);
    free(t->pres);
    free(t);
}

int duet_tokenizer_vocab_size(const duet_tokenizer *t) { return t->vocab_size; }
int duet_tokenizer_bos_id(const duet_tokenizer *t) { return t->bos_id; }
int duet_tokenizer_eos_id(const duet_tokenizer *t) { return t->eos_id; }

const char *duet_tokenizer_token(const duet_tokenizer *t, int id)
{
    if (id < 0 || id >= t->vocab_size) return NULL;
    return t->tokens[id].s;
}

int duet_tokenizer_token_id(const duet_tokenizer *t, const char *s, size_t n)
{
    int id = tk_strmap_get(&t->added_map, s, n);
    return id >= 0 ? id : tk_strmap_get(&t->vocab, s, n);
}
