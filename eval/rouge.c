/* rouge.c: rouge_score's tokenizer and its four scores, on interned token ids, and the
 * aggregate (mean + BootstrapAggregator) with the summarize.py-style table. The slow parts are
 * the plain O(m n) LCS tables rouge_score itself uses; nothing is approximated. */
#include "rouge.h"

#include "bootstrap.h"
#include "error.h"
#include "porter.h"

#include <stdlib.h>
#include <string.h>

const char *const rouge_type_names[ROUGE_N_TYPES] = {"rouge1", "rouge2", "rougeL", "rougeLsum"};

/* ---- tokenizer ---- */

int rouge_tokenize(const char *text, size_t len, int use_stemmer,
                   void (*emit)(void *ctx, const char *tok, size_t tok_len),
                   void (*newline)(void *ctx), void *ctx)
{
    /* Tokens are at most as long as the text; the stem buffer needs one byte more. */
    char *tok = malloc(len + 1), *stem = use_stemmer ? malloc(len + 1) : NULL;
    if (!tok || (use_stemmer && !stem)) {
        free(tok);
        free(stem);
        return duet_errorf("rouge: out of memory tokenizing %zu bytes", len);
    }
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)text;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (n) {                                                                                   \
            if (use_stemmer && n > 3) {                                                            \
                size_t sn = porter_stem(stem, tok, n);                                             \
                emit(ctx, stem, sn);                                                               \
            } else {                                                                               \
                emit(ctx, tok, n);                                                                 \
            }                                                                                      \
            n = 0;                                                                                 \
        }                                                                                          \
    } while (0)
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            tok[n++] = (char)c;
        } else if (c >= 'A' && c <= 'Z') {
            tok[n++] = (char)(c - 'A' + 'a');
        } else if (c == 0xC4 && i + 1 < len && s[i + 1] == 0xB0) {
            /* U+0130 lowers to "i" + U+0307 (a separator) */
            tok[n++] = 'i';
            i += 1;
            FLUSH();
        } else if (c == 0xE2 && i + 2 < len && s[i + 1] == 0x84 && s[i + 2] == 0xAA) {
            /* U+212A KELVIN SIGN lowers to "k" */
            tok[n++] = 'k';
            i += 2;
        } else {
            FLUSH();
            if (c == '\n' && newline)
                newline(ctx);
        }
    }
    FLUSH();
#undef FLUSH
    free(tok);
    free(stem);
    return 0;
}

/* ---- interning: token bytes -> dense ids shared by prediction and reference ---- */

typedef struct {
    char *bytes;      /* all distinct tokens back to back */
    size_t bytes_len, bytes_cap;
    size_t *off, *len; /* per id */
    size_t off_cap, len_cap;
    uint32_t *slot;   /* open addressing: id + 1, 0 = empty */
    size_t n, cap;    /* ids, slots (power of two) */
    int oom;
} vocab;

/* One tokenized text: ids, and the token index where each "\n"-separated sentence starts. */
typedef struct {
    uint32_t *ids;
    size_t n, cap;
    size_t *sent; /* start of each sentence (including empty ones), n_sent entries */
    size_t n_sent, sent_cap;
    vocab *v;
} toklist;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int vocab_rehash(vocab *v, size_t cap)
{
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return -1;
    for (size_t id = 0; id < v->n; id++) {
        size_t h = (size_t)hash_bytes(v->bytes + v->off[id], v->len[id]) & (cap - 1);
        while (slot[h])
            h = (h + 1) & (cap - 1);
        slot[h] = (uint32_t)(id + 1);
    }
    free(v->slot);
    v->slot = slot;
    v->cap = cap;
    return 0;
}

static int64_t vocab_id(vocab *v, const char *tok, size_t n)
{
    if ((v->n + 1) * 2 > v->cap && vocab_rehash(v, v->cap ? v->cap * 2 : 64))
        return -1;
    size_t h = (size_t)hash_bytes(tok, n) & (v->cap - 1);
    while (v->slot[h]) {
        uint32_t id = v->slot[h] - 1;
        if (v->len[id] == n && memcmp(v->bytes + v->off[id], tok, n) == 0)
            return id;
        h = (h + 1) & (v->cap - 1);
    }
    if (grow((void **)&v->off, &v->off_cap, v->n + 1, sizeof *v->off) ||
        grow((void **)&v->len, &v->len_cap, v->n + 1, sizeof *v->len))
        return -1;
    if (grow((void **)&v->bytes, &v->bytes_cap, v->bytes_len + n, 1))
        return -1;
    memcpy(v->bytes + v->bytes_len, tok, n);
    v->off[v->n] = v->bytes_len;
    v->len[v->n] = n;
    v->bytes_len += n;
    v->slot[h] = (uint32_t)(v->n + 1);
    return (int64_t)v->n++;
}

static void vocab_free(vocab *v)
{
    free(v->bytes);
    free(v->off);
    free(v->len);
    free(v->slot);
}

static void tl_emit(void *ctx, const char *tok, size_t n)
{
    toklist *t = ctx;
    if (t->v->oom)
        return;
    int64_t id = vocab_id(t->v, tok, n);
    if (id < 0 || grow((void **)&t->ids, &t->cap, t->n + 1, sizeof *t->ids)) {
        t->v->oom = 1;
        return;
    }
    t->ids[t->n++] = (uint32_t)id;
}

static void tl_newline(void *ctx)
{
    toklist *t = ctx;
    if (t->v->oom)
        return;
    if (grow((void **)&t->sent, &t->sent_cap, t->n_sent + 1, sizeof *t->sent)) {
        t->v->oom = 1;
        return;
    }
    t->sent[t->n_sent++] = t->n;
}

static int toklist_build(toklist *t, vocab *v, const char *text, size_t len, int use_stemmer)
{
    memset(t, 0, sizeof *t);
    t->v = v;
    tl_newline(t); /* the first sentence starts at token 0 */
    if (rouge_tokenize(text, len, use_stemmer, tl_emit, tl_newline, t))
        return -1;
    if (v->oom)
        return duet_errorf("rouge: out of memory interning tokens");
    return 0;
}

static void toklist_free(toklist *t)
{
    free(t->ids);
    free(t->sent);
}

/* ---- scores ---- */

static double fmeasure(double p, double r)
{
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* n-gram keys (n = 1 or 2), sorted. */
static uint64_t *ngram_keys(const toklist *t, int n, size_t *count)
{
    *count = t->n >= (size_t)n ? t->n - (size_t)n + 1 : 0;
    uint64_t *k = malloc((*count ? *count : 1) * sizeof *k);
    if (!k)
        return NULL;
    for (size_t i = 0; i < *count; i++)
        k[i] = n == 1 ? t->ids[i] : ((uint64_t)t->ids[i] << 32) | t->ids[i + 1];
    qsort(k, *count, sizeof *k, cmp_u64);
    return k;
}

static int score_ngrams(rouge_prf *out, const toklist *ref, const toklist *pred, int n)
{
    size_t nr, np;
    uint64_t *kr = ngram_keys(ref, n, &nr), *kp = ngram_keys(pred, n, &np);
    if (!kr || !kp) {
        free(kr);
        free(kp);
        return duet_errorf("rouge: out of memory counting n-grams");
    }
    /* sum over distinct n-grams of min(count in ref, count in pred): a merge of sorted lists */
    size_t inter = 0, i = 0, j = 0;
    while (i < nr && j < np) {
        if (kr[i] < kp[j])
            i++;
        else if (kr[i] > kp[j])
            j++;
        else {
            inter++;
            i++;
            j++;
        }
    }
    free(kr);
    free(kp);
    out->p = (double)inter / (double)(np > 1 ? np : 1);
    out->r = (double)inter / (double)(nr > 1 ? nr : 1);
    out->f = fmeasure(out->p, out->r);
    return 0;
}

static int score_lcs(rouge_prf *out, const toklist *ref, const toklist *pred)
{
    memset(out, 0, sizeof *out);
    if (!ref->n || !pred->n)
        return 0;
    size_t cols = pred->n;
    uint32_t *prev = calloc(cols + 1, sizeof *prev), *cur = calloc(cols + 1, sizeof *cur);
    if (!prev || !cur) {
        free(prev);
        free(cur);
        return duet_errorf("rouge: out of memory for an LCS row of %zu", cols);
    }
    for (size_t i = 1; i <= ref->n; i++) {
        uint32_t a = ref->ids[i - 1];
        cur[0] = 0;
        for (size_t j = 1; j <= cols; j++) {
            if (a == pred->ids[j - 1])
                cur[j] = prev[j - 1] + 1;
            else
                cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
        }
        uint32_t *tmp = prev;
        prev = cur;
        cur = tmp;
    }
    size_t lcs = prev[cols];
    free(prev);
    free(cur);
    out->p = (double)lcs / (double)pred->n;
    out->r = (double)lcs / (double)ref->n;
    out->f = fmeasure(out->p, out->r);
    return 0;
}

/* rouge_score lcs_ind(ref, can) + _backtrack_norec: marks in `mark` the ref indices of one LCS,
 * chosen by its tie-break (move left only when t[i][j-1] > t[i-1][j]). */
static int lcs_mark(unsigned char *mark, const uint32_t *ref, size_t rn, const uint32_t *can,
                    size_t cn, uint32_t **table, size_t *table_cap)
{
    size_t w = cn + 1;
    if (rn + 1 > SIZE_MAX / sizeof(uint32_t) / w)
        return duet_errorf("rouge: LCS table %zu x %zu is too large", rn, cn);
    size_t need = (rn + 1) * w;
    if (need > *table_cap) {
        uint32_t *t = realloc(*table, need * sizeof *t);
        if (!t)
            return duet_errorf("rouge: out of memory for an LCS table %zu x %zu", rn, cn);
        *table = t;
        *table_cap = need;
    }
    uint32_t *t = *table;
    memset(t, 0, w * sizeof *t);
    for (size_t i = 1; i <= rn; i++) {
        uint32_t *row = t + i * w, *up = row - w;
        row[0] = 0;
        for (size_t j = 1; j <= cn; j++) {
            if (ref[i - 1] == can[j - 1])
                row[j] = up[j - 1] + 1;
            else
                row[j] = up[j] > row[j - 1] ? up[j] : row[j - 1];
        }
    }
    size_t i = rn, j = cn;
    while (i > 0 && j > 0) {
        if (ref[i - 1] == can[j - 1]) {
            mark[i - 1] = 1;
            i--;
            j--;
        } else if (t[i * w + j - 1] > t[(i - 1) * w + j]) {
            j--;
        } else {
            i--;
        }
    }
    return 0;
}

static int score_lsum(rouge_prf *out, const toklist *ref, const toklist *pred, size_t vocab_n)
{
    memset(out, 0, sizeof *out);
    /* Sentences without tokens (including the empty pieces rouge_score drops) change nothing:
     * if every sentence is empty, m or n is 0 and the score is 0 either way. */
    size_t m = ref->n, n = pred->n;
    if (!m || !n)
        return 0;
    int rc = -1;
    size_t *cnt_r = calloc(vocab_n, sizeof *cnt_r), *cnt_c = calloc(vocab_n, sizeof *cnt_c);
    unsigned char *mark = malloc(m);
    uint32_t *table = NULL;
    size_t table_cap = 0, hits = 0;
    if (!cnt_r || !cnt_c || !mark) {
        duet_errorf("rouge: out of memory for rougeLsum");
        goto done;
    }
    for (size_t i = 0; i < m; i++)
        cnt_r[ref->ids[i]]++;
    for (size_t i = 0; i < n; i++)
        cnt_c[pred->ids[i]]++;
    for (size_t rs = 0; rs < ref->n_sent; rs++) {
        size_t r0 = ref->sent[rs], r1 = rs + 1 < ref->n_sent ? ref->sent[rs + 1] : ref->n;
        if (r0 == r1)
            continue;
        memset(mark, 0, r1 - r0);
        for (size_t cs = 0; cs < pred->n_sent; cs++) {
            size_t c0 = pred->sent[cs], c1 = cs + 1 < pred->n_sent ? pred->sent[cs + 1] : pred->n;
            if (c0 == c1)
                continue;
            if (lcs_mark(mark, ref->ids + r0, r1 - r0, pred->ids + c0, c1 - c0, &table, &table_cap))
                goto done;
        }
        /* the union LCS in index order; each hit is clipped by both counts */
        for (size_t k = 0; k < r1 - r0; k++) {
            if (!mark[k])
                continue;
            uint32_t tok = ref->ids[r0 + k];
            if (cnt_c[tok] > 0 && cnt_r[tok] > 0) {
                hits++;
                cnt_c[tok]--;
                cnt_r[tok]--;
            }
        }
    }
    out->r = (double)hits / (double)m;
    out->p = (double)hits / (double)n;
    out->f = fmeasure(out->p, out->r);
    rc = 0;
done:
    free(cnt_r);
    free(cnt_c);
    free(mark);
    free(table);
    return rc;
}

int rouge_score_len(rouge_scores *out, const char *prediction, size_t prediction_len,
                    const char *reference, size_t reference_len, int use_stemmer)
{
    memset(out, 0, sizeof *out);
    vocab v = {0};
    toklist ref, pred;
    int rc = -1;
    memset(&ref, 0, sizeof ref);
    memset(&pred, 0, sizeof pred);
    if (toklist_build(&ref, &v, reference, reference_len, use_stemmer) ||
        toklist_build(&pred, &v, prediction, prediction_len, use_stemmer))
        goto done;
    if (score_ngrams(&out->s[ROUGE_1], &ref, &pred, 1) || score_ngrams(&out->s[ROUGE_2], &ref, &pred, 2) ||
        score_lcs(&out->s[ROUGE_L], &ref, &pred) || score_lsum(&out->s[ROUGE_LSUM], &ref, &pred, v.n))
        goto done;
    rc = 0;
done:
    toklist_free(&ref);
    toklist_free(&pred);
    vocab_free(&v);
    return rc;
}

int rouge_score(rouge_scores *out, const char *prediction, const char *reference, int use_stemmer)
{
    return rouge_score_len(out, prediction, strlen(prediction), reference, strlen(reference),
                           use_stemmer);
}

/* ---- aggregation ---- */

int rouge_aggregate_compute(rouge_aggregate *out, const rouge_scores *items, size_t n,
                            size_t n_samples, uint32_t seed)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return duet_errorf("rouge: no items to aggregate");
    out->n_items = n;
    out->n_samples = n_samples;
    out->seed = seed;
    double *matrix = malloc(n * 3 * sizeof *matrix);
    if (!matrix)
        return duet_errorf("rouge: out of memory aggregating %zu items", n);
    mt19937 *mt = malloc(sizeof *mt);
    if (!mt) {
        free(matrix);
        return duet_errorf("rouge: out of memory");
    }
    mt19937_seed(mt, seed);
    for (int t = 0; t < ROUGE_N_TYPES; t++) {
        double sum[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++) {
            const rouge_prf *s = &items[i].s[t];
            matrix[i * 3 + 0] = s->p;
            matrix[i * 3 + 1] = s->r;
            matrix[i * 3 + 2] = s->f;
            sum[0] += s->p;
            sum[1] += s->r;
            sum[2] += s->f;
        }
        out->mean[t] = (rouge_prf){sum[0] / (double)n, sum[1] / (double)n, sum[2] / (double)n};
        double pct[9];
        if (bootstrap_resample(pct, matrix, n, 3, n_samples, 0.95, mt)) {
            free(matrix);
            free(mt);
            return -1;
        }
        out->low[t] = (rouge_prf){pct[0], pct[1], pct[2]};
        out->mid[t] = (rouge_prf){pct[3], pct[4], pct[5]};
        out->high[t] = (rouge_prf){pct[6], pct[7], pct[8]};
    }
    free(matrix);
    free(mt);
    return 0;
}

struct rouge_aggregator {
    rouge_scores *items;
    size_t n, cap;
};

rouge_aggregator *rouge_aggregator_create(void)
{
    rouge_aggregator *a = calloc(1, sizeof *a);
    if (!a)
        duet_errorf("rouge: out of memory");
    return a;
}

int rouge_aggregator_add(rouge_aggregator *a, const rouge_scores *s)
{
    if (grow((void **)&a->items, &a->cap, a->n + 1, sizeof *a->items))
        return duet_errorf("rouge: out of memory adding item %zu", a->n);
    a->items[a->n++] = *s;
    return 0;
}

size_t rouge_aggregator_count(const rouge_aggregator *a)
{
    return a->n;
}

const rouge_scores *rouge_aggregator_items(const rouge_aggregator *a)
{
    return a->items;
}

int rouge_aggregator_finish(const rouge_aggregator *a, rouge_aggregate *out)
{
    return rouge_aggregate_compute(out, a->items, a->n, ROUGE_BOOTSTRAP_SAMPLES, ROUGE_BOOTSTRAP_SEED);
}

void rouge_aggregator_free(rouge_aggregator *a)
{
    if (!a)
        return;
    free(a->items);
    free(a);
}

/* ---- output ---- */

/* The shortest %.Ng (15..17) that reads back as the same double, like Python's repr. */
static void fmt_double(char *buf, size_t cap, double x)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

void rouge_print_table(FILE *f, const rouge_aggregate *a)
{
    fprintf(f, "ROUGE F-measure x100 over %zu items (stemmer %s; bootstrap %zu resamples, numpy seed %u)\n",
            a->n_items, a->use_stemmer ? "on" : "off", a->n_samples, a->seed);
    fprintf(f, "%-10s %10s %10s %10s %10s\n", "type", "mid", "low", "high", "mean");
    for (int t = 0; t < ROUGE_N_TYPES; t++)
        fprintf(f, "%-10s %10.4f %10.4f %10.4f %10.4f\n", rouge_type_names[t], a->mid[t].f * 100,
                a->low[t].f * 100, a->high[t].f * 100, a->mean[t].f * 100);
}

static void write_prf(FILE *f, const char *name, const rouge_prf *s, int last)
{
    char a[32], b[32], c[32];
    fmt_double(a, sizeof a, s->f * 100);
    fmt_double(b, sizeof b, s->p * 100);
    fmt_double(c, sizeof c, s->r * 100);
    fprintf(f, "\"%s\": {\"f\": %s, \"p\": %s, \"r\": %s}%s", name, a, b, c, last ? "" : ", ");
}

int rouge_write_json(FILE *f, const rouge_aggregate *a)
{
    fprintf(f, "{\"n_items\": %zu, \"n_samples\": %zu, \"seed\": %u, \"stemmer\": %s, \"scale\": 100",
            a->n_items, a->n_samples, a->seed, a->use_stemmer ? "true" : "false");
    for (int t = 0; t < ROUGE_N_TYPES; t++) {
        fprintf(f, ", \"%s\": {", rouge_type_names[t]);
        write_prf(f, "mid", &a->mid[t], 0);
        write_prf(f, "low", &a->low[t], 0);
        write_prf(f, "high", &a->high[t], 0);
        write_prf(f, "mean", &a->mean[t], 1);
        fputc('}', f);
    }
    fputs("}\n", f);
    return ferror(f) ? -1 : 0;
}

void rouge_write_item_json(FILE *f, const rouge_scores *s)
{
    fputc('{', f);
    for (int t = 0; t < ROUGE_N_TYPES; t++) {
        char a[32], b[32], c[32];
        fmt_double(a, sizeof a, s->s[t].p);
        fmt_double(b, sizeof b, s->s[t].r);
        fmt_double(c, sizeof c, s->s[t].f);
        fprintf(f, "%s\"%s\": [%s, %s, %s]", t ? ", " : "", rouge_type_names[t], a, b, c);
    }
    fputs("}\n", f);
}
