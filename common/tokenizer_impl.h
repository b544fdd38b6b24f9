/* tokenizer_impl.h: the private tables of duet_tokenizer, shared by tokenizer.c (loading
 * tokenizer.json), tokenizer_gguf.c (loading GGUF metadata), tokenizer_bytelevel.c (GPT-2 byte <->
 * character map, pre-tokenizer splits), tokenizer_encode.c and tokenizer_decode.c. Not part of the
 * public API (see tokenizer.h). Allocation failures are errors: every function that allocates
 * returns -1 / NULL with duet_errorf() set; a tk_buf remembers a failed append (b.failed) so that a
 * run of appends can be checked once at the end. */
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
    int failed; /* an append ran out of memory: p holds what came before it */
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

/* Pre-tokenizer steps other than Metaspace (a flattened Sequence), each splitting every piece the
 * previous steps left: Split (Digits is loaded as a Split on \p{N} or \p{N}+) and ByteLevel (last
 * step only: optional prefix space, optional GPT-2 regex split; the pieces are then mapped to the
 * byte-level alphabet before BPE). */
enum { TK_PRE_SPLIT, TK_PRE_BYTE_LEVEL };
/* tokenizers' SplitDelimiterBehavior: what happens to a match of the pattern. */
enum { TK_SPLIT_REMOVED, TK_SPLIT_ISOLATED, TK_SPLIT_MERGED_PREV, TK_SPLIT_MERGED_NEXT,
       TK_SPLIT_CONTIGUOUS };
typedef struct {
    int type;
    tk_replace r;         /* the pattern (content unused); ByteLevel with use_regex: GPT-2's regex */
    int behavior, invert; /* Split */
    int add_prefix_space; /* ByteLevel */
} tk_pre;

/* GPT-2's pre-tokenizer regex, as tokenizers' ByteLevel runs it. */
#define TK_GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

enum { TK_DEC_REPLACE, TK_DEC_BYTE_FALLBACK, TK_DEC_FUSE, TK_DEC_STRIP, TK_DEC_METASPACE,
       TK_DEC_BYTE_LEVEL };
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
    tk_pre *pres;
    int n_pres;
    int byte_level; /* pieces are mapped byte -> GPT-2 character before BPE */
    /* decoder (flattened Sequence); has_decoder 0: tokens joined with " " as HF does */
    tk_dec *decs;
    int n_decs, has_decoder;
    /* special tokens added by encode(add_special=1) */
    int prefix[TK_MAX_AFFIX], suffix[TK_MAX_AFFIX];
    int n_prefix, n_suffix;
    int bos_id, eos_id, add_bos, add_eos;
    int parse_special; /* what duet_tokenizer_encode passes: 1 for tokenizer.json, 0 for GGUF */
};

void *tk_malloc(size_t n);
void *tk_malloc_n(size_t count, size_t size);
void *tk_realloc_n(void *p, size_t count, size_t size);
char *tk_memdup(const char *s, size_t n);
int tk_buf_put(tk_buf *b, const char *s, size_t n); /* 0, or -1 and b->failed set */
int tk_strmap_get(const tk_strmap *m, const char *s, size_t n);
int tk_strmap_init(tk_strmap *m, size_t expect); /* room for `expect` keys */
int tk_strmap_put(tk_strmap *m, const char *s, size_t n, int value);
int tk_mergemap_init(tk_mergemap *m, size_t expect);
void tk_mergemap_put(tk_mergemap *m, int a, int b, int rank, int new_id);
int tk_mergemap_get(const tk_mergemap *m, int a, int b, int *rank, int *new_id);
/* A fresh tokenizer with nothing loaded (ids -1, no tables); NULL when out of memory. */
duet_tokenizer *tk_new(void);
/* id -> token string (grows the id table); `where` prefixes errors ("file F: field 'X'"). */
int tk_set_token(duet_tokenizer *t, const char *where, int id, const char *s, size_t n,
                 int overwrite);
/* Appends an added token (matched whole in the text before normalization when normalized is 0). */
int tk_add_token(duet_tokenizer *t, const char *where, const tk_added *a);
/* The byte-fallback ids (<0xXX>) from the vocabulary. */
void tk_find_byte_ids(duet_tokenizer *t);
/* Compiles a regex as tokenizers' Oniguruma runs it (UTF, Unicode classes, multiline ^ $). */
int tk_compile_regex(const char *where, const char *pat, size_t n, pcre2_code **out);
/* Appends a pre-tokenizer step (takes ownership of p's pattern). */
int tk_add_pre(duet_tokenizer *t, const tk_pre *p);
int tk_add_dec(duet_tokenizer *t, const tk_dec *d);
/* Appends a normalizer step (takes ownership of n's pattern and content). */
int tk_add_norm(duet_tokenizer *t, tk_norm *n);
size_t tk_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
size_t tk_utf8_check(const char *s, size_t n);
int tk_is_whitespace(uint32_t c);
void tk_replace_free(tk_replace *r);
/* Appends `in` with every match of r's pattern replaced by r's content; -1 when out of memory. */
int tk_replace_apply(const tk_replace *r, const char *in, size_t n, tk_buf *out);

/* ---- tokenizer_bytelevel.c ---- */
/* Appends the GPT-2 byte-level spelling of bytes s[0..n) (each byte one character). */
int tk_bytes_to_chars(const char *s, size_t n, tk_buf *out);
/* Appends the bytes of a byte-level token as tokenizers' ByteLevel decoder reads it: every
 * character mapped back to its byte, or, when some character is not in the map, the token's own
 * UTF-8 unchanged. */
int tk_chars_to_bytes(const char *s, size_t n, tk_buf *out);
/* Appends bytes as Rust's String::from_utf8_lossy: each maximal ill-formed subsequence (the
 * Unicode "substitution of maximal subparts" rule) becomes one U+FFFD. */
int tk_utf8_lossy(const char *s, size_t n, tk_buf *out);
/* Length of the tail of s[0..n) that is an incomplete (but so far valid) UTF-8 sequence: 0..3. */
size_t tk_utf8_incomplete_tail(const char *s, size_t n);
/* A list of pieces of text (the pre-tokenizer's output), all stored in one buffer. */
typedef struct {
    tk_buf text;
    size_t *off, *len;
    size_t n, cap;
} tk_pieces;
int tk_pieces_add(tk_pieces *p, const char *s, size_t n, const char *prefix, size_t prefix_len);
void tk_pieces_free(tk_pieces *p);
/* Applies one pre-tokenizer step to every piece of `in`, appending the results to `out`. */
int tk_pre_apply(const tk_pre *step, const tk_pieces *in, tk_pieces *out);

/* ---- tokenizer_gguf.c ---- */
/* The pre-tokenizer steps of a GGUF tokenizer.ggml.pre name (smollm, gpt2, default, llama-bpe,
 * qwen2); `where` prefixes errors. Sets byte_level (and ignore_merges for llama-bpe). */
int tk_gguf_pre(duet_tokenizer *t, const char *where, const char *pre, size_t n);

/* ---- tokenizer_spm.c (SentencePiece BPE from GGUF "llama" metadata) ---- */
/* The merges of a vocabulary (tokens and vocab map filled) from per-token scores[n]. */
int tk_spm_merges_from_scores(duet_tokenizer *t, const char *where, const float *scores, int n);
/* Scores (malloc'ed, vocab_size entries) that give t's merges back through the rule above. */
int tk_spm_scores_from_merges(const duet_tokenizer *t, const char *where, float **scores);
/* The normalizer, byte fallback and decoder of a SentencePiece tokenizer. */
int tk_spm_pipeline(duet_tokenizer *t, const char *where, int add_space_prefix, int remove_extra_ws);

/* ---- tokenizer_export.c ---- */
/* t's merges in rank order as malloc'ed triples (left id, right id, merged id); *n of them. */
int tk_merges_in_order(const duet_tokenizer *t, int **triples, int *n);

#endif
