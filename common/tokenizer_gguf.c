/* tokenizer_gguf.c: a tokenizer from GGUF metadata (the tokenizer.ggml.* keys llama.cpp's
 * converter writes), built into the same tables tokenizer.json fills:
 *   model        "gpt2": byte-level BPE; "llama": SentencePiece-style BPE with byte fallback, whose
 *                merges are rebuilt from tokenizer.ggml.scores (tokenizer_spm.c)
 *   pre          (gpt2) the pre-tokenizer, written here as the tokenizer.json steps of the Hugging
 *                Face files these names come from: smollm = Digits(individual) + ByteLevel(GPT-2
 *                regex); gpt2 / default = ByteLevel(GPT-2 regex); llama-bpe = Split(Llama-3
 *                regex, Isolated) + ByteLevel(no regex), merges ignored for whole-vocab words;
 *                qwen2 = Split(Qwen2 regex, Isolated) + ByteLevel(no regex). Absent: default.
 *   tokens       id -> token string (byte-level spelling, or SentencePiece's with U+2581 for space);
 *                token_type 3 (control) makes a special added token, 4 (user defined) a non-special
 *                added token, and for llama 2 (unknown) a special one too, as HF marks <unk>
 *   merges       (gpt2) "a b" strings, rank = position
 *   scores       (llama) f32 per token; add_space_prefix (default true), remove_extra_whitespaces
 *                (default false) choose the normalizer steps
 *   bos/eos/unknown_token_id, add_bos_token / add_eos_token (default: BOS for llama-bpe and llama
 *   only, as llama.cpp does). The decoder is ByteLevel (gpt2) or SentencePiece's (llama). */
#include "gguf.h"
#include "tokenizer_impl.h"

#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TK_LLAMA3_REGEX                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TK_QWEN2_REGEX                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"       \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

enum { GGUF_TOKEN_UNKNOWN = 2, GGUF_TOKEN_CONTROL = 3, GGUF_TOKEN_USER_DEFINED = 4 };

/* A pre-tokenizer step with a regex (behaviour Isolated); NULL regex: ByteLevel without one. */
static int add_regex_step(duet_tokenizer *t, const char *where, int type, const char *re,
                          int add_prefix_space)
{
    tk_pre p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.behavior = TK_SPLIT_ISOLATED;
    p.add_prefix_space = add_prefix_space;
    if (re) {
        if (!(p.r.pattern = tk_memdup(re, strlen(re)))) return -1;
        p.r.pattern_len = strlen(re);
        if (tk_compile_regex(where, re, strlen(re), &p.r.re)) {
            tk_replace_free(&p.r);
            return -1;
        }
    }
    return tk_add_pre(t, &p);
}

int tk_gguf_pre(duet_tokenizer *t, const char *where, const char *pre, size_t n)
{
#define IS(name) (n == strlen(name) && !memcmp(pre, name, n))
    int rc;
    if (IS("smollm")) {
        rc = add_regex_step(t, where, TK_PRE_SPLIT, "\\p{N}", 0);
        if (!rc) rc = add_regex_step(t, where, TK_PRE_BYTE_LEVEL, TK_GPT2_REGEX, 0);
    } else if (IS("gpt2") || IS("default")) {
        rc = add_regex_step(t, where, TK_PRE_BYTE_LEVEL, TK_GPT2_REGEX, 0);
    } else if (IS("llama-bpe")) {
        rc = add_regex_step(t, where, TK_PRE_SPLIT, TK_LLAMA3_REGEX, 0);
        if (!rc) rc = add_regex_step(t, where, TK_PRE_BYTE_LEVEL, NULL, 0);
        t->ignore_merges = 1;
        t->add_bos = 1;
    } else if (IS("qwen2")) {
        rc = add_regex_step(t, where, TK_PRE_SPLIT, TK_QWEN2_REGEX, 0);
        if (!rc) rc = add_regex_step(t, where, TK_PRE_BYTE_LEVEL, NULL, 0);
    } else {
        return duet_errorf("%s: unknown pre-tokenizer \"%.*s\" (supported: smollm, gpt2, default, "
                           "llama-bpe, qwen2)",
                           where, (int)n, pre);
    }
#undef IS
    t->byte_level = 1;
    return rc;
}

/* A token id key (absent: -1); out of range is an error. */
static int get_id(const gguf_file *f, const char *key, int n_tokens, int *id)
{
    int64_t v;
    *id = -1;
    int rc = gguf_get_int(f, key, &v);
    if (rc < 0) return -1;
    if (rc == 1) return 0;
    if (v < 0 || v >= n_tokens)
        return duet_errorf("file %s: key '%s': token id %lld out of range [0, %d)", gguf_path(f),
                           key, (long long)v, n_tokens);
    *id = (int)v;
    return 0;
}

static int get_flag(const gguf_file *f, const char *key, int *flag)
{
    int v, rc = gguf_get_bool(f, key, &v);
    if (rc < 0) return -1;
    if (rc == 0) *flag = v;
    return 0;
}

/* spm: a "llama" vocabulary, whose unknown token is special too. */
static int load_vocab(duet_tokenizer *t, const gguf_file *f, const gguf_str *tokens, uint64_t n, int spm)
{
    const char *file = gguf_path(f);
    char where[512];
    int64_t *types = NULL;
    uint64_t nt = 0;
    int rc = gguf_get_int_arr(f, "tokenizer.ggml.token_type", &types, &nt);
    if (rc < 0) return -1;
    if (rc == 0 && nt != n) {
        free(types);
        return duet_errorf("file %s: key 'tokenizer.ggml.token_type': %llu entries for %llu tokens",
                           file, (unsigned long long)nt, (unsigned long long)n);
    }
    if (tk_strmap_init(&t->vocab, n)) {
        free(types);
        return -1;
    }
    snprintf(where, sizeof where, "file %s: key 'tokenizer.ggml.tokens'", file);
    rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) {
        const gguf_str *s = &tokens[i];
        if (s->len == 0) {
            rc = duet_errorf("%s: token %llu is empty", where, (unsigned long long)i);
            break;
        }
        rc = tk_strmap_put(&t->vocab, s->s, s->len, (int)i);
        if (!rc) rc = tk_set_token(t, where, (int)i, s->s, s->len, 0);
        int special = types && (types[i] == GGUF_TOKEN_CONTROL || (spm && types[i] == GGUF_TOKEN_UNKNOWN));
        if (!rc && types && (special || types[i] == GGUF_TOKEN_USER_DEFINED)) {
            tk_added a = {.s = (char *)s->s, .len = s->len, .id = (int)i, .special = special};
            rc = tk_add_token(t, where, &a);
        }
    }
    free(types);
    if (!rc && t->vocab_size != (int)n)
        rc = duet_errorf("%s: %d ids for %llu tokens", where, t->vocab_size, (unsigned long long)n);
    return rc;
}

static int load_merges(duet_tokenizer *t, const gguf_file *f)
{
    const char *file = gguf_path(f);
    const gguf_str *m;
    uint64_t n;
    int rc = gguf_get_str_arr(f, "tokenizer.ggml.merges", &m, &n);
    if (rc < 0) return -1;
    if (rc == 1) return duet_errorf("file %s: key 'tokenizer.ggml.merges': missing", file);
    if (n > INT32_MAX)
        return duet_errorf("file %s: key 'tokenizer.ggml.merges': %llu merges is too many", file,
                           (unsigned long long)n);
    if (tk_mergemap_init(&t->merges, n)) return -1;
    tk_buf joined = {0};
    rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) {
        const char *s = m[i].s, *sp = memchr(s, ' ', m[i].len);
        if (!sp) {
            rc = duet_errorf("file %s: key 'tokenizer.ggml.merges': entry %llu \"%.*s\" is not "
                             "\"a b\"",
                             file, (unsigned long long)i, (int)m[i].len, s);
            break;
        }
        size_t na = (size_t)(sp - s), nb = m[i].len - na - 1;
        int ia = tk_strmap_get(&t->vocab, s, na), ib = tk_strmap_get(&t->vocab, sp + 1, nb);
        joined.n = 0;
        tk_buf_put(&joined, s, na);
        if (tk_buf_put(&joined, sp + 1, nb)) {
            rc = -1;
            break;
        }
        int inew = tk_strmap_get(&t->vocab, joined.p, joined.n);
        if (ia < 0 || ib < 0 || inew < 0)
            rc = duet_errorf("file %s: key 'tokenizer.ggml.merges': entry %llu \"%.*s\": token "
                             "\"%.*s\" is not in tokenizer.ggml.tokens",
                             file, (unsigned long long)i, (int)m[i].len, s,
                             ia < 0 ? (int)na : ib < 0 ? (int)nb : (int)joined.n,
                             ia < 0 ? s : ib < 0 ? sp + 1 : joined.p);
        else
            tk_mergemap_put(&t->merges, ia, ib, (int)i, inew);
    }
    free(joined.p);
    return rc;
}

static int load_bytelevel(duet_tokenizer *t, const gguf_file *f, gguf_str pre)
{
    char where[512];
    snprintf(where, sizeof where, "file %s: key 'tokenizer.ggml.pre'", gguf_path(f));
    t->has_decoder = 1;
    tk_dec d;
    memset(&d, 0, sizeof d);
    d.type = TK_DEC_BYTE_LEVEL;
    if (load_merges(t, f) || tk_gguf_pre(t, where, pre.s, (size_t)pre.len)) return -1;
    return tk_add_dec(t, &d);
}

/* "llama": merges from the scores, SentencePiece's normalizer and decoder; BOS by default. */
static int load_spm(duet_tokenizer *t, const gguf_file *f)
{
    const char *file = gguf_path(f);
    char where[512];
    float *scores = NULL;
    uint64_t ns = 0;
    int add_prefix = 1, remove_ws = 0;
    snprintf(where, sizeof where, "file %s: key 'tokenizer.ggml.scores'", file);
    int rc = gguf_get_f32_arr(f, "tokenizer.ggml.scores", &scores, &ns);
    if (rc < 0) return -1;
    if (rc == 1) return duet_errorf("%s: missing (a \"llama\" tokenizer needs scores to rank its merges)", where);
    if (ns != (uint64_t)t->vocab_size) {
        free(scores);
        return duet_errorf("%s: %llu entries for %d tokens", where, (unsigned long long)ns, t->vocab_size);
    }
    rc = tk_spm_merges_from_scores(t, where, scores, t->vocab_size);
    free(scores);
    t->add_bos = 1;
    if (rc || get_flag(f, "tokenizer.ggml.add_space_prefix", &add_prefix) ||
        get_flag(f, "tokenizer.ggml.remove_extra_whitespaces", &remove_ws))
        return -1;
    snprintf(where, sizeof where, "file %s: tokenizer.ggml.model 'llama'", file);
    return tk_spm_pipeline(t, where, add_prefix, remove_ws);
}

duet_tokenizer *duet_tokenizer_from_gguf(const gguf_file *f)
{
    const char *file = gguf_path(f);
    gguf_str model, pre = {"default", 7};
    const gguf_str *tokens;
    uint64_t n;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (rc < 0) return NULL;
    if (rc == 1) {
        duet_errorf("file %s: key 'tokenizer.ggml.model': missing (no tokenizer in this file)",
                    file);
        return NULL;
    }
    int spm = model.len == 5 && !memcmp(model.s, "llama", 5);
    if (!spm && !(model.len == 4 && !memcmp(model.s, "gpt2", 4))) {
        duet_errorf("file %s: key 'tokenizer.ggml.model': unsupported tokenizer model \"%.*s\" "
                    "(supported: gpt2, llama)",
                    file, (int)model.len, model.s);
        return NULL;
    }
    if (gguf_get_str(f, "tokenizer.ggml.pre", &pre) < 0) return NULL;
    rc = gguf_get_str_arr(f, "tokenizer.ggml.tokens", &tokens, &n);
    if (rc < 0) return NULL;
    if (rc == 1 || n == 0 || n > TK_MAX_ID) {
        duet_errorf("file %s: key 'tokenizer.ggml.tokens': %s", file,
                    rc == 1 ? "missing" : n == 0 ? "empty" : "more tokens than duet supports");
        return NULL;
    }
    duet_tokenizer *t = tk_new();
    if (!t) return NULL;
    t->parse_special = 0; /* control tokens in text stay text unless the caller asks */
    int ni = (int)n;
    if (load_vocab(t, f, tokens, n, spm) || (spm ? load_spm(t, f) : load_bytelevel(t, f, pre)) ||
        get_id(f, "tokenizer.ggml.bos_token_id", ni, &t->bos_id) ||
        get_id(f, "tokenizer.ggml.eos_token_id", ni, &t->eos_id) ||
        get_id(f, "tokenizer.ggml.unknown_token_id", ni, &t->unk_id) ||
        get_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos) ||
        get_flag(f, "tokenizer.ggml.add_eos_token", &t->add_eos))
        goto fail;
    if (t->add_bos && t->bos_id < 0) {
        duet_errorf("file %s: key 'tokenizer.ggml.add_bos_token': true but there is no "
                    "tokenizer.ggml.bos_token_id",
                    file);
        goto fail;
    }
    if (t->add_eos && t->eos_id < 0) {
        duet_errorf("file %s: key 'tokenizer.ggml.add_eos_token': true but there is no "
                    "tokenizer.ggml.eos_token_id",
                    file);
        goto fail;
    }
    if (t->add_bos) t->prefix[t->n_prefix++] = t->bos_id;
    if (t->add_eos) t->suffix[t->n_suffix++] = t->eos_id;
    return t;
fail:
    duet_tokenizer_free(t);
    return NULL;
}

duet_tokenizer *duet_tokenizer_load_gguf(const char *path)
{
    gguf_file *f = gguf_open(path);
    if (!f) return NULL;
    duet_tokenizer *t = duet_tokenizer_from_gguf(f);
    gguf_close(f);
    return t;
}
