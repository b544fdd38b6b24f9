/* summarize.h: TensorRT-LLM summarize.py's protocol on cnn_dailymail: the prompt is
 * article + " TL;DR: ", stripped, with " n't" turned into "n't"; tokenized with BOS; when longer than
 * max_input tokens, truncated from the left keeping the BOS (BOS + the last max_input-1 tokens). */
#ifndef DUET_SUMMARIZE_H
#define DUET_SUMMARIZE_H

#include "tokenizer.h"

#include <stddef.h>

/* The prompt text for an article of `len` bytes (malloc'ed, NUL-terminated; *out_len its length, which
 * counts any NUL bytes the article holds), or NULL when out of memory. */
char *summarize_prompt_text(const char *article, size_t len, size_t *out_len);

/* The prompt's token ids (malloc'ed) after truncation to max_input (>= 2). -1 + duet_error(). */
int summarize_prompt_ids(const duet_tokenizer *tok, const char *article, size_t len, int max_input, int **ids,
                         size_t *n);

/* 0 when max_input + max_output fit the model's max_pos positions; else -1 and a duet_error() that
 * tells the user which --max-input would fit. */
int summarize_check_lengths(int max_input, int max_output, int max_pos, const char *model_dir);

#endif
