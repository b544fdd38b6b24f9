/* compare.c: tensor comparison metrics (see compare.h). Sums in double; softmaxes with max subtraction. */
#include "compare.h"

#include <math.h>
#include <string.h>

static double log_sum_exp(const float *x, int64_t n, float mx)
{
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += exp((double)x[j] - mx);
    return (double)mx + log(s);
}

static int64_t argmax(const float *x, int64_t n, float *mx)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (x[j] > x[best]) best = j;
    *mx = x[best];
    return best;
}

void duet_compare(duet_metrics *m, const float *a, const float *b, int64_t rows, int64_t cols, int logits)
{
    memset(m, 0, sizeof *m);
    m->rows = rows;
    m->cols = cols;
    m->bad_row = m->bad_col = -1;
    double se = 0, sb = 0, sa = 0, dot = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float x = a[r * cols + c], y = b[r * cols + c];
            int fa = isfinite(x), fb = isfinite(y);
            if (!fa || !fb) {
                if (!fa) m->nonfinite_a++;
                if (!fb) m->nonfinite_b++;
                if (m->bad_row < 0) {
                    m->bad_row = r;
                    m->bad_col = c;
                }
                continue;
            }
            double d = (double)x - (double)y;
            se += d * d;
            sb += (double)y * y;
            sa += (double)x * x;
            dot += (double)x * y;
            if (fabs(d) > m->max_abs) {
                m->max_abs = fabs(d);
                m->max_row = r;
                m->max_col = c;
            }
        }
    if (m->nonfinite_a || m->nonfinite_b) {
        m->rel_l2 = m->nmse = m->max_abs = NAN;
        m->cosine = NAN;
        m->max_row = m->bad_row;
        m->max_col = m->bad_col;
    } else {
        m->nmse = sb > 0 ? se / sb : (se > 0 ? INFINITY : 0);
        m->rel_l2 = sqrt(m->nmse);
        m->cosine = sa > 0 && sb > 0 ? dot / (sqrt(sa) * sqrt(sb)) : (sa == 0 && sb == 0 ? 1.0 : 0.0);
    }
    if (!logits || cols <= 0 || rows <= 0) return;
    m->has_logits = 1;
    if (m->nonfinite_a || m->nonfinite_b) {
        m->top1 = m->kl = NAN;
        return;
    }
    int64_t agree = 0;
    double kl = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = a + r * cols, *y = b + r * cols;
        float mxa, mxb;
        int64_t ia = argmax(x, cols, &mxa), ib = argmax(y, cols, &mxb);
        agree += ia == ib;
        double lza = log_sum_exp(x, cols, mxa), lzb = log_sum_exp(y, cols, mxb), k = 0;
        for (int64_t j = 0; j < cols; j++) {
            double lpb = (double)y[j] - lzb, lpa = (double)x[j] - lza;
            k += exp(lpb) * (lpb - lpa);
        }
        kl += k > 0 ? k : 0; /* rounding can make an exact match a hair negative */
    }
    m->top1 = (double)agree / (double)rows;
    m->kl = kl / (double)rows;
}

static const char *metric_names[METRIC_N] = {"rel_l2", "max_abs", "cos_dist", "nmse", "top1", "kl"};

int duet_metric_parse(const char *name)
{
    for (int k = 0; k < METRIC_N; k++)
        if (!strcmp(name, metric_names[k])) return k;
    return -1;
}

const char *duet_metric_name(duet_metric k) { return k >= 0 && k < METRIC_N ? metric_names[k] : "?"; }

double duet_metric_value(const duet_metrics *m, duet_metric k)
{
    switch (k) {
    case METRIC_REL_L2: return m->rel_l2;
    case METRIC_MAX_ABS: return m->max_abs;
    case METRIC_COS_DIST: return 1.0 - m->cosine;
    case METRIC_NMSE: return m->nmse;
    case METRIC_TOP1: return m->has_logits ? m->top1 : NAN;
    case METRIC_KL: return m->has_logits ? m->kl : NAN;
    default: return NAN;
    }
}

int duet_metric_ok(duet_metric k, double value, double bound)
{
    if (isnan(value)) return 0;
    return k == METRIC_TOP1 ? value >= bound : value <= bound;
}
