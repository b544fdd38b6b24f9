/* chat_session.h: a multi-turn conversation over one KV cache slot, for `duet chat`.
 * The session keeps the messages (as text, the way the template renders them) and the ids whose K/V
 * the slot holds at positions 0..n_cached-1. A turn renders the whole conversation plus the new user
 * message with the assistant's opening (duet_chat_render), tokenizes it, and, when the cached ids are a
 * prefix of the result, only the ids after them need a prefill (at start_pos = that prefix's length);
 * otherwise (an answer whose ids do not re-tokenize to themselves, a new system prompt) everything is
 * prefilled again from position 0. Either way turn k generates what a from-scratch run over the whole
 * conversation would. The session does not run the model: the caller prefills and decodes
 * (duet_generate with start_pos) between duet_chat_session_begin and duet_chat_session_end. */
#ifndef DUET_CHAT_SESSION_H
#define DUET_CHAT_SESSION_H

#include "chat.h"
#include "tokenizer.h"

#include <stddef.h>

typedef struct duet_chat_session {
    const duet_chat_template *tmpl; /* borrowed */
    const duet_tokenizer *tok;      /* borrowed */
    char *system;                   /* malloc'ed; NULL: the template's default */
    duet_chat_msg *msgs;            /* user, assistant, user, ...; contents malloc'ed (roles static) */
    int n_msgs, cap_msgs;
    int *cached;                    /* the ids at positions 0..n_cached-1 of the slot */
    int n_cached, cap_cached;
    /* The open turn (between begin and end/cancel): its user text and the conversation's ids. */
    char *user;
    int *ids;
    int n_ids;
} duet_chat_session;

/* system: the system prompt (NULL: the template's default; "": none). 0 or -1 + duet_error(). */
int duet_chat_session_init(duet_chat_session *s, const duet_chat_template *t, const duet_tokenizer *tok,
                           const char *system);
void duet_chat_session_free(duet_chat_session *s);

/* Forgets the messages and the cache (the slot's positions are simply overwritten by the next turn). */
void duet_chat_session_reset(duet_chat_session *s);
/* Sets the system prompt (as init's) and resets. 0 or -1 + duet_error(). */
int duet_chat_session_set_system(duet_chat_session *s, const char *system);

/* Opens a turn for the user message `user`: s->ids[0, s->n_ids) become the rendered conversation's ids
 * and *start the number of leading ids already cached (the caller prefills ids[*start, n_ids) at
 * start_pos *start; *start < n_ids always). The cache bookkeeping changes only at end. A turn already
 * open is cancelled first. 0 or -1 + duet_error(). */
int duet_chat_session_begin(duet_chat_session *s, const char *user, int *start);

/* Closes the open turn with the answer's ids out[0, n) (n >= 1), as duet_generate left them: the slot now
 * caches ids + out[0, n-1) (the last id was sampled, not fed). end_id: the id that ended the answer
 * (dropped from its text when it is the last one; -1: none). The answer's text, decoded without
 * special tokens, joins the history. 0 or -1 + duet_error() (then the cache is forgotten too). */
int duet_chat_session_end(duet_chat_session *s, const int *out, int n, int end_id);

/* Drops the open turn (e.g. when it does not fit the context): history and cache stay as they were. */
void duet_chat_session_cancel(duet_chat_session *s);

#endif
