/* model.h: a LLaMA checkpoint opened from a Hugging Face folder: config + the weight tensors, found by
 * their HF names and shape-checked against the config (pointers into the mmap'ed safetensors).
 * Legend: D hidden, F ffn, L layers, H heads, Hk kv heads, d head_dim, V vocab. Every matrix is
 * row-major (out, in), as nn.Linear stores it. */
#ifndef DUET_MODEL_H
#define DUET_MODEL_H

#include "config.h"
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

typedef struct duet_model {
    char *dir;
    duet_config cfg;
    st_set *st;
    const st_tensor *embed;      /* (V, D) model.embed_tokens */
    duet_layer_weights *layers;  /* [L] */
    const st_tensor *final_norm; /* (D) model.norm */
    const st_tensor *lm_head;    /* (V, D) lm_head, or = embed when tied */
} duet_model;

/* Opens <dir>/config.json and its safetensors; every tensor is checked for presence and shape.
 * NULL + duet_error() naming the file and tensor on failure. */
duet_model *duet_model_open(const char *dir);
void duet_model_close(duet_model *m);

#endif
