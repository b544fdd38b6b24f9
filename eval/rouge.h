/* rouge.h: ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum with the exact semantics of Google's
 * `rouge_score` package (0.1.2, what Hugging Face `evaluate`'s "rouge" and TensorRT-LLM's
 * summarize.py use), plus the aggregate they report (eval/bootstrap.h) and its table.
 *
 * Tokenization (rouge_score tokenize.py): Python's str.lower(), every run of characters outside
 * [a-z0-9] is a separator, tokens are the runs of [a-z0-9]; with the stemmer, tokens longer than 3
 * characters go through NLTK's Porter stemmer (eval/porter.h). Text is UTF-8. Python's full
 * Unicode lower() turns exactly two non-ASCII code points into ASCII letters (found by enumerating
 * all code points in Python 3.11): U+212A KELVIN SIGN -> "k", and U+0130 LATIN CAPITAL LETTER I
 * WITH DOT ABOVE -> "i" + U+0307 (so "i" followed by a separator). Every other non-ASCII code
 * point is a separator. Invalid UTF-8 never crashes: each byte that is not part of one of those two
 * sequences is a separator (Python could not hold such text at all; `duet rouge` and the JSONL
 * readers reject it earlier, since jansson refuses invalid UTF-8). NUL bytes are separators.
 *
 * ROUGE-N: clipped n-gram multiset overlap, P = overlap / max(#pred n-grams, 1), R likewise with
 * the reference. ROUGE-L: LCS of the whole token lists (0 if either is empty). ROUGE-Lsum: the
 * text is split on "\n" (Python text.split("\n"), empty pieces dropped), summary-level union LCS
 * per reference sentence with rouge_score's backtracking tie-break and its clipped hit counting.
 * F = 2PR / (P + R), 0 when P + R = 0. All scores are fractions in [0, 1].
 * Cost: ROUGE-L is O(m n) time with O(n) memory; ROUGE-Lsum keeps one (m+1) x (n+1) table per
 * sentence pair for the backtrack, as rouge_score does. No global state: every function here is
 * safe to call from several threads at once. */
#ifndef DUET_ROUGE_H
#define DUET_ROUGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum rouge_type { ROUGE_1, ROUGE_2, ROUGE_L, ROUGE_LSUM, ROUGE_N_TYPES };

/* "rouge1", "rouge2", "rougeL", "rougeLsum" (rouge_score's names, in this order). */
extern const char *const rouge_type_names[ROUGE_N_TYPES];

typedef struct {
    double p, r, f; /* precision, recall, F-measure */
} rouge_prf;

typedef struct {
    rouge_prf s[ROUGE_N_TYPES];
} rouge_scores;

/* Scores one prediction against its reference, as rouge_score's
 * RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer).score(reference, prediction).
 * Strings are NUL-terminated. Returns 0, or -1 (out of memory) with duet_error() set. */
int rouge_score(rouge_scores *out, const char *prediction, const char *reference, int use_stemmer);

/* The same with explicit byte lengths (the texts may contain NUL bytes, which are separators). */
int rouge_score_len(rouge_scores *out, const char *prediction, size_t prediction_len,
                    const char *reference, size_t reference_len, int use_stemmer);

/* Tokenizes like rouge_score's tokenize.tokenize(text, stemmer): calls `emit` once per token, in
 * order, with the token's bytes ([a-z0-9]+, not NUL-terminated). `newline` (may be NULL) is called
 * at every "\n" byte. Returns 0, or -1 when out of memory. Exposed for tests and tools. */
int rouge_tokenize(const char *text, size_t len, int use_stemmer,
                   void (*emit)(void *ctx, const char *tok, size_t tok_len),
                   void (*newline)(void *ctx), void *ctx);

/* ---- aggregation over many items ---- */

/* What summarize.py reports (through HF evaluate, which runs compute() under np.random.seed(0)):
 * rouge_score's BootstrapAggregator(n_samples=1000, confidence_interval=0.95).aggregate() on the
 * per-item P/R/F, with numpy's legacy global RNG seeded 0; `mid` is the median of the resampled
 * means (HF evaluate and summarize.py print mid.f x 100). `mean` is the plain mean over items. */
typedef struct {
    size_t n_items;
    size_t n_samples;   /* bootstrap resamples (1000) */
    uint32_t seed;      /* np.random.seed(seed) before the four types (0) */
    int use_stemmer;    /* recorded for printing only */
    rouge_prf mean[ROUGE_N_TYPES];
    rouge_prf low[ROUGE_N_TYPES], mid[ROUGE_N_TYPES], high[ROUGE_N_TYPES]; /* 2.5/50/97.5 pct */
} rouge_aggregate;

#define ROUGE_BOOTSTRAP_SAMPLES 1000
#define ROUGE_BOOTSTRAP_SEED 0u

/* Aggregates `n` items (n >= 1): the mean, and the bootstrap with `n_samples` resamples drawn from
 * one MT19937 stream seeded `seed`, the types in order rouge1, rouge2, rougeL, rougeLsum.
 * Returns 0, or -1 with duet_error() set (n == 0, out of memory). */
int rouge_aggregate_compute(rouge_aggregate *out, const rouge_scores *items, size_t n,
                            size_t n_samples, uint32_t seed);

/* An accumulating list of per-item scores for drivers that score as they go. */
typedef struct rouge_aggregator rouge_aggregator;
rouge_aggregator *rouge_aggregator_create(void);
int rouge_aggregator_add(rouge_aggregator *a, const rouge_scores *s); /* 0, or -1 (OOM) */
size_t rouge_aggregator_count(const rouge_aggregator *a);
const rouge_scores *rouge_aggregator_items(const rouge_aggregator *a);
/* rouge_aggregate_compute over the items added so far (default: 1000 samples, seed 0). */
int rouge_aggregator_finish(const rouge_aggregator *a, rouge_aggregate *out);
void rouge_aggregator_free(rouge_aggregator *a);

/* Prints the summarize.py-style table: per type the mid F x100 (what summarize.py prints), the
 * 95% interval low/high x100, and the plain mean F x100. */
void rouge_print_table(FILE *f, const rouge_aggregate *agg);

/* Writes the aggregate as one JSON object (F, P, R x100 for mid/low/high/mean, plus n_items,
 * n_samples, seed, stemmer), followed by a newline. Returns 0, or -1 on a write error. */
int rouge_write_json(FILE *f, const rouge_aggregate *agg);

/* Writes one item as {"rouge1": [p, r, f], "rouge2": ..., "rougeL": ..., "rougeLsum": ...}
 * (fractions, printed with the fewest digits that read back exactly) and a newline. */
void rouge_write_item_json(FILE *f, const rouge_scores *s);

#endif
