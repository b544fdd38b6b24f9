/* tokenizer_bytelevel.c: what GPT-2 style byte-level BPE adds to the tokenizer:
 *  - GPT-2's bytes_to_unicode map: every byte is spelled as one printable character, so that BPE
 *    runs over characters but covers every byte sequence. Bytes '!'..'~', 0xA1..0xAC and
 *    0xAE..0xFF stand for themselves (as U+0021.., U+00A1.., U+00AE..); the 68 others (0x00..0x20,
 *    0x7F..0xA0, 0xAD), in increasing order, become U+0100, U+0101, ... U+0143 ("Ġ" = U+0120 is
 *    the space 0x20). Computed, not tabulated.
 *  - the lossy UTF-8 reading of decoded bytes (Rust's String::from_utf8_lossy, which tokenizers'
 *    ByteLevel decoder uses) and the incomplete-tail test the streaming decoder needs;
 *  - the pre-tokenizer splits (tokenizers' Split with its five delimiter behaviours, Digits,
 *    ByteLevel's prefix space and GPT-2 regex) over a list of pieces. */
#include "tokenizer_impl.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>

/* ---- bytes <-> characters ------------------------------------------------------------------- */

static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

static uint32_t byte_to_cp(unsigned b)
{
    if (byte_is_printable(b)) return b;
    /* index among the non-printable bytes: 0x00..0x20 -> 0..32, 0x7F..0xA0 -> 33..66, 0xAD -> 67 */
    unsigned idx = b <= 0x20 ? b : b <= 0xA0 ? 33 + (b - 0x7F) : 67;
    return 256 + idx;
}

/* The byte a character stands for, or -1 when it is not one of the 256. */
static int cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned idx = cp - 256;
    return idx < 33 ? (int)idx : idx < 67 ? (int)(0x7F + idx - 33) : 0xAD;
}

int tk_bytes_to_chars(const char *s, size_t n, tk_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_to_cp((uint8_t)s[i]);
        char u[2];
        if (cp < 0x80) {
            u[0] = (char)cp;
            tk_buf_put(out, u, 1);
        } else { /* all code points here are < 0x800: two bytes of UTF-8 */
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            tk_buf_put(out, u, 2);
        }
    }
    return out->failed ? -1 : 0;
}

int tk_chars_to_bytes(const char *s, size_t n, tk_buf *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        int b = l ? cp_to_byte(cp) : -1;
        if (b < 0) { /* as tokenizers does: the whole token unchanged */
            out->n = start;
            return tk_buf_put(out, s, n);
        }
        char c = (char)b;
        tk_buf_put(out, &c, 1);
        i += l;
    }
    return out->failed ? -1 : 0;
}

/* ---- lossy UTF-8 ---------------------------------------------------------------------------- */

/* Width of the sequence a lead byte starts (0: not a lead byte), and the range its second byte
 * must lie in (which rules out overlong forms, surrogates and code points above U+10FFFF). */
static int utf8_lead(unsigned b, unsigned *lo, unsigned *hi)
{
    *lo = 0x80, *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* How many bytes from s[0] form a valid prefix of the sequence s[0] starts (at most its width). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n, int *width)
{
    unsigned lo, hi;
    *width = utf8_lead(s[0], &lo, &hi);
    if (*width <= 1) return *width;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi) k++;
    else return 1;
    while (k < (size_t)*width && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

int tk_utf8_lossy(const char *s, size_t n, tk_buf *out)
{
    /* nothing to read: s may be the NULL of an empty buffer, and s + 0 on NULL is undefined */
    if (n == 0) return out->failed ? -1 : 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, copied = 0;
    while (i < n) {
        int w;
        size_t k = utf8_valid_prefix(u + i, n - i, &w);
        if (w > 0 && k == (size_t)w) {
            i += k;
            continue;
        }
        /* an ill-formed sequence: the bytes of the valid prefix (at least one) */
        tk_buf_put(out, s + copied, i - copied);
        tk_buf_put(out, "\xEF\xBF\xBD", 3);
        i += k ? k : 1;
        copied = i;
    }
    tk_buf_put(out, s + copied, n - copied);
    return out->failed ? -1 : 0;
}

size_t tk_utf8_incomplete_tail(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        int w;
        if ((u[n - k] & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        size_t v = utf8_valid_prefix(u + n - k, k, &w);
        return w > (int)k && v == k ? k : 0;
    }
    return 0;
}

/* ---- pieces and pre-tokenizer splits -------------------------------------------------------- */

int tk_pieces_add(tk_pieces *p, const char *s, size_t n, const char *prefix, size_t prefix_len)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        size_t *off = tk_realloc_n(p->off, cap, sizeof *off);
        if (!off) return -1;
        p->off = off;
        size_t *len = tk_realloc_n(p->len, cap, sizeof *len);
        if (!len) return -1;
        p->len = len;
        p->cap = cap;
    }
    p->off[p->n] = p->text.n;
    p->len[p->n] = prefix_len + n;
    tk_buf_put(&p->text, prefix, prefix_len);
    if (tk_buf_put(&p->text, s, n)) return -1;
    p->n++;
    return 0;
}

void tk_pieces_free(tk_pieces *p)
{
    free(p->text.p);
    free(p->off);
    free(p->len);
    memset(p, 0, sizeof *p);
}

typedef struct {
    size_t s, e;
    int flag; /* is_match while matching; remove after the behaviour is applied */
} span;

typedef struct {
    span *p;
    size_t n, cap;
} spans;

static int spans_push(spans *v, size_t s, size_t e, int flag)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        span *p = tk_realloc_n(v->p, cap, sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (span){s, e, flag};
    return 0;
}

/* The pattern's matches in s[0..n) and the text between them, in order, covering all of s (as
 * tokenizers' Pattern::find_matches). An empty match steps over one character. */
static int find_matches(const tk_replace *r, pcre2_match_data *md, const char *s, size_t n,
                        spans *out)
{
    size_t prev = 0, pos = 0;
    while (pos <= n) {
        size_t ms, me;
        if (r->re) {
            int rc = pcre2_match(r->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[128];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return duet_errorf("tokenizer: pre-tokenizer regex \"%.*s\" failed: %s",
                                   (int)r->pattern_len, r->pattern, (char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0], me = ov[1];
        } else {
            const char *hit = n - pos >= r->pattern_len
                                  ? memmem(s + pos, n - pos, r->pattern, r->pattern_len)
                                  : NULL;
            if (!hit) break;
            ms = (size_t)(hit - s), me = ms + r->pattern_len;
        }
        if (prev != ms && spans_push(out, prev, ms, 0)) return -1;
        if (spans_push(out, ms, me, 1)) return -1;
        prev = me;
        if (me == ms) {
            uint32_t cp;
            if (ms >= n) break;
            size_t l = tk_utf8_next((const unsigned char *)s + ms, n - ms, &cp);
            pos = ms + (l ? l : 1);
        } else {
            pos = me;
        }
    }
    if (prev != n && spans_push(out, prev, n, 0)) return -1;
    return 0;
}

/* tokenizers' NormalizedString::split: what each delimiter behaviour does with the matches.
 * Input flags: is_match; output flags: remove. */
static int apply_behavior(int behavior, const spans *in, spans *out)
{
    int prev = 0;
    switch (behavior) {
    case TK_SPLIT_REMOVED:
    case TK_SPLIT_ISOLATED:
        for (size_t i = 0; i < in->n; i++)
            if (spans_push(out, in->p[i].s, in->p[i].e,
                           behavior == TK_SPLIT_REMOVED && in->p[i].flag))
                return -1;
        return 0;
    case TK_SPLIT_CONTIGUOUS: /* runs of matches (or of non-matches) become one piece */
        for (size_t i = 0; i < in->n; i++) {
            if (in->p[i].flag == prev && out->n) out->p[out->n - 1].e = in->p[i].e;
            else if (spans_push(out, in->p[i].s, in->p[i].e, 0)) return -1;
            prev = in->p[i].flag;
        }
        return 0;
    case TK_SPLIT_MERGED_PREV: /* a match joins the piece before it */
        for (size_t i = 0; i < in->n; i++) {
            if (in->p[i].flag && !prev && out->n) out->p[out->n - 1].e = in->p[i].e;
            else if (spans_push(out, in->p[i].s, in->p[i].e, 0)) return -1;
            prev = in->p[i].flag;
        }
        return 0;
    case TK_SPLIT_MERGED_NEXT: /* a match joins the piece after it: the same, from the end */
        for (size_t i = in->n; i-- > 0;) {
            if (in->p[i].flag && !prev && out->n) out->p[out->n - 1].s = in->p[i].s;
            else if (spans_push(out, in->p[i].s, in->p[i].e, 0)) return -1;
            prev = in->p[i].flag;
        }
        for (size_t i = 0; i < out->n / 2; i++) {
            span tmp = out->p[i];
            out->p[i] = out->p[out->n - 1 - i];
            out->p[out->n - 1 - i] = tmp;
        }
        return 0;
    }
    return duet_errorf("tokenizer: unknown split behaviour %d", behavior);
}

/* Splits s by the step's pattern and behaviour, appending the kept non-empty pieces. */
static int split_piece(const tk_pre *step, pcre2_match_data *md, const char *s, size_t n,
                       tk_pieces *out)
{
    spans m = {0}, kept = {0};
    int rc = find_matches(&step->r, md, s, n, &m);
    if (!rc && step->invert)
        for (size_t i = 0; i < m.n; i++) m.p[i].flag = !m.p[i].flag;
    if (!rc) rc = apply_behavior(step->behavior, &m, &kept);
    for (size_t i = 0; !rc && i < kept.n; i++)
        if (!kept.p[i].flag && kept.p[i].e > kept.p[i].s)
            rc = tk_pieces_add(out, s + kept.p[i].s, kept.p[i].e - kept.p[i].s, "", 0);
    free(m.p);
    free(kept.p);
    return rc;
}

int tk_pre_apply(const tk_pre *step, const tk_pieces *in, tk_pieces *out)
{
    pcre2_match_data *md = NULL;
    if (step->r.re && !(md = pcre2_match_data_create_from_pattern(step->r.re, NULL)))
        return duet_errorf("tokenizer: out of memory (regex match data)");
    tk_buf tmp = {0};
    int rc = 0;
    for (size_t i = 0; !rc && i < in->n; i++) {
        const char *s = in->text.p + in->off[i];
        size_t n = in->len[i];
        if (step->type == TK_PRE_SPLIT) {
            rc = split_piece(step, md, s, n, out);
            continue;
        }
        /* ByteLevel: a space before every piece that does not start with one, then GPT-2's
         * regex (Isolated) when use_regex */
        int prefix = step->add_prefix_space && !(n && s[0] == ' ');
        if (!step->r.pattern) {
            rc = tk_pieces_add(out, s, n, " ", prefix ? 1 : 0);
            continue;
        }
        tk_pre isolated = *step;
        isolated.behavior = TK_SPLIT_ISOLATED;
        isolated.invert = 0;
        tmp.n = 0;
        tk_buf_put(&tmp, " ", prefix ? 1 : 0);
        if (tk_buf_put(&tmp, s, n)) rc = -1;
        else rc = split_piece(&isolated, md, tmp.p, tmp.n, out);
    }
    free(tmp.p);
    pcre2_match_data_free(md);
    return rc;
}
