/* fuzz_gguf.c: libFuzzer harness for gguf_open (common/gguf.c): the input is a whole GGUF file.
 * Either it is refused with an error, or it keeps gguf.h's promises: version 2 or 3; every tensor has
 * numel = the product of its shape and nbytes = st_dtype_bytes(dtype, numel), lies inside the file
 * (its bytes are all read here; they add up to less than the file, since tensors do not overlap) and
 * dequantizes; gguf_find_tensor finds it by name. The metadata getters answer 0, 1 or -1 with an error
 * for the keys duet reads (and a type mismatch on each, asking for another type). */
#include "fuzz_util.h"
#include "dtype.h"
#include "error.h"
#include "gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *keys[] = {
    "general.architecture", "general.alignment", "general.name", "general.file_type",
    "llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
    "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.freq_base",
    "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size", "llama.rope.dimension_count",
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
    "tokenizer.chat_template", "",
};

/* Each getter on one key: 0 (found), 1 (absent) or -1 with an error; absent for one is absent for all. */
static void check_key(const gguf_file *f, const char *key)
{
    int has = gguf_has_key(f, key), rc;
    int64_t i;
    double d;
    int b;
    gguf_str s;
    const gguf_str *items;
    uint64_t n;
    int64_t *iv;
    float *fv;
#define ANSWER(call)                                                                                           \
    do {                                                                                                       \
        duet_error_clear();                                                                                    \
        rc = (call);                                                                                           \
        FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1);                                                            \
        FUZZ_CHECK((rc == 1) == !has);                                                                         \
        FUZZ_CHECK(rc != -1 || duet_error()[0] != '\0');                                                       \
    } while (0)
    ANSWER(gguf_get_int(f, key, &i));
    ANSWER(gguf_get_float(f, key, &d));
    ANSWER(gguf_get_bool(f, key, &b));
    ANSWER(gguf_get_str(f, key, &s));
    if (rc == 0) {
        unsigned sum = 0;
        for (uint64_t k = 0; k < s.len; k++) sum += (unsigned char)s.s[k];
        (void)sum;
    }
    ANSWER(gguf_get_str_arr(f, key, &items, &n));
    if (rc == 0)
        for (uint64_t k = 0; k < n; k++) {
            unsigned sum = 0;
            for (uint64_t c = 0; c < items[k].len; c++) sum += (unsigned char)items[k].s[c];
            (void)sum;
        }
    ANSWER(gguf_get_int_arr(f, key, &iv, &n));
    if (rc == 0) free(iv);
    ANSWER(gguf_get_f32_arr(f, key, &fv, &n));
    if (rc == 0) free(fv);
#undef ANSWER
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = gguf_open(fuzz_file(data, size));
    if (!f) {
        FUZZ_CHECK(duet_error()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(gguf_version(f) == 2 || gguf_version(f) == 3);
    FUZZ_CHECK(gguf_path(f) != NULL);
    size_t total = 0;
    int n = gguf_n_tensors(f);
    FUZZ_CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = gguf_tensor_at(f, i);
        FUZZ_CHECK(t && t->name && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        const st_dtype_traits *tr = st_dtype_info(t->dtype);
        FUZZ_CHECK(tr != NULL && tr->ggml_type >= 0);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= t->shape[d];
        }
        FUZZ_CHECK(numel == t->numel);
        FUZZ_CHECK(t->nbytes == st_dtype_bytes(t->dtype, t->numel));
        FUZZ_CHECK(t->nbytes <= size);
        total += t->nbytes;
        FUZZ_CHECK(total <= size);
        FUZZ_CHECK(gguf_find_tensor(f, t->name) != NULL);
        const unsigned char *p = t->data;
        unsigned sum = 0;
        for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
        (void)sum;
        if (tr->to_f32 && t->numel > 0) {
            float *out = malloc((size_t)t->numel * sizeof *out);
            FUZZ_CHECK(out != NULL);
            tr->to_f32(t->data, out, t->numel);
            free(out);
        }
    }
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) check_key(f, keys[k]);
    gguf_close(f);
    return 0;
}
