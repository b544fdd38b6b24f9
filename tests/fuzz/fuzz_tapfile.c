/* fuzz_tapfile.c: libFuzzer harness for duet_tapfile_load (common/tapfile.c), which reads a golden tap
 * file through st_open: the input is the whole file. A loaded file holds 2-D taps whose data is a copy
 * of rows * cols floats; the token_ids metadata, when present, goes through duet_ids_parse as
 * `duet golden` reads it, and a parsed list formats back to text that parses to the same ids. */
#include "fuzz_util.h"
#include "error.h"
#include "tapfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    duet_tapfile *f = duet_tapfile_load(fuzz_file(data, size));
    if (!f) {
        FUZZ_CHECK(duet_error()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(f->error == NULL);
    for (int i = 0; i < f->n; i++) {
        const duet_tap *t = &f->taps[i];
        FUZZ_CHECK(t->rows >= 0 && t->cols >= 0);
        FUZZ_CHECK(duet_tapfile_find(f, t->name) == t);
        float sum = 0;
        for (int64_t k = 0; k < t->rows * t->cols; k++) sum += t->data[k];
        (void)sum;
    }
    const char *ids_text = duet_tapfile_meta(f, "token_ids");
    if (ids_text) {
        int *ids, n;
        if (duet_ids_parse(ids_text, &ids, &n) == 0) {
            FUZZ_CHECK(n >= 0);
            char *s = duet_ids_format(ids, n);
            FUZZ_CHECK(s != NULL);
            int *ids2, n2;
            FUZZ_CHECK(duet_ids_parse(s, &ids2, &n2) == 0);
            FUZZ_CHECK(n2 == n && (n == 0 || memcmp(ids, ids2, (size_t)n * sizeof *ids) == 0));
            free(ids2);
            free(s);
            free(ids);
        }
    }
    duet_tapfile_free(f);
    return 0;
}
