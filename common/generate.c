/* generate.c: prefill + decode loop (see generate.h). */
#include "generate.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

double duet_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A NaN in the logits means the forward pass broke down (NaN or overflowing weights, activations out of
 * range): the sampler would still return an id (duet_sample's NaN-row rule), so generation would go on
 * with garbage. Refuse it instead. `pos`: the position whose logits these are. */
static int check_logits(const float *logits, int V, int pos)
{
    for (int i = 0; i < V; i++)
        if (isnan(logits[i]))
            return duet_errorf("the logits of position %d hold NaN (token id %d, among others): the forward pass "
                               "broke down (NaN weights or activations out of range); no token can be drawn",
                               pos, i);
    return 0;
}

int duet_generate(duet_backend *b, const duet_backend_opts *bo, const int *prompt, int n_prompt,
                  const duet_gen_opts *o, int *out, duet_gen_stats *st)
{
    const duet_config *c = b->cfg;
    st->n_prompt = n_prompt;
    st->n_generated = 0;
    st->prefill_s = st->decode_s = 0;
    const int p0 = o->start_pos;
    if (n_prompt <= 0) return duet_errorf("empty prompt: give at least one token (e.g. BOS)");
    if (p0 < 0 || p0 > bo->max_ctx)
        return duet_errorf("start position %d is outside the context of %d positions", p0, bo->max_ctx);
    if (n_prompt > bo->max_ctx - p0)
        return duet_errorf("prompt has %d tokens at position %d, past the context of %d positions "
                           "(max_position_embeddings %d)",
                           n_prompt, p0, bo->max_ctx, c->max_pos);
    if (o->max_new - 1 > bo->max_ctx - p0 - n_prompt)
        return duet_errorf("prompt (%d tokens at position %d) + %d new tokens needs %d positions; the context has %d",
                           n_prompt, p0, o->max_new, p0 + n_prompt + o->max_new - 1, bo->max_ctx);
    if (o->max_new <= 0) return 0;
    float *logits = malloc(sizeof(float) * c->vocab_size);
    int *pos = malloc(sizeof(int) * n_prompt), *seq = malloc(sizeof(int) * n_prompt);
    unsigned char *want = calloc(n_prompt, 1);
    int rc = -1;
    if (!logits || !pos || !seq || !want) {
        duet_errorf("out of memory");
        goto out;
    }
    for (int i = 0; i < n_prompt; i++) {
        pos[i] = p0 + i;
        seq[i] = o->seq;
    }
    want[n_prompt - 1] = 1;
    duet_batch batch = {n_prompt, prompt, pos, seq, want};
    double t0 = duet_now();
    if (b->forward(b, &batch, logits)) goto out;
    st->prefill_s = duet_now() - t0;
    t0 = duet_now();
    int p = p0 + n_prompt;
    if (check_logits(logits, c->vocab_size, p - 1)) goto out;
    int next = duet_sample(o->sampler, logits);
    const int on_device = b->decode && !b->tap && !o->host_sampling;
    for (;;) {
        out[st->n_generated++] = next;
        if (o->on_token && o->on_token(o->ctx, next)) break;
        if (next == o->eos_id || st->n_generated == o->max_new) break;
        int one_pos = p++, one_seq = o->seq;
        if (on_device) { /* a chunk of steps on the device; the loop replays its tokens */
            int n = o->max_new - st->n_generated, ids[DUET_DECODE_CHUNK];
            if (n > DUET_DECODE_CHUNK) n = DUET_DECODE_CHUNK;
            if (b->decode(b, 1, &one_seq, &one_pos, &next, n, &o->sampler, ids)) goto out;
            int stop = 0;
            for (int i = 0; i < n - 1 && !stop; i++) {
                out[st->n_generated++] = ids[i];
                p++;
                stop = (o->on_token && o->on_token(o->ctx, ids[i])) || ids[i] == o->eos_id;
            }
            if (stop) break;
            next = ids[n - 1];
            continue;
        }
        duet_batch step = {1, &next, &one_pos, &one_seq, NULL};
        if (b->forward(b, &step, logits) || check_logits(logits, c->vocab_size, one_pos)) goto out;
        next = duet_sample(o->sampler, logits);
    }
    st->decode_s = duet_now() - t0;
    rc = 0;
out:
    free(logits);
    free(pos);
    free(seq);
    free(want);
    return rc;
}
