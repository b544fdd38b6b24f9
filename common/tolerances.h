/* tolerances.h: the golden/tolerances table. One rule a line:
 *     mode  tap-pattern  metric  bound   # measured: ... (how)
 * mode and tap-pattern are fnmatch(3) globs; metric is one of compare.h's names (rel_l2, max_abs,
 * cos_dist, nmse, top1, kl). For a given (mode, tap, metric) the first matching line wins, so specific
 * rules go above general ones. '#' starts a comment; blank lines are ignored. */
#ifndef DUET_TOLERANCES_H
#define DUET_TOLERANCES_H

#include "compare.h"

#include <stdio.h>

typedef struct duet_tol_rule {
    char *mode, *pattern;
    duet_metric metric;
    double bound;
    int line;
} duet_tol_rule;

typedef struct duet_tolerances {
    char *path;
    duet_tol_rule *rules;
    int n;
} duet_tolerances;

/* Parses the table text; `path` names it in errors ("PATH:LINE: ..."). NULL + duet_error(). */
duet_tolerances *duet_tolerances_parse(const char *text, const char *path);
duet_tolerances *duet_tolerances_load(const char *path);
void duet_tolerances_free(duet_tolerances *t);

/* The first rule for (mode, tap, metric), or NULL. */
const duet_tol_rule *duet_tolerances_find(const duet_tolerances *t, const char *mode, const char *tap,
                                          duet_metric metric);

/* Compares every tap of `cand` with `gold` under the rules for `mode` and prints docs/design.md's table to
 * `out` (NULL: silent): one row per tap in the golden's forward order (then taps only `cand` has),
 * `<- first` on the first row out of tolerance, then a summary line. A tap is out of tolerance when a
 * NaN/Inf is on either side, the shapes differ, it is missing on one side, no rule covers it, or any
 * metric with a rule exceeds its bound. Returns the number of taps out of tolerance (0: all within). */
struct duet_tapfile;
int duet_diff_taps(FILE *out, const struct duet_tapfile *gold, const struct duet_tapfile *cand,
                   const duet_tolerances *tol, const char *mode);

#endif
