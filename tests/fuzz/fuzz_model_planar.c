/* fuzz_model_planar.c: libFuzzer harness for the planar quantized loader (common/model_planar.c through
 * duet_model_open): the input is the model.safetensors of a folder whose config.json is fixed (a tiny
 * LLaMA: hidden 64, ffn 128, 1 layer, 2 heads of 32, vocab 16). Whatever the bytes, duet_model_open
 * returns NULL with an error, or a model whose every layer matrix has the config's shape and
 * dequantizes (st_to_f32: planar codes through their scales and zero points, the shapes the loader
 * checked), and which duet_model_quantize can requantize. */
#include "fuzz_util.h"
#include "error.h"
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

/* The folder, made once: config.json, and model.safetensors a link to the fuzz input's file. */
static void setup(const char *input)
{
    snprintf(dir, sizeof dir, "/tmp/duet_fuzz_planar.%d", (int)getpid());
    char path[128];
    if (mkdir(dir, 0700) && access(dir, W_OK)) abort();
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) abort();
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"vocab_size\": 16, "
          "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, "
          "\"tie_word_embeddings\": false}\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    if (symlink(input, path)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *input = fuzz_file(data, size);
    if (!dir[0]) setup(input);
    duet_model *m = duet_model_open(dir);
    if (!m) {
        FUZZ_CHECK(duet_error()[0] != '\0');
        return 0;
    }
    const duet_layer_weights *w = &m->layers[0];
    const st_tensor *mats[7] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
    const int64_t shapes[7][2] = {{64, 64}, {64, 64}, {64, 64}, {64, 64}, {128, 64}, {128, 64}, {64, 128}};
    float *buf = malloc(sizeof(float) * 128 * 64);
    if (!buf) abort();
    for (int i = 0; i < 7; i++) {
        FUZZ_CHECK(mats[i] && mats[i]->ndim == 2 && mats[i]->shape[0] == shapes[i][0] &&
                   mats[i]->shape[1] == shapes[i][1]);
        FUZZ_CHECK(st_to_f32(mats[i], buf) == 0);
    }
    free(buf);
    /* requantizing dequantizes every matrix exactly; non-finite or huge values are refused by name */
    duet_error_clear();
    FUZZ_CHECK(duet_model_quantize(m, DUET_Q_Q8_0, NULL, NULL) == 0 || duet_error()[0] != '\0');
    duet_model_close(m);
    return 0;
}
