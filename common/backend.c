/* backend.c: the backend-neutral part of the seam: free, and the validation of packed batches (see
 * backend.h). Creating a backend by name is engine/registry.c's. */
#include "backend.h"
#include "error.h"

void duet_backend_free(duet_backend *b)
{
    if (b) b->free(b);
}

int duet_batch_validate(const duet_batch *b, const duet_config *c, const duet_backend_opts *o)
{
    if (b->n_tokens <= 0) return duet_errorf("batch has %d tokens", b->n_tokens);
    for (int t = 0; t < b->n_tokens; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab_size)
            return duet_errorf("token %d of the batch: id %d outside the vocabulary [0, %d)", t, b->tokens[t],
                               c->vocab_size);
        if (b->pos[t] < 0 || b->pos[t] >= o->max_ctx)
            return duet_errorf("token %d of the batch: position %d outside the context [0, %d)", t, b->pos[t],
                               o->max_ctx);
        if (b->seq[t] < 0 || b->seq[t] >= o->max_seqs)
            return duet_errorf("token %d of the batch: sequence slot %d outside [0, %d)", t, b->seq[t], o->max_seqs);
    }
    return 0;
}
