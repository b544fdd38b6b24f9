/* config.h: the LLaMA model configuration, read from a Hugging Face config.json.
 * Only what the forward pass needs; unsupported architectures and rope scaling are rejected by name. */
#ifndef DUET_CONFIG_H
#define DUET_CONFIG_H

typedef struct duet_config {
    int dim;           /* hidden_size D */
    int ffn_dim;       /* intermediate_size F */
    int n_layers;      /* num_hidden_layers L */
    int n_heads;       /* num_attention_heads H */
    int n_kv_heads;    /* num_key_value_heads Hk (= H when absent) */
    int head_dim;      /* head_dim d (= D / H when absent) */
    int vocab_size;    /* V */
    int max_pos;       /* max_position_embeddings */
    float norm_eps;    /* rms_norm_eps */
    float rope_theta;  /* rope_theta or rope_parameters.rope_theta (default 10000) */
    int tie_embeddings;/* tie_word_embeddings (default 0, as HF LlamaConfig) */
    int bos_id, eos_id;/* -1 when absent */
} duet_config;

/* Parses config.json text; `path` names the source in error messages. 0 or -1 + duet_error(). */
int duet_config_parse(duet_config *cfg, const char *json_text, const char *path);

/* Loads <dir>/config.json. */
int duet_config_load(duet_config *cfg, const char *dir);

/* Writes cfg as an HF LlamaForCausalLM config.json to `path` (used by `duet synth`). */
int duet_config_write(const duet_config *cfg, const char *path);

/* 1 when a and b have the same layer shapes (L, D, F, H, Hk, d), else 0. */
int duet_config_same_layers(const duet_config *a, const duet_config *b);

/* Checks the shape relations (H*d, H % Hk, positivity); `path` names the source. */
int duet_config_validate(const duet_config *cfg, const char *path);

#endif
