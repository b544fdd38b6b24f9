/* cli_util.h: small helpers shared by the subcommands: checked number parsing (errors name the flag
 * and value), the default model folder, and the common error print. */
#ifndef DUET_CLI_UTIL_H
#define DUET_CLI_UTIL_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

/* Parse `s` as the value of `flag`; on error print "duet CMD: FLAG: 'S' is not ..." and return -1. */
int cli_int(const char *cmd, const char *flag, const char *s, long min, long max, int *out);
int cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
int cli_float(const char *cmd, const char *flag, const char *s, double min, double max, float *out);

/* The sampling flags generate and chat share, by their getopt codes: 't' --temp, 'k' --top-k, 'P' --top-p,
 * 's' --seed. cli_sampling_opt stores the value of one of them: 0, or -1 after printing the bad value (a
 * usage error: exit 2). */
typedef struct cli_sampling {
    float temp, top_p; /* 1.0 and 1.0 by default: plain sampling */
    int top_k;         /* 0: off */
    uint64_t seed;     /* 0 */
} cli_sampling;
#define CLI_SAMPLING_DEFAULTS {1.0f, 1.0f, 0, 0}
int cli_sampling_opt(const char *cmd, int c, const char *arg, cli_sampling *s);

/* A compute mode / dtype: fp32, fp16 or bf16; otherwise prints "duet CMD: FLAG 'S' is not a mode: ..." and
 * returns -1 (a usage error: exit 2). */
int cli_mode(const char *cmd, const char *flag, const char *s);

/* The default model, fetched by `make model`. */
#define CLI_DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

/* The model used when -m is not given: $DUET_MODEL, else CLI_DEFAULT_MODEL under the working
 * directory, else under the folder of the duet binary; NULL when none exists. */
const char *cli_default_model(void);
/* --kv-budget: bytes with an optional K, M, G or T suffix (powers of 1024), e.g. 512M or 2G, into *bytes; or a
 * fraction of the free memory with a decimal point, in (0, 1], e.g. 0.9, into *fraction (duet_backend_opts'
 * kv_budget and kv_fraction). -1 after printing an error naming the flag and the value. */
int cli_kv_budget(const char *cmd, const char *s, int64_t *bytes, double *fraction);
/* The benches' KV cache scales, (n_layers, 2, n_kv_heads) malloc'd: every head's duet_kv_scale(mode, 8), a
 * placeholder (timing does not depend on the codes' values). NULL + duet_error() when out of memory. */
float *cli_kv_placeholder_scales(const duet_config *c, int kv_mode);

/* The cnn_dailymail items of eval and bench --serve: $DUET_DATA/cnn_dailymail/test_100.jsonl, else
 * ../shared/data/cnn_dailymail/test_100.jsonl; NULL when that file does not exist. */
const char *cli_default_cnn_data(void);
/* $DUET_DATA/llama2-tokenizer, else ../shared/data/llama2-tokenizer, when its tokenizer.json exists; else NULL. */
const char *cli_default_llama2_tokenizer(void);

/* The calibrated modes' flags: --kv-cache MODE (none, int8, fp8), --w8a8 MODE (none, sq), --sq-alpha A
 * (SmoothQuant's migration strength, default 0.5) and --calib FILE (duet calibrate's file, checked against
 * the model), for duet_backend_opts' kv_mode / kv_scales / w8a8. NULL: the flag was not given. */
typedef struct cli_quant_flags {
    const char *kv_cache, *w8a8, *sq_alpha, *calib;
} cli_quant_flags;
struct duet_w8a8;
typedef struct cli_quant {
    int kv_mode;
    float *kv_scales;          /* [L][2][Hk] from the calibration's K / V maxima, NULL with kv_mode 0 */
    struct duet_w8a8 *w8a8; /* calib/w8a8.h, NULL without --w8a8 */
} cli_quant;
/* Reads the flags into q (zeroed first; free it with cli_quant_free). 0; 2 after printing a usage error
 * (an unknown mode, an alpha outside [0, 1], --calib without a mode that uses it or a mode without
 * --calib); 1 after printing a bad calibration file. */
struct duet_model;
int cli_quant_modes(const char *cmd, const cli_quant_flags *f, const struct duet_model *m, cli_quant *q);
void cli_quant_free(cli_quant *q);
/* The calibrated modes of q as one name, what goldens record ('calibrated' in __metadata__) and diff's
 * tolerance rows use after "DTYPE:": "w8a8-sq-a0.50", "w8a8-fp8", "kv-int8", "w8a8-fp8+kv-fp8"; "" for
 * none. */
void cli_quant_name(const cli_quant *q, char *buf, size_t n);

/* "on" -> 1, "off" -> 0; otherwise prints "duet CMD: FLAG: 'S' is not on or off" and returns -1. */
int cli_on_off(const char *cmd, const char *flag, const char *s, int *out);

/* The synthetic models' shapes (`duet bench`, `duet bench --serve`): "7b" (LLaMA-7B: hidden 4096, ffn
 * 11008, 32 layers, 32 heads, vocab 32000, 4096 positions) or "tiny" (hidden 256, ffn 688, 4 layers, 8
 * heads, the same vocab). 0, or -1 after printing the unknown name. */
int cli_model_shape(const char *cmd, const char *name, duet_config *c);
/* `given` when not NULL, else cli_default_model(); NULL after printing "no model: run `make model` or
 * give -m" for cmd. */
const char *cli_model_or_default(const char *cmd, const char *given);

/* Opens the model at path (GGUF file or HF folder) and, when tok is not NULL, its own tokenizer
 * (duet_model_tokenizer). 0, or -1 + duet_error() with nothing left open. */
struct duet_model;
struct duet_tokenizer;
int cli_open_model(const char *cmd, const char *path, struct duet_model **m, struct duet_tokenizer **tok);

/* --weights MODE (quant.h's modes; "none" = as stored): the mode, or -1 after printing "duet CMD: --weights
 * 'S' is not a mode: int8, int4, ..." (a usage error: exit 2). */
int cli_weights(const char *cmd, const char *s);
/* cli_open_model, then the linear weights quantized in memory in mode `weights` (duet_model_quantize;
 * DUET_Q_NONE: as stored), the one place --weights is applied. */
int cli_open_model_weights(const char *cmd, const char *path, int weights, struct duet_model **m,
                           struct duet_tokenizer **tok);

/* The id generation stops at: the tokenizer's EOS, else config.json's eos_token_id (-1: none). */
struct duet_tokenizer;
struct duet_model;
int cli_eos_id(const struct duet_tokenizer *tok, const struct duet_model *m);

/* The model's chat template (duet_model_chat_template) and the id of the token that ends a turn in it
 * (-1 when the template ends turns at EOS); an error naming the model when the vocabulary lacks that
 * token. 0 or -1 + duet_error(). */
struct duet_chat_template;
int cli_chat_template(const struct duet_model *m, const struct duet_tokenizer *tok, struct duet_chat_template *tmpl,
                      int *end_id);

/* duet_gen_opts.on_token for streaming to stdout: ctx is a duet_detok *; the bytes that are final are
 * written and flushed. Returns 0 (never stops generation). */
int cli_stream_token(void *ctx, int id);

/* Prints "duet CMD: <duet_error()>" to stderr; returns 1. */
int cli_fail(const char *cmd);

/* For getopt_long's '?': prints "duet CMD: unknown option; see duet CMD --help" and returns 2. */
int cli_bad_option(const char *cmd);

#endif
