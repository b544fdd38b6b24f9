/* tokenizer_spm.c: SentencePiece-style BPE as a GGUF with tokenizer.ggml.model "llama" carries it
 * (tokens, scores, token types, no merges), in the tables tokenizer.json's Llama-2 / stories260K
 * tokenizers fill.
 *
 * Merges from scores (what Hugging Face's SentencePiece converter does): every way of cutting a
 * token into two tokens of the vocabulary, at a character boundary, is a merge "left right"; the
 * merges are ranked by the score of the token they make, highest first, ties broken by the left
 * token's id, then the right token's id. (Sorting by that key equals the converter's stable sort by
 * score of a list built left id by left id, right id by right id; for SentencePiece's own BPE
 * scores, -(id - offset) for every merged token, it is also its ordering by the merged token's id.)
 * Checked on stories260K's and Llama-2's tokenizer.model scores: the same 165 and 61249 merges, in
 * the same order, as their tokenizer.json.
 *
 * The inverse, for writing such a GGUF from a tokenizer.json that has merges but no scores: a score
 * per merged token such that the rule above gives the merges back in the same order. Walking the
 * merges in rank order, a run of merges whose (left id, right id) keep increasing can share one
 * score; a merge whose ids do not increase starts the next, lower score; a token whose merges are
 * not all in one run cannot be expressed by scores (error). Merged tokens get -1, -2, ...; the
 * others 0 (they are never the result of a merge, so their score does not rank anything).
 *
 * The pipeline (the legacy Llama tokenizer.json shape): normalizer [Replace "^ +| +$" -> "",
 * Replace " {2,}" -> " " when remove_extra_whitespaces] + [Prepend "▁" when add_space_prefix] +
 * Replace " " -> "▁"; no pre-tokenizer; byte fallback, fuse_unk; decoder Replace "▁" -> " ",
 * ByteFallback, Fuse, [Strip one leading " " when add_space_prefix]. */
#include "tokenizer_impl.h"

#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */

typedef struct {
    float score;
    int left, right, merged;
} spm_merge;

static int merge_cmp(const void *pa, const void *pb)
{
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

int tk_spm_merges_from_scores(duet_tokenizer *t, const char *where, const float *scores, int n)
{
    size_t cap = 1024, nm = 0;
    spm_merge *m = tk_malloc_n(cap, sizeof *m);
    if (!m) return -1;
    for (int id = 0; id < n; id++) {
        const char *s = t->tokens[id].s;
        size_t len = t->tokens[id].len;
        if (!s) continue;
        if (isnan(scores[id])) {
            free(m);
            return duet_errorf("%s: token %d \"%s\" has a NaN score", where, id, s);
        }
        /* only this id's string makes merges: a duplicate string's earlier id is not in the vocab */
        if (tk_strmap_get(&t->vocab, s, len) != id) continue;
        uint32_t cp;
        for (size_t k = tk_utf8_next((const unsigned char *)s, len, &cp); k > 0 && k < len;) {
            int l = tk_strmap_get(&t->vocab, s, k), r = tk_strmap_get(&t->vocab, s + k, len - k);
            if (l >= 0 && r >= 0) {
                if (nm == cap) {
                    spm_merge *p = tk_realloc_n(m, cap * 2, sizeof *m);
                    if (!p) {
                        free(m);
                        return -1;
                    }
                    m = p;
                    cap *= 2;
                }
                m[nm++] = (spm_merge){scores[id], l, r, id};
            }
            size_t step = tk_utf8_next((const unsigned char *)s + k, len - k, &cp);
            if (!step) break; /* the token is not valid UTF-8: cut at characters we can read */
            k += step;
        }
    }
    if (nm > INT32_MAX) {
        free(m);
        return duet_errorf("%s: %zu merges is too many", where, nm);
    }
    qsort(m, nm, sizeof *m, merge_cmp);
    if (tk_mergemap_init(&t->merges, nm)) {
        free(m);
        return -1;
    }
    for (size_t i = 0; i < nm; i++) tk_mergemap_put(&t->merges, m[i].left, m[i].right, (int)i, m[i].merged);
    free(m);
    return 0;
}

int tk_spm_scores_from_merges(const duet_tokenizer *t, const char *where, float **out)
{
    int n = t->vocab_size, nm;
    int *pairs = NULL;
    if (tk_merges_in_order(t, &pairs, &nm)) return -1;
    int *level = tk_malloc_n((size_t)n, sizeof *level);
    float *scores = tk_malloc_n((size_t)n, sizeof *scores);
    if (!level || !scores) goto fail;
    for (int i = 0; i < n; i++) level[i] = -1;
    int cur = 0, pl = -1, pr = -1;
    for (int k = 0; k < nm; k++) {
        int l = pairs[3 * k], r = pairs[3 * k + 1], merged = pairs[3 * k + 2];
        int increasing = pl < 0 || l > pl || (l == pl && r > pr);
        if (level[merged] < 0) {
            if (!increasing) cur++;
            level[merged] = cur;
        } else if (level[merged] != cur || !increasing) {
            duet_errorf("%s: merge %d \"%s %s\" is not in SentencePiece order (the merges of \"%s\" are not "
                        "together, ordered by token id), so scores cannot carry it",
                        where, k, t->tokens[l].s, t->tokens[r].s, t->tokens[merged].s);
            goto fail;
        }
        pl = l, pr = r;
    }
    for (int i = 0; i < n; i++) scores[i] = level[i] < 0 ? 0.0f : -(float)(level[i] + 1);
    if (cur + 1 > (1 << 24)) {
        duet_errorf("%s: %d score levels do not fit fp32 exactly", where, cur + 1);
        goto fail;
    }
    free(pairs);
    free(level);
    *out = scores;
    return 0;
fail:
    free(pairs);
    free(level);
    free(scores);
    return -1;
}

static int add_replace(duet_tokenizer *t, const char *where, int decoder, const char *pat, int regex,
                       const char *content)
{
    tk_replace r;
    memset(&r, 0, sizeof r);
    if (!(r.pattern = tk_memdup(pat, strlen(pat))) || !(r.content = tk_memdup(content, strlen(content)))) {
        tk_replace_free(&r);
        return -1;
    }
    r.pattern_len = strlen(pat);
    r.content_len = strlen(content);
    if (regex && tk_compile_regex(where, pat, strlen(pat), &r.re)) {
        tk_replace_free(&r);
        return -1;
    }
    if (decoder) {
        tk_dec d;
        memset(&d, 0, sizeof d);
        d.type = TK_DEC_REPLACE;
        d.r = r;
        return tk_add_dec(t, &d);
    }
    tk_norm nz;
    memset(&nz, 0, sizeof nz);
    nz.type = TK_NORM_REPLACE;
    nz.r = r;
    return tk_add_norm(t, &nz);
}

int tk_spm_pipeline(duet_tokenizer *t, const char *where, int add_space_prefix, int remove_extra_ws)
{
    t->byte_fallback = 1;
    t->fuse_unk = 1;
    tk_find_byte_ids(t);
    if (remove_extra_ws &&
        (add_replace(t, where, 0, "^ +| +$", 1, "") || add_replace(t, where, 0, " {2,}", 1, " ")))
        return -1;
    if (add_space_prefix) {
        tk_norm nz;
        memset(&nz, 0, sizeof nz);
        nz.type = TK_NORM_PREPEND;
        if (!(nz.r.content = tk_memdup(SPM_SPACE, 3))) return -1;
        nz.r.content_len = 3;
        if (tk_add_norm(t, &nz)) return -1;
    }
    if (add_replace(t, where, 0, " ", 0, SPM_SPACE)) return -1;
    t->has_decoder = 1;
    tk_dec d;
    if (add_replace(t, where, 1, SPM_SPACE, 0, " ")) return -1;
    memset(&d, 0, sizeof d);
    d.type = TK_DEC_BYTE_FALLBACK;
    if (tk_add_dec(t, &d)) return -1;
    d.type = TK_DEC_FUSE;
    if (tk_add_dec(t, &d)) return -1;
    if (add_space_prefix) {
        d.type = TK_DEC_STRIP;
        strcpy(d.ch, " ");
        d.start = 1;
        d.stop = 0;
        if (tk_add_dec(t, &d)) return -1;
    }
    return 0;
}
