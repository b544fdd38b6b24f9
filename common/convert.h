/* convert.h: a LLaMA model from one file format to the other (`duet convert`):
 *   HF folder (config.json, F32/F16/BF16 safetensors, tokenizer.json) -> one GGUF file in llama.cpp's
 *     layout: llama.* metadata, tensors named token_embd, output_norm, output (absent when tied),
 *     blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down},
 *     q/k rows permuted as llama.cpp's converter does (model_gguf.c un-permutes them on load, so the
 *     HF rows come back bit for bit), the tokenizer as tokenizer.ggml.* metadata and
 *     tokenizer.chat_template from tokenizer_config.json;
 *   GGUF -> HF folder: config.json, model.safetensors (every weight dequantized exactly, model.h's
 *     loaded tensors, so q/k in HF row order; lm_head omitted when tied), tokenizer.json and
 *     tokenizer_config.json (bos / eos, add_bos_token, chat_template).
 * Each writes to a temporary name and renames when done; what it wrote is read back before that
 * (the model opens, its config and tokenizer equal the source's), else nothing is left behind. */
#ifndef DUET_CONVERT_H
#define DUET_CONVERT_H

#include "dtype.h"

#include <stdint.h>

/* Called after each tensor (name, done of total) and at each stage (name = a stage, total 0). */
typedef void (*duet_convert_progress_fn)(void *ctx, const char *name, int done, int total);

typedef struct duet_convert_opts {
    int type;  /* ST_F32, ST_F16 or ST_BF16; -1: as stored (to GGUF), F32 (to HF). To GGUF, a 16-bit
                * type is for the matrices: 1-D norm weights stay F32, as llama.cpp's converter does */
    int force; /* replace an existing output */
    duet_convert_progress_fn progress;
    void *progress_ctx;
} duet_convert_opts;

/* Converts the model at `in` (a GGUF file: to an HF folder; a folder: to GGUF) into `out`.
 * -1 + duet_error() naming the file and what is wrong: input not a model, output exists (without
 * force), a type that is not F32/F16/BF16, a tokenizer the output format cannot carry. */
int duet_convert(const char *in, const char *out, const duet_convert_opts *opts);
int duet_convert_hf_to_gguf(const char *dir, const char *out_gguf, const duet_convert_opts *opts);
int duet_convert_gguf_to_hf(const char *gguf, const char *out_dir, const duet_convert_opts *opts);

/* Writes an opened model (`duet quantize`: quantized in memory, duet_model_quantize) as it is held:
 *   duet_model_save_gguf: one GGUF file as duet_convert_hf_to_gguf writes one, block tensors (Q8_0,
 *     Q4_0, Q4_1, ...) as they are, q/k rows of blocks permuted whole; general.file_type from the
 *     layers' matrices; the tokenizer and chat template of the source (GGUF or HF folder);
 *   duet_model_save_hf: an HF folder with duet's planar quantized weights (model_planar.c has the layout)
 *     and the other tensors as stored when safetensors has their type, else F32 (exact); the source
 *     folder's tokenizer.json / tokenizer_config.json copied, or a GGUF source's tokenizer written.
 * Both read what they wrote back and require the weights equal to m's byte for byte. o->type: -1 (as
 * stored) or a type for the unquantized tensors. */
struct duet_model;
int duet_model_save_gguf(const struct duet_model *m, const char *out, const duet_convert_opts *o);
int duet_model_save_hf(const struct duet_model *m, const char *out, const duet_convert_opts *o);

#endif
