/* jsonl.h: JSON Lines input for eval (one JSON object per line, parsed with jansson), with errors
 * that name the file and the 1-based line number. Blank lines (only whitespace) are skipped.
 * Strings may contain \u0000 (lengths are kept); invalid UTF-8 is a malformed line. */
#ifndef DUET_JSONL_H
#define DUET_JSONL_H

#include <jansson.h>
#include <stddef.h>

typedef struct jsonl_reader jsonl_reader;

/* Opens `path`; NULL with "file PATH: cannot open: REASON" when it cannot. */
jsonl_reader *jsonl_open(const char *path);

/* Reads the next non-blank line as a JSON object: 1 with *obj (caller json_decref()s) and *line
 * set, 0 at end of file, -1 with duet_error() "file PATH line N: malformed JSON: ..." or
 * "... expected a JSON object, got an array". */
int jsonl_next(jsonl_reader *r, json_t **obj, size_t *line);

const char *jsonl_path(const jsonl_reader *r);

void jsonl_close(jsonl_reader *r);

/* The string field `key` of `obj` (read from `path` line `line`): 0 with *s and *len (owned by
 * obj), or -1 with "file PATH line N: field 'KEY' is missing" / "... field 'KEY' is a number,
 * expected a string". */
int jsonl_get_string(const json_t *obj, const char *key, const char *path, size_t line,
                     const char **s, size_t *len);

#endif
