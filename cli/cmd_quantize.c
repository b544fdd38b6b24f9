/* cmd_quantize.c: `duet quantize -m IN --weights MODE -o OUT`: quantizes a model's linear weights with
 * duet's CPU quantizer (common/quant.h, duet_model_quantize) and writes it: a GGUF file in llama.cpp's
 * layout for the GGUF block modes (q8_0, q4_0, q4_1), a Hugging Face folder with planar quantized
 * safetensors for duet's own modes (int8, int4, int4-g128, int4-g64; common/model_planar.c has the
 * layout). Progress per layer on stderr, then a line with the sizes. */
#include "cli_util.h"
#include "commands.h"

#include "convert.h"
#include "error.h"
#include "model.h"
#include "model_quant.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *CMD = "quantize";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet quantize [-m IN] --weights MODE -o OUT [--force] [-q]\n"
            "Quantizes the linear weights (q, k, v, o, gate, up, down of every layer) of model IN (a GGUF file or\n"
            "a Hugging Face folder; the weights are dequantized exactly first, so a quantized model can be\n"
            "requantized) and writes the model to OUT; the embeddings, norms and lm_head keep their type.\n"
            "The same input gives the same bytes. What was written is read back and checked before it is\n"
            "moved into place.\n\n"
            "  -m, --model IN      GGUF file or Hugging Face LLaMA folder (default: $DUET_MODEL, else\n"
            "                      " CLI_DEFAULT_MODEL ")\n"
            "      --weights MODE  the mode (common/quant.h has the rounding rules):\n");
    for (int q = DUET_Q_NONE + 1; q < DUET_Q_N_MODES; q++) {
        const duet_qmode_info *i = duet_qmode_get((duet_qmode)q);
        fprintf(f, "                        %-10s %s\n", i->name, i->about);
    }
    fprintf(f,
            "                      q8_0, q4_0, q4_1: OUT is a .gguf file in llama.cpp's layout (rows of K a\n"
            "                      multiple of 32); the others: OUT is a Hugging Face folder (config.json,\n"
            "                      model.safetensors with <name>.qweight / .scales / .zeros, the tokenizer)\n"
            "  -o, --output OUT    the file or folder to write\n"
            "      --force         replace OUT when it exists\n"
            "  -q, --quiet         no progress on stderr\n"
            "  -h, --help          this text\n\n"
            "Any command that opens a model also takes --weights MODE to quantize in memory on load, with the\n"
            "same codes: `duet generate -m OUT` gives the text of `duet generate -m IN --weights MODE`.\n\n"
            "examples:\n"
            "  duet quantize --weights q4_0 -o smollm2-q4_0.gguf\n"
            "  duet quantize --weights int4-g64 -o smollm2-int4-g64\n"
            "  duet quantize -m ../shared/data/stories260K --weights int8 -o stories260K-int8\n");
}

struct progress {
    int tty, last;
};

/* Per layer: a bar on a terminal, else a line per quarter. */
static void on_layer(void *ctx, int done, int total)
{
    struct progress *p = ctx;
    int width = 30, fill = (int)((long long)width * done / total);
    if (p->tty) {
        fprintf(stderr, "\rduet quantize: [%.*s%*s] layer %d/%d", fill, "##############################", width - fill,
                "", done, total);
        if (done == total) fputc('\n', stderr);
    } else if (done == total || (4 * done) / total != (4 * p->last) / total) {
        fprintf(stderr, "duet quantize: layer %d/%d\n", done, total);
    }
    p->last = done;
}

static void on_stage(void *ctx, const char *name, int done, int total)
{
    if (!total) fprintf(stderr, "duet quantize: %s\n", name);
}

static double file_mib(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size / 1048576.0 : 0;
}

/* The bytes of the model's file(s): a GGUF file, or the folder's safetensors. */
static double model_mib(const duet_model *m)
{
    if (m->gguf) return file_mib(m->path);
    double s = 0;
    for (int i = 0; i < st_set_nfiles(m->st); i++) s += file_mib(st_path(st_set_file(m->st, i)));
    return s;
}

/* Bytes of the linear weights as held (planar scales and zero points included) and their parameters. */
static double linear_mib(duet_model *m, double *params)
{
    double b = 0, p = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < DUET_N_LINEAR; k++) {
            const st_tensor *t = *duet_layer_linear(&m->layers[l], k);
            b += t->nbytes;
            p += t->numel;
            if ((t->dtype == ST_QI8 || t->dtype == ST_QU4) && t->q.group > 0)
                b += (double)(t->numel / t->q.group) * (t->q.zeros ? 3 : 2);
        }
    *params = p;
    return b / 1048576.0;
}

int cmd_quantize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"weights", required_argument, 0, 'w'},
        {"output", required_argument, 0, 'o'}, {"force", no_argument, 0, 'f'},
        {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL;
    int weights = -1, quiet = 0, force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': in = optarg; break;
        case 'o': out = optarg; break;
        case 'w': if ((weights = cli_weights(CMD, optarg)) < 0) return 2; break;
        case 'f': force = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s' (the model goes after -m); see duet %s --help\n", CMD,
                argv[optind], CMD);
        return 2;
    }
    if (weights <= DUET_Q_NONE) {
        fprintf(stderr, "duet %s: need --weights MODE, one of: %s; see duet %s --help\n", CMD, duet_qmode_list(), CMD);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "duet %s: need -o OUT (a .gguf file for q8_0/q4_0/q4_1, else a folder); see duet %s --help\n",
                CMD, CMD);
        return 2;
    }
    if (!(in = cli_model_or_default(CMD, in))) return 2;
    const duet_qmode_info *info = duet_qmode_get((duet_qmode)weights);
    int to_gguf = info->dtype != ST_QI8 && info->dtype != ST_QU4;
    struct stat sb;
    if (!force && stat(out, &sb) == 0) {
        fprintf(stderr, "duet %s: %s: already exists (give --force to replace it)\n", CMD, out);
        return 1;
    }
    duet_model *m = duet_model_open(in);
    if (!m) return cli_fail(CMD);
    double params, in_mib = model_mib(m), before = linear_mib(m, &params);
    char was[96];
    duet_model_weight_types(m, was, sizeof was);
    struct progress pr = {.tty = isatty(2)};
    if (!quiet) fprintf(stderr, "duet %s: %s (%s) -> %s %s\n", CMD, in, was, info->name, out);
    int rc = duet_model_quantize(m, (duet_qmode)weights, quiet ? NULL : on_layer, &pr);
    if (rc && pr.tty && pr.last) fputc('\n', stderr);
    duet_convert_opts o = {.type = -1, .force = force, .progress = quiet ? NULL : on_stage};
    if (!rc) rc = to_gguf ? duet_model_save_gguf(m, out, &o) : duet_model_save_hf(m, out, &o);
    if (rc) {
        cli_fail(CMD);
        duet_model_close(m);
        return 1;
    }
    double after = linear_mib(m, &params);
    char file[4200];
    if (to_gguf) snprintf(file, sizeof file, "%s", out);
    else snprintf(file, sizeof file, "%s/model.safetensors", out);
    fprintf(stderr,
            "duet %s: wrote %s: %.2f MiB (from %.2f MiB); linear weights %.1fM parameters: %.2f MiB as %s (were "
            "%.2f MiB)\n",
            CMD, file, file_mib(file), in_mib, params / 1e6, after, info->name, before);
    duet_model_close(m);
    return 0;
}
