/* fuzz_config.c: libFuzzer harness for duet_config_parse (common/config.c): the input is the text of
 * a config.json. Either it is refused with an error, or the configuration passes
 * duet_config_validate (positive sizes, H a multiple of Hk, even head_dim, ...). */
#include "fuzz_util.h"
#include "config.h"
#include "error.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strdup(data, size);
    duet_config cfg;
    if (duet_config_parse(&cfg, text, "config.json") == 0) {
        FUZZ_CHECK(duet_config_validate(&cfg, "config.json") == 0);
        FUZZ_CHECK(cfg.dim > 0 && cfg.n_heads > 0 && cfg.n_kv_heads > 0 && cfg.head_dim > 0);
        FUZZ_CHECK(cfg.n_heads % cfg.n_kv_heads == 0);
    } else {
        FUZZ_CHECK(duet_error()[0] != '\0');
    }
    free(text);
    return 0;
}
