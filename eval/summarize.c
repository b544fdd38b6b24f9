/* summarize.c: the summarize.py prompt protocol (see summarize.h). */
#include "summarize.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

/* Python's str.isspace() for the ASCII whitespace that str.strip() removes (the articles are UTF-8;
 * non-ASCII spaces at the ends do not occur in cnn_dailymail, and are kept). */
static int py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

char *summarize_prompt_text(const char *article, size_t len, size_t *out_len)
{
    static const char suffix[] = " TL;DR: ";
    size_t n = len + sizeof suffix - 1;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, article, len);
    memcpy(s + len, suffix, sizeof suffix);
    /* .strip() */
    size_t b = 0, e = n;
    while (b < e && py_space((unsigned char)s[b])) b++;
    while (e > b && py_space((unsigned char)s[e - 1])) e--;
    /* .replace(" n't", "n't"), left to right, non-overlapping */
    size_t w = 0;
    for (size_t r = b; r < e;) {
        if (r + 4 <= e && !memcmp(s + r, " n't", 4)) {
            memcpy(s + w, "n't", 3);
            w += 3;
            r += 4;
        } else {
            s[w++] = s[r++];
        }
    }
    s[w] = '\0';
    *out_len = w; /* not strlen(s): an article may hold NUL bytes, and the prompt keeps what follows them */
    return s;
}

int summarize_prompt_ids(const duet_tokenizer *tok, const char *article, size_t len, int max_input, int **ids, size_t *n)
{
    if (max_input < 2) return duet_errorf("--max-input %d: must be at least 2 (BOS + one token)", max_input);
    size_t text_len;
    char *text = summarize_prompt_text(article, len, &text_len);
    if (!text) return duet_errorf("out of memory");
    int rc = duet_tokenizer_encode(tok, text, text_len, 1, ids, n);
    free(text);
    if (rc) return -1;
    if (*n > (size_t)max_input) {
        /* keep ids[0] (BOS) and the last max_input-1 tokens */
        size_t drop = *n - (size_t)max_input;
        memmove(*ids + 1, *ids + 1 + drop, sizeof(int) * ((size_t)max_input - 1));
        *n = (size_t)max_input;
    }
    return 0;
}

int summarize_check_lengths(int max_input, int max_output, int max_pos, const char *model_dir)
{
    if (max_input + max_output <= max_pos) return 0;
    if (max_pos - max_output >= 2)
        return duet_errorf("%s has %d positions (max_position_embeddings), fewer than --max-input %d + --max-output %d; "
                           "lower --max-input to %d or less",
                           model_dir, max_pos, max_input, max_output, max_pos - max_output);
    return duet_errorf("%s has %d positions, too few for --max-output %d; lower --max-output", model_dir, max_pos,
                       max_output);
}
