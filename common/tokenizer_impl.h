/* tokenizer_impl.h: the private tables of duet_tokenizer, shared by tokenizer.c (loading),
 * tokenizer_encode.c and tokenizer_decode.c. Not part of the public API (see tokenizer.h). */
#ifndef DUET_TOKENIZER_IMPL_H
#define DUET_TOKENIZER_IMPL_H

#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#define TK_MAX_ID (1 << 24) /* ids above this are refused at load time */
#define TK_MAX_AFFIX 8      /* special tokens added before / after a sequence */

typedef struct {
    char *p;
    size_t n, cap;
} tk_buf;

struct tk_strmap_entry {
    char *key; /* NULL: empty slot */
    size_t len;
    uint32_t hash;
    int value;
};
typedef struct {
    struct tk_strmap_entry *e;
    size_t cap, n; /* cap: power of two */
} tk_strmap;

struct tk_merge_entry {
    uint64_t key; /* left id << 32 | right id; UINT64_MAX: empty */
    int rank, new_id;
};
typedef struct {
    struct tk_merge_entry *e;
    size_t cap;
} tk_mergemap;

typedef struct {
    char *s; /* NUL-terminated token string; NULL for an id no token has */
    size_t len;
    int special; /* a special added token (skipped by skip_special) */
} tk_token;

typedef struct {
    char *s;
    size_t len;
    int id, special, lstrip, rstrip, normalized;
} tk_added;

/* A Replace pattern: a literal string (re == NULL) or a PCRE2 regex. */
typedef struct {
    char *pattern;
    size_t pattern_len;
    pcre2_code *re;
    char *content; /* replacement; for Prepend the prepended string */
    size_t content_len;
} tk_replace;

enum { TK_NORM_PREPEND, TK_NORM_REPLACE, TK_NORM_STRIP };
typedef struct {
    int type;
    tk_replace r;
    int strip_left, strip_right;
} tk_norm;

enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };

enum { TK_DEC_REPLACE, TK_DEC_BYTE_FALLBACK, TK_DEC_FUSE, TK_DEC_STRIP, TK_DEC_METASPACE };
typedef struct {
    int type;
    tk_replace r;       /* Replace */
    char ch[8];         /* Strip: content; Metaspace: replacement (UTF-8, NUL-terminated) */
    size_t start, stop; /* Strip: counts; Metaspace: start = 1 when prepend_scheme != never */
} tk_dec;

struct duet_tokenizer {
    /* model (BPE) */
    tk_strmap vocab;      /* model.vocab: token -> id */
    tk_mergemap merges;   /* (left, right) -> (rank, merged id) */
    tk_token *tokens;     /* id -> token, n_tokens slots (>= vocab_size) */
    int n_tokens, vocab_size;
    int unk_id, byte_fallback, fuse_unk, ignore_merges;
    int byte_ids[256]; /* id of "<0xXX>", -1 when absent */
    /* added tokens */
    tk_added *added;
    int n_added;
    tk_strmap added_map;
    unsigned char first_byte[256]; /* 1 when some added token starts with this byte */
    /* normalizer (flattened Sequence) and pre-tokenizer */
    tk_norm *norms;
    int n_norms;
    int metaspace, ms_prepend, ms_split;
    char ms_replacement[8];
    /* decoder (flattened Sequence); has_decoder 0: tokens joined with " " as HF does */
    tk_dec *decs;
    int n_decs, has_decoder;
    /* special tokens added by encode(add_special=1) */
    int prefix[TK_MAX_AFFIX], suffix[TK_MAX_AFFIX];
    int n_prefix, n_suffix;
    int bos_id, eos_id, add_bos, add_eos;
};

void *tk_xmalloc(size_t n);
void *tk_xrealloc(void *p, size_t n);
char *tk_memdup(const char *s, size_t n);
void tk_buf_put(tk_buf *b, const char *s, size_t n);
int tk_strmap_get(const tk_strmap *m, const char *s, size_t n);
int tk_mergemap_get(const tk_mergemap *m, int a, int b, int *rank, int *new_id);
size_t tk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
size_t tk_utf8_check(const char *s, size_t n);
int tk_is_whitespace(uint32_t c);
void tk_replace_free(tk_replace *r);
/* Appends `in` with every match of r's pattern replaced by r's content. */
void tk_replace_apply(const tk_replace *r, const char *in, size_t n, tk_buf *out);

#endif
