/* fuzz_tokenizer_gguf.c: libFuzzer harness for duet_tokenizer_load_gguf (common/tokenizer_gguf.c):
 * the input is a GGUF file whose tokenizer.ggml.* metadata becomes a tokenizer. Either it is refused
 * with an error, or the tokenizer holds together: BOS/EOS are -1 or name tokens, every id below
 * vocab_size either has no token or its string names an id, and a few fixed texts encode (or are
 * refused with an error, for a character outside a vocabulary without unk or byte fallback) to ids
 * that decode. */
#include "fuzz_util.h"
#include "error.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *texts[] = {"", " ", "Hello world", "  a  b\n\tc ", "<s>x</s>", "\xc3\xa9t\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80", "a\0b"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    duet_tokenizer *t = duet_tokenizer_load_gguf(fuzz_file(data, size));
    if (!t) {
        FUZZ_CHECK(duet_error()[0] != '\0');
        return 0;
    }
    int vocab = duet_tokenizer_vocab_size(t);
    FUZZ_CHECK(vocab >= 0);
    int bos = duet_tokenizer_bos_id(t), eos = duet_tokenizer_eos_id(t);
    FUZZ_CHECK(bos == -1 || duet_tokenizer_token(t, bos));
    FUZZ_CHECK(eos == -1 || duet_tokenizer_token(t, eos));
    FUZZ_CHECK(duet_tokenizer_token(t, -1) == NULL && duet_tokenizer_token(t, vocab) == NULL);
    for (int id = 0; id < vocab && id < 4096; id++) {
        const char *s = duet_tokenizer_token(t, id);
        if (!s) continue;
        int back = duet_tokenizer_token_id(t, s, strlen(s));
        FUZZ_CHECK(back >= 0 && back < vocab);
    }
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        size_t len = k == sizeof texts / sizeof texts[0] - 1 ? 3 : strlen(texts[k]);
        for (int special = 0; special < 2; special++) {
            int *ids;
            size_t n;
            /* A character outside the vocabulary with no unk_token and no byte fallback is refused. */
            if (duet_tokenizer_encode_opts(t, texts[k], len, special, special, &ids, &n)) {
                FUZZ_CHECK(duet_error()[0] != '\0');
                continue;
            }
            for (size_t i = 0; i < n; i++) FUZZ_CHECK(duet_tokenizer_token(t, ids[i]) != NULL);
            char *out;
            size_t out_len;
            FUZZ_CHECK(duet_tokenizer_decode(t, ids, n, special, &out, &out_len) == 0);
            free(out);
            free(ids);
        }
    }
    duet_tokenizer_free(t);
    return 0;
}
