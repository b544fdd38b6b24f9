/* chat_session.c: a multi-turn conversation over one KV cache slot (see chat_session.h). */
#include "chat_session.h"
#include "error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int duet_chat_session_init(duet_chat_session *s, const duet_chat_template *t, const duet_tokenizer *tok,
                           const char *system)
{
    memset(s, 0, sizeof *s);
    s->tmpl = t;
    s->tok = tok;
    if (system && !(s->system = strdup(system))) return duet_errorf("chat: out of memory");
    return 0;
}

static void drop_messages(duet_chat_session *s)
{
    for (int i = 0; i < s->n_msgs; i++) free((char *)s->msgs[i].content);
    s->n_msgs = 0;
}

void duet_chat_session_cancel(duet_chat_session *s)
{
    free(s->user);
    free(s->ids);
    s->user = NULL;
    s->ids = NULL;
    s->n_ids = 0;
}

void duet_chat_session_reset(duet_chat_session *s)
{
    duet_chat_session_cancel(s);
    drop_messages(s);
    s->n_cached = 0;
}

void duet_chat_session_free(duet_chat_session *s)
{
    duet_chat_session_reset(s);
    free(s->msgs);
    free(s->cached);
    free(s->system);
    memset(s, 0, sizeof *s);
}

int duet_chat_session_set_system(duet_chat_session *s, const char *system)
{
    char *copy = dup_or_null(system);
    if (system && !copy) return duet_errorf("chat: out of memory");
    free(s->system);
    s->system = copy;
    duet_chat_session_reset(s);
    return 0;
}

/* Room for n messages; 0 or -1. */
static int reserve_msgs(duet_chat_session *s, int n)
{
    if (n <= s->cap_msgs) return 0;
    if (n > INT32_MAX / 2) return duet_errorf("chat: %d messages is too many", n);
    int cap = n * 2;
    duet_chat_msg *p = realloc(s->msgs, sizeof *p * (size_t)cap);
    if (!p) return duet_errorf("chat: out of memory");
    s->msgs = p;
    s->cap_msgs = cap;
    return 0;
}

int duet_chat_session_begin(duet_chat_session *s, const char *user, int *start)
{
    duet_chat_session_cancel(s);
    if (reserve_msgs(s, s->n_msgs + 2)) return -1;
    if (!(s->user = strdup(user))) return duet_errorf("chat: out of memory");
    /* The history plus the new message, rendered as a whole: the template decides every separator. */
    s->msgs[s->n_msgs] = (duet_chat_msg){"user", s->user};
    char *text = duet_chat_render(s->tmpl, s->msgs, s->n_msgs + 1, s->system, 1);
    if (!text) goto fail;
    int *ids = NULL;
    size_t n = 0;
    int rc = duet_tokenizer_encode_opts(s->tok, text, strlen(text), s->tmpl->add_bos, 1, &ids, &n);
    free(text);
    if (rc) goto fail;
    if (n == 0 || n > INT32_MAX) {
        free(ids);
        duet_errorf("chat: the conversation tokenizes to %zu ids", n);
        goto fail;
    }
    s->ids = ids;
    s->n_ids = (int)n;
    /* Reuse the cache as far as it is a prefix of the new ids: then the K/V at those positions are the
     * ones a from-scratch prefill would write. */
    int k = s->n_cached > 0 && s->n_cached <= s->n_ids &&
                    !memcmp(s->cached, s->ids, sizeof(int) * (size_t)s->n_cached)
                ? s->n_cached
                : 0;
    if (k >= s->n_ids) k = s->n_ids - 1; /* the last id is fed again: its logits start the answer */
    *start = k;
    return 0;
fail:
    duet_chat_session_cancel(s);
    return -1;
}

int duet_chat_session_end(duet_chat_session *s, const int *out, int n, int end_id)
{
    if (!s->ids) return duet_errorf("chat: no turn is open");
    if (n < 1) {
        duet_chat_session_reset(s);
        return duet_errorf("chat: an answer of %d ids (at least one: the one that ends it)", n);
    }
    char *text = NULL;
    size_t len;
    int n_text = out[n - 1] == end_id ? n - 1 : n;
    int64_t total = (int64_t)s->n_ids + n - 1;
    if (total > INT32_MAX / 2) {
        duet_chat_session_reset(s);
        return duet_errorf("chat: %lld cached ids is too many", (long long)total);
    }
    if (total > s->cap_cached) {
        int *p = realloc(s->cached, sizeof(int) * (size_t)total * 2);
        if (!p) goto oom;
        s->cached = p;
        s->cap_cached = (int)total * 2;
    }
    if (duet_tokenizer_decode(s->tok, out, (size_t)n_text, 1, &text, &len)) {
        duet_chat_session_reset(s);
        return -1;
    }
    memcpy(s->cached, s->ids, sizeof(int) * (size_t)s->n_ids);
    memcpy(s->cached + s->n_ids, out, sizeof(int) * (size_t)(n - 1));
    s->n_cached = (int)total;
    /* reserve_msgs at begin made room for the user message and the answer */
    s->msgs[s->n_msgs++] = (duet_chat_msg){"user", s->user};
    s->msgs[s->n_msgs++] = (duet_chat_msg){"assistant", text};
    s->user = NULL;
    free(s->ids);
    s->ids = NULL;
    s->n_ids = 0;
    return 0;
oom:
    duet_chat_session_reset(s);
    return duet_errorf("chat: out of memory");
}
