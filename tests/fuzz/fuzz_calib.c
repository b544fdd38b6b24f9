/* fuzz_calib.c: libFuzzer harness for duet_calib_parse (calib/calib.h), against a fixed tiny shape (dim
 * 4, ffn 6, 2 layers, 2 heads of 2, 1 kv head, vocab 8) and fingerprint. Invariants: refused, an error
 * that names the input; accepted, the shapes and fingerprint are the harness's, samples >= 1, tokens >=
 * samples, and every value of every layer is finite and >= 0; either way nothing leaks (ASan). */
#include "fuzz_util.h"
#include "calib/calib.h"
#include "error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FP 0x0123456789abcdefull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const duet_config cfg = {.dim = 4, .ffn_dim = 6, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .head_dim = 2,
                             .vocab_size = 8};
    duet_calib *c = duet_calib_parse((const char *)data, size, "fuzz.json", &cfg, FP);
    if (!c) {
        FUZZ_CHECK(strstr(duet_error(), "fuzz.json") != NULL);
        return 0;
    }
    FUZZ_CHECK(c->fingerprint == FP && c->cfg.dim == 4 && c->cfg.n_layers == 2);
    FUZZ_CHECK(c->samples >= 1 && c->tokens >= c->samples);
    const int n[6] = {4, 4, 4, 6, 1, 1};
    for (int l = 0; l < 2; l++) {
        const float *a[6] = {c->layers[l].qkv_in, c->layers[l].o_in, c->layers[l].gate_up_in, c->layers[l].down_in,
                             c->layers[l].k, c->layers[l].v};
        for (int k = 0; k < 6; k++)
            for (int j = 0; j < n[k]; j++) FUZZ_CHECK(isfinite(a[k][j]) && a[k][j] >= 0.0f);
    }
    duet_calib_free(c);
    return 0;
}
