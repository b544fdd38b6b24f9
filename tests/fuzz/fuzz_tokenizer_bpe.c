/* fuzz_tokenizer_bpe.c: libFuzzer harness for byte-level BPE encode and decode (tokenizer_bytelevel.c,
 * tokenizer_encode.c, tokenizer_decode.c) on the committed fixtures, loaded once: SmolLM2's
 * tokenizer.json (tests/data/tokenizer/smollm2_bpe_tokenizer.json) and the tiny GGUF tokenizers of
 * tests/data/tokenizer/gguf/ (pre-tokenizers gpt2, llama-bpe, qwen2).
 *
 * Input: byte 0 picks the tokenizer (bits 0-1) and the flags add_special (bit 2), parse_special
 * (bit 3), skip_special (bit 4); the rest is the text and, read as little-endian u16 pairs, ids to
 * decode. Invariants (tokenizer.h): encode fails exactly when the text is not UTF-8; its ids name
 * tokens; decode of ids that name tokens never fails and gives valid UTF-8 (HF decodes to a Rust
 * String); an id without a token fails; streaming decode (duet_detok) gives the same bytes as
 * decode(skip_special=1). (No round trip: SmolLM2's vocab lacks some byte symbols, e.g. the one of
 * 0x04, which HF too encodes as its unk <|endoftext|>.) */
#include "fuzz_util.h"
#include "error.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static duet_tokenizer *toks[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *files[] = {"tests/data/tokenizer/smollm2_bpe_tokenizer.json", "tests/data/tokenizer/gguf/tiny_gpt2.gguf",
                                  "tests/data/tokenizer/gguf/tiny_llama-bpe.gguf", "tests/data/tokenizer/gguf/tiny_qwen2.gguf"};
    for (int i = 0; i < 4; i++) {
        char *p = fuzz_src_path(files[i]);
        toks[i] = i == 0 ? duet_tokenizer_load_files(p, NULL) : duet_tokenizer_load_gguf(p);
        if (!toks[i]) {
            fprintf(stderr, "fuzz_tokenizer_bpe: cannot load %s: %s (set DUET_SRCDIR)\n", p, duet_error());
            abort();
        }
        free(p);
    }
    return 0;
}

/* RFC 3629 UTF-8, written apart from the tokenizer's own check (see fuzz_tokenizer.c). */
static int is_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        uint32_t lo;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) len = 2, lo = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = 0x10000;
        else return 0;
        if (n - i < len) return 0;
        uint32_t v = c & (0x3F >> (len - 1));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        if (v < lo || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static void check_stream(const duet_tokenizer *t, const int *ids, size_t n)
{
    duet_detok *d = duet_detok_new(t);
    if (!d) return;
    char *whole;
    size_t whole_len;
    FUZZ_CHECK(duet_tokenizer_decode(t, ids, n, 1, &whole, &whole_len) == 0);
    char *cat = malloc(whole_len + 1);
    size_t cat_len = 0, cap = whole_len + 1;
    for (size_t i = 0; i <= n; i++) {
        char *out;
        size_t len;
        FUZZ_CHECK((i < n ? duet_detok_push(d, ids[i], &out, &len) : duet_detok_finish(d, &out, &len)) == 0);
        if (cat_len + len + 1 > cap) cat = realloc(cat, cap = 2 * (cat_len + len + 1));
        memcpy(cat + cat_len, out, len);
        cat_len += len;
    }
    FUZZ_CHECK(cat_len == whole_len && memcmp(cat, whole, whole_len) == 0);
    free(cat);
    free(whole);
    duet_detok_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const duet_tokenizer *t = toks[data[0] & 3];
    int add_special = (data[0] >> 2) & 1, parse_special = (data[0] >> 3) & 1, skip_special = (data[0] >> 4) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int vocab = duet_tokenizer_vocab_size(t);

    int *ids;
    size_t n_ids;
    int rc = duet_tokenizer_encode_opts(t, text, len, add_special, parse_special, &ids, &n_ids);
    FUZZ_CHECK((rc == 0) == is_utf8((const unsigned char *)text, len));
    if (rc == 0) {
        for (size_t i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab && duet_tokenizer_token(t, ids[i]));
        char *out;
        size_t out_len;
        FUZZ_CHECK(duet_tokenizer_decode(t, ids, n_ids, skip_special, &out, &out_len) == 0);
        FUZZ_CHECK(is_utf8((const unsigned char *)out, out_len));
        free(out);
        check_stream(t, ids, n_ids);
        free(ids);
    }

    size_t n = len / 2;
    int *v = malloc((n ? n : 1) * sizeof *v);
    int all_valid = 1;
    for (size_t i = 0; i < n; i++) {
        v[i] = (int)((uint32_t)(data[1 + 2 * i] | data[2 + 2 * i] << 8) % (uint32_t)(vocab + 2));
        if (!duet_tokenizer_token(t, v[i])) all_valid = 0;
    }
    char *out;
    size_t out_len;
    rc = duet_tokenizer_decode(t, v, n, skip_special, &out, &out_len);
    FUZZ_CHECK((rc == 0) == all_valid);
    if (rc == 0) {
        FUZZ_CHECK(is_utf8((const unsigned char *)out, out_len));
        free(out);
        check_stream(t, v, n);
    }
    free(v);
    return 0;
}
