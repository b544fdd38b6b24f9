/* model.h: a LLaMA checkpoint opened from a Hugging Face folder (config.json + safetensors) or a
 * llama.cpp GGUF file: config + the weight tensors, found by name and shape-checked against the
 * config. Tensors keep their stored type (F32/F16/BF16, or GGUF blocks such as Q4_1 and Q8_0; see
 * dtype.h) and point into the mmap'ed file, except GGUF q/k projections, whose rows are un-permuted
 * into a buffer the model owns (model_gguf.c says why), and quantized linear weights: duet's planar
 * ones (<name>.qweight + .scales/.zeros, model_planar.c) and duet_model_quantize's, whose st_tensors
 * the model owns (m->quant, model_quant.h).
 * Legend: D hidden, F ffn, L layers, H heads, Hk kv heads, d head_dim, V vocab. Every matrix is
 * row-major (out, in), as nn.Linear stores it. */
#ifndef DUET_MODEL_H
#define DUET_MODEL_H

#include "config.h"
#include "quant.h"
#include "safetensors.h"

typedef struct duet_layer_weights {
    const st_tensor *attn_norm; /* (D)            input_layernorm */
    const st_tensor *wq;        /* (H*d, D)       self_attn.q_proj */
    const st_tensor *wk;        /* (Hk*d, D)      self_attn.k_proj */
    const st_tensor *wv;        /* (Hk*d, D)      self_attn.v_proj */
    const st_tensor *wo;        /* (D, H*d)       self_attn.o_proj */
    const st_tensor *ffn_norm;  /* (D)            post_attention_layernorm */
    const st_tensor *w_gate;    /* (F, D)         mlp.gate_proj */
    const st_tensor *w_up;      /* (F, D)         mlp.up_proj */
    const st_tensor *w_down;    /* (D, F)         mlp.down_proj */
} duet_layer_weights;

struct gguf_file;

typedef struct duet_model {
    char *path;                 /* the folder or .gguf file it was opened from */
    duet_config cfg;
    st_set *st;                 /* HF folder: its safetensors (NULL for GGUF) */
    struct gguf_file *gguf;     /* GGUF file (NULL for an HF folder) */
    st_tensor *owned;           /* GGUF: [2L] un-permuted q/k tensors, data in owned_data */
    void *owned_data;
    duet_qmode weights;         /* DUET_Q_NONE, or the mode its linear weights were quantized in (by
                                 * duet_model_quantize, or as the file stores them: duet_model_open) */
    struct duet_model_quant *quant; /* duet_model_quantize's and the planar loader's tensors */
    const st_tensor *embed;      /* (V, D) model.embed_tokens */
    duet_layer_weights *layers;  /* [L] */
    const st_tensor *final_norm; /* (D) model.norm */
    const st_tensor *lm_head;    /* (V, D) lm_head, or = embed when tied */
} duet_model;

/* Opens `path`: a .gguf file (any regular file is read as GGUF), else a folder with config.json and
 * its safetensors; every tensor is checked for presence, shape and type. NULL + duet_error() naming the
 * file and tensor on failure. */
duet_model *duet_model_open(const char *path);

/* The config of a GGUF file's `llama.*` metadata (model_gguf.c); other architectures, rope scaling
 * and missing keys are errors naming them. */
int duet_config_from_gguf(duet_config *cfg, const struct gguf_file *f);
/* model_gguf.c: fills m (whose path is set) from the GGUF file at path. */
int duet_model_open_gguf(duet_model *m, const char *path);
void duet_model_close(duet_model *m);

/* Quantizes every layer's seven linear weights (q, k, v, o, gate, up, down) in mode q, in memory, with
 * the CPU quantizer (quant.h): each is dequantized exactly (st_to_f32) and quantized, so a quantized
 * model can be requantized. The embeddings, the norms and lm_head keep their stored type. The layer
 * tensors then point at the new codes (GGUF blocks for q8_0 / q4_0 / q4_1, planar ST_QI8 / ST_QU4
 * with their scales otherwise). progress (may be NULL) is called after each layer. -1 + duet_error()
 * naming the tensor when a row length does not fit the mode. DUET_Q_NONE does nothing. */
int duet_model_quantize(duet_model *m, duet_qmode q, void (*progress)(void *ctx, int done, int total), void *ctx);

/* How the weights are held, for startup lines: "int4-g64 (quantized on load)"; "stored as Q8_0, F32, Q4_1
 * (linear weights q4_1)" for a file whose linear weights are all in one mode (m->weights); else "stored as
 * F32". */
void duet_model_weights_describe(const duet_model *m, char *buf, size_t n);

/* The distinct stored types of the model's weights, comma-separated in first-seen order ("Q8_0, F32,
 * Q4_1"), into buf. */
void duet_model_weight_types(const duet_model *m, char *buf, size_t n);

/* The model's own tokenizer (model_tokenizer.c): a GGUF file's vocabulary, or the folder's
 * tokenizer.json; an error when the tokenizer has more ids than the model's vocabulary. */
struct duet_tokenizer;
struct duet_chat_template;
struct duet_tokenizer *duet_model_tokenizer(const duet_model *m);
/* The model's chat template (GGUF tokenizer.chat_template, or tokenizer_config.json's chat_template),
 * recognized by pattern (chat.h); an error naming it when it is absent or unknown. */
int duet_model_chat_template(const duet_model *m, struct duet_chat_template *tmpl);

#endif
