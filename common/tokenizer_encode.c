/* tokenizer_encode.c: text -> ids, step for step as `tokenizers` does it: split the raw text on
 * added tokens (special ones only when parse_special), normalize each remaining piece, split again
 * on normalized added tokens, pre-tokenize (Metaspace, or the Split / Digits / ByteLevel steps of
 * tokenizer_bytelevel.c, with the pieces then spelled in GPT-2's byte alphabet), then BPE each word with a priority queue of merges ordered by
 * (rank, position), the same order and the same stale-entry rule as tokenizers' Word::merge_all.
 * Cost: O(n log n) per word; a 1000-token article is one word without a pre-tokenizer. */
#include "tokenizer_impl.h"

#include "error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *p;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *v, int x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int *p = tk_realloc_n(v->p, cap, sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

int tk_replace_apply(const tk_replace *r, const char *in, size_t n, tk_buf *out)
{
    size_t copied = 0;
    if (!r->re) {
        size_t i = 0;
        while (i + r->pattern_len <= n) {
            const char *hit = memmem(in + i, n - i, r->pattern, r->pattern_len);
            if (!hit) break;
            size_t s = (size_t)(hit - in);
            tk_buf_put(out, in + copied, s - copied);
            tk_buf_put(out, r->content, r->content_len);
            copied = i = s + r->pattern_len;
        }
    } else {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
        if (!md) return duet_errorf("tokenizer: out of memory (regex match data)");
        size_t pos = 0;
        while (pos <= n) {
            /* the text was checked to be UTF-8 once; checking per call would be O(n^2) */
            int rc = pcre2_match(r->re, (PCRE2_SPTR)in, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t s = ov[0], e = ov[1];
            tk_buf_put(out, in + copied, s - copied);
            tk_buf_put(out, r->content, r->content_len);
            copied = e;
            if (e == s) { /* empty match: step over one character */
                uint32_t cp;
                if (s >= n) break;
                size_t l = tk_utf8_next((const unsigned char *)in + s, n - s, &cp);
                pos = s + (l ? l : 1);
            } else {
                pos = e;
            }
        }
        pcre2_match_data_free(md);
    }
    tk_buf_put(out, in + copied, n - copied);
    return out->failed ? -1 : 0;
}

/* Byte length of the whitespace run that ends s[0..n) / starts it. */
static size_t ws_suffix(const char *s, size_t n)
{
    size_t i = 0, end = 0;
    uint32_t cp;
    while (i < n) { /* forward scan keeps UTF-8 decoding simple; pieces are short */
        size_t l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (!l) l = 1, cp = 0;
        i += l;
        if (!tk_is_whitespace(cp)) end = i;
    }
    return n - end;
}

static size_t ws_prefix(const char *s, size_t n)
{
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (!l || !tk_is_whitespace(cp)) break;
        i += l;
    }
    return i;
}

static int normalize(const duet_tokenizer *t, const char *s, size_t n, tk_buf *out)
{
    tk_buf a = {0}, b = {0};
    tk_buf_put(&a, s, n);
    for (int k = 0; k < t->n_norms; k++) {
        const tk_norm *nm = &t->norms[k];
        b.n = 0;
        tk_buf_put(&b, "", 0);
        switch (nm->type) {
        case TK_NORM_PREPEND:
            if (a.n) tk_buf_put(&b, nm->r.content, nm->r.content_len);
            tk_buf_put(&b, a.p, a.n);
            break;
        case TK_NORM_REPLACE: tk_replace_apply(&nm->r, a.p, a.n, &b); break;
        case TK_NORM_STRIP: {
            size_t l = nm->strip_left ? ws_prefix(a.p, a.n) : 0;
            size_t r = nm->strip_right && l < a.n ? ws_suffix(a.p + l, a.n - l) : 0;
            tk_buf_put(&b, a.p + l, a.n - l - r);
            break;
        }
        }
        tk_buf tmp = a;
        a = b;
        b = tmp;
    }
    int failed = a.failed || b.failed;
    if (!failed) tk_buf_put(out, a.p, a.n);
    free(a.p);
    free(b.p);
    return failed || out->failed ? -1 : 0;
}

/* ---- BPE ------------------------------------------------------------------------------------ */

typedef struct {
    int id, prev, next;
    size_t len; /* bytes covered; 0: merged away */
} sym;

typedef struct {
    int rank, pos, new_id;
} mrg;

static int mrg_before(const mrg *a, const mrg *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(mrg *h, size_t *n, mrg x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!mrg_before(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static mrg heap_pop(mrg *h, size_t *n)
{
    mrg top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && mrg_before(&h[c + 1], &h[c])) c++;
        if (!mrg_before(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

static int sym_add(sym *w, int *nw, int id, size_t len)
{
    int i = (*nw)++;
    w[i].id = id;
    w[i].len = len;
    w[i].prev = i - 1;
    w[i].next = -1;
    if (i > 0) w[i - 1].next = i;
    return i;
}

/* One word (pre-token) to ids, as tokenizers' BPE::merge_word + Word::merge_all. */
static int bpe_word(const duet_tokenizer *t, const char *s, size_t n, ivec *out)
{
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int id = tk_strmap_get(&t->vocab, s, n);
        if (id >= 0) return ivec_push(out, id);
    }
    if (n > INT_MAX) return duet_errorf("tokenizer: a word of %zu bytes is too long", n);
    sym *w = tk_malloc_n(n, sizeof *w); /* at most one symbol per byte */
    if (!w) return -1;
    int nw = 0;
    int unk_pending = 0;
    size_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tk_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (!l) l = 1; /* cannot happen: text was validated */
        int id = tk_strmap_get(&t->vocab, s + i, l);
        if (id >= 0) {
            if (unk_pending) sym_add(w, &nw, t->unk_id, unk_len), unk_pending = 0;
            sym_add(w, &nw, id, l);
        } else {
            int ok = t->byte_fallback;
            for (size_t k = 0; ok && k < l; k++) ok = t->byte_ids[(uint8_t)s[i + k]] >= 0;
            if (ok) {
                /* as tokenizers does, a pending unk is not flushed before these bytes */
                for (size_t k = 0; k < l; k++) sym_add(w, &nw, t->byte_ids[(uint8_t)s[i + k]], 1);
            } else if (t->unk_id >= 0) {
                if (unk_pending && t->fuse_unk) {
                    unk_len += l;
                } else {
                    if (unk_pending) sym_add(w, &nw, t->unk_id, unk_len);
                    unk_pending = 1;
                    unk_len = l;
                }
            } else {
                free(w);
                return duet_errorf("tokenizer: character U+%04X is not in the vocabulary and "
                                   "there is no unk_token or byte fallback",
                                   (unsigned)cp);
            }
        }
        i += l;
    }
    if (unk_pending) sym_add(w, &nw, t->unk_id, unk_len);

    size_t hn = 0, hcap = (size_t)(nw > 0 ? nw : 1) * 2;
    mrg *heap = tk_malloc_n(hcap, sizeof *heap);
    if (!heap) {
        free(w);
        return -1;
    }
    for (int i = 0; i + 1 < nw; i++) {
        mrg m;
        if (tk_mergemap_get(&t->merges, w[i].id, w[i + 1].id, &m.rank, &m.new_id)) {
            m.pos = i;
            heap_push(heap, &hn, m);
        }
    }
    while (hn) {
        mrg top = heap_pop(heap, &hn);
        sym *cur = &w[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym *right = &w[cur->next];
        int rank, new_id;
        /* stale entry: the pair there now does not merge into what this entry says */
        if (!tk_mergemap_get(&t->merges, cur->id, right->id, &rank, &new_id) ||
            new_id != top.new_id)
            continue;
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (right->next >= 0) w[right->next].prev = top.pos;
        if (hn + 2 > hcap) {
            mrg *h = tk_realloc_n(heap, hcap * 2, sizeof *heap);
            if (!h) {
                free(heap);
                free(w);
                return -1;
            }
            heap = h;
            hcap *= 2;
        }
        mrg m;
        if (cur->prev >= 0 &&
            tk_mergemap_get(&t->merges, w[cur->prev].id, cur->id, &m.rank, &m.new_id)) {
            m.pos = cur->prev;
            heap_push(heap, &hn, m);
        }
        if (cur->next >= 0 &&
            tk_mergemap_get(&t->merges, cur->id, w[cur->next].id, &m.rank, &m.new_id)) {
            m.pos = top.pos;
            heap_push(heap, &hn, m);
        }
    }
    int rc = 0;
    for (int i = 0; i < nw && !rc; i++)
        if (w[i].len) rc = ivec_push(out, w[i].id);
    free(heap);
    free(w);
    return rc;
}

/* The Split / Digits / ByteLevel pre-tokenizer steps, then BPE of every piece (spelled in GPT-2's
 * byte alphabet first when the pre-tokenizer is ByteLevel). */
static int split_and_bpe(const duet_tokenizer *t, const char *s, size_t n, ivec *out)
{
    tk_pieces a = {0}, b = {0};
    tk_buf word = {0};
    int rc = tk_pieces_add(&a, s, n, "", 0);
    for (int k = 0; !rc && k < t->n_pres; k++) {
        b.n = b.text.n = 0;
        rc = tk_pre_apply(&t->pres[k], &a, &b);
        tk_pieces tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t i = 0; !rc && i < a.n; i++) {
        const char *p = a.text.p + a.off[i];
        if (!t->byte_level) {
            rc = bpe_word(t, p, a.len[i], out);
            continue;
        }
        word.n = 0;
        rc = tk_bytes_to_chars(p, a.len[i], &word);
        if (!rc) rc = bpe_word(t, word.p, word.n, out);
    }
    tk_pieces_free(&a);
    tk_pieces_free(&b);
    free(word.p);
    return rc;
}

/* Metaspace pre-tokenizer (when configured) then BPE. `first`: the piece starts the input. */
static int pretokenize_and_bpe(const duet_tokenizer *t, const char *s, size_t n, int first,
                               ivec *out)
{
    if (t->n_pres) return split_and_bpe(t, s, n, out);
    if (!t->metaspace) return bpe_word(t, s, n, out);
    const char *rep = t->ms_replacement;
    size_t rl = strlen(rep);
    tk_buf b = {0};
    tk_replace sp = {.pattern = " ", .pattern_len = 1, .content = (char *)rep, .content_len = rl};
    if (tk_replace_apply(&sp, s, n, &b)) {
        free(b.p);
        return -1;
    }
    if (b.n && (b.n < rl || memcmp(b.p, rep, rl)) &&
        (t->ms_prepend == TK_PREPEND_ALWAYS || (t->ms_prepend == TK_PREPEND_FIRST && first))) {
        tk_buf c = {0};
        tk_buf_put(&c, rep, rl);
        tk_buf_put(&c, b.p, b.n);
        free(b.p);
        b = c;
        if (b.failed) {
            free(b.p);
            return -1;
        }
    }
    int rc = 0;
    if (!t->ms_split) {
        rc = bpe_word(t, b.p, b.n, out);
    } else { /* split before every replacement character (MergedWithNext) */
        size_t start = 0;
        for (size_t i = 1; rc == 0 && i + rl <= b.n; i++)
            if (!memcmp(b.p + i, rep, rl) && i > start) {
                rc = bpe_word(t, b.p + start, i - start, out);
                start = i;
            }
        if (rc == 0) rc = bpe_word(t, b.p + start, b.n - start, out);
    }
    free(b.p);
    return rc;
}

/* Next added token (with the given `normalized` flag; special ones only when parse_special) in
 * s[from..n): leftmost, then longest. */
static int find_added(const duet_tokenizer *t, const char *s, size_t n, size_t from, int normalized,
                      int parse_special, size_t *ms, size_t *me, const tk_added **which)
{
    for (size_t i = from; i < n; i++) {
        if (!t->first_byte[(uint8_t)s[i]]) continue;
        const tk_added *best = NULL;
        for (int k = 0; k < t->n_added; k++) {
            const tk_added *a = &t->added[k];
            if (a->normalized != normalized || (a->special && !parse_special) || a->len > n - i ||
                (best && a->len <= best->len))
                continue;
            if (!memcmp(s + i, a->s, a->len)) best = a;
        }
        if (best) {
            *ms = i;
            *me = i + best->len;
            *which = best;
            return 1;
        }
    }
    return 0;
}

/* What one encode call carries through the splitting. */
typedef struct {
    const duet_tokenizer *t;
    int parse_special;
    ivec *out;
} encoder;

static int encode_pieces(const encoder *e, const char *s, size_t n, int normalized_pass, int first);

/* A piece of raw text between added tokens: normalize, split on normalized added tokens, BPE. */
static int encode_raw_piece(const encoder *e, const char *s, size_t n, int first)
{
    tk_buf nb = {0};
    int rc = tk_buf_put(&nb, "", 0);
    if (!rc) rc = normalize(e->t, s, n, &nb);
    if (!rc) rc = encode_pieces(e, nb.p, nb.n, 1, first);
    free(nb.p);
    return rc;
}

/* Splits s on added tokens of one kind (non-normalized on the raw text, normalized after
 * normalization), as AddedVocabulary::find_matches, and encodes the pieces between them. */
static int encode_pieces(const encoder *e, const char *s, size_t n, int normalized_pass, int first)
{
    const duet_tokenizer *t = e->t;
    size_t start_offset = 0, from = 0, ms, me;
    const tk_added *a;
    while (from < n &&
           find_added(t, s, n, from, normalized_pass, e->parse_special, &ms, &me, &a)) {
        size_t start = ms, stop = me;
        if (a->lstrip) {
            /* the spaces before the token, not reaching back past the previous match */
            start = ms - ws_suffix(s + start_offset, ms - start_offset);
        }
        if (a->rstrip) stop += ws_prefix(s + stop, n - stop);
        if (start_offset < start) {
            int rc = normalized_pass
                         ? pretokenize_and_bpe(t, s + start_offset, start - start_offset,
                                               first && start_offset == 0, e->out)
                         : encode_raw_piece(e, s + start_offset, start - start_offset,
                                            start_offset == 0);
            if (rc) return rc;
        }
        if (ivec_push(e->out, a->id)) return -1;
        start_offset = stop;
        from = me;
    }
    if (start_offset < n || n == 0) {
        const char *p = s + (start_offset < n ? start_offset : n);
        size_t len = start_offset < n ? n - start_offset : 0;
        int f = start_offset == 0;
        return normalized_pass ? pretokenize_and_bpe(t, p, len, first && f, e->out)
                               : encode_raw_piece(e, p, len, f);
    }
    return 0;
}

int duet_tokenizer_encode_opts(const duet_tokenizer *t, const char *text, size_t len,
                               int add_special, int parse_special, int **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    size_t bad = tk_utf8_check(text, len);
    if (bad != len)
        return duet_errorf("tokenizer: text is not valid UTF-8 (byte 0x%02X at offset %zu)",
                           (uint8_t)text[bad], bad);
    ivec v = {0};
    encoder e = {.t = t, .parse_special = parse_special, .out = &v};
    int rc = 0;
    for (int i = 0; add_special && !rc && i < t->n_prefix; i++) rc = ivec_push(&v, t->prefix[i]);
    if (!rc) rc = encode_pieces(&e, text, len, 0, 1);
    for (int i = 0; add_special && !rc && i < t->n_suffix; i++) rc = ivec_push(&v, t->suffix[i]);
    if (!rc && !v.p && !(v.p = tk_malloc(sizeof(int)))) rc = -1;
    if (rc) {
        free(v.p);
        return -1;
    }
    *ids = v.p;
    *n_ids = v.n;
    return 0;
}

int duet_tokenizer_encode(const duet_tokenizer *t, const char *text, size_t len, int add_special,
                          int **ids, size_t *n_ids)
{
    return duet_tokenizer_encode_opts(t, text, len, add_special, t->parse_special, ids, n_ids);
}
