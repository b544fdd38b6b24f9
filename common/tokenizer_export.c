/* tokenizer_export.c: read-only accessors to a duet_tokenizer's tables and the table-by-table
 * comparison of two tokenizers (tokenizer_export.h). */
#include "tokenizer_export.h"
#include "tokenizer_impl.h"

#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int duet_tokenizer_is_byte_level(const duet_tokenizer *t) { return t->byte_level; }
int duet_tokenizer_unk_id(const duet_tokenizer *t) { return t->unk_id; }

int duet_tokenizer_is_added(const duet_tokenizer *t, int id, int *special)
{
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) {
            if (special) *special = t->added[i].special;
            return 1;
        }
    if (special) *special = 0;
    return 0;
}

static int triple_cmp(const void *pa, const void *pb)
{
    const int *a = pa, *b = pb; /* rank, left, right, merged */
    return (a[0] > b[0]) - (a[0] < b[0]);
}

int tk_merges_in_order(const duet_tokenizer *t, int **triples, int *n)
{
    size_t count = 0;
    for (size_t i = 0; i < t->merges.cap; i++) count += t->merges.e[i].key != UINT64_MAX;
    int *q = tk_malloc_n(count ? count : 1, 4 * sizeof *q);
    if (!q) return -1;
    size_t k = 0;
    for (size_t i = 0; i < t->merges.cap; i++) {
        const struct tk_merge_entry *e = &t->merges.e[i];
        if (e->key == UINT64_MAX) continue;
        q[4 * k] = e->rank;
        q[4 * k + 1] = (int)(e->key >> 32);
        q[4 * k + 2] = (int)(uint32_t)e->key;
        q[4 * k + 3] = e->new_id;
        k++;
    }
    qsort(q, count, 4 * sizeof *q, triple_cmp);
    for (size_t j = 0; j < count; j++) /* drop the rank: (left, right, merged) */
        memmove(q + 3 * j, q + 4 * j + 1, 3 * sizeof *q);
    *triples = q;
    *n = (int)count;
    return 0;
}

int duet_tokenizer_merges(const duet_tokenizer *t, int **pairs, int *n)
{
    int *q;
    if (tk_merges_in_order(t, &q, n)) return -1;
    for (int j = 0; j < *n; j++) {
        q[2 * j] = q[3 * j];
        q[2 * j + 1] = q[3 * j + 1];
    }
    *pairs = q;
    return 0;
}

int duet_tokenizer_add_bos_eos(const duet_tokenizer *t, int *add_bos, int *add_eos)
{
    *add_bos = t->n_prefix == 1 && t->prefix[0] == t->bos_id;
    *add_eos = t->n_suffix == 1 && t->suffix[0] == t->eos_id;
    if (t->n_prefix > *add_bos || t->n_suffix > *add_eos)
        return duet_errorf("the special tokens added around a text (%d before, %d after) are not just BOS "
                           "(%d) before and EOS (%d) after",
                           t->n_prefix, t->n_suffix, t->bos_id, t->eos_id);
    return 0;
}

/* ---- comparison ------------------------------------------------------------------------------ */

static int differ(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int differ(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return 1;
}

static int same_bytes(const char *a, size_t na, const char *b, size_t nb)
{
    if (!a || !b) return !a && !b;
    return na == nb && !memcmp(a, b, na);
}

static int same_replace(const tk_replace *a, const tk_replace *b)
{
    return same_bytes(a->pattern, a->pattern_len, b->pattern, b->pattern_len) && (!a->re) == (!b->re) &&
           same_bytes(a->content, a->content_len, b->content, b->content_len);
}

static int compare_vocab(const duet_tokenizer *a, const duet_tokenizer *b, char *why, size_t n)
{
    if (a->vocab_size != b->vocab_size)
        return differ(why, n, "vocabulary sizes %d and %d", a->vocab_size, b->vocab_size);
    if (a->vocab.n != b->vocab.n)
        return differ(why, n, "model vocabularies of %zu and %zu strings", a->vocab.n, b->vocab.n);
    for (int id = 0; id < a->vocab_size; id++) {
        const tk_token *x = &a->tokens[id], *y = &b->tokens[id];
        if (!same_bytes(x->s, x->len, y->s, y->len))
            return differ(why, n, "token %d: \"%s\" and \"%s\"", id, x->s ? x->s : "(none)", y->s ? y->s : "(none)");
        if (x->special != y->special) return differ(why, n, "token %d \"%s\": special %d and %d", id, x->s, x->special, y->special);
        if (x->s && tk_strmap_get(&a->vocab, x->s, x->len) != tk_strmap_get(&b->vocab, y->s, y->len))
            return differ(why, n, "token \"%s\": model vocabulary ids %d and %d", x->s,
                          tk_strmap_get(&a->vocab, x->s, x->len), tk_strmap_get(&b->vocab, y->s, y->len));
    }
    return 0;
}

static int compare_merges(const duet_tokenizer *a, const duet_tokenizer *b, char *why, size_t n)
{
    int *ma = NULL, *mb = NULL, na = 0, nb = 0, rc = -1;
    if (tk_merges_in_order(a, &ma, &na) || tk_merges_in_order(b, &mb, &nb)) goto out;
    rc = 0;
    for (int k = 0; k < na && k < nb && !rc; k++)
        if (memcmp(ma + 3 * k, mb + 3 * k, 3 * sizeof *ma))
            rc = differ(why, n, "merge %d: \"%s %s\" and \"%s %s\"", k, a->tokens[ma[3 * k]].s, a->tokens[ma[3 * k + 1]].s,
                        b->tokens[mb[3 * k]].s, b->tokens[mb[3 * k + 1]].s);
    if (!rc && na != nb) rc = differ(why, n, "%d and %d merges", na, nb);
out:
    free(ma);
    free(mb);
    return rc;
}

static int compare_added(const duet_tokenizer *a, const duet_tokenizer *b, char *why, size_t n)
{
    if (a->n_added != b->n_added) return differ(why, n, "%d and %d added tokens", a->n_added, b->n_added);
    for (int i = 0; i < a->n_added; i++) {
        const tk_added *x = &a->added[i], *y = &b->added[i];
        if (x->id != y->id || !same_bytes(x->s, x->len, y->s, y->len) || x->special != y->special ||
            x->lstrip != y->lstrip || x->rstrip != y->rstrip || x->normalized != y->normalized)
            return differ(why, n,
                          "added token %d: id %d \"%s\" (special %d, lstrip %d, rstrip %d, normalized %d) and id %d "
                          "\"%s\" (special %d, lstrip %d, rstrip %d, normalized %d)",
                          i, x->id, x->s, x->special, x->lstrip, x->rstrip, x->normalized, y->id, y->s, y->special,
                          y->lstrip, y->rstrip, y->normalized);
    }
    return 0;
}

static int compare_steps(const duet_tokenizer *a, const duet_tokenizer *b, char *why, size_t n)
{
    if (a->n_norms != b->n_norms) return differ(why, n, "%d and %d normalizer steps", a->n_norms, b->n_norms);
    for (int i = 0; i < a->n_norms; i++) {
        const tk_norm *x = &a->norms[i], *y = &b->norms[i];
        if (x->type != y->type || !same_replace(&x->r, &y->r) || x->strip_left != y->strip_left ||
            x->strip_right != y->strip_right)
            return differ(why, n, "normalizer step %d differs", i);
    }
    if (a->metaspace != b->metaspace || (a->metaspace && (a->ms_prepend != b->ms_prepend || a->ms_split != b->ms_split ||
                                                          strcmp(a->ms_replacement, b->ms_replacement))))
        return differ(why, n, "Metaspace pre-tokenizers differ (%s and %s)", a->metaspace ? "one" : "none",
                      b->metaspace ? "one" : "none");
    if (a->n_pres != b->n_pres) return differ(why, n, "%d and %d pre-tokenizer steps", a->n_pres, b->n_pres);
    for (int i = 0; i < a->n_pres; i++) {
        const tk_pre *x = &a->pres[i], *y = &b->pres[i];
        int split = x->type == TK_PRE_SPLIT; /* behavior and invert are Split's; prefix space ByteLevel's */
        if (x->type != y->type || !same_replace(&x->r, &y->r) ||
            (split ? x->behavior != y->behavior || x->invert != y->invert : x->add_prefix_space != y->add_prefix_space))
            return differ(why, n, "pre-tokenizer step %d differs", i);
    }
    if (a->byte_level != b->byte_level) return differ(why, n, "byte-level %d and %d", a->byte_level, b->byte_level);
    if (a->has_decoder != b->has_decoder || a->n_decs != b->n_decs)
        return differ(why, n, "decoders of %d and %d steps", a->has_decoder ? a->n_decs : -1, b->has_decoder ? b->n_decs : -1);
    for (int i = 0; i < a->n_decs; i++) {
        const tk_dec *x = &a->decs[i], *y = &b->decs[i];
        if (x->type != y->type || !same_replace(&x->r, &y->r) || strcmp(x->ch, y->ch) || x->start != y->start ||
            x->stop != y->stop)
            return differ(why, n, "decoder step %d differs", i);
    }
    return 0;
}

int duet_tokenizer_compare(const duet_tokenizer *a, const duet_tokenizer *b, char *why, size_t n)
{
    if (n) why[0] = 0;
    int rc = compare_vocab(a, b, why, n);
    if (!rc) rc = compare_merges(a, b, why, n);
    if (rc < 0) return differ(why, n, "%s", duet_error());
    if (rc) return rc;
    if (a->unk_id != b->unk_id) return differ(why, n, "unk ids %d and %d", a->unk_id, b->unk_id);
    if (a->byte_fallback != b->byte_fallback || a->fuse_unk != b->fuse_unk || a->ignore_merges != b->ignore_merges)
        return differ(why, n, "byte_fallback / fuse_unk / ignore_merges %d/%d/%d and %d/%d/%d", a->byte_fallback,
                      a->fuse_unk, a->ignore_merges, b->byte_fallback, b->fuse_unk, b->ignore_merges);
    if ((rc = compare_added(a, b, why, n)) || (rc = compare_steps(a, b, why, n))) return rc;
    if (a->bos_id != b->bos_id || a->eos_id != b->eos_id)
        return differ(why, n, "BOS/EOS %d/%d and %d/%d", a->bos_id, a->eos_id, b->bos_id, b->eos_id);
    if (a->n_prefix != b->n_prefix || a->n_suffix != b->n_suffix ||
        memcmp(a->prefix, b->prefix, sizeof(int) * (size_t)a->n_prefix) ||
        memcmp(a->suffix, b->suffix, sizeof(int) * (size_t)a->n_suffix))
        return differ(why, n, "the special tokens added around a text differ (%d+%d and %d+%d)", a->n_prefix,
                      a->n_suffix, b->n_prefix, b->n_suffix);
    return 0;
}
