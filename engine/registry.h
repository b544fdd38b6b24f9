/* registry.h: the backends by name. The one place that knows every backend (ref/, and gpu/ when built
 * with CUDA); common/ knows only the seam (common/backend.h). */
#ifndef DUET_ENGINE_REGISTRY_H
#define DUET_ENGINE_REGISTRY_H

#include "backend.h"

/* Creates backend `name` ("ref" or "gpu") for model m. NULL + duet_error() when the name is unknown,
 * the backend is not built, or options do not fit the model. A duet_backend_create_fn. */
duet_backend *duet_backend_create(const char *name, const duet_model *m, const duet_backend_opts *opts);
/* Whether a backend of this name is built: 0, or -1 + duet_error() naming it (unknown, or gpu on a build
 * without CUDA). What duet_backend_create checks first; the commands ask it before loading a model. */
int duet_backend_check(const char *name);

#endif
