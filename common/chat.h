/* chat.h: chat templates, recognized by pattern (no Jinja engine): a model's template text (GGUF
 * tokenizer.chat_template, or tokenizer_config.json's chat_template) is matched against the formats
 * duet knows, and anything else is an error that names it.
 *   ChatML (a template containing "<|im_start|>"; SmolLM2, Qwen2):
 *     [<|im_start|>system\n{system}<|im_end|>\n] then per message <|im_start|>{role}\n{content}<|im_end|>\n,
 *     then <|im_start|>assistant\n; the default system prompt is the literal the template inserts when
 *     the conversation has none; generation ends at <|im_end|>.
 *   Llama-2 (a template containing "[INST]"):
 *     <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
 *     with no system block when there is no system prompt; generation ends at EOS.
 * The rendered text is tokenized with special tokens parsed (<|im_start|>, <s> are single ids). */
#ifndef DUET_CHAT_H
#define DUET_CHAT_H

#include <stddef.h>

typedef enum { DUET_CHAT_CHATML, DUET_CHAT_LLAMA2 } duet_chat_format;

typedef struct duet_chat_template {
    duet_chat_format format;
    char *default_system; /* malloc'ed; NULL when the template inserts none */
    const char *end_token; /* the token that ends an assistant turn ("<|im_end|>"), NULL: the EOS */
    int add_bos;           /* encode the rendered text with the tokenizer's BOS/EOS rule (1) or none (0) */
} duet_chat_template;

typedef struct duet_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} duet_chat_msg;

/* Recognizes `text` (len bytes; NULL: the model has none). `where` names its source in errors.
 * 0, or -1 + duet_error() naming the template (its first line) when it is not a known format. */
int duet_chat_template_parse(duet_chat_template *t, const char *text, size_t len, const char *where);
void duet_chat_template_free(duet_chat_template *t);

/* Renders messages [0, n) (roles alternating user/assistant after an optional leading system message)
 * and, when add_generation_prompt, the opening of the assistant's turn. `system` overrides the
 * default system prompt when the messages have none (NULL: the template's default; "" : none).
 * Returns a malloc'ed NUL-terminated string, or NULL + duet_error(). */
char *duet_chat_render(const duet_chat_template *t, const duet_chat_msg *msgs, int n, const char *system,
                       int add_generation_prompt);

#endif
