/* tolerances.c: parser and lookup of the golden/tolerances table (see tolerances.h). */
#include "tolerances.h"
#include "file.h"
#include "error.h"
#include "tapfile.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void duet_tolerances_free(duet_tolerances *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        free(t->rules[i].mode);
        free(t->rules[i].pattern);
    }
    free(t->rules);
    free(t->path);
    free(t);
}

duet_tolerances *duet_tolerances_parse(const char *text, const char *path)
{
    duet_tolerances *t = calloc(1, sizeof *t);
    char *copy = strdup(text);
    if (!t || !copy || !(t->path = strdup(path))) {
        free(copy);
        duet_tolerances_free(t);
        duet_errorf("out of memory");
        return NULL;
    }
    int line = 0, cap = 0;
    char *save_line = NULL;
    /* strtok_r on "\n" would skip blank lines and lose the count: walk lines by hand. */
    for (char *p = copy, *next; p && *p; p = next) {
        line++;
        next = strchr(p, '\n');
        if (next) *next++ = '\0';
        char *hash = strchr(p, '#');
        if (hash) *hash = '\0';
        char *f[5] = {0};
        int nf = 0;
        for (char *tok = strtok_r(p, " \t\r", &save_line); tok; tok = strtok_r(NULL, " \t\r", &save_line)) {
            if (nf == 4) {
                duet_errorf("%s:%d: unexpected '%s' after the bound (expected: mode tap-pattern metric bound "
                            "[# comment])", path, line, tok);
                goto fail;
            }
            f[nf++] = tok;
        }
        if (nf == 0) continue;
        if (nf != 4) {
            duet_errorf("%s:%d: %d fields, expected 4: mode tap-pattern metric bound [# comment]", path, line, nf);
            goto fail;
        }
        int metric = duet_metric_parse(f[2]);
        if (metric < 0) {
            duet_errorf("%s:%d: unknown metric '%s' (expected rel_l2, max_abs, cos_dist, nmse, top1 or kl)", path,
                        line, f[2]);
            goto fail;
        }
        char *end;
        errno = 0;
        double bound = strtod(f[3], &end);
        if (*end || errno || !isfinite(bound) || bound < 0) {
            duet_errorf("%s:%d: bound '%s' is not a finite non-negative number", path, line, f[3]);
            goto fail;
        }
        if (metric == METRIC_TOP1 && bound > 1) {
            duet_errorf("%s:%d: top1 bound %s: agreement is a fraction in [0, 1]", path, line, f[3]);
            goto fail;
        }
        if (t->n == cap) {
            cap = cap ? 2 * cap : 32;
            duet_tol_rule *nr = realloc(t->rules, (size_t)cap * sizeof *nr);
            if (!nr) {
                duet_errorf("out of memory");
                goto fail;
            }
            t->rules = nr;
        }
        duet_tol_rule *r = &t->rules[t->n++];
        r->mode = strdup(f[0]);
        r->pattern = strdup(f[1]);
        r->metric = (duet_metric)metric;
        r->bound = bound;
        r->line = line;
        if (!r->mode || !r->pattern) {
            duet_errorf("out of memory");
            goto fail;
        }
    }
    free(copy);
    return t;
fail:
    free(copy);
    duet_tolerances_free(t);
    return NULL;
}

duet_tolerances *duet_tolerances_load(const char *path)
{
    char *text = duet_read_file(path, NULL);
    if (!text) return NULL;
    duet_tolerances *t = duet_tolerances_parse(text, path);
    free(text);
    return t;
}

const duet_tol_rule *duet_tolerances_find(const duet_tolerances *t, const char *mode, const char *tap,
                                          duet_metric metric)
{
    for (int i = 0; i < t->n; i++) {
        const duet_tol_rule *r = &t->rules[i];
        if (r->metric == metric && fnmatch(r->mode, mode, 0) == 0 && fnmatch(r->pattern, tap, 0) == 0) return r;
    }
    return NULL;
}

/* ---- the diff table ------------------------------------------------------------------------------ */

static void fmt_shape(char *buf, size_t n, int64_t rows, int64_t cols)
{
    snprintf(buf, n, "[%lld,%lld]", (long long)rows, (long long)cols);
}

/* One row; returns 1 when the tap is out of tolerance. */
static int diff_row(FILE *out, const duet_tap *g, const duet_tap *c, const duet_tolerances *tol, const char *mode,
                    int *first_seen, const char *name)
{
    char shape[48] = "-", rel[16] = "-", mabs[48] = "-", bound[16] = "-", note[512] = "";
    int bad = 0;
    size_t k = 0;
    if (!g || !c) {
        fmt_shape(shape, sizeof shape, g ? g->rows : c->rows, g ? g->cols : c->cols);
        snprintf(note, sizeof note, "%s", g ? "missing from the run/file compared" : "not in the golden");
        bad = 1;
    } else if (g->rows != c->rows || g->cols != c->cols) {
        fmt_shape(shape, sizeof shape, c->rows, c->cols);
        snprintf(note, sizeof note, "shape differs: golden [%lld,%lld]", (long long)g->rows, (long long)g->cols);
        bad = 1;
    } else {
        fmt_shape(shape, sizeof shape, c->rows, c->cols);
        duet_metrics m;
        duet_compare(&m, c->data, g->data, c->rows, c->cols, !strcmp(name, "logits"));
        if (!duet_metrics_finite(&m)) {
            snprintf(note, sizeof note, "%s at (%lld,%lld)",
                     m.nonfinite_a ? "NaN/Inf in the compared values" : "NaN/Inf in the golden itself",
                     (long long)m.bad_row, (long long)m.bad_col);
            snprintf(rel, sizeof rel, "nan");
            bad = 1;
        } else {
            snprintf(rel, sizeof rel, "%.1e", m.rel_l2);
            snprintf(mabs, sizeof mabs, "%.1e (%lld,%lld)", m.max_abs, (long long)m.max_row, (long long)m.max_col);
            int ruled = 0;
            for (int mk = 0; mk < METRIC_N; mk++) {
                if ((mk == METRIC_TOP1 || mk == METRIC_KL) && !m.has_logits) continue;
                const duet_tol_rule *r = duet_tolerances_find(tol, mode, name, (duet_metric)mk);
                if (!r) continue;
                ruled = 1;
                double v = duet_metric_value(&m, (duet_metric)mk);
                int ok = duet_metric_ok((duet_metric)mk, v, r->bound);
                if (mk == METRIC_REL_L2) snprintf(bound, sizeof bound, "%.0e", r->bound);
                else if (!ok || m.has_logits)
                    k += (size_t)snprintf(note + k, sizeof note - k, "%s%s %.2g %s %.0e", k ? ", " : "",
                                          duet_metric_name((duet_metric)mk), v, ok ? (mk == METRIC_TOP1 ? ">=" : "<=")
                                          : (mk == METRIC_TOP1 ? "<" : ">"), r->bound);
                if (k >= sizeof note) k = sizeof note - 1;
                if (!ok) bad = 1;
            }
            if (!ruled) {
                snprintf(note, sizeof note, "no rule in %s for mode %s", tol->path, mode);
                bad = 1;
            }
        }
    }
    if (out) {
        fprintf(out, "%-22s %-10s %-9s %-19s %-8s %-4s%s%s%s\n", name, shape, rel, mabs, bound, bad ? "FAIL" : "ok",
                bad && !*first_seen ? "  <- first" : "", *note ? "  " : "", note);
    }
    if (bad) *first_seen = 1;
    return bad;
}

int duet_diff_taps(FILE *out, const duet_tapfile *gold, const duet_tapfile *cand, const duet_tolerances *tol,
                   const char *mode)
{
    int fails = 0, first = 0, total = 0;
    const char *first_name = NULL;
    if (out) fprintf(out, "%-22s %-10s %-9s %-19s %-8s\n", "tap", "shape", "rel_l2", "max_abs (at)", "bound");
    for (int i = 0; i < gold->n; i++) {
        const duet_tap *g = &gold->taps[i], *c = duet_tapfile_find(cand, g->name);
        int bad = diff_row(out, g, c, tol, mode, &first, g->name);
        if (bad && !first_name) first_name = g->name;
        fails += bad;
        total++;
    }
    for (int i = 0; i < cand->n; i++) {
        const duet_tap *c = &cand->taps[i];
        if (duet_tapfile_find(gold, c->name)) continue;
        diff_row(out, NULL, c, tol, mode, &first, c->name);
        if (!first_name) first_name = c->name;
        fails++;
        total++;
    }
    if (out) {
        if (fails) fprintf(out, "%d of %d taps out of tolerance (mode %s, %s); first: %s\n", fails, total, mode,
                           tol->path, first_name);
        else fprintf(out, "all %d taps within tolerance (mode %s, %s)\n", total, mode, tol->path);
    }
    return fails;
}
