/* chat.c: chat templates recognized by pattern (see chat.h). */
#include "chat.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return hay + i;
    return NULL;
}

/* ChatML's default system prompt: the first "<|im_start|>system\n" followed by literal text (no Jinja
 * expression) up to "<|im_end|>", e.g. SmolLM2's "You are a helpful AI assistant named SmolLM, ...". */
static char *chatml_default_system(const char *text, size_t len)
{
    static const char open[] = "<|im_start|>system\n", close[] = "<|im_end|>";
    const char *p = text, *end = text + len;
    while ((p = find(p, (size_t)(end - p), open))) {
        p += sizeof open - 1;
        const char *q = find(p, (size_t)(end - p), close);
        if (!q) break;
        int literal = 1;
        for (const char *c = p; c < q; c++)
            if (*c == '{' || *c == '}' || *c == '\'' || *c == '"') literal = 0;
        if (literal && q > p) {
            char *s = malloc((size_t)(q - p) + 1);
            if (s) {
                memcpy(s, p, (size_t)(q - p));
                s[q - p] = 0;
            }
            return s;
        }
    }
    return NULL;
}

int duet_chat_template_parse(duet_chat_template *t, const char *text, size_t len, const char *where)
{
    memset(t, 0, sizeof *t);
    if (!text || !len) return duet_errorf("%s: the model has no chat template; --chat needs one", where);
    if (find(text, len, "<|im_start|>")) {
        t->format = DUET_CHAT_CHATML;
        t->end_token = "<|im_end|>";
        t->add_bos = 1;
        t->default_system = chatml_default_system(text, len);
        return 0;
    }
    if (find(text, len, "[INST]")) {
        t->format = DUET_CHAT_LLAMA2;
        t->end_token = NULL;
        t->add_bos = 0; /* the rendered text carries <s> itself */
        return 0;
    }
    size_t n = 0;
    while (n < len && n < 80 && text[n] != '\n') n++;
    return duet_errorf("%s: unknown chat template \"%.*s%s\" (duet recognizes ChatML and Llama-2 [INST] templates)",
                       where, (int)n, text, n < len ? "..." : "");
}

void duet_chat_template_free(duet_chat_template *t)
{
    free(t->default_system);
    t->default_system = NULL;
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s)
{
    size_t k = strlen(s);
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

static int role_is(const duet_chat_msg *m, const char *r) { return m->role && !strcmp(m->role, r); }

char *duet_chat_render(const duet_chat_template *t, const duet_chat_msg *msgs, int n, const char *system,
                       int add_generation_prompt)
{
    int first = 0;
    const char *sys = system ? system : t->default_system;
    if (n > 0 && role_is(&msgs[0], "system")) {
        sys = msgs[0].content;
        first = 1;
    }
    for (int i = first; i < n; i++) {
        const char *want = (i - first) % 2 == 0 ? "user" : "assistant";
        if (!role_is(&msgs[i], want)) {
            duet_errorf("chat: message %d has role '%s'; expected '%s' (user and assistant alternate)", i,
                        msgs[i].role ? msgs[i].role : "(none)", want);
            return NULL;
        }
    }
    sbuf b = {0};
    put(&b, "");
    if (t->format == DUET_CHAT_CHATML) {
        if (sys && *sys) {
            put(&b, "<|im_start|>system\n");
            put(&b, sys);
            put(&b, "<|im_end|>\n");
        }
        for (int i = first; i < n; i++) {
            put(&b, "<|im_start|>");
            put(&b, msgs[i].role);
            put(&b, "\n");
            put(&b, msgs[i].content);
            put(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) put(&b, "<|im_start|>assistant\n");
    } else { /* Llama-2 */
        for (int i = first; i < n; i++) {
            if (role_is(&msgs[i], "user")) {
                put(&b, "<s>[INST] ");
                if (i == first && sys && *sys) {
                    put(&b, "<<SYS>>\n");
                    put(&b, sys);
                    put(&b, "\n<</SYS>>\n\n");
                }
                put(&b, msgs[i].content);
                put(&b, " [/INST]");
            } else {
                put(&b, " ");
                put(&b, msgs[i].content);
                put(&b, " </s>");
            }
        }
    }
    if (b.oom) {
        free(b.p);
        duet_errorf("chat: out of memory");
        return NULL;
    }
    return b.p;
}
