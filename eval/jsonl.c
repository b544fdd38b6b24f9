/* jsonl.c: a getline loop over a JSON Lines file; each line goes through json_loadb, so lines
 * of any length work and every error carries file and line. */
#include "jsonl.h"

#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jsonl_reader {
    FILE *f;
    char *path;
    char *buf;
    size_t cap;
    size_t line;
};

jsonl_reader *jsonl_open(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        duet_errorf("file %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    jsonl_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        fclose(f);
        duet_errorf("file %s: out of memory", path);
        return NULL;
    }
    r->f = f;
    return r;
}

const char *jsonl_path(const jsonl_reader *r)
{
    return r->path;
}

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "a number";
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    default: return "unknown";
    }
}

int jsonl_next(jsonl_reader *r, json_t **obj, size_t *line)
{
    *obj = NULL;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f))
                return duet_errorf("file %s line %zu: read error: %s", r->path, r->line + 1,
                                   strerror(errno ? errno : EIO));
            return 0;
        }
        r->line++;
        size_t i = 0;
        while (i < (size_t)n && strchr(" \t\r\n", r->buf[i]) && r->buf[i])
            i++;
        if (i == (size_t)n)
            continue; /* blank line */
        json_error_t err;
        json_t *j = json_loadb(r->buf, (size_t)n, JSON_ALLOW_NUL, &err);
        if (!j)
            return duet_errorf("file %s line %zu: malformed JSON: %s (column %d)", r->path, r->line,
                               err.text, err.column);
        if (!json_is_object(j)) {
            const char *t = type_name(j);
            json_decref(j);
            return duet_errorf("file %s line %zu: expected a JSON object, got %s", r->path, r->line, t);
        }
        *obj = j;
        *line = r->line;
        return 1;
    }
}

void jsonl_close(jsonl_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->path);
    free(r->buf);
    free(r);
}

int jsonl_get_string(const json_t *obj, const char *key, const char *path, size_t line,
                     const char **s, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return duet_errorf("file %s line %zu: field '%s' is missing", path, line, key);
    if (!json_is_string(v))
        return duet_errorf("file %s line %zu: field '%s' is %s, expected a string", path, line, key,
                           type_name(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}
