/* tokenizer_write.c: a duet_tokenizer written out (tokenizer_export.h): as GGUF tokenizer.ggml.*
 * metadata (the keys tokenizer_gguf.c reads), or as tokenizer.json + tokenizer_config.json written
 * from its tables, each step in the form tokenizer.c reads back into the same table. What a format
 * cannot express is an error naming it; a caller checks the result with duet_tokenizer_compare. */
#include "tokenizer_export.h"
#include "tokenizer_impl.h"

#include "error.h"
#include "gguf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_BYTE = 6 };

static const char *const gguf_pre_names[] = {"smollm", "gpt2", "llama-bpe", "qwen2"};

/* The tokenizer.ggml.pre name whose steps are t's pre-tokenizer, or NULL. */
static const char *find_pre_name(const duet_tokenizer *t)
{
    for (size_t i = 0; i < sizeof gguf_pre_names / sizeof *gguf_pre_names; i++) {
        duet_tokenizer *p = tk_new();
        if (!p) return NULL;
        int same = !tk_gguf_pre(p, "tokenizer.ggml.pre", gguf_pre_names[i], strlen(gguf_pre_names[i])) &&
                   p->n_pres == t->n_pres && p->ignore_merges == t->ignore_merges && !t->metaspace && !t->n_norms;
        for (int k = 0; same && k < t->n_pres; k++) {
            const tk_pre *x = &p->pres[k], *y = &t->pres[k];
            int split = x->type == TK_PRE_SPLIT;
            same = x->type == y->type && (!x->r.re) == (!y->r.re) &&
                   (split ? x->behavior == y->behavior && x->invert == y->invert : x->add_prefix_space == y->add_prefix_space) &&
                   x->r.pattern_len == y->r.pattern_len && (!x->r.pattern_len || !memcmp(x->r.pattern, y->r.pattern, x->r.pattern_len));
        }
        duet_tokenizer_free(p);
        if (same) return gguf_pre_names[i];
    }
    duet_error_clear();
    return NULL;
}

/* Does t's normalizer have the step (type, literal pattern or content)? */
static int has_norm(const duet_tokenizer *t, int type, const char *pattern, const char *content)
{
    for (int i = 0; i < t->n_norms; i++) {
        const tk_norm *z = &t->norms[i];
        if (z->type != type) continue;
        if (pattern && !(z->r.pattern && !strcmp(z->r.pattern, pattern))) continue;
        if (content && !(z->r.content && !strcmp(z->r.content, content))) continue;
        return 1;
    }
    return 0;
}

int duet_tokenizer_to_gguf(const duet_tokenizer *t, gguf_writer *w, const char *where)
{
    int n = t->vocab_size, rc = -1, add_bos, add_eos;
    const char **s = malloc(sizeof *s * (size_t)n);
    size_t *len = malloc(sizeof *len * (size_t)n);
    int32_t *types = malloc(sizeof *types * (size_t)n);
    float *scores = NULL;
    int *merges = NULL, nm = 0;
    char **mstr = NULL;
    size_t *mlen = NULL;
    if (!s || !len || !types) {
        duet_errorf("%s: out of memory for %d tokens", where, n);
        goto out;
    }
    if (duet_tokenizer_add_bos_eos(t, &add_bos, &add_eos)) {
        duet_error_prefix("%s: ", where);
        goto out;
    }
    for (int id = 0; id < n; id++) {
        if (!t->tokens[id].s) {
            duet_errorf("%s: id %d has no token: GGUF's token list has no holes", where, id);
            goto out;
        }
        s[id] = t->tokens[id].s;
        len[id] = t->tokens[id].len;
        int special, added = duet_tokenizer_is_added(t, id, &special);
        types[id] = added ? (special ? TT_CONTROL : TT_USER_DEFINED) : TT_NORMAL;
    }
    const char *model;
    if (t->byte_level) {
        model = "gpt2";
        const char *pre = find_pre_name(t);
        if (!pre) {
            duet_errorf("%s: its byte-level pre-tokenizer is none of the GGUF tokenizer.ggml.pre names duet "
                        "knows (smollm, gpt2, llama-bpe, qwen2)", where);
            goto out;
        }
        if (duet_tokenizer_merges(t, &merges, &nm)) goto out;
        mstr = calloc((size_t)nm + 1, sizeof *mstr);
        mlen = malloc(sizeof *mlen * ((size_t)nm + 1));
        if (!mstr || !mlen) {
            duet_errorf("%s: out of memory for %d merges", where, nm);
            goto out;
        }
        for (int k = 0; k < nm; k++) {
            const tk_token *a = &t->tokens[merges[2 * k]], *b = &t->tokens[merges[2 * k + 1]];
            if (memchr(a->s, ' ', a->len) || memchr(b->s, ' ', b->len)) {
                duet_errorf("%s: merge %d \"%s\" + \"%s\" has a space, which GGUF's \"a b\" merges cannot hold",
                            where, k, a->s, b->s);
                goto out;
            }
            if (!(mstr[k] = malloc(a->len + b->len + 2))) {
                duet_errorf("%s: out of memory", where);
                goto out;
            }
            memcpy(mstr[k], a->s, a->len);
            mstr[k][a->len] = ' ';
            memcpy(mstr[k] + a->len + 1, b->s, b->len);
            mlen[k] = a->len + 1 + b->len;
        }
        if (gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre)) ||
            gguf_writer_set_str_arr(w, "tokenizer.ggml.merges", (const char *const *)mstr, mlen, (uint64_t)nm))
            goto out;
    } else {
        model = "llama";
        if (t->metaspace || t->n_pres) {
            duet_errorf("%s: a pre-tokenizer (Metaspace, Split, ...) cannot be carried by a GGUF \"llama\" tokenizer, "
                        "whose text goes through the legacy normalizer (Prepend + Replace) only", where);
            goto out;
        }
        if (tk_spm_scores_from_merges(t, where, &scores)) goto out;
        for (int id = 0; id < n; id++) {
            if (id == t->unk_id) types[id] = TT_UNKNOWN;
            for (int b = 0; b < 256 && types[id] == TT_NORMAL; b++)
                if (t->byte_ids[b] == id) types[id] = TT_BYTE;
        }
        int prefix = has_norm(t, TK_NORM_PREPEND, NULL, "\xe2\x96\x81"), remove_ws = has_norm(t, TK_NORM_REPLACE, "^ +| +$", "");
        if (gguf_writer_set_f32_arr(w, "tokenizer.ggml.scores", scores, (uint64_t)n) ||
            gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", prefix) ||
            gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", remove_ws))
            goto out;
    }
    if (gguf_writer_set_str(w, "tokenizer.ggml.model", model, strlen(model)) ||
        gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", s, len, (uint64_t)n) ||
        gguf_writer_set_i32_arr(w, "tokenizer.ggml.token_type", types, (uint64_t)n) ||
        (t->bos_id >= 0 && gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos_id)) ||
        (t->eos_id >= 0 && gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos_id)) ||
        (t->unk_id >= 0 && gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk_id)) ||
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos) ||
        gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos))
        goto out;
    rc = 0;
out:
    for (int k = 0; mstr && k < nm; k++) free(mstr[k]);
    free(mstr);
    free(mlen);
    free(merges);
    free(scores);
    free(s);
    free(len);
    free(types);
    return rc;
}

/* ---- tokenizer.json ------------------------------------------------------------------------ */

/* A JSON string of n bytes; NULL (an error naming `what`) when they are not UTF-8. */
static json_t *jstrn(const char *s, size_t n, const char *what)
{
    json_t *v = s ? json_stringn(s, n) : NULL;
    if (!v) duet_errorf("%s \"%.*s\" is not valid UTF-8 (or holds a NUL): JSON cannot carry it", what, (int)n, s ? s : "");
    return v;
}

static json_t *pattern_json(const tk_replace *r)
{
    json_t *p = jstrn(r->pattern, r->pattern_len, "a pattern");
    return p ? json_pack("{s:o}", r->re ? "Regex" : "String", p) : NULL;
}

static json_t *replace_json(const tk_replace *r)
{
    json_t *pat = pattern_json(r), *c = pat ? jstrn(r->content, r->content_len, "a replacement") : NULL;
    if (!c) {
        json_decref(pat);
        return NULL;
    }
    return json_pack("{s:s, s:o, s:o}", "type", "Replace", "pattern", pat, "content", c);
}

/* A list of steps: null when empty, the step itself when one, a Sequence otherwise. */
static json_t *steps(json_t *list, const char *key)
{
    size_t n = json_array_size(list);
    if (n == 0) {
        json_decref(list);
        return json_null();
    }
    if (n == 1) {
        json_t *one = json_incref(json_array_get(list, 0));
        json_decref(list);
        return one;
    }
    return json_pack("{s:s, s:o}", "type", "Sequence", key, list);
}

static json_t *normalizer_json(const duet_tokenizer *t)
{
    json_t *list = json_array();
    for (int i = 0; i < t->n_norms; i++) {
        const tk_norm *z = &t->norms[i];
        json_t *s = NULL;
        if (z->type == TK_NORM_PREPEND) {
            json_t *c = jstrn(z->r.content, z->r.content_len, "a Prepend");
            s = c ? json_pack("{s:s, s:o}", "type", "Prepend", "prepend", c) : NULL;
        } else if (z->type == TK_NORM_REPLACE) {
            s = replace_json(&z->r);
        } else {
            s = json_pack("{s:s, s:b, s:b}", "type", "Strip", "strip_left", z->strip_left, "strip_right", z->strip_right);
        }
        if (!s) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, s);
    }
    return steps(list, "normalizers");
}

static json_t *pre_json(const duet_tokenizer *t)
{
    static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    if (t->metaspace) {
        static const char *const schemes[] = {"always", "first", "never"};
        if (t->n_pres) {
            duet_errorf("Metaspace with other pre-tokenizer steps cannot be written (duet reads it alone)");
            return NULL;
        }
        return json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", t->ms_replacement,
                         "prepend_scheme", schemes[t->ms_prepend], "split", t->ms_split);
    }
    json_t *list = json_array();
    for (int i = 0; i < t->n_pres; i++) {
        const tk_pre *p = &t->pres[i];
        json_t *s = NULL;
        if (p->type == TK_PRE_SPLIT) {
            json_t *pat = pattern_json(&p->r);
            s = pat ? json_pack("{s:s, s:o, s:s, s:b}", "type", "Split", "pattern", pat, "behavior", behaviors[p->behavior],
                                "invert", p->invert)
                    : NULL;
        } else if (!p->r.pattern || !strcmp(p->r.pattern, TK_GPT2_REGEX)) {
            s = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", p->add_prefix_space,
                          "trim_offsets", 1, "use_regex", p->r.pattern != NULL);
        } else {
            duet_errorf("a ByteLevel pre-tokenizer with a regex other than GPT-2's cannot be written");
        }
        if (!s) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, s);
    }
    return steps(list, "pretokenizers");
}

static json_t *decoder_json(const duet_tokenizer *t)
{
    if (!t->has_decoder) return json_null();
    json_t *list = json_array();
    for (int i = 0; i < t->n_decs; i++) {
        const tk_dec *d = &t->decs[i];
        json_t *s = NULL;
        switch (d->type) {
        case TK_DEC_REPLACE: s = replace_json(&d->r); break;
        case TK_DEC_BYTE_FALLBACK: s = json_pack("{s:s}", "type", "ByteFallback"); break;
        case TK_DEC_FUSE: s = json_pack("{s:s}", "type", "Fuse"); break;
        case TK_DEC_STRIP:
            s = json_pack("{s:s, s:s, s:I, s:I}", "type", "Strip", "content", d->ch, "start", (json_int_t)d->start, "stop",
                          (json_int_t)d->stop);
            break;
        case TK_DEC_METASPACE:
            s = json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", d->ch, "prepend_scheme",
                          d->start ? "always" : "never", "split", 1);
            break;
        default:
            s = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1,
                          "use_regex", 1);
        }
        if (!s) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, s);
    }
    /* an empty Sequence still decodes differently from no decoder (tokens joined with " ") */
    if (json_array_size(list) == 0) return json_pack("{s:s, s:o}", "type", "Sequence", "decoders", list);
    return steps(list, "decoders");
}

static json_t *model_json(const duet_tokenizer *t)
{
    json_t *vocab = json_object(), *merges = json_array();
    int *pairs = NULL, nm = 0;
    for (int id = 0; id < t->vocab_size; id++) {
        const tk_token *k = &t->tokens[id];
        if (!k->s || tk_strmap_get(&t->vocab, k->s, k->len) != id) continue;
        if (memchr(k->s, 0, k->len) || tk_utf8_check(k->s, k->len) != k->len) goto bad;
        json_object_set_new(vocab, k->s, json_integer(id));
    }
    if (duet_tokenizer_merges(t, &pairs, &nm)) goto fail;
    for (int i = 0; i < nm; i++)
        json_array_append_new(merges, json_pack("[s, s]", t->tokens[pairs[2 * i]].s, t->tokens[pairs[2 * i + 1]].s));
    free(pairs);
    const char *unk = t->unk_id >= 0 ? t->tokens[t->unk_id].s : NULL;
    return json_pack("{s:s, s:n, s:s?, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout", "unk_token", unk,
                     "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", t->fuse_unk, "byte_fallback",
                     t->byte_fallback, "ignore_merges", t->ignore_merges, "vocab", vocab, "merges", merges);
bad:
    duet_errorf("a token is not valid UTF-8 or holds a NUL: JSON cannot carry it");
fail:
    json_decref(vocab);
    json_decref(merges);
    return NULL;
}

/* TemplateProcessing adding t's prefix and suffix (null when none). */
static json_t *post_json(const duet_tokenizer *t)
{
    if (!t->n_prefix && !t->n_suffix) return json_null();
    json_t *single = json_array(), *pair = json_array(), *specials = json_object();
    for (int part = 0; part < 2; part++) {
        const char *seq = part ? "B" : "A";
        for (int i = 0; i < t->n_prefix; i++)
            json_array_append_new(part ? pair : single, json_pack("{s:{s:s, s:i}}", "SpecialToken", "id",
                                                                  t->tokens[t->prefix[i]].s, "type_id", part));
        json_array_append_new(part ? pair : single, json_pack("{s:{s:s, s:i}}", "Sequence", "id", seq, "type_id", part));
        for (int i = 0; i < t->n_suffix; i++)
            json_array_append_new(part ? pair : single, json_pack("{s:{s:s, s:i}}", "SpecialToken", "id",
                                                                  t->tokens[t->suffix[i]].s, "type_id", part));
    }
    /* pair = single's A part, then B */
    json_t *both = json_deep_copy(single);
    json_array_extend(both, pair);
    json_decref(pair);
    for (int i = 0; i < t->n_prefix + t->n_suffix; i++) {
        int id = i < t->n_prefix ? t->prefix[i] : t->suffix[i - t->n_prefix];
        const char *s = t->tokens[id].s;
        json_object_set_new(specials, s, json_pack("{s:s, s:[i], s:[s]}", "id", s, "ids", id, "tokens", s));
    }
    return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", both,
                     "special_tokens", specials);
}

static int dump(json_t *j, const char *path)
{
    if (!j) return -1;
    int rc = json_dump_file(j, path, JSON_INDENT(2));
    json_decref(j);
    if (rc) return duet_errorf("%s: cannot write", path);
    return 0;
}

int duet_tokenizer_write_json(const duet_tokenizer *t, const char *dir, const char *tmpl, size_t tmpl_len)
{
    char path[4096];
    int add_bos, add_eos;
    if (duet_tokenizer_add_bos_eos(t, &add_bos, &add_eos)) return -1;
    json_t *added = json_array();
    for (int i = 0; i < t->n_added; i++) {
        const tk_added *a = &t->added[i];
        json_t *c = jstrn(a->s, a->len, "an added token");
        if (!c) {
            json_decref(added);
            return -1;
        }
        json_array_append_new(added, json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b}", "id", a->id, "content", c,
                                               "single_word", 0, "lstrip", a->lstrip, "rstrip", a->rstrip,
                                               "normalized", a->normalized, "special", a->special));
    }
    json_t *norm = normalizer_json(t), *pre = norm ? pre_json(t) : NULL, *dec = pre ? decoder_json(t) : NULL;
    json_t *model = dec ? model_json(t) : NULL, *post = model ? post_json(t) : NULL;
    if (!post) {
        json_decref(added), json_decref(norm), json_decref(pre), json_decref(dec), json_decref(model);
        return duet_error_prefix("%s/tokenizer.json: ", dir);
    }
    json_t *j = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation", "padding",
                          "added_tokens", added, "normalizer", norm, "pre_tokenizer", pre, "post_processor", post,
                          "decoder", dec, "model", model);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (dump(j, path)) return -1;
    const char *bos = t->bos_id >= 0 ? t->tokens[t->bos_id].s : NULL, *eos = t->eos_id >= 0 ? t->tokens[t->eos_id].s : NULL;
    const char *unk = t->unk_id >= 0 ? t->tokens[t->unk_id].s : NULL;
    json_t *c = json_pack("{s:s, s:b, s:b, s:s?, s:s?, s:s?, s:b}", "tokenizer_class", "PreTrainedTokenizerFast",
                          "add_bos_token", add_bos, "add_eos_token", add_eos, "bos_token", bos, "eos_token", eos,
                          "unk_token", unk, "clean_up_tokenization_spaces", 0);
    if (c && tmpl) {
        json_t *s = jstrn(tmpl, tmpl_len, "the chat template");
        if (!s) {
            json_decref(c);
            return -1;
        }
        json_object_set_new(c, "chat_template", s);
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    return dump(c, path);
}
