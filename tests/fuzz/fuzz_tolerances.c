/* fuzz_tolerances.c: libFuzzer harness for duet_tolerances_parse (common/tolerances.c): the input is
 * the text of a tolerance table. A parsed table's rules carry a known metric, a finite non-negative
 * bound (at most 1 for top1) and increasing line numbers; every rule is found again by its own mode
 * and pattern when those are literal (no glob characters), unless an earlier rule also matches. */
#include "fuzz_util.h"
#include "error.h"
#include "tolerances.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strdup(data, size);
    duet_tolerances *t = duet_tolerances_parse(text, "tolerances");
    if (!t) {
        FUZZ_CHECK(duet_error()[0] != '\0');
        free(text);
        return 0;
    }
    for (int i = 0; i < t->n; i++) {
        const duet_tol_rule *r = &t->rules[i];
        FUZZ_CHECK(isfinite(r->bound) && r->bound >= 0);
        FUZZ_CHECK(r->metric != METRIC_TOP1 || r->bound <= 1);
        FUZZ_CHECK(i == 0 || r->line > t->rules[i - 1].line);
        FUZZ_CHECK(r->mode[0] && r->pattern[0] && !strpbrk(r->mode, " \t\r\n#") && !strpbrk(r->pattern, " \t\r\n#"));
        if (!strpbrk(r->mode, "*?[\\") && !strpbrk(r->pattern, "*?[\\")) {
            const duet_tol_rule *hit = duet_tolerances_find(t, r->mode, r->pattern, r->metric);
            FUZZ_CHECK(hit != NULL && hit <= r);
        }
    }
    duet_tolerances_find(t, "fp32", "layer0.attn_out", METRIC_REL_L2);
    duet_tolerances_free(t);
    free(text);
    return 0;
}
