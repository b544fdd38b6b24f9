/* tokenizer.h: Hugging Face tokenizer.json and GGUF tokenizers (SentencePiece-style BPE with byte
 * fallback, GPT-2 style byte-level BPE) in C.
 * Promises: encode and decode give the same ids and bytes as the `tokenizers` library for the
 * configurations it accepts (checked against vectors in tests/data/tokenizer/); anything it does
 * not implement (a normalizer, pre-tokenizer, model, decoder or post-processor type) is refused at
 * load time with an error naming the file, the field and the type, never approximated.
 *
 * Supported: model BPE (vocab + merges as "a b" strings or [a, b] pairs, byte_fallback, unk,
 * fuse_unk, ignore_merges); normalizer null / Sequence / Prepend / Replace (String or Regex, the
 * regex run by PCRE2 in Oniguruma's Ruby semantics: multiline ^ $, UTF, Unicode classes) / Strip;
 * pre_tokenizer null / Metaspace / ByteLevel (add_prefix_space, use_regex; last step) / Split
 * (String or Regex pattern, every behavior, invert) / Digits (individual_digits) / Sequence of
 * these (SmolLM2, Llama-3 and Qwen2 shapes); decoder null / Sequence / Replace / ByteFallback /
 * Fuse / Strip / Metaspace / ByteLevel; added tokens (split out of the raw text, lstrip / rstrip
 * honoured); BOS/EOS from tokenizer_config.json (add_bos_token default true, add_eos_token default
 * false) or, without it, from the post_processor (TemplateProcessing, ByteLevel, Sequence).
 *
 * GGUF (tokenizer.ggml.*): model "gpt2" is byte-level BPE (tokens, merges, token_type: 3 control
 * -> special added token, 4 user defined -> added token) with the pre-tokenizer tokenizer.ggml.pre
 * names: smollm, gpt2 / default, llama-bpe, qwen2 (written as the tokenizer.json steps their
 * Hugging Face files have); BOS/EOS/UNK ids and add_bos_token / add_eos_token are honoured. Model
 * "llama" (SentencePiece) is BPE with byte fallback whose merges are rebuilt from
 * tokenizer.ggml.scores as Hugging Face's converter builds them, with the legacy Llama
 * tokenizer.json's normalizer and decoder (tokenizer_spm.c). */
#ifndef DUET_TOKENIZER_H
#define DUET_TOKENIZER_H

#include <stddef.h>

typedef struct duet_tokenizer duet_tokenizer;

/* Loads <dir>/tokenizer.json and, when present, <dir>/tokenizer_config.json. `model_dir` may also
 * name a tokenizer.json file (then tokenizer_config.json beside it is used when present).
 * NULL + duet_error() on failure. */
duet_tokenizer *duet_tokenizer_load(const char *model_dir);
duet_tokenizer *duet_tokenizer_load_files(const char *tokenizer_json,
                                          const char *tokenizer_config_json_or_NULL);
void duet_tokenizer_free(duet_tokenizer *t);

/* From the tokenizer.ggml.* metadata of an open GGUF file (gguf.h); the tokenizer copies what it
 * needs, so f may be closed afterwards. NULL + duet_error() naming the file and key. */
struct gguf_file;
duet_tokenizer *duet_tokenizer_from_gguf(const struct gguf_file *f);
/* Opens the GGUF file, loads its tokenizer, closes it. duet_tokenizer_load(path) does the same for
 * a file that starts with GGUF's magic. */
duet_tokenizer *duet_tokenizer_load_gguf(const char *path);

/* text: `len` bytes of UTF-8 (NUL bytes allowed). add_special: add BOS/EOS as the config (or the
 * post_processor, or the GGUF metadata) says. parse_special: special added tokens (control tokens
 * such as <|im_start|>) written in the text become their ids; otherwise they are tokenized as
 * plain text (HF's encode_special_tokens=True). Non-special added tokens are always matched.
 * *ids is malloc'ed (free it); 0 ok, -1 + duet_error() (invalid UTF-8, out of memory). */
int duet_tokenizer_encode_opts(const duet_tokenizer *t, const char *text, size_t len,
                               int add_special, int parse_special, int **ids, size_t *n_ids);
/* As _opts with parse_special on for tokenizer.json tokenizers (as HF encodes by default) and off
 * for GGUF ones (text is text unless the caller asks for _opts with parse_special). */
int duet_tokenizer_encode(const duet_tokenizer *t, const char *text, size_t len, int add_special,
                          int **ids, size_t *n_ids);

/* As HF tokenizer.decode(ids, skip_special_tokens=skip_special). *text is malloc'ed and
 * NUL-terminated; *len excludes the NUL. -1 + duet_error() for an id outside the vocabulary. */
int duet_tokenizer_decode(const duet_tokenizer *t, const int *ids, size_t n, int skip_special,
                          char **text, size_t *len);

/* Number of ids (one past the largest id of the vocab and the added tokens). */
int duet_tokenizer_vocab_size(const duet_tokenizer *t);
int duet_tokenizer_bos_id(const duet_tokenizer *t); /* -1 when none */
int duet_tokenizer_eos_id(const duet_tokenizer *t); /* -1 when none */
/* The token string of `id` (NUL-terminated, owned by t), or NULL when id is out of range. */
const char *duet_tokenizer_token(const duet_tokenizer *t, int id);
/* The id of the exact token string, or -1. */
int duet_tokenizer_token_id(const duet_tokenizer *t, const char *token, size_t len);

/* Streaming decode for `duet generate`: push one id at a time, get back the bytes that are now
 * final (a byte-fallback run is held back until it ends, because HF decodes it as a whole: valid
 * UTF-8 or one U+FFFD per byte; with a ByteLevel decoder an incomplete UTF-8 sequence at the end is
 * held back until it completes or turns out ill-formed). The concatenation of all pushes plus duet_detok_finish() equals
 * duet_tokenizer_decode(all ids, skip_special=1). duet_detok_new fails (NULL + duet_error()) for
 * decoder chains it cannot stream. */
typedef struct duet_detok duet_detok;
duet_detok *duet_detok_new(const duet_tokenizer *t);
int duet_detok_push(duet_detok *d, int id, char **out, size_t *len); /* *out valid until next call */
int duet_detok_finish(duet_detok *d, char **out, size_t *len);
void duet_detok_free(duet_detok *d);

#endif
