/* fuzz_safetensors.c: libFuzzer harness for st_open (common/safetensors.c): the input is a whole
 * .safetensors file. Whatever the bytes, st_open returns NULL with an error, or a file whose every
 * tensor satisfies the promises of safetensors.h: shape and numel agree, nbytes = numel * dtype size,
 * the data lies inside the file and tensors do not overlap (so their bytes add up to less than the
 * file), and st_find / st_check_shape / st_to_f32 work on what st_open handed out. */
#include "fuzz_util.h"
#include "error.h"
#include "safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f = st_open(fuzz_file(data, size));
    if (!f) {
        FUZZ_CHECK(duet_error()[0] != '\0');
        return 0;
    }
    size_t total = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        FUZZ_CHECK(t && t->name && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= t->shape[d];
        }
        FUZZ_CHECK(numel == t->numel);
        FUZZ_CHECK(t->nbytes == (size_t)t->numel * st_dtype_size(t->dtype));
        FUZZ_CHECK(t->nbytes <= size);
        total += t->nbytes;
        FUZZ_CHECK(total <= size);
        FUZZ_CHECK(st_find(f, t->name) != NULL);
        FUZZ_CHECK(st_check_shape(t, t->ndim, t->shape) == 0);
        /* Touch every byte: data outside the mapping faults. */
        const unsigned char *p = t->data;
        unsigned sum = 0;
        for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
        (void)sum;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
            float *out = malloc((size_t)t->numel * sizeof *out + 1);
            FUZZ_CHECK(out != NULL);
            FUZZ_CHECK(st_to_f32(t, out) == 0);
            free(out);
        }
    }
    FUZZ_CHECK(st_at(f, st_count(f)) == NULL && st_at(f, -1) == NULL);
    st_meta(f, "format");
    st_meta(f, "duet_synth");
    st_close(f);
    return 0;
}
