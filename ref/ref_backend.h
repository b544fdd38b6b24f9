/* ref_backend.h: the fp32 CPU reference behind the backend seam (common/backend.h). */
#ifndef DUET_REF_BACKEND_H
#define DUET_REF_BACKEND_H

#include "backend.h"

duet_backend *ref_backend_create(const duet_model *m, const duet_backend_opts *opts);

#endif
