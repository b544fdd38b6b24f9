/* summarize.c: the summarize.py prompt protocol (see summarize.h). */
#include "summarize.h"
#include "error.h"
#include "chat.h"

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
        /* keep ids[0] when it is the BOS the tokenizer added, and the last tokens */
        size_t keep = duet_tokenizer_bos_id(tok) >= 0 && (*ids)[0] == duet_tokenizer_bos_id(tok) ? 1 : 0;
        size_t drop = *n - (size_t)max_input;
        memmove(*ids + keep, *ids + keep + drop, sizeof(int) * ((size_t)max_input - keep));
        *n = (size_t)max_input;
    }
    return 0;
}

/* Appends ids[0, n) to *all (grown); 0 or -1. */
static int append(int **all, size_t *n_all, const int *ids, size_t n)
{
    int *p = realloc(*all, sizeof(int) * (*n_all + n + 1));
    if (!p) return duet_errorf("out of memory");
    memcpy(p + *n_all, ids, sizeof(int) * n);
    *all = p;
    *n_all += n;
    return 0;
}

int summarize_chat_prompt_ids(const duet_tokenizer *tok, const duet_chat_template *tmpl, const char *article,
                              size_t len, int max_input, int **ids, size_t *n)
{
    /* The user turn is SUMMARIZE_CHAT_INSTRUCTION "\n\n" article; the template is rendered around a
     * marker, and the text before and after it is tokenized apart from the article, so a long article
     * can lose its tail tokens without cutting the template. */
    static const char marker[] = "\x01duet-article\x01";
    char *user = malloc(sizeof SUMMARIZE_CHAT_INSTRUCTION + 2 + sizeof marker);
    if (!user) return duet_errorf("out of memory");
    strcpy(user, SUMMARIZE_CHAT_INSTRUCTION "\n\n");
    strcat(user, marker);
    duet_chat_msg msg = {"user", user};
    char *text = duet_chat_render(tmpl, &msg, 1, NULL, 1);
    free(user);
    if (!text) return -1;
    char *at = strstr(text, marker);
    int *pre = NULL, *art = NULL, *post = NULL;
    size_t n_pre = 0, n_art = 0, n_post = 0;
    int rc = -1;
    *ids = NULL;
    *n = 0;
    if (duet_tokenizer_encode_opts(tok, text, (size_t)(at - text), tmpl->add_bos, 1, &pre, &n_pre) ||
        duet_tokenizer_encode_opts(tok, article, len, 0, 0, &art, &n_art) ||
        duet_tokenizer_encode_opts(tok, at + sizeof marker - 1, strlen(at + sizeof marker - 1), 0, 1, &post, &n_post))
        goto out;
    if (n_pre + n_post + 1 > (size_t)max_input) {
        duet_errorf("--max-input %d: the chat template alone takes %zu tokens", max_input, n_pre + n_post);
        goto out;
    }
    if (n_pre + n_art + n_post > (size_t)max_input) n_art = (size_t)max_input - n_pre - n_post; /* keep the lede */
    if (append(ids, n, pre, n_pre) || append(ids, n, art, n_art) || append(ids, n, post, n_post)) goto out;
    rc = 0;
out:
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    free(text);
    free(pre);
    free(art);
    free(post);
    return rc;
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
