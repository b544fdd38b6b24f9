/* test_gguf_model.c: the default model (SmolLM2-135M-Instruct Q4_1 GGUF, `make model`) through the
 * GGUF reader: 272 tensors (210 Q4_1, 1 Q8_0, 61 F32), token_embd.weight {49152, 576}, the metadata
 * the loader needs, and dequantized rows (token_embd row 0, blk.0.attn_q rows 0, 1, 575) equal bit
 * for bit to gguf-py's, recorded in tests/data/gguf/smollm2_q4_1.json by
 * scripts/make_gguf_fixtures.py --model. Skips (77) without the model, or when its sha256 is not the
 * one recorded there (another file: the expected values would not apply). */
#include "test_util.h"

#include "error.h"
#include "gguf.h"

#include <jansson.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *load_json(const char *rel)
{
    char *p = test_src_path(rel);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    if (!j) {
        fprintf(stderr, "%s: %s\n", p, e.text);
        exit(TEST_EXIT_HARD);
    }
    free(p);
    return j;
}

static void sha256_hex(const char *path, char hex[65])
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        exit(TEST_EXIT_HARD);
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) sha256_update(&ctx, n, buf);
    fclose(fp);
    unsigned char dig[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof dig, dig);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", dig[i]);
}

static char *model_path;

START_TEST(test_real_model)
{
    json_t *j = load_json("tests/data/gguf/smollm2_q4_1.json");
    gguf_file *f = gguf_open(model_path);
    ck_assert_msg(f != NULL, "%s", duet_error());
    ck_assert_int_eq(gguf_n_tensors(f), 272);
    ck_assert_int_eq(gguf_n_tensors(f), json_integer_value(json_object_get(j, "n_tensors")));
    int counts[ST_N_DTYPES] = {0};
    for (int i = 0; i < gguf_n_tensors(f); i++) counts[gguf_tensor_at(f, i)->dtype]++;
    ck_assert_int_eq(counts[ST_Q4_1], 210);
    ck_assert_int_eq(counts[ST_Q8_0], 1);
    ck_assert_int_eq(counts[ST_F32], 61);
    json_t *types = json_object_get(j, "types");
    const char *tn;
    json_t *tv;
    json_object_foreach(types, tn, tv) ck_assert_int_eq(counts[st_dtype_from_name(tn)], json_integer_value(tv));
    const st_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    ck_assert_ptr_nonnull(emb);
    ck_assert_int_eq(st_check_shape(emb, 2, (const int64_t[]){49152, 576}), 0);
    int64_t v;
    ck_assert_int_eq(gguf_get_int(f, "llama.embedding_length", &v), 0);
    ck_assert_int_eq(v, 576);
    const gguf_str *toks;
    uint64_t n;
    ck_assert_int_eq(gguf_get_str_arr(f, "tokenizer.ggml.tokens", &toks, &n), 0);
    ck_assert_uint_eq(n, 49152);
    size_t i;
    json_t *row;
    int checked = 0;
    json_array_foreach(json_object_get(j, "rows"), i, row) {
        const st_tensor *t = gguf_find_tensor(f, json_string_value(json_object_get(row, "tensor")));
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(st_dtype_name(t->dtype), json_string_value(json_object_get(row, "type")));
        int64_t r = json_integer_value(json_object_get(row, "row")), cols = t->shape[t->ndim - 1];
        json_t *bits = json_object_get(row, "f32_bits");
        ck_assert_uint_eq(json_array_size(bits), (size_t)cols);
        /* one row through the table, and the same row of the whole tensor through st_to_f32 */
        size_t rb = st_dtype_bytes(t->dtype, cols);
        float *x = malloc((size_t)cols * sizeof *x), *all = malloc((size_t)t->numel * sizeof *all);
        st_dtype_info(t->dtype)->to_f32((const char *)t->data + r * rb, x, cols);
        ck_assert_int_eq(st_to_f32(t, all), 0);
        ck_assert(!memcmp(x, all + r * cols, (size_t)cols * 4));
        for (int64_t k = 0; k < cols; k++) {
            uint32_t g;
            memcpy(&g, &x[k], 4);
            ck_assert_msg(g == (uint32_t)json_integer_value(json_array_get(bits, (size_t)k)),
                          "%s row %lld col %lld: %08x differs from gguf-py", t->name, (long long)r, (long long)k, g);
            checked++;
        }
        free(x);
        free(all);
    }
    ck_assert_int_eq(checked, 4 * 576);
    fprintf(stderr, "%s: 272 tensors, %d dequantized floats equal gguf-py's\n", model_path, checked);
    gguf_close(f);
    json_decref(j);
}
END_TEST

int main(void)
{
    model_path = test_model_path();
    test_skip_unless(model_path, "the default model (make model)");
    json_t *j = load_json("tests/data/gguf/smollm2_q4_1.json");
    char hex[65];
    sha256_hex(model_path, hex);
    if (strcmp(hex, json_string_value(json_object_get(j, "sha256")))) {
        fprintf(stderr, "%s: sha256 %s is not that of the file the expected values come from (%s): skipped\n",
                model_path, hex, json_string_value(json_object_get(j, "sha256")));
        return TEST_EXIT_SKIP;
    }
    json_decref(j);
    Suite *s = suite_create("gguf_model");
    TCase *tc = tcase_create("gguf_model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_real_model);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    free(model_path);
    return rc;
}
