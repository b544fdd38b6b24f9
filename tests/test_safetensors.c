/* test_safetensors.c: the safetensors reader rejects every malformed file with a message naming the
 * file and what is wrong; sharded indexes are checked; the writer round-trips; fp16/bf16 conversions
 * match an independent oracle (tests/data/fp16_bf16_vectors.txt: numpy and exact rationals).
 * Needs no shared data: every malformed file is built here, byte by byte. */
#include "test_util.h"

#include "error.h"
#include "model.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static void setup(void)
{
    ck_assert_int_eq(test_tmpdir(tmpdir, sizeof tmpdir, "st"), 0);
}

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
    fclose(fp);
}

/* A safetensors file: the 8-byte length of `hdr`, `hdr`, then `ndata` bytes of data (0x11). */
static const char *write_st(const char *name, const char *hdr, size_t ndata)
{
    size_t h = strlen(hdr), n = 8 + h + ndata;
    unsigned char *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    memset(b + 8 + h, 0x11, ndata);
    const char *p = tpath(name);
    write_bytes(p, b, n);
    free(b);
    return p;
}

/* Opening must fail with a message containing the path and every fragment given. */
static void expect_open_error(const char *path, const char *frag1, const char *frag2)
{
    duet_error_clear();
    st_file *f = st_open(path);
    if (f) st_close(f);
    ck_assert_msg(f == NULL, "%s opened but is malformed", path);
    const char *e = duet_error();
    ck_assert_msg(strstr(e, path) != NULL, "error does not name the file: %s", e);
    ck_assert_msg(strstr(e, frag1) != NULL, "error lacks '%s': %s", frag1, e);
    if (frag2) ck_assert_msg(strstr(e, frag2) != NULL, "error lacks '%s': %s", frag2, e);
}

START_TEST(test_truncated_short)
{
    const char *p = tpath("short.safetensors");
    write_bytes(p, "\x10\x00\x00", 3);
    expect_open_error(p, "truncated", NULL);
    p = tpath("empty.safetensors");
    write_bytes(p, "", 0);
    expect_open_error(p, "truncated", NULL);
}
END_TEST

START_TEST(test_header_past_eof)
{
    const char *p = tpath("past.safetensors");
    unsigned char b[16] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* says 1000 bytes, has 8 */
    write_bytes(p, b, sizeof b);
    expect_open_error(p, "header length 1000", "past the end");
}
END_TEST

START_TEST(test_header_not_json)
{
    expect_open_error(write_st("notjson.safetensors", "{\"a\": [1, 2", 0), "not a JSON object", NULL);
    expect_open_error(write_st("array.safetensors", "[1, 2, 3]", 0), "not a JSON object", NULL);
}
END_TEST

START_TEST(test_offsets_out_of_range)
{
    expect_open_error(write_st("oob.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8),
                      "'w'", "out of range");
    expect_open_error(write_st("neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8),
                      "'w'", "out of range");
    expect_open_error(write_st("nooff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8), "'w'",
                      "data_offsets");
}
END_TEST

START_TEST(test_bytecount_mismatch)
{
    /* 3 F32 = 12 bytes, but the offsets span 16. */
    expect_open_error(write_st("count.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16),
                      "'w'", "expected 12 bytes");
    /* F16 [2,3] = 12 bytes, offsets span 8. */
    expect_open_error(write_st("count16.safetensors",
                               "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", 16),
                      "'w'", "expected 12 bytes");
}
END_TEST

START_TEST(test_overlap)
{
    expect_open_error(write_st("overlap.safetensors",
                               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16),
                      "overlap", "'a'");
}
END_TEST

START_TEST(test_unknown_dtype)
{
    expect_open_error(write_st("dtype.safetensors", "{\"w\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                      "'w'", "F12");
    /* a GGUF block type has no safetensors form */
    expect_open_error(write_st("q41.safetensors", "{\"w\":{\"dtype\":\"Q4_1\",\"shape\":[32],\"data_offsets\":[0,20]}}", 20),
                      "'w'", "Q4_1");
    expect_open_error(write_st("shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4),
                      "'w'", "shape");
}
END_TEST

START_TEST(test_valid_minimal)
{
    const char *p = write_st("ok.safetensors",
                             "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    st_file *f = st_open(p);
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_int_eq(st_count(f), 1);
    ck_assert_str_eq(st_meta(f, "k"), "v");
    ck_assert_ptr_null(st_meta(f, "nope"));
    const st_tensor *t = st_find(f, "w");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->numel, 2);
    ck_assert_ptr_null(st_find(f, "x"));
    st_close(f);
}
END_TEST

/* ---- sharded sets ---- */

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

START_TEST(test_shard_missing)
{
    write_st("model-00001-of-00002.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    write_text(tpath("model.safetensors.index.json"),
               "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}");
    duet_error_clear();
    st_set *s = st_set_open(tmpdir);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(duet_error(), "model-00002-of-00002.safetensors") && strstr(duet_error(), "'b'"),
                  "error should name the missing shard and the weight: %s", duet_error());
}
END_TEST

START_TEST(test_shard_wrong_tensor)
{
    write_st("s1.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    write_st("s2.safetensors", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    write_text(tpath("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}");
    duet_error_clear();
    st_set *s = st_set_open(tmpdir);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(duet_error(), "'c'") && strstr(duet_error(), "s2.safetensors"),
                  "error should name the tensor and the shard: %s", duet_error());
    /* A good index opens and finds both tensors. */
    write_text(tpath("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
    s = st_set_open(tmpdir);
    ck_assert_msg(s != NULL, "%s", duet_error());
    ck_assert_ptr_nonnull(st_set_find(s, "a"));
    ck_assert_ptr_nonnull(st_set_find(s, "b"));
    st_set_close(s);
    /* An index that escapes the folder is refused. */
    write_text(tpath("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}");
    ck_assert_ptr_null(st_set_open(tmpdir));
    ck_assert_ptr_nonnull(strstr(duet_error(), "same folder"));
    /* No weights at all. */
    unlink(tpath("model.safetensors.index.json"));
    ck_assert_ptr_null(st_set_open(tmpdir));
    ck_assert_ptr_nonnull(strstr(duet_error(), "no model.safetensors"));
}
END_TEST

/* ---- model dir with a wrongly shaped tensor ---- */

START_TEST(test_model_wrong_shape)
{
    write_text(tpath("config.json"),
               "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"intermediate_size\":16,"
               "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":10,"
               "\"max_position_embeddings\":32,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}");
    struct { const char *name; int64_t d0, d1; } t[] = {
        {"model.embed_tokens.weight", 10, 8}, {"model.norm.weight", 8, 0},
        {"model.layers.0.input_layernorm.weight", 8, 0}, {"model.layers.0.self_attn.q_proj.weight", 8, 8},
        {"model.layers.0.self_attn.k_proj.weight", 4, 8}, {"model.layers.0.self_attn.v_proj.weight", 4, 8},
        {"model.layers.0.self_attn.o_proj.weight", 8, 8}, {"model.layers.0.post_attention_layernorm.weight", 8, 0},
        {"model.layers.0.mlp.gate_proj.weight", 16, 8}, {"model.layers.0.mlp.up_proj.weight", 16, 8},
        {"model.layers.0.mlp.down_proj.weight", 8, 15}, /* wrong: (D, F) = (8, 16) */
    };
    static float zeros[256];
    for (int pass = 0; pass < 2; pass++) {
        st_writer *w = st_writer_new();
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            int64_t shape[2] = {t[i].d0, t[i].d1};
            if (pass == 1 && strstr(t[i].name, "down_proj")) shape[1] = 16;
            ck_assert_int_eq(st_writer_add(w, t[i].name, ST_F32, t[i].d1 ? 2 : 1, shape, zeros), 0);
        }
        ck_assert_int_eq(st_writer_save(w, tpath("model.safetensors")), 0);
        st_writer_free(w);
        duet_model *m = duet_model_open(tmpdir);
        if (pass == 0) {
            ck_assert_ptr_null(m);
            const char *e = duet_error();
            ck_assert_msg(strstr(e, "model.layers.0.mlp.down_proj.weight") && strstr(e, "[8, 15]") &&
                              strstr(e, "[8, 16]"),
                          "error should name the tensor and both shapes: %s", e);
        } else {
            ck_assert_msg(m != NULL, "%s", duet_error());
            ck_assert_ptr_eq(m->lm_head, m->embed); /* tied */
            duet_model_close(m);
        }
    }
}
END_TEST

/* ---- writer -> reader ---- */

START_TEST(test_roundtrip)
{
    float a[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f};
    uint16_t h[3] = {0x3c00, 0xc000, 0x7c00};
    int32_t iv[2] = {-7, 1 << 30};
    int64_t sa[2] = {2, 3}, sh[1] = {3}, si[2] = {1, 2}, s0[1] = {0};
    st_writer *w = st_writer_new();
    ck_assert_int_eq(st_writer_add(w, "a", ST_F32, 2, sa, a), 0);
    ck_assert_int_eq(st_writer_add(w, "h", ST_F16, 1, sh, h), 0);
    ck_assert_int_eq(st_writer_add(w, "i", ST_I32, 2, si, iv), 0);
    ck_assert_int_eq(st_writer_add(w, "empty", ST_F32, 1, s0, a), 0);
    ck_assert_int_eq(st_writer_add(w, "a", ST_F32, 2, sa, a), -1); /* duplicate name */
    ck_assert_int_eq(st_writer_meta(w, "token_ids", "1,2,3"), 0);
    ck_assert_int_eq(st_writer_save(w, tpath("rt.safetensors")), 0);
    st_writer_free(w);
    st_file *f = st_open(tpath("rt.safetensors"));
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_int_eq(st_count(f), 4);
    ck_assert_str_eq(st_at(f, 0)->name, "a"); /* insertion order is data order */
    ck_assert_str_eq(st_at(f, 1)->name, "h");
    ck_assert_str_eq(st_meta(f, "token_ids"), "1,2,3");
    const st_tensor *t = st_find(f, "a");
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_int_eq(memcmp(t->data, a, sizeof a), 0);
    ck_assert_int_eq((uintptr_t)t->data % 8, 0); /* data section is 8-byte aligned */
    float out[6];
    ck_assert_int_eq(st_to_f32(st_find(f, "h"), out), 0);
    ck_assert(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]));
    ck_assert_int_eq(st_to_f32(st_find(f, "i"), out), -1); /* I32 is not a float tensor */
    ck_assert_ptr_nonnull(strstr(duet_error(), "'i'"));
    ck_assert_int_eq(memcmp(st_find(f, "i")->data, iv, sizeof iv), 0);
    ck_assert_int_eq(st_find(f, "empty")->numel, 0);
    int64_t want[2] = {2, 3}, bad[2] = {3, 2};
    ck_assert_int_eq(st_check_shape(t, 2, want), 0);
    ck_assert_int_eq(st_check_shape(t, 2, bad), -1);
    st_close(f);
}
END_TEST

/* ---- fp16 / bf16 ---- */

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float float_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

START_TEST(test_f32_to_half_vectors)
{
    char *path = test_src_path("tests/data/fp16_bf16_vectors.txt");
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    unsigned f, h;
    char bf[16];
    int n = 0;
    while (fscanf(fp, "%x %x %15s", &f, &h, bf) == 3) {
        float x = float_of(f);
        uint16_t got = duet_f32_to_f16(x);
        if (isnan(x)) ck_assert_msg((got & 0x7c00) == 0x7c00 && (got & 0x3ff), "f16(nan %08x) = %04x", f, got);
        else ck_assert_msg(got == h, "f32 %08x (%g) -> f16 %04x, numpy says %04x", f, (double)x, got, h);
        uint16_t gb = duet_f32_to_bf16(x);
        if (!strcmp(bf, "nan")) ck_assert_msg(isnan(duet_bf16_to_f32(gb)), "bf16(nan %08x) = %04x is not NaN", f, gb);
        else ck_assert_msg(gb == strtoul(bf, NULL, 16), "f32 %08x (%g) -> bf16 %04x, oracle %s", f, (double)x, gb, bf);
        n++;
    }
    fclose(fp);
    free(path);
    ck_assert_int_ge(n, 400);
}
END_TEST

START_TEST(test_half_to_f32_exhaustive)
{
    for (uint32_t h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        float got = duet_f16_to_f32((uint16_t)h);
        if (e == 31) {
            ck_assert_msg(m ? isnan(got) : isinf(got), "f16 %04x", h);
            if (!m) ck_assert_int_eq(signbit(got) != 0, s);
            continue;
        }
        /* value = (-1)^s * m * 2^-24 (subnormal) or (1024 + m) * 2^(e-25): exact with ldexp */
        double want = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        if (s) want = -want;
        ck_assert_msg(bits_of(got) == bits_of((float)want), "f16 %04x -> %a, want %a", h, (double)got, want);
        /* and back: every finite half survives the round trip */
        ck_assert_msg(duet_f32_to_f16(got) == h, "f16 %04x round trip gives %04x", h, duet_f32_to_f16(got));
    }
    for (uint32_t b = 0; b < 65536; b++) {
        float got = duet_bf16_to_f32((uint16_t)b);
        ck_assert_uint_eq(bits_of(got), b << 16);
        if (!isnan(got)) ck_assert_uint_eq(duet_f32_to_bf16(got), b);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("reader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_truncated_short);
    tcase_add_test(tc, test_header_past_eof);
    tcase_add_test(tc, test_header_not_json);
    tcase_add_test(tc, test_offsets_out_of_range);
    tcase_add_test(tc, test_bytecount_mismatch);
    tcase_add_test(tc, test_overlap);
    tcase_add_test(tc, test_unknown_dtype);
    tcase_add_test(tc, test_valid_minimal);
    tcase_add_test(tc, test_shard_missing);
    tcase_add_test(tc, test_shard_wrong_tensor);
    tcase_add_test(tc, test_model_wrong_shape);
    tcase_add_test(tc, test_roundtrip);
    suite_add_tcase(s, tc);
    TCase *conv = tcase_create("conversions");
    tcase_add_test(conv, test_f32_to_half_vectors);
    tcase_add_test(conv, test_half_to_f32_exhaustive);
    suite_add_tcase(s, conv);
    return s;
}

int main(void) { return test_run_suite(suite()); }
