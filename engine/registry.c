/* registry.c: creates a backend by name (see registry.h). */
#include "registry.h"

#include "build_config.h"
#include "error.h"

#include "ref/ref_backend.h"
#ifdef DUET_HAVE_CUDA
#include "gpu/gpu_backend.h"
#endif

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
