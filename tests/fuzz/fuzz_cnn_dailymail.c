/* fuzz_cnn_dailymail.c: libFuzzer harness for cnn_load (eval/cnn_dailymail.c, eval/jsonl.c): the
 * input is a JSON Lines file. Either it is refused with an error, or every item has its three
 * strings NUL-terminated at their recorded lengths, on increasing 1-based lines; loading with a
 * limit of one item gives the first item. */
#include "fuzz_util.h"
#include "eval/cnn_dailymail.h"
#include "error.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    cnn_item *items;
    size_t n;
    if (cnn_load(path, 0, &items, &n)) {
        FUZZ_CHECK(duet_error()[0] != '\0' && items == NULL && n == 0);
        return 0;
    }
    FUZZ_CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        const cnn_item *it = &items[i];
        FUZZ_CHECK(it->id && it->article && it->highlights);
        FUZZ_CHECK(it->article[it->article_len] == '\0' && it->highlights[it->highlights_len] == '\0');
        FUZZ_CHECK(it->line >= 1 && it->line <= size && (i == 0 || it->line > items[i - 1].line));
    }
    cnn_item *first;
    size_t n1;
    FUZZ_CHECK(cnn_load(path, 1, &first, &n1) == 0 && n1 == 1);
    FUZZ_CHECK(first[0].article_len == items[0].article_len &&
               memcmp(first[0].article, items[0].article, items[0].article_len) == 0 &&
               first[0].line == items[0].line);
    cnn_free(first, n1);
    cnn_free(items, n);
    return 0;
}
