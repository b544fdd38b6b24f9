/* cnn_dailymail.h: the cnn_dailymail 3.0.0 split as JSON Lines, one object per line with string
 * fields `id`, `article` and `highlights` (the reference summary, sentences separated by "\n").
 * Errors name the file and the line: missing file, malformed JSON, a missing field, a field that
 * is not a string, an empty file. Other fields are ignored; blank lines are skipped. */
#ifndef DUET_CNN_DAILYMAIL_H
#define DUET_CNN_DAILYMAIL_H

#include <stddef.h>

typedef struct {
    char *id;
    char *article;
    char *highlights;
    size_t id_len, article_len, highlights_len; /* bytes (strings are also NUL-terminated, and may hold
                                                 * NUL bytes of their own: use the lengths) */
    size_t line;                        /* 1-based line in the file */
} cnn_item;

/* Loads at most `max_items` items (0: all) from `path` into a new array *items of *n items
 * (free with cnn_free). Returns 0, or -1 with duet_error() set and *items = NULL, *n = 0. */
int cnn_load(const char *path, size_t max_items, cnn_item **items, size_t *n);

void cnn_free(cnn_item *items, size_t n);

#endif
