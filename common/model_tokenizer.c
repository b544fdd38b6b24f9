/* model_tokenizer.c: the tokenizer and chat template that come with a model (see model.h): a GGUF
 * file's own vocabulary and tokenizer.chat_template, or an HF folder's tokenizer.json and
 * tokenizer_config.json's chat_template. */
#include "model.h"
#include "chat.h"
#include "error.h"
#include "gguf.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

duet_tokenizer *duet_model_tokenizer(const duet_model *m)
{
    duet_tokenizer *t = m->gguf ? duet_tokenizer_from_gguf(m->gguf) : duet_tokenizer_load(m->path);
    if (!t) return NULL;
    /* Every id the tokenizer can produce must index the model's embedding rows. */
    int n = duet_tokenizer_vocab_size(t);
    if (n > m->cfg.vocab_size) {
        duet_errorf("%s: the tokenizer has %d ids but the model's vocabulary is %d: they do not belong together",
                    m->path, n, m->cfg.vocab_size);
        duet_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int duet_model_chat_template(const duet_model *m, duet_chat_template *tmpl)
{
    char where[4200];
    if (m->gguf) {
        gguf_str s = {0};
        snprintf(where, sizeof where, "%s: tokenizer.chat_template", m->path);
        if (gguf_get_str(m->gguf, "tokenizer.chat_template", &s) < 0) return -1;
        return duet_chat_template_parse(tmpl, s.s, s.len, where);
    }
    snprintf(where, sizeof where, "%s/tokenizer_config.json", m->path);
    json_error_t jerr;
    json_t *root = json_load_file(where, 0, &jerr);
    const char *text = root ? json_string_value(json_object_get(root, "chat_template")) : NULL;
    int rc = duet_chat_template_parse(tmpl, text, text ? strlen(text) : 0, where);
    json_decref(root);
    return rc;
}
