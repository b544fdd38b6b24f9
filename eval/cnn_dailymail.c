/* cnn_dailymail.c: reads the JSON Lines split through eval/jsonl.h and copies the three fields. */
#include "cnn_dailymail.h"

#include "error.h"
#include "jsonl.h"

#include <stdlib.h>
#include <string.h>

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int cnn_load(const char *path, size_t max_items, cnn_item **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    jsonl_reader *r = jsonl_open(path);
    if (!r)
        return -1;
    cnn_item *v = NULL;
    size_t count = 0, cap = 0;
    json_t *obj = NULL;
    size_t line = 0;
    int rc = 0;
    while ((max_items == 0 || count < max_items) && (rc = jsonl_next(r, &obj, &line)) == 1) {
        const char *id, *art, *hl;
        size_t id_len, art_len, hl_len;
        if (jsonl_get_string(obj, "id", path, line, &id, &id_len) ||
            jsonl_get_string(obj, "article", path, line, &art, &art_len) ||
            jsonl_get_string(obj, "highlights", path, line, &hl, &hl_len))
            goto fail;
        if (count == cap) {
            size_t nc = cap ? cap * 2 : 64;
            cnn_item *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                duet_errorf("file %s line %zu: out of memory", path, line);
                goto fail;
            }
            v = nv;
            cap = nc;
        }
        cnn_item *it = &v[count];
        memset(it, 0, sizeof *it);
        it->id = dup_bytes(id, id_len);
        it->article = dup_bytes(art, art_len);
        it->highlights = dup_bytes(hl, hl_len);
        it->id_len = id_len;
        it->article_len = art_len;
        it->highlights_len = hl_len;
        it->line = line;
        count++;
        if (!it->id || !it->article || !it->highlights) {
            duet_errorf("file %s line %zu: out of memory", path, line);
            goto fail;
        }
        json_decref(obj);
        obj = NULL;
    }
    if (rc < 0)
        goto fail;
    if (count == 0) {
        duet_errorf("file %s: no items (empty file)", path);
        goto fail;
    }
    jsonl_close(r);
    *items = v;
    *n = count;
    return 0;
fail:
    json_decref(obj);
    jsonl_close(r);
    cnn_free(v, count);
    return -1;
}

void cnn_free(cnn_item *items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].id);
        free(items[i].article);
        free(items[i].highlights);
    }
    free(items);
}
