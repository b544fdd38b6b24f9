/* tokenizer_export.h: a duet_tokenizer written out, for `duet convert`: read-only accessors to what
 * it holds (tokenizer_export.c), its GGUF tokenizer.ggml.* metadata and its tokenizer.json +
 * tokenizer_config.json (tokenizer_write.c), and a comparison of two tokenizers table by table, with
 * which a converter checks that what it wrote reads back as the tokenizer it started from. */
#ifndef DUET_TOKENIZER_EXPORT_H
#define DUET_TOKENIZER_EXPORT_H

#include "tokenizer.h"

#include <stddef.h>

struct gguf_writer;

/* 1: GPT-2 style byte-level BPE (pieces mapped to the byte alphabet before BPE); 0: not. */
int duet_tokenizer_is_byte_level(const duet_tokenizer *t);
int duet_tokenizer_unk_id(const duet_tokenizer *t); /* -1 when none */
/* 1 when id is an added token (matched whole in the text), 0 when not; *special: a special one. */
int duet_tokenizer_is_added(const duet_tokenizer *t, int id, int *special);
/* The merges in rank order, as malloc'ed pairs (left id, right id): (*pairs)[2k], (*pairs)[2k+1]. */
int duet_tokenizer_merges(const duet_tokenizer *t, int **pairs, int *n);
/* What encode(add_special=1) adds, when it is BOS before and / or EOS after (or nothing): 0 and the
 * flags; -1 + duet_error() for any other affix (two tokens, a token that is not BOS / EOS). */
int duet_tokenizer_add_bos_eos(const duet_tokenizer *t, int *add_bos, int *add_eos);

/* Sets the tokenizer.ggml.* keys of t on w: model "gpt2" (tokens, merges, token_type, pre: the
 * name whose steps equal t's pre-tokenizer) for byte-level BPE; model "llama" (tokens, scores that
 * rebuild t's merges, token_type, add_space_prefix, remove_extra_whitespaces) for SentencePiece-style
 * BPE; bos/eos/unknown ids, add_bos_token / add_eos_token. `where` names t's source in errors (what
 * GGUF cannot carry: a pre-tokenizer with no GGUF name, merges scores cannot order). */
int duet_tokenizer_to_gguf(const duet_tokenizer *t, struct gguf_writer *w, const char *where);

/* Writes <dir>/tokenizer.json (model BPE, added tokens, normalizer, pre-tokenizer, decoder and a
 * TemplateProcessing post-processor, from t's tables) and <dir>/tokenizer_config.json (bos / eos /
 * unk tokens, add_bos_token / add_eos_token, chat_template when not NULL). */
int duet_tokenizer_write_json(const duet_tokenizer *t, const char *dir, const char *chat_template,
                              size_t template_len);

/* 0 when a and b tokenize and decode alike table by table (vocabulary, merges in rank order, added
 * tokens, normalizer, pre-tokenizer, decoder, BOS / EOS affixes, unk, byte fallback); 1 and the
 * first difference in why[n] otherwise. Whether encode parses special tokens by default (1 for
 * tokenizer.json, 0 for GGUF) is not compared. */
int duet_tokenizer_compare(const duet_tokenizer *a, const duet_tokenizer *b, char *why, size_t n);

#endif
