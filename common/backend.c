/* backend.c: creates a backend by name and validates packed batches (see backend.h). */
#include "backend.h"
#include "build_config.h"
#include "error.h"

#include "ref/ref_backend.h"
#ifdef DUET_HAVE_CUDA
#include "gpu/gpu_backend.h"
#endif

#include <stdlib.h>
#include <string.h>

int duet_backend_check(const char *name)
{
    if (!strcmp(name, "ref")) return 0;
    if (!strcmp(name, "gpu")) {
#ifdef DUET_HAVE_CUDA
        return 0;
#else
        return duet_errorf("backend 'gpu' is not built: this build has no CUDA backend (configure found no nvcc, or gpu/ is not part of this version)");
#endif
    }
    return duet_errorf("unknown backend '%s' (expected ref or gpu)", name);
}

duet_backend *duet_backend_create(const char *name, const duet_model *m, const duet_backend_opts *opts)
{
    if (duet_backend_check(name)) return NULL;
#ifdef DUET_HAVE_CUDA
    if (!strcmp(name, "gpu")) return gpu_backend_create(m, opts);
#endif
    return ref_backend_create(m, opts);
}

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
