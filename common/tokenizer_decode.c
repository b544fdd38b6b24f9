/* tokenizer_decode.c: ids -> text as `tokenizers` decode(ids, skip_special_tokens) does it: the
 * token strings run through the decoder chain one step at a time over the whole list (Replace,
 * ByteFallback, Fuse, Strip, Metaspace, ByteLevel: tokens back to bytes, read as lossy UTF-8),
 * then are joined ("" with a decoder, " " without).
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

/* A per-token step (Replace, Strip, Metaspace) on one string; a failed append shows in out. */
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

/* A list of strings (the decoder's working list); `failed` once an append ran out of memory. */
typedef struct {
    tk_buf *s;
    size_t n;
    int failed;
} strlist;

/* Appends a new string (room for it was allocated up front: never more strings than tokens). */
static tk_buf *list_add(strlist *l, const char *s, size_t n)
{
    tk_buf *b = &l->s[l->n++];
    *b = (tk_buf){0};
    if (tk_buf_put(b, s, n)) l->failed = 1;
    return b;
}

static void list_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->s[i].p);
    free(l->s);
    l->s = NULL;
    l->n = 0;
}

/* One decoder step over the whole list: in -> out (out has room for in.n strings). */
static void decode_step(const tk_dec *d, const strlist *in, strlist *out)
{
    if (d->type == TK_DEC_BYTE_FALLBACK) {
        tk_buf run = {0};
        for (size_t i = 0; i <= in->n; i++) {
            int b = i < in->n ? byte_of(in->s[i].p, in->s[i].n) : -1;
            if (b >= 0) {
                char c = (char)b;
                if (tk_buf_put(&run, &c, 1)) out->failed = 1;
                continue;
            }
            if (run.n) { /* a run becomes one string, or one U+FFFD per byte */
                if (tk_utf8_check(run.p, run.n) == run.n) list_add(out, run.p, run.n);
                else
                    for (size_t r = 0; r < run.n; r++) list_add(out, REPLACEMENT_CHAR, 3);
                run.n = 0;
            }
            if (i < in->n) list_add(out, in->s[i].p, in->s[i].n);
        }
        free(run.p);
    } else if (d->type == TK_DEC_FUSE || d->type == TK_DEC_BYTE_LEVEL) {
        /* Fuse: one string; ByteLevel: every token back to its bytes, then the whole read as
         * lossy UTF-8, one string */
        tk_buf *all = list_add(out, "", 0), bytes = {0};
        for (size_t i = 0; i < in->n; i++)
            if (d->type == TK_DEC_FUSE) tk_buf_put(all, in->s[i].p, in->s[i].n);
            else tk_chars_to_bytes(in->s[i].p, in->s[i].n, &bytes);
        if (d->type == TK_DEC_BYTE_LEVEL && !bytes.failed) tk_utf8_lossy(bytes.p, bytes.n, all);
        if (all->failed || bytes.failed) out->failed = 1;
        free(bytes.p);
    } else {
        for (size_t i = 0; i < in->n; i++) {
            tk_buf *b = list_add(out, "", 0);
            apply_token_step(d, in->s[i].p, in->s[i].n, (int)i, b);
            if (b->failed) out->failed = 1;
        }
    }
}

int duet_tokenizer_decode(const duet_tokenizer *t, const int *ids, size_t n, int skip_special,
                          char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    strlist list = {tk_malloc_n(n ? n : 1, sizeof(tk_buf)), 0, 0};
    if (!list.s) return -1;
    for (size_t i = 0; i < n; i++) {
        if (check_id(t, ids[i])) {
            list_free(&list);
            return -1;
        }
        const tk_token *tok = &t->tokens[ids[i]];
        if (!(skip_special && tok->special)) list_add(&list, tok->s, tok->len);
    }
    for (int k = 0; k < t->n_decs && !list.failed; k++) {
        strlist next = {tk_malloc_n(list.n ? list.n : 1, sizeof(tk_buf)), 0, 0};
        if (!next.s) {
            list_free(&list);
            return -1;
        }
        decode_step(&t->decs[k], &list, &next);
        list_free(&list);
        list = next;
    }
    tk_buf out = {0};
    tk_buf_put(&out, "", 0);
    for (size_t i = 0; i < list.n; i++) {
        if (i && !t->has_decoder) tk_buf_put(&out, " ", 1);
        tk_buf_put(&out, list.s[i].p, list.s[i].n);
    }
    int failed = list.failed || out.failed;
    list_free(&list);
    if (failed) {
        free(out.p);
        return -1;
    }
    *text = out.p;
    *len = out.n;
    return 0;
}

/* ---- streaming ------------------------------------------------------------------------------ */

struct duet_detok {
    const duet_tokenizer *t;
    int n_token_steps;   /* decs[0 .. n_token_steps) are per-token steps */
    int byte_fallback;   /* a ByteFallback step follows them */
    int byte_level;      /* a ByteLevel step ends the chain */
    const tk_dec *strip; /* Strip after Fuse (stop == 0), or NULL */
    size_t strip_left;   /* leading strip characters still to consider */
    int strip_done;      /* a character that is not the strip character has been emitted */
    int index;           /* tokens pushed so far (not counting skipped special tokens) */
    tk_buf pending;      /* the byte-fallback run not yet closed; ByteLevel: bytes not yet final */
    tk_buf out, tmp, tmp2;
};

duet_detok *duet_detok_new(const duet_tokenizer *t)
{
    duet_detok *d = tk_malloc(sizeof *d);
    if (!d) return NULL;
    memset(d, 0, sizeof *d);
    d->t = t;
    int k = 0;
    /* Streamable shapes: per-token steps, then [ByteFallback], then [Fuse [Strip(stop 0)]]; or
     * per-token steps, then ByteLevel. */
    while (k < t->n_decs && t->decs[k].type != TK_DEC_BYTE_FALLBACK &&
           t->decs[k].type != TK_DEC_FUSE && t->decs[k].type != TK_DEC_BYTE_LEVEL)
        k++;
    d->n_token_steps = k;
    if (k < t->n_decs && t->decs[k].type == TK_DEC_BYTE_LEVEL) {
        d->byte_level = 1, k++;
    } else {
        if (k < t->n_decs && t->decs[k].type == TK_DEC_BYTE_FALLBACK) d->byte_fallback = 1, k++;
        if (k < t->n_decs && t->decs[k].type == TK_DEC_FUSE) {
            k++;
            if (k < t->n_decs && t->decs[k].type == TK_DEC_STRIP && t->decs[k].stop == 0) {
                d->strip = &t->decs[k++];
                d->strip_left = d->strip->start;
            }
        }
    }
    if (k != t->n_decs) {
        duet_errorf("tokenizer: streaming decode does not support this decoder chain (step %d of "
                    "type %d); use duet_tokenizer_decode",
                    k, t->decs[k].type);
        free(d);
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

/* ByteLevel: emits the pending bytes up to an incomplete UTF-8 sequence at the end (all of them
 * when `all`), read as lossy UTF-8. Cutting there gives the same text as reading everything at
 * once: the cut is at a lead byte, and no ill-formed sequence reaches across a lead byte. */
static void flush_bytes(duet_detok *d, int all)
{
    if (!d->pending.n) return; /* pending.p may still be NULL (nothing was ever pending) */
    size_t keep = all ? 0 : tk_utf8_incomplete_tail(d->pending.p, d->pending.n);
    size_t ready = d->pending.n - keep;
    tk_utf8_lossy(d->pending.p, ready, &d->out);
    memmove(d->pending.p, d->pending.p + ready, keep);
    d->pending.n = keep;
}

/* The call's result: 0 with the text, or -1 when an append ran out of memory. */
static int finish_call(duet_detok *d, char **out, size_t *len)
{
    int failed = d->out.failed || d->pending.failed || d->tmp.failed || d->tmp2.failed;
    d->out.failed = d->pending.failed = d->tmp.failed = d->tmp2.failed = 0;
    *out = d->out.p;
    *len = failed ? 0 : d->out.n;
    return failed ? duet_errorf("tokenizer: streaming decode ran out of memory") : 0;
}

static void reset_out(duet_detok *d, char **out, size_t *len)
{
    d->out.n = 0;
    tk_buf_put(&d->out, "", 0);
    *out = d->out.p ? d->out.p : (char *)"";
    *len = 0;
}

int duet_detok_push(duet_detok *d, int id, char **out, size_t *len)
{
    const duet_tokenizer *t = d->t;
    reset_out(d, out, len);
    if (check_id(t, id)) return -1;
    const tk_token *tok = &t->tokens[id];
    if (tok->special) return finish_call(d, out, len); /* skip_special = 1 */
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
    if (d->byte_level) {
        tk_chars_to_bytes(d->tmp.p, d->tmp.n, &d->pending);
        flush_bytes(d, 0);
        return finish_call(d, out, len);
    }
    int b = d->byte_fallback ? byte_of(d->tmp.p, d->tmp.n) : -1;
    if (b >= 0) {
        char c = (char)b;
        tk_buf_put(&d->pending, &c, 1);
    } else {
        flush_pending(d);
        if (!t->has_decoder && !first) emit(d, " ", 1);
        emit(d, d->tmp.p, d->tmp.n);
    }
    return finish_call(d, out, len);
}

int duet_detok_finish(duet_detok *d, char **out, size_t *len)
{
    reset_out(d, out, len);
    if (d->byte_level) flush_bytes(d, 1);
    else flush_pending(d);
    return finish_call(d, out, len);
}
