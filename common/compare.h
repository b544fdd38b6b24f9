/* compare.h: per-tensor error metrics between a candidate `a` and a reference `b` (the golden), both
 * [rows, cols] fp32 row-major. Accumulated in double. A NaN or Inf in `a` is always a failure, whatever
 * the metrics say; one in `b` means the golden itself is broken. */
#ifndef DUET_COMPARE_H
#define DUET_COMPARE_H

#include <stdint.h>

typedef struct duet_metrics {
    int64_t rows, cols;
    double rel_l2;        /* ||a-b|| / ||b|| (0 when both are 0, inf when only b is 0) */
    double max_abs;       /* max |a-b| ... */
    int64_t max_row, max_col; /* ... and where */
    double cosine;        /* a.b / (|a||b|) (1 when both are 0) */
    double nmse;          /* sum (a-b)^2 / sum b^2 = rel_l2^2 */
    int64_t nonfinite_a;  /* count of NaN/Inf in a; the first at (bad_row, bad_col) */
    int64_t nonfinite_b;
    int64_t bad_row, bad_col;
    /* logits only (rows = tokens, cols = vocab): */
    int has_logits;
    double top1;          /* fraction of rows whose argmax agrees */
    double kl;            /* mean over rows of KL(softmax(b) || softmax(a)), nats */
} duet_metrics;

/* Fills m. logits != 0 adds top-1 agreement and KL. */
void duet_compare(duet_metrics *m, const float *a, const float *b, int64_t rows, int64_t cols, int logits);

/* Metrics by name, as golden/tolerances spells them. */
typedef enum { METRIC_REL_L2, METRIC_MAX_ABS, METRIC_COS_DIST, METRIC_NMSE, METRIC_TOP1, METRIC_KL, METRIC_N } duet_metric;

/* "rel_l2", "max_abs", "cos_dist" (1 - cosine), "nmse", "top1" (agreement, a lower bound), "kl". -1 if unknown. */
int duet_metric_parse(const char *name);
const char *duet_metric_name(duet_metric k);
/* The value of metric k in m (NAN for top1/kl when m has no logit metrics). */
double duet_metric_value(const duet_metrics *m, duet_metric k);
/* Within bound: value <= bound, except top1: value >= bound. NaN is never within. */
int duet_metric_ok(duet_metric k, double value, double bound);
/* Whether the tensor passes at all: no NaN/Inf in either side. */
static inline int duet_metrics_finite(const duet_metrics *m) { return !m->nonfinite_a && !m->nonfinite_b; }

#endif
