/* test_gguf.c: the GGUF reader and writer (common/gguf.h).
 *
 * tests/test_gguf (always runs; no shared data):
 *   - round trip: duet's writer -> duet's reader, every value type, string and numeric arrays,
 *     tensors of several types and ranks;
 *   - gguf-py compatibility: tests/data/gguf/gguf_py.gguf, written by the `gguf` package's GGUFWriter
 *     (scripts/make_gguf_fixtures.py), read and checked against gguf_py.json (what gguf-py holds);
 *     and duet_written.gguf: the writer here must make it byte for byte, and duet's reader must see
 *     in it what gguf-py's GGUFReader saw (duet_written.json, made by the same script);
 *   - bad inputs, built here byte by byte, one test each: every prefix of a valid file, bad magic,
 *     versions 1 and 4, absurd counts, string and array lengths past the end, misaligned, overlapping
 *     and out-of-range tensors, unknown and unsupported types, dims overflow, 5 dims, a zero dim,
 *     bad alignments, duplicate keys and tensors, a getter of the wrong type.
 * The default model is checked by tests/test_gguf_model.c.
 *
 * `tests/test_gguf --write-fixture PATH` writes duet_written.gguf (then run the script again). */
#include "test_util.h"

#include "error.h"
#include "gguf.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[256];

static void setup(void) { ck_assert_int_eq(test_tmpdir(tmpdir, sizeof tmpdir, "gguf"), 0); }
static void teardown(void) { ck_assert_int_eq(test_rmtree(tmpdir), 0); }

static char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return b;
}

/* ---- a byte builder for hand-made files ---------------------------------------------------------- */

typedef struct bb {
    unsigned char p[8192];
    size_t len;
} bb;

static void b_raw(bb *b, const void *s, size_t n)
{
    ck_assert_uint_le(b->len + n, sizeof b->p);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static void b_le(bb *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) b->p[b->len++] = (unsigned char)(v >> (8 * i));
}
static void b_u32(bb *b, uint32_t v) { b_le(b, v, 4); }
static void b_u64(bb *b, uint64_t v) { b_le(b, v, 8); }
static void b_str(bb *b, const char *s)
{
    b_u64(b, strlen(s));
    b_raw(b, s, strlen(s));
}
static void b_head(bb *b, uint32_t version, uint64_t n_t, uint64_t n_kv)
{
    b->len = 0;
    b_raw(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_t);
    b_u64(b, n_kv);
}
static void b_kv_u32(bb *b, const char *key, uint32_t v)
{
    b_str(b, key);
    b_u32(b, GGUF_U32);
    b_u32(b, v);
}
static void b_kv_str(bb *b, const char *key, const char *v)
{
    b_str(b, key);
    b_u32(b, GGUF_STRING);
    b_str(b, v);
}
/* A tensor info: ne[] innermost first, as in the file. */
static void b_tensor(bb *b, const char *name, uint32_t ndims, const uint64_t *ne, uint32_t type, uint64_t off)
{
    b_str(b, name);
    b_u32(b, ndims);
    for (uint32_t i = 0; i < ndims; i++) b_u64(b, ne[i]);
    b_u32(b, type);
    b_u64(b, off);
}
static void b_pad(bb *b, size_t align)
{
    while (b->len % align) b->p[b->len++] = 0;
}
static void b_zeros(bb *b, size_t n)
{
    ck_assert_uint_le(b->len + n, sizeof b->p);
    memset(b->p + b->len, 0, n);
    b->len += n;
}

static const char *b_save(bb *b, const char *name)
{
    const char *p = tpath(name);
    write_bytes(p, b->p, b->len);
    return p;
}

/* Opening must fail with a message naming the file and holding every fragment given. */
static void expect_open_error(const char *path, const char *frag1, const char *frag2)
{
    duet_error_clear();
    gguf_file *f = gguf_open(path);
    if (f) gguf_close(f);
    ck_assert_msg(f == NULL, "%s opened but is malformed", path);
    const char *e = duet_error();
    ck_assert_msg(strstr(e, path) != NULL, "error does not name the file: %s", e);
    ck_assert_msg(strstr(e, frag1) != NULL, "error lacks '%s': %s", frag1, e);
    if (frag2) ck_assert_msg(strstr(e, frag2) != NULL, "error lacks '%s': %s", frag2, e);
}

/* A valid file of one F32 tensor {ne 8} (32 bytes) after one u32 kv; the pieces before the data. */
static void b_one_tensor(bb *b, uint32_t type, uint32_t ndims, const uint64_t *ne, uint64_t off, size_t data)
{
    b_head(b, 3, 1, 1);
    b_kv_u32(b, "a.b", 7);
    b_tensor(b, "w", ndims, ne, type, off);
    b_pad(b, 32);
    b_zeros(b, data);
}

/* ---- round trip ---------------------------------------------------------------------------------- */

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

START_TEST(test_round_trip)
{
    gguf_writer *w = gguf_writer_new();
    uint8_t u8 = 250;
    int8_t i8 = -7;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    uint64_t u64 = 0x7fffffffffffff01ull;
    int64_t i64 = INT64_MIN + 3;
    double f64 = -2.5e-300;
    ck_assert_int_eq(gguf_writer_set(w, "v.u8", GGUF_U8, &u8), 0);
    ck_assert_int_eq(gguf_writer_set(w, "v.i8", GGUF_I8, &i8), 0);
    ck_assert_int_eq(gguf_writer_set(w, "v.u16", GGUF_U16, &u16), 0);
    ck_assert_int_eq(gguf_writer_set(w, "v.i16", GGUF_I16, &i16), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "v.u32", 4000000000u), 0);
    ck_assert_int_eq(gguf_writer_set_i32(w, "v.i32", -2000000000), 0);
    ck_assert_int_eq(gguf_writer_set_f32(w, "v.f32", 1.0f / 3.0f), 0);
    ck_assert_int_eq(gguf_writer_set_bool(w, "v.bool", 1), 0);
    ck_assert_int_eq(gguf_writer_set(w, "v.bool0", GGUF_BOOL, &(uint8_t){0}), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "v.str", "a\0b", 3), 0); /* a NUL inside is kept */
    ck_assert_int_eq(gguf_writer_set(w, "v.u64", GGUF_U64, &u64), 0);
    ck_assert_int_eq(gguf_writer_set(w, "v.i64", GGUF_I64, &i64), 0);
    ck_assert_int_eq(gguf_writer_set(w, "v.f64", GGUF_F64, &f64), 0);
    const char *strs[] = {"x", "", "yz"};
    ck_assert_int_eq(gguf_writer_set_str_arr(w, "a.str", strs, NULL, 3), 0);
    int32_t ia[] = {5, -6, INT32_MAX};
    ck_assert_int_eq(gguf_writer_set_i32_arr(w, "a.i32", ia, 3), 0);
    float fa[] = {0.25f, -1e-40f};
    ck_assert_int_eq(gguf_writer_set_f32_arr(w, "a.f32", fa, 2), 0);
    uint64_t ua[] = {1, 0x8000000000000000ull};
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.u64", GGUF_U64, ua, 2), 0);
    int16_t sa[] = {-1, 2};
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.i16", GGUF_I16, sa, 2), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "a.empty", GGUF_U8, NULL, 0), 0);

    /* tensors: F32 2x3, F16 {4}, BF16 2x2x2, Q8_0 2x32, Q4_1 1x64, Q4_K {256}, Q6_K 1x1x1x256, I32 {3} */
    struct { const char *name; st_dtype t; int nd; int64_t shape[4]; } ts[] = {
        {"t.f32", ST_F32, 2, {2, 3}},      {"t.f16", ST_F16, 1, {4}},       {"t.bf16", ST_BF16, 3, {2, 2, 2}},
        {"t.q8_0", ST_Q8_0, 2, {2, 32}},   {"t.q4_1", ST_Q4_1, 2, {1, 64}}, {"t.q4_k", ST_Q4_K, 1, {256}},
        {"t.q6_k", ST_Q6_K, 4, {1, 1, 1, 256}}, {"t.i32", ST_I32, 1, {3}},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    unsigned char data[8][1024];
    for (int i = 0; i < nt; i++) {
        fill(data[i], sizeof data[i], (unsigned)i + 1);
        if (ts[i].t == ST_F32) { /* finite floats */
            for (int k = 0; k < 6; k++) memcpy(data[i] + 4 * k, &(float){(float)k - 2.5f}, 4);
        }
        ck_assert_int_eq(gguf_writer_add_tensor(w, ts[i].name, ts[i].t, ts[i].nd, ts[i].shape, data[i]), 0);
    }
    const char *p = tpath("rt.gguf");
    ck_assert_int_eq(gguf_writer_save(w, p), 0);
    gguf_writer_free(w);

    gguf_file *f = gguf_open(p);
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_alignment(f), 32);
    ck_assert_str_eq(gguf_path(f), p);
    ck_assert_int_eq(gguf_n_kv(f), 19);
    int64_t v;
    double d;
    int b;
    gguf_str s;
    ck_assert_int_eq(gguf_get_int(f, "v.u8", &v), 0); ck_assert_int_eq(v, 250);
    ck_assert_int_eq(gguf_get_int(f, "v.i8", &v), 0); ck_assert_int_eq(v, -7);
    ck_assert_int_eq(gguf_get_int(f, "v.u16", &v), 0); ck_assert_int_eq(v, 65000);
    ck_assert_int_eq(gguf_get_int(f, "v.i16", &v), 0); ck_assert_int_eq(v, -32000);
    ck_assert_int_eq(gguf_get_int(f, "v.u32", &v), 0); ck_assert_int_eq(v, 4000000000ll);
    ck_assert_int_eq(gguf_get_int(f, "v.i32", &v), 0); ck_assert_int_eq(v, -2000000000);
    ck_assert_int_eq(gguf_get_int(f, "v.u64", &v), 0); ck_assert_int_eq(v, (int64_t)0x7fffffffffffff01ll);
    ck_assert_int_eq(gguf_get_int(f, "v.i64", &v), 0); ck_assert_int_eq(v, INT64_MIN + 3);
    ck_assert_int_eq(gguf_get_float(f, "v.f32", &d), 0); ck_assert(d == (double)(1.0f / 3.0f));
    ck_assert_int_eq(gguf_get_float(f, "v.f64", &d), 0); ck_assert(d == -2.5e-300);
    ck_assert_int_eq(gguf_get_bool(f, "v.bool", &b), 0); ck_assert_int_eq(b, 1);
    ck_assert_int_eq(gguf_get_bool(f, "v.bool0", &b), 0); ck_assert_int_eq(b, 0);
    ck_assert_int_eq(gguf_get_str(f, "v.str", &s), 0);
    ck_assert_uint_eq(s.len, 3);
    ck_assert(!memcmp(s.s, "a\0b", 3));
    const gguf_str *items;
    uint64_t n;
    ck_assert_int_eq(gguf_get_str_arr(f, "a.str", &items, &n), 0);
    ck_assert_uint_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(items[i].len, strlen(strs[i]));
        ck_assert(!memcmp(items[i].s, strs[i], items[i].len));
    }
    int64_t *iv;
    ck_assert_int_eq(gguf_get_int_arr(f, "a.i32", &iv, &n), 0);
    ck_assert_uint_eq(n, 3);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(iv[i], ia[i]);
    free(iv);
    ck_assert_int_eq(gguf_get_int_arr(f, "a.i16", &iv, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(iv[0], -1);
    ck_assert_int_eq(iv[1], 2);
    free(iv);
    ck_assert_int_eq(gguf_get_int_arr(f, "a.empty", &iv, &n), 0);
    ck_assert_uint_eq(n, 0);
    free(iv);
    ck_assert_int_eq(gguf_get_int_arr(f, "a.u64", &iv, &n), -1); /* 2^63 does not fit int64 */
    ck_assert_ptr_nonnull(strstr(duet_error(), "element 1"));
    float *fv;
    ck_assert_int_eq(gguf_get_f32_arr(f, "a.f32", &fv, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert(!memcmp(fv, fa, sizeof fa));
    free(fv);
    /* types and order of the pairs */
    gguf_vtype ty, el;
    ck_assert_int_eq(gguf_key_type(f, "a.u64", &ty, &el, &n), 0);
    ck_assert_int_eq(ty, GGUF_ARRAY);
    ck_assert_int_eq(el, GGUF_U64);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(gguf_key_type(f, "v.f64", &ty, &el, &n), 0);
    ck_assert_int_eq(ty, GGUF_F64);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(gguf_key_type(f, "nope", &ty, &el, &n), 1);
    ck_assert_int_eq(gguf_kv_at(f, 0, &s, &ty, NULL, NULL), 0);
    ck_assert(s.len == 4 && !memcmp(s.s, "v.u8", 4));
    ck_assert_int_eq(gguf_kv_at(f, 19, &s, NULL, NULL, NULL), -1);
    ck_assert_int_eq(gguf_has_key(f, "v.u8"), 1);
    ck_assert_int_eq(gguf_has_key(f, "v.u"), 0);
    ck_assert_int_eq(gguf_get_int(f, "absent", &v), 1);

    ck_assert_int_eq(gguf_n_tensors(f), nt);
    const char *base = gguf_tensor_at(f, 0)->data;
    for (int i = 0; i < nt; i++) {
        const st_tensor *t = gguf_tensor_at(f, i);
        ck_assert_str_eq(t->name, ts[i].name);
        ck_assert_ptr_eq(gguf_find_tensor(f, ts[i].name), t);
        ck_assert_int_eq(t->dtype, ts[i].t);
        ck_assert_int_eq(st_check_shape(t, ts[i].nd, ts[i].shape), 0);
        ck_assert_uint_eq(t->nbytes, st_dtype_bytes(ts[i].t, t->numel));
        ck_assert(!memcmp(t->data, data[i], t->nbytes));
        ck_assert_int_eq(((const char *)t->data - base) % 32, 0);
        ck_assert_str_eq(t->file, p);
    }
    ck_assert_ptr_null(gguf_tensor_at(f, nt));
    ck_assert_ptr_null(gguf_find_tensor(f, "t.none"));
    /* a quantized tensor converts to fp32 */
    float out[64];
    ck_assert_int_eq(st_to_f32(gguf_find_tensor(f, "t.q4_1"), out), 0);
    float want[64];
    st_dtype_info(ST_Q4_1)->to_f32(data[4], want, 64);
    ck_assert(!memcmp(out, want, sizeof out));
    gguf_close(f);
}
END_TEST

START_TEST(test_writer_refuses)
{
    gguf_writer *w = gguf_writer_new();
    float x[256] = {0};
    int64_t s1[] = {31}, s5[] = {1, 1, 1, 1, 32}, s0[] = {0, 32}, sbig[] = {INT64_MAX / 2, 64};
    ck_assert_int_eq(gguf_writer_set_u32(w, "k", 1), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "k", "x", 1), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "'k' set twice"));
    ck_assert_int_eq(gguf_writer_set_u32(w, "", 1), -1);
    ck_assert_int_eq(gguf_writer_set(w, "s", GGUF_STRING, "x"), -1);
    ck_assert_int_eq(gguf_writer_set(w, "b", GGUF_BOOL, &(uint8_t){2}), -1);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_Q4_1, 1, s1, x), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "block size 32"));
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_F32, 5, s5, x), -1);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_F32, 2, s0, x), -1);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_F32, 2, sbig, x), -1);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_U8, 1, s1, x), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "no GGML type"));
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_F32, 1, s1, x), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_F32, 1, s1, x), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "added twice"));
    ck_assert_int_eq(gguf_writer_save(w, "/nonexistent-dir/x.gguf"), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "/nonexistent-dir/x.gguf"));
    gguf_writer_free(w);
}
END_TEST

/* ---- gguf-py compatibility ----------------------------------------------------------------------- */

static json_t *load_json(const char *rel)
{
    char *p = test_src_path(rel);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", p, e.text);
    free(p);
    return j;
}

static gguf_vtype vtype_of(const char *name)
{
    static const char *const n[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    for (int i = 0; i < 13; i++)
        if (!strcmp(n[i], name)) return (gguf_vtype)i;
    ck_abort_msg("unknown value type %s", name);
    return GGUF_U8;
}

static int is_int_type(gguf_vtype t) { return t <= GGUF_I32 || t == GGUF_U64 || t == GGUF_I64; }

/* The JSON integer value; a UINT64 comes as a decimal string (JSON readers stop at INT64_MAX), and
 * one past INT64_MAX must be refused by the getter. */
static void check_int(const gguf_file *f, const char *key, json_t *jv)
{
    int64_t v;
    if (json_is_integer(jv)) {
        ck_assert_int_eq(gguf_get_int(f, key, &v), 0);
        ck_assert_int_eq(v, json_integer_value(jv));
        return;
    }
    ck_assert(json_is_string(jv));
    unsigned long long u = strtoull(json_string_value(jv), NULL, 10);
    if (u <= INT64_MAX) {
        ck_assert_int_eq(gguf_get_int(f, key, &v), 0);
        ck_assert_int_eq(v, (int64_t)u);
    } else {
        ck_assert_int_eq(gguf_get_int(f, key, &v), -1);
        ck_assert_ptr_nonnull(strstr(duet_error(), "does not fit int64"));
    }
}

/* duet's reader sees in f exactly what the JSON (made by gguf-py's reader) describes. */
static void check_against_json(const gguf_file *f, json_t *j)
{
    ck_assert_uint_eq(gguf_alignment(f), json_integer_value(json_object_get(j, "alignment")));
    json_t *kvs = json_object_get(j, "kv"), *ts = json_object_get(j, "tensors");
    ck_assert_int_eq(gguf_n_kv(f), (int)json_array_size(kvs));
    size_t i;
    json_t *e;
    json_array_foreach(kvs, i, e) {
        const char *key = json_string_value(json_object_get(e, "key"));
        gguf_vtype ty = vtype_of(json_string_value(json_object_get(e, "type"))), got, el;
        json_t *jv = json_object_get(e, "value");
        gguf_str k;
        uint64_t n;
        ck_assert_int_eq(gguf_kv_at(f, (int)i, &k, &got, &el, &n), 0); /* same order */
        ck_assert(k.len == strlen(key) && !memcmp(k.s, key, k.len));
        ck_assert_int_eq(got, ty);
        if (ty == GGUF_ARRAY) {
            gguf_vtype want_el = vtype_of(json_string_value(json_object_get(e, "elem")));
            ck_assert_int_eq(el, want_el);
            ck_assert_uint_eq(n, json_array_size(jv));
            if (want_el == GGUF_STRING) {
                const gguf_str *items;
                ck_assert_int_eq(gguf_get_str_arr(f, key, &items, &n), 0);
                for (size_t a = 0; a < n; a++) {
                    const char *w = json_string_value(json_array_get(jv, a));
                    ck_assert(items[a].len == strlen(w) && !memcmp(items[a].s, w, items[a].len));
                }
            } else if (want_el == GGUF_F32) {
                float *fv;
                ck_assert_int_eq(gguf_get_f32_arr(f, key, &fv, &n), 0);
                for (size_t a = 0; a < n; a++) ck_assert((double)fv[a] == json_real_value(json_array_get(jv, a)));
                free(fv);
            } else {
                ck_assert(is_int_type(want_el));
                int64_t *iv;
                ck_assert_int_eq(gguf_get_int_arr(f, key, &iv, &n), 0);
                for (size_t a = 0; a < n; a++) {
                    json_t *x = json_array_get(jv, a);
                    ck_assert_int_eq(iv[a], json_is_string(x) ? (int64_t)strtoll(json_string_value(x), NULL, 10)
                                                              : json_integer_value(x));
                }
                free(iv);
            }
        } else if (ty == GGUF_STRING) {
            gguf_str s;
            ck_assert_int_eq(gguf_get_str(f, key, &s), 0);
            ck_assert(s.len == strlen(json_string_value(jv)) && !memcmp(s.s, json_string_value(jv), s.len));
        } else if (ty == GGUF_F32 || ty == GGUF_F64) {
            double d;
            ck_assert_int_eq(gguf_get_float(f, key, &d), 0);
            ck_assert(d == json_real_value(jv));
        } else if (ty == GGUF_BOOL) {
            int b;
            ck_assert_int_eq(gguf_get_bool(f, key, &b), 0);
            ck_assert_int_eq(b, json_integer_value(jv));
        } else {
            check_int(f, key, jv);
        }
    }
    ck_assert_int_eq(gguf_n_tensors(f), (int)json_array_size(ts));
    json_array_foreach(ts, i, e) {
        const st_tensor *t = gguf_tensor_at(f, (int)i);
        ck_assert_str_eq(t->name, json_string_value(json_object_get(e, "name")));
        ck_assert_str_eq(st_dtype_name(t->dtype), json_string_value(json_object_get(e, "type")));
        json_t *shape = json_object_get(e, "shape");
        ck_assert_int_eq(t->ndim, (int)json_array_size(shape));
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(t->shape[d], json_integer_value(json_array_get(shape, d)));
        json_t *bits = json_object_get(e, "f32_bits"), *ints = json_object_get(e, "ints");
        if (ints) {
            ck_assert_int_eq(t->dtype, ST_I32);
            ck_assert_uint_eq((size_t)t->numel, json_array_size(ints));
            for (int64_t k = 0; k < t->numel; k++) {
                int32_t x;
                memcpy(&x, (const char *)t->data + 4 * k, 4);
                ck_assert_int_eq(x, json_integer_value(json_array_get(ints, (size_t)k)));
            }
            continue;
        }
        ck_assert_uint_eq((size_t)t->numel, json_array_size(bits));
        float *x = malloc((size_t)t->numel * sizeof *x);
        ck_assert_int_eq(st_to_f32(t, x), 0);
        for (int64_t k = 0; k < t->numel; k++) {
            uint32_t g;
            memcpy(&g, &x[k], 4);
            ck_assert_msg(g == (uint32_t)json_integer_value(json_array_get(bits, (size_t)k)),
                          "tensor %s element %lld: %08x, gguf-py %08llx", t->name, (long long)k, g,
                          (long long)json_integer_value(json_array_get(bits, (size_t)k)));
        }
        free(x);
    }
}

START_TEST(test_gguf_py_file)
{
    char *p = test_src_path("tests/data/gguf/gguf_py.gguf");
    gguf_file *f = gguf_open(p);
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_uint_eq(gguf_version(f), 3);
    json_t *j = load_json("tests/data/gguf/gguf_py.json");
    check_against_json(f, j);
    json_decref(j);
    gguf_close(f);
    free(p);
}
END_TEST

/* The file of duet_written.gguf: deterministic, every value type, several tensor types. */
static int write_fixture(const char *path)
{
    gguf_writer *w = gguf_writer_new();
    int rc = 0;
    rc |= gguf_writer_set_str(w, "general.architecture", "duettest", 8);
    rc |= gguf_writer_set(w, "t.u8", GGUF_U8, &(uint8_t){201});
    rc |= gguf_writer_set(w, "t.i8", GGUF_I8, &(int8_t){-101});
    rc |= gguf_writer_set(w, "t.u16", GGUF_U16, &(uint16_t){60001});
    rc |= gguf_writer_set(w, "t.i16", GGUF_I16, &(int16_t){-30001});
    rc |= gguf_writer_set_u32(w, "t.u32", 4000000001u);
    rc |= gguf_writer_set_i32(w, "t.i32", -2000000001);
    rc |= gguf_writer_set_f32(w, "t.f32", 0.2f);
    rc |= gguf_writer_set_bool(w, "t.bool", 1);
    rc |= gguf_writer_set_str(w, "t.str", "duet \xc3\xa9", 7);
    rc |= gguf_writer_set(w, "t.u64", GGUF_U64, &(uint64_t){(1ull << 63) + 7});
    rc |= gguf_writer_set(w, "t.i64", GGUF_I64, &(int64_t){-(1ll << 62) - 5});
    rc |= gguf_writer_set(w, "t.f64", GGUF_F64, &(double){2.0 / 3.0});
    const char *s[] = {"<s>", "", "\xe2\x9c\x93"};
    rc |= gguf_writer_set_str_arr(w, "t.arr_str", s, NULL, 3);
    rc |= gguf_writer_set_i32_arr(w, "t.arr_i32", (const int32_t[]){7, -8, 9}, 3);
    rc |= gguf_writer_set_f32_arr(w, "t.arr_f32", (const float[]){1.5f, -0.0f}, 2);
    rc |= gguf_writer_set_arr(w, "t.arr_u16", GGUF_U16, (const uint16_t[]){1, 65535}, 2);
    unsigned char q41[2 * 20], q8[34 * 2], q6[210], f16[16];
    fill(q41, sizeof q41, 11);
    fill(q8, sizeof q8, 12);
    fill(q6, sizeof q6, 13);
    fill(f16, sizeof f16, 14);
    for (int i = 0; i < 2; i++) { /* finite scales: d, m in [0.25, 0.5) */
        q41[20 * i + 1] = 0x34;
        q41[20 * i + 3] = 0xb4;
        q8[34 * i + 1] = 0x34;
    }
    q6[209] = 0x30;
    for (int i = 0; i < 8; i++) f16[2 * i + 1] &= 0x3f; /* finite halves */
    float f32[6] = {1, -2, 3.5f, 1e-3f, 0, -1e30f};
    rc |= gguf_writer_add_tensor(w, "w.q4_1", ST_Q4_1, 2, (const int64_t[]){2, 32}, q41);
    rc |= gguf_writer_add_tensor(w, "w.q8_0", ST_Q8_0, 2, (const int64_t[]){2, 32}, q8);
    rc |= gguf_writer_add_tensor(w, "w.q6_k", ST_Q6_K, 1, (const int64_t[]){256}, q6);
    rc |= gguf_writer_add_tensor(w, "w.f16", ST_F16, 3, (const int64_t[]){2, 2, 2}, f16);
    rc |= gguf_writer_add_tensor(w, "w.f32", ST_F32, 2, (const int64_t[]){3, 2}, f32);
    rc |= gguf_writer_add_tensor(w, "w.i32", ST_I32, 1, (const int64_t[]){3}, (const int32_t[]){-1, 0, 1});
    if (!rc) rc = gguf_writer_save(w, path);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}

START_TEST(test_duet_written_file)
{
    const char *p = tpath("duet_written.gguf");
    ck_assert_msg(write_fixture(p) == 0, "%s", duet_error());
    char *ref = test_src_path("tests/data/gguf/duet_written.gguf");
    size_t n1, n2;
    unsigned char *a = read_all(p, &n1), *b = read_all(ref, &n2);
    ck_assert_msg(n1 == n2 && !memcmp(a, b, n1),
                  "the writer no longer makes %s byte for byte (%zu vs %zu bytes): rerun the fixture script", ref,
                  n1, n2);
    free(a);
    free(b);
    gguf_file *f = gguf_open(ref);
    ck_assert_msg(f != NULL, "%s", duet_error());
    json_t *j = load_json("tests/data/gguf/duet_written.json"); /* what gguf-py's GGUFReader read */
    check_against_json(f, j);
    json_decref(j);
    gguf_close(f);
    free(ref);
}
END_TEST

/* ---- bad inputs ---------------------------------------------------------------------------------- */

START_TEST(test_every_prefix)
{
    /* a valid file whose last tensor ends the file (32 bytes: no trailing padding), so every proper
     * prefix is a truncated file */
    gguf_writer *w = gguf_writer_new();
    const char *s[] = {"ab", "c"};
    ck_assert_int_eq(gguf_writer_set_str(w, "k.s", "hello", 5), 0);
    ck_assert_int_eq(gguf_writer_set_str_arr(w, "k.a", s, NULL, 2), 0);
    ck_assert_int_eq(gguf_writer_set_f32_arr(w, "k.f", (const float[]){1, 2}, 2), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "general.alignment", 32), 0);
    unsigned char q[20] = {0};
    float x[8] = {0};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q", ST_Q4_1, 1, (const int64_t[]){32}, q), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "x", ST_F32, 1, (const int64_t[]){8}, x), 0);
    const char *p = tpath("full.gguf");
    ck_assert_int_eq(gguf_writer_save(w, p), 0);
    gguf_writer_free(w);
    size_t n;
    unsigned char *b = read_all(p, &n);
    gguf_file *f = gguf_open(p);
    ck_assert_msg(f != NULL, "%s", duet_error());
    gguf_close(f);
    const char *tp = tpath("prefix.gguf");
    for (size_t len = 0; len < n; len++) {
        write_bytes(tp, b, len);
        duet_error_clear();
        f = gguf_open(tp);
        ck_assert_msg(f == NULL, "prefix of %zu of %zu bytes opened", len, n);
        ck_assert_msg(strstr(duet_error(), tp) != NULL, "prefix %zu: error does not name the file: %s", len, duet_error());
        ck_assert_msg(strstr(duet_error(), "truncated") || strstr(duet_error(), "past the end") ||
                          strstr(duet_error(), "can hold"),
                      "prefix %zu: %s", len, duet_error());
    }
    free(b);
}
END_TEST

START_TEST(test_bad_magic)
{
    bb b;
    b_head(&b, 3, 0, 0);
    memcpy(b.p, "GGML", 4);
    expect_open_error(b_save(&b, "magic.gguf"), "bad magic", "not a GGUF file");
    write_bytes(tpath("short.gguf"), "GGU", 3);
    expect_open_error(tpath("short.gguf"), "truncated", NULL);
    write_bytes(tpath("empty.gguf"), "", 0);
    expect_open_error(tpath("empty.gguf"), "truncated", NULL);
    expect_open_error(tpath("absent.gguf"), "cannot open", NULL);
}
END_TEST

START_TEST(test_bad_version)
{
    bb b;
    b_head(&b, 1, 0, 0);
    expect_open_error(b_save(&b, "v1.gguf"), "version 1 is not supported", NULL);
    b_head(&b, 4, 0, 0);
    expect_open_error(b_save(&b, "v4.gguf"), "unsupported GGUF version 4", NULL);
    b_head(&b, 0x03000000, 0, 0);
    expect_open_error(b_save(&b, "be.gguf"), "big-endian", NULL);
    b_head(&b, 2, 0, 0); /* version 2 is read */
    gguf_file *f = gguf_open(b_save(&b, "v2.gguf"));
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_uint_eq(gguf_version(f), 2);
    ck_assert_int_eq(gguf_n_tensors(f), 0);
    gguf_close(f);
}
END_TEST

START_TEST(test_absurd_counts)
{
    bb b;
    b_head(&b, 3, 1ull << 60, 0);
    expect_open_error(b_save(&b, "nt.gguf"), "tensor count 1152921504606846976", "can hold");
    b_head(&b, 3, 0, UINT64_MAX);
    expect_open_error(b_save(&b, "nkv.gguf"), "kv count 18446744073709551615", "can hold");
    b_head(&b, 3, 0, 2); /* two kv pairs announced, one there */
    b_kv_u32(&b, "a", 1);
    expect_open_error(b_save(&b, "nkv2.gguf"), "can hold", NULL);
}
END_TEST

START_TEST(test_string_past_eof)
{
    bb b;
    b_head(&b, 3, 0, 1);
    b_u64(&b, 1ull << 62); /* the key's length */
    b_raw(&b, "abcdefghijklmnop", 16);
    expect_open_error(b_save(&b, "key.gguf"), "string length 4611686018427387904", "past the end");
    b_head(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, GGUF_STRING);
    b_u64(&b, 100); /* a 100-byte value, 5 bytes there */
    b_raw(&b, "hello", 5);
    expect_open_error(b_save(&b, "val.gguf"), "key 'k'", "string length 100");
}
END_TEST

START_TEST(test_array_past_eof)
{
    bb b;
    b_head(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, GGUF_ARRAY);
    b_u32(&b, GGUF_I32);
    b_u64(&b, 1ull << 61); /* 2^61 int32s: 2^63 bytes */
    b_zeros(&b, 16);
    expect_open_error(b_save(&b, "arr.gguf"), "key 'arr'", "array length 2305843009213693952");
    b_head(&b, 3, 0, 1);
    b_str(&b, "sa");
    b_u32(&b, GGUF_ARRAY);
    b_u32(&b, GGUF_STRING);
    b_u64(&b, 3); /* three strings, the second runs past the end */
    b_str(&b, "x");
    b_u64(&b, 50);
    b_raw(&b, "yz", 2);
    b_zeros(&b, 14); /* enough bytes for 3 string lengths, not for 50 bytes */
    expect_open_error(b_save(&b, "sarr.gguf"), "key 'sa': string 1", "string length 50");
    b_head(&b, 3, 0, 1);
    b_str(&b, "nest");
    b_u32(&b, GGUF_ARRAY);
    b_u32(&b, GGUF_ARRAY);
    b_u64(&b, 0);
    expect_open_error(b_save(&b, "nest.gguf"), "arrays of arrays", NULL);
    b_head(&b, 3, 0, 1);
    b_str(&b, "ty");
    b_u32(&b, 13); /* no such value type */
    b_u32(&b, 0);
    expect_open_error(b_save(&b, "vtype.gguf"), "key 'ty'", "unknown value type 13");
}
END_TEST

START_TEST(test_misaligned)
{
    bb b;
    b_one_tensor(&b, 0, 1, (const uint64_t[]){8}, 4, 64);
    expect_open_error(b_save(&b, "mis.gguf"), "tensor 'w'", "offset 4 is not a multiple of the alignment 32");
    /* the same offset is fine under general.alignment = 4 */
    b_head(&b, 3, 1, 1);
    b_kv_u32(&b, "general.alignment", 4);
    b_tensor(&b, "w", 1, (const uint64_t[]){8}, 0, 4);
    b_pad(&b, 4);
    b_zeros(&b, 36);
    gguf_file *f = gguf_open(b_save(&b, "al4.gguf"));
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_uint_eq(gguf_alignment(f), 4);
    gguf_close(f);
}
END_TEST

START_TEST(test_overlap)
{
    bb b;
    b_head(&b, 3, 2, 0);
    b_tensor(&b, "a", 1, (const uint64_t[]){16}, 0, 0);  /* bytes [0, 64) */
    b_tensor(&b, "b", 1, (const uint64_t[]){8}, 0, 32);  /* bytes [32, 64) */
    b_pad(&b, 32);
    b_zeros(&b, 64);
    expect_open_error(b_save(&b, "ovl.gguf"), "overlap", "'a'");
}
END_TEST

START_TEST(test_past_end)
{
    bb b;
    b_one_tensor(&b, 0, 1, (const uint64_t[]){8}, 0, 31); /* needs 32 bytes */
    expect_open_error(b_save(&b, "end.gguf"), "tensor 'w'", "past the end of the data section");
    b_one_tensor(&b, 0, 1, (const uint64_t[]){8}, 1ull << 63, 32); /* offset far past the end */
    expect_open_error(b_save(&b, "end2.gguf"), "tensor 'w'", "past the end of the data section");
}
END_TEST

START_TEST(test_unknown_type)
{
    bb b;
    b_one_tensor(&b, 99, 1, (const uint64_t[]){8}, 0, 32);
    expect_open_error(b_save(&b, "t99.gguf"), "tensor 'w'", "unknown GGML type id 99");
    b_one_tensor(&b, 4, 1, (const uint64_t[]){8}, 0, 32); /* id 4 (Q4_2) was removed from ggml */
    expect_open_error(b_save(&b, "t4.gguf"), "tensor 'w'", "unknown GGML type id 4");
    b_one_tensor(&b, 16, 1, (const uint64_t[]){256}, 0, 96); /* IQ2_XXS: known, not read */
    expect_open_error(b_save(&b, "iq2.gguf"), "tensor 'w'", "IQ2_XXS (16) is not supported");
    b_one_tensor(&b, 3, 1, (const uint64_t[]){16}, 0, 32); /* Q4_1 of 16 elements: half a block */
    expect_open_error(b_save(&b, "blk.gguf"), "tensor 'w'", "not a multiple of the Q4_1 block size 32");
}
END_TEST

START_TEST(test_dims_overflow)
{
    bb b;
    b_one_tensor(&b, 0, 3, (const uint64_t[]){1ull << 32, 1ull << 32, 4}, 0, 32);
    expect_open_error(b_save(&b, "ovf.gguf"), "tensor 'w'", "dims product overflows");
    b_one_tensor(&b, 0, 1, (const uint64_t[]){UINT64_MAX}, 0, 32);
    expect_open_error(b_save(&b, "ovf1.gguf"), "tensor 'w'", "overflows");
    b_one_tensor(&b, 0, 2, (const uint64_t[]){1ull << 31, 1ull << 31}, 0, 32); /* 2^62 F32: 2^64 bytes */
    expect_open_error(b_save(&b, "ovf2.gguf"), "tensor 'w'", "overflow");
}
END_TEST

START_TEST(test_ndims_5)
{
    bb b;
    b_one_tensor(&b, 0, 5, (const uint64_t[]){8, 1, 1, 1, 1}, 0, 32);
    expect_open_error(b_save(&b, "nd5.gguf"), "tensor 'w'", "n_dims 5, at most 4");
}
END_TEST

START_TEST(test_zero_dim)
{
    bb b;
    b_one_tensor(&b, 0, 2, (const uint64_t[]){8, 0}, 0, 32);
    expect_open_error(b_save(&b, "zero.gguf"), "tensor 'w'", "ne[1] is 0");
}
END_TEST

START_TEST(test_bad_alignment)
{
    static const uint32_t bad[] = {0, 3, 48};
    for (int i = 0; i < 3; i++) {
        bb b;
        b_head(&b, 3, 0, 1);
        b_kv_u32(&b, "general.alignment", bad[i]);
        char name[32], want[64];
        snprintf(name, sizeof name, "al%u.gguf", bad[i]);
        snprintf(want, sizeof want, "%u is not a power of two", bad[i]);
        expect_open_error(b_save(&b, name), "general.alignment", want);
    }
    bb b;
    b_head(&b, 3, 0, 1);
    b_str(&b, "general.alignment");
    b_u32(&b, GGUF_U64);
    b_u64(&b, 32);
    expect_open_error(b_save(&b, "al64.gguf"), "general.alignment", "type UINT64, expected UINT32");
}
END_TEST

START_TEST(test_duplicates)
{
    bb b;
    b_head(&b, 3, 0, 3);
    b_kv_u32(&b, "a.x", 1);
    b_kv_str(&b, "a.y", "s");
    b_kv_str(&b, "a.x", "again");
    expect_open_error(b_save(&b, "dupkey.gguf"), "duplicate key 'a.x'", NULL);
    b_head(&b, 3, 2, 0);
    b_tensor(&b, "w", 1, (const uint64_t[]){8}, 0, 0);
    b_tensor(&b, "w", 1, (const uint64_t[]){8}, 0, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    expect_open_error(b_save(&b, "dupt.gguf"), "duplicate tensor 'w'", NULL);
}
END_TEST

START_TEST(test_getter_wrong_type)
{
    bb b;
    b_head(&b, 3, 0, 4);
    b_kv_u32(&b, "n", 5);
    b_kv_str(&b, "s", "text");
    b_str(&b, "big");
    b_u32(&b, GGUF_U64);
    b_u64(&b, UINT64_MAX);
    b_str(&b, "ia");
    b_u32(&b, GGUF_ARRAY);
    b_u32(&b, GGUF_I32);
    b_u64(&b, 1);
    b_u32(&b, 3);
    const char *p = b_save(&b, "types.gguf");
    gguf_file *f = gguf_open(p);
    ck_assert_msg(f != NULL, "%s", duet_error());
    double d = 7;
    int bo = 7;
    int64_t v = 7, *iv = NULL;
    gguf_str s = {0};
    const gguf_str *items = NULL;
    float *fv = NULL;
    uint64_t n = 9;
    ck_assert_int_eq(gguf_get_float(f, "n", &d), -1);
    ck_assert(d == 7);
    ck_assert_ptr_nonnull(strstr(duet_error(), p));
    ck_assert_ptr_nonnull(strstr(duet_error(), "key 'n': UINT32, expected FLOAT32 or FLOAT64"));
    ck_assert_int_eq(gguf_get_int(f, "s", &v), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "key 's': STRING, expected an integer"));
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(gguf_get_bool(f, "n", &bo), -1);
    ck_assert_int_eq(bo, 7);
    ck_assert_int_eq(gguf_get_str(f, "n", &s), -1);
    ck_assert_int_eq(gguf_get_str_arr(f, "ia", &items, &n), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "key 'ia': ARRAY of INT32, expected ARRAY of STRING"));
    ck_assert_int_eq(gguf_get_f32_arr(f, "ia", &fv, &n), -1);
    ck_assert_int_eq(gguf_get_int_arr(f, "n", &iv, &n), -1);
    ck_assert_int_eq(gguf_get_int(f, "ia", &v), -1);
    ck_assert_int_eq(gguf_get_int(f, "big", &v), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "does not fit int64"));
    ck_assert_int_eq(v, 7);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(gguf_get_int_arr(f, "ia", &iv, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(iv[0], 3);
    free(iv);
    gguf_close(f);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) {
        if (write_fixture(argv[2])) {
            fprintf(stderr, "%s\n", duet_error());
            return 1;
        }
        return 0;
    }
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("gguf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_writer_refuses);
    tcase_add_test(tc, test_gguf_py_file);
    tcase_add_test(tc, test_duet_written_file);
    tcase_add_test(tc, test_every_prefix);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_absurd_counts);
    tcase_add_test(tc, test_string_past_eof);
    tcase_add_test(tc, test_array_past_eof);
    tcase_add_test(tc, test_misaligned);
    tcase_add_test(tc, test_overlap);
    tcase_add_test(tc, test_past_end);
    tcase_add_test(tc, test_unknown_type);
    tcase_add_test(tc, test_dims_overflow);
    tcase_add_test(tc, test_ndims_5);
    tcase_add_test(tc, test_zero_dim);
    tcase_add_test(tc, test_bad_alignment);
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_getter_wrong_type);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
