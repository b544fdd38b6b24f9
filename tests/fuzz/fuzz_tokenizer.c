/* fuzz_tokenizer.c: libFuzzer harness for encode and decode (common/tokenizer_encode.c,
 * tokenizer_decode.c) on fixed tokenizers, loaded once: the committed tests/data/tokenizer/tiny.json,
 * the same with bad/tiny_config.json (BOS off, EOS on), and the shared Llama-2 tokenizer.json when
 * the shared data is there ($DUET_DATA, else ../shared/data beside the source tree).
 *
 * Input: byte 0 picks the tokenizer and the flags (add_special, skip_special); the rest is the text
 * to encode and, read as little-endian u16 pairs, a list of ids to decode. Invariants (tokenizer.h):
 * encode fails exactly when the text is not UTF-8; encoded ids are in the vocabulary; decode of ids
 * that name tokens never fails and gives valid UTF-8 (HF decodes to a Rust String); decode of an id
 * without a token fails; streaming decode (duet_detok) gives the same bytes as decode(skip_special=1). */
#include "fuzz_util.h"
#include "error.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static duet_tokenizer *toks[3];
static int n_toks;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *tiny = fuzz_src_path("tests/data/tokenizer/tiny.json");
    char *cfg = fuzz_src_path("tests/data/tokenizer/bad/tiny_config.json");
    toks[n_toks++] = duet_tokenizer_load_files(tiny, NULL);
    toks[n_toks++] = duet_tokenizer_load_files(tiny, cfg);
    if (!toks[0] || !toks[1]) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s (set DUET_SRCDIR)\n", tiny, duet_error());
        abort();
    }
    const char *env = getenv("DUET_DATA");
    char *data = env && *env ? strdup(env) : fuzz_src_path("../shared/data");
    size_t n = strlen(data) + 64;
    char *llama = malloc(n);
    snprintf(llama, n, "%s/llama2-tokenizer/tokenizer.json", data);
    struct stat st;
    if (stat(llama, &st) == 0) {
        toks[n_toks] = duet_tokenizer_load_files(llama, NULL);
        if (!toks[n_toks]) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", llama, duet_error());
            abort();
        }
        n_toks++;
    }
    free(llama);
    free(data);
    free(tiny);
    free(cfg);
    return 0;
}

/* RFC 3629 UTF-8 (no surrogates, no overlongs, at most U+10FFFF), written apart from the tokenizer's
 * own check so that the harness does not trust what it tests. */
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

/* Decode must agree with the streaming decoder (when the decoder chain streams). */
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
    const duet_tokenizer *t = toks[(data[0] & 3) % n_toks];
    int add_special = (data[0] >> 2) & 1, skip_special = (data[0] >> 3) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int vocab = duet_tokenizer_vocab_size(t);

    int *ids;
    size_t n_ids;
    int rc = duet_tokenizer_encode(t, text, len, add_special, &ids, &n_ids);
    FUZZ_CHECK((rc == 0) == is_utf8((const unsigned char *)text, len));
    if (rc == 0) {
        for (size_t i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab && duet_tokenizer_token(t, ids[i]));
        char *out;
        size_t out_len;
        FUZZ_CHECK(duet_tokenizer_decode(t, ids, n_ids, skip_special, &out, &out_len) == 0);
        FUZZ_CHECK(strlen(out) <= out_len && is_utf8((const unsigned char *)out, out_len));
        free(out);
        check_stream(t, ids, n_ids);
        free(ids);
    }

    /* The same bytes as ids: u16 values reduced into [0, vocab + 2) so that a few are out of range. */
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
