/* tokenizer_decode.c: ids -> text as `tokenizers` decode(ids, skip_special_tokens) does it: the
 * token strings run through the decoder chain one step at a time over the whole list (Replace,
 * ByteFallback, Fuse, Strip, Metaspace), then are joined ("" with a decoder, " " without).
 * The streaming decoder (duet_detok) gives the same bytes incrementally; it is written
 * separately so that the tests can hold the two against each other. */
#include "tokenizer_impl.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>

static const char REPLACEMENT_CHAR[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* The byte of a "<0xXX>" token as ByteFallback reads it (Rust u8::from_str_radix on the two
 * characters, which also takes "+X"), or -1. */
static int byte_of(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0, digits = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) {
            if (i == 3 && c == '+') continue;
            return -1;
        }
        v = v * 16 + d;
        digits++;
    }
    return digits ? v : -1;
}

/* Appends a finished byte-fallback run: as is when it is valid UTF-8, else U+FFFD per byte. */
static void put_byte_run(tk_buf *out, const char *bytes, size_t n)
{
    if (tk_utf8_check(bytes, n) == n) {
        tk_buf_put(out, bytes, n);
    } else {
        for (size_t i = 0; i < n; i++) tk_buf_put(out, REPLACEMENT_CHAR, 3);
    }
}

/* Strip: drop up to `start` leading and `stop` trailing occurrences of the character ch. */
static void strip_token(const tk_dec *d, const char *s, size_t n, tk_buf *out)
{
    size_t cl = strlen(d->ch), a = 0, b = n;
    for (size_t k = 0; k < d->start && a + cl <= b && !memcmp(s + a, d->ch, cl); k++) a += cl;
    for (size_t k = 0; k < d->stop && b >= a + cl && !memcmp(s + b - cl, d->ch, cl); k++) b -= cl;
    tk_buf_put(out, s + a, b - a);
}

/* Metaspace decoder: the replacement character becomes ' ', except in the first token, where
 * (prepend_scheme != never) every one of them is dropped, as tokenizers does. */
static void metaspace_token(const tk_dec *d, const char *s, size_t n, int first, tk_buf *out)
{
    size_t cl = strlen(d->ch), i = 0, copied = 0;
    while (i + cl <= n) {
        if (!memcmp(s + i, d->ch, cl)) {
            tk_buf_put(out, s + copied, i - copied);
            if (!(first && d->start)) tk_buf_put(out, " ", 1);
            i += cl;
            copied = i;
        } else {
            i++;
        }
    }
    tk_buf_put(out, s + copied, n - copied);
}

/* A per-token step (Replace, Strip, Metaspace) on one string. */
static void apply_token_step(const tk_dec *d, const char *s, size_t n, int index, tk_buf *out)
{
    switch (d->type) {
    case TK_DEC_REPLACE: tk_replace_apply(&d->r, s, n, out); break;
    case TK_DEC_STRIP: strip_token(d, s, n, out); break;
    case TK_DEC_METASPACE: metaspace_token(d, s, n, index == 0, out); break;
    default: tk_buf_put(out, s, n); break;
    }
}

static int check_id(const duet_tokenizer *t, int id)
{
    if (id < 0 || id >= t->vocab_size || !t->tokens[id].s)
        return duet_errorf("tokenizer: id %d is not in the vocabulary (size %d)", id,
                           t->vocab_size);
    return 0;
}

int duet_tokenizer_decode(const duet_tokenizer *t, const int *ids, size_t n, int skip_special,
                          char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    tk_buf *list = tk_xmalloc((n ? n : 1) * sizeof *list), *next;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_id(t, ids[i])) {
            for (size_t k = 0; k < nl; k++) free(list[k].p);
            free(list);
            return -1;
        }
        const tk_token *tok = &t->tokens[ids[i]];
        if (skip_special && tok->special) continue;
        list[nl] = (tk_buf){0};
        tk_buf_put(&list[nl++], tok->s, tok->len);
    }
    for (int k = 0; k < t->n_decs; k++) {
        const tk_dec *d = &t->decs[k];
        next = tk_xmalloc((nl ? nl : 1) * sizeof *next);
        size_t nn = 0;
        if (d->type == TK_DEC_BYTE_FALLBACK) {
            tk_buf run = {0};
            for (size_t i = 0; i <= nl; i++) {
                int b = i < nl ? byte_of(list[i].p, list[i].n) : -1;
                if (b >= 0) {
                    char c = (char)b;
                    tk_buf_put(&run, &c, 1);
                    continue;
                }
                if (run.n) { /* a run becomes one string, or one U+FFFD per byte: never more
                              * strings than tokens */
                    if (tk_utf8_check(run.p, run.n) == run.n) {
                        next[nn] = (tk_buf){0};
                        tk_buf_put(&next[nn++], run.p, run.n);
                    } else {
                        for (size_t r = 0; r < run.n; r++) {
                            next[nn] = (tk_buf){0};
                            tk_buf_put(&next[nn++], REPLACEMENT_CHAR, 3);
                        }
                    }
                    run.n = 0;
                }
                if (i < nl) {
                    next[nn] = (tk_buf){0};
                    tk_buf_put(&next[nn++], list[i].p, list[i].n);
                }
            }
            free(run.p);
        } else if (d->type == TK_DEC_FUSE) {
            next[0] = (tk_buf){0};
            tk_buf_put(&next[0], "", 0);
            for (size_t i = 0; i < nl; i++) tk_buf_put(&next[0], list[i].p, list[i].n);
            nn = 1;
        } else {
            for (size_t i = 0; i < nl; i++) {
                next[nn] = (tk_buf){0};
                tk_buf_put(&next[nn], "", 0);
                apply_token_step(d, list[i].p, list[i].n, (int)i, &next[nn]);
                nn++;
            }
        }
        for (size_t i = 0; i < nl; i++) free(list[i].p);
        free(list);
        list = next;
        nl = nn;
    }
    tk_buf out = {0};
    tk_buf_put(&out, "", 0);
    for (size_t i = 0; i < nl; i++) {
        if (i && !t->has_decoder) tk_buf_put(&out, " ", 1);
        tk_buf_put(&out, list[i].p, list[i].n);
        free(list[i].p);
    }
    free(list);
    *text = out.p;
    *len = out.n;
    return 0;
}

/* ---- streaming ------------------------------------------------------------------------------ */

struct duet_detok {
    const duet_tokenizer *t;
    int n_token_steps;   /* decs[0 .. n_token_steps) are per-token steps */
    int byte_fallback;   /* a ByteFallback step follows them */
    const tk_dec *strip; /* Strip after Fuse (stop == 0), or NULL */
    size_t strip_left;   /* leading strip characters still to consider */
    int strip_done;      /* a character that is not the strip character has been emitted */
    int index;           /* tokens pushed so far (not counting skipped special tokens) */
    tk_buf pending;      /* the byte-fallback run not yet closed */
    tk_buf out, tmp, tmp2;
};

duet_detok *duet_detok_new(const duet_tokenizer *t)
{
    duet_detok *d = tk_xmalloc(sizeof *d);
    memset(d, 0, sizeof *d);
    d->t = t;
    int k = 0;
    /* Streamable shape: per-token steps, then [ByteFallback], then [Fuse [Strip(stop 0)]]. */
    while (k < t->n_decs && t->decs[k].type != TK_DEC_BYTE_FALLBACK && t->decs[k].type != TK_DEC_FUSE)
        k++;
    d->n_token_steps = k;
    if (k < t->n_decs && t->decs[k].type == TK_DEC_BYTE_FALLBACK) d->byte_fallback = 1, k++;
    if (k < t->n_decs && t->decs[k].type == TK_DEC_FUSE) {
        k++;
        if (k < t->n_decs && t->decs[k].type == TK_DEC_STRIP && t->decs[k].stop == 0) {
            d->strip = &t->decs[k++];
            d->strip_left = d->strip->start;
        }
    }
    if (k != t->n_decs) {
        free(d);
        duet_errorf("tokenizer: streaming decode does not support this decoder chain (step %d of "
                    "type %d); use duet_tokenizer_decode",
                    k, t->decs[k].type);
        return NULL;
    }
    return d;
}

void duet_detok_free(duet_detok *d)
{
    if (!d) return;
    free(d->pending.p);
    free(d->out.p);
    free(d->tmp.p);
    free(d->tmp2.p);
    free(d);
}

/* Appends finished text to d->out, applying the leading Strip of the fused string. */
static void emit(duet_detok *d, const char *s, size_t n)
{
    if (d->strip && !d->strip_done) {
        size_t cl = strlen(d->strip->ch);
        while (n && !d->strip_done) {
            if (d->strip_left && n >= cl && !memcmp(s, d->strip->ch, cl)) {
                s += cl, n -= cl;
                d->strip_left--;
            } else {
                d->strip_done = 1;
            }
        }
    }
    tk_buf_put(&d->out, s, n);
}

static void flush_pending(duet_detok *d)
{
    if (!d->pending.n) return;
    d->tmp2.n = 0;
    tk_buf_put(&d->tmp2, "", 0);
    put_byte_run(&d->tmp2, d->pending.p, d->pending.n);
    d->pending.n = 0;
    emit(d, d->tmp2.p, d->tmp2.n);
}

int duet_detok_push(duet_detok *d, int id, char **out, size_t *len)
{
    const duet_tokenizer *t = d->t;
    d->out.n = 0;
    tk_buf_put(&d->out, "", 0);
    *out = d->out.p;
    *len = 0;
    if (check_id(t, id)) return -1;
    const tk_token *tok = &t->tokens[id];
    if (tok->special) return 0; /* skip_special = 1 */
    d->tmp.n = 0;
    tk_buf_put(&d->tmp, tok->s, tok->len);
    for (int k = 0; k < d->n_token_steps; k++) {
        d->tmp2.n = 0;
        tk_buf_put(&d->tmp2, "", 0);
        apply_token_step(&t->decs[k], d->tmp.p, d->tmp.n, d->index, &d->tmp2);
        tk_buf swap = d->tmp;
        d->tmp = d->tmp2;
        d->tmp2 = swap;
    }
    int first = d->index == 0;
    d->index++;
    int b = d->byte_fallback ? byte_of(d->tmp.p, d->tmp.n) : -1;
    if (b >= 0) {
        char c = (char)b;
        tk_buf_put(&d->pending, &c, 1);
    } else {
        flush_pending(d);
        if (!t->has_decoder && !first) emit(d, " ", 1);
        emit(d, d->tmp.p, d->tmp.n);
    }
    *out = d->out.p;
    *len = d->out.n;
    return 0;
}

int duet_detok_finish(duet_detok *d, char **out, size_t *len)
{
    d->out.n = 0;
    tk_buf_put(&d->out, "", 0);
    flush_pending(d);
    *out = d->out.p;
    *len = d->out.n;
    return 0;
}
