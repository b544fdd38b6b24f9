/* cmd_convert.c: `duet convert IN OUT`: a Hugging Face model folder to a GGUF file, or a GGUF file to
 * a Hugging Face folder (common/convert.h), with progress on stderr. */
#include "commands.h"
#include "convert.h"
#include "error.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet convert IN OUT [--type f32|f16|bf16] [--force]\n"
            "\n"
            "Converts a LLaMA model between the two formats duet reads:\n"
            "  IN a Hugging Face folder (config.json, F32/F16/BF16 *.safetensors, tokenizer.json)\n"
            "     -> OUT one GGUF file in llama.cpp's layout (llama.* metadata, llama.cpp tensor names,\n"
            "     q/k rows permuted as llama.cpp's converter does, the tokenizer as tokenizer.ggml.*\n"
            "     metadata: \"llama\" for SentencePiece-style BPE, \"gpt2\" for byte-level BPE, and\n"
            "     tokenizer.chat_template from tokenizer_config.json);\n"
            "  IN a GGUF file (any weight type duet reads: F32, F16, Q8_0, Q4_1, Q4_K, ...)\n"
            "     -> OUT a Hugging Face folder (config.json, model.safetensors with every weight\n"
            "     dequantized exactly, tokenizer.json, tokenizer_config.json).\n"
            "What was written is opened again and its config and tokenizer checked against IN's\n"
            "before it is moved into place; on any error nothing is left behind.\n"
            "\n"
            "options:\n"
            "  --type T     the weights' type in OUT: f32, f16 or bf16 (default: each tensor's own\n"
            "               type for a GGUF OUT; f32 for a Hugging Face OUT); in a GGUF OUT, f16 and\n"
            "               bf16 are for the matrices and the norm weights stay f32, as llama.cpp does\n"
            "  --force      replace OUT when it exists (a GGUF file, or a folder whose config.json,\n"
            "               model.safetensors, tokenizer.json and tokenizer_config.json are replaced)\n"
            "  -q, --quiet  no progress on stderr\n"
            "  -h, --help   this help\n"
            "\n"
            "examples:\n"
            "  duet convert ../shared/data/stories260K stories260K.gguf\n"
            "  duet convert ../shared/data/stories260K stories260K-f16.gguf --type f16\n"
            "  duet convert models/SmolLM2-135M-Instruct.Q4_1.gguf smollm2-hf\n"
            "  duet convert models/SmolLM2-135M-Instruct.Q4_1.gguf smollm2-hf --type bf16 --force\n");
}

struct progress {
    int tty, last_pct;
};

static void on_progress(void *ctx, const char *name, int done, int total)
{
    struct progress *p = ctx;
    if (!total) {
        if (p->tty && p->last_pct >= 0) fputc('\n', stderr);
        p->last_pct = -1;
        fprintf(stderr, "duet convert: %s\n", name);
        return;
    }
    int pct = (int)(100LL * done / total);
    if (p->tty) {
        fprintf(stderr, "\rduet convert: tensor %d/%d (%3d%%) %-40.40s", done, total, pct, name);
        p->last_pct = pct;
        if (done == total) {
            fputc('\n', stderr);
            p->last_pct = -1;
        }
    } else if (done == total || pct / 25 != p->last_pct / 25 || p->last_pct < 0) {
        /* not a terminal: one line per quarter */
        fprintf(stderr, "duet convert: tensor %d/%d (%d%%) %s\n", done, total, pct, name);
        p->last_pct = pct;
    }
}

int cmd_convert(int argc, char **argv)
{
    enum { OPT_TYPE = 256, OPT_FORCE };
    static const struct option opts[] = {
        {"type", required_argument, 0, OPT_TYPE},
        {"force", no_argument, 0, OPT_FORCE},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    duet_convert_opts o = {.type = -1};
    struct progress pr = {.tty = isatty(2), .last_pct = -1};
    int quiet = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_TYPE:
            if (!strcmp(optarg, "f32")) o.type = ST_F32;
            else if (!strcmp(optarg, "f16")) o.type = ST_F16;
            else if (!strcmp(optarg, "bf16")) o.type = ST_BF16;
            else {
                fprintf(stderr, "duet convert: --type '%s' is not a weight type: f32, f16 or bf16\n", optarg);
                return 2;
            }
            break;
        case OPT_FORCE: o.force = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "duet convert: option '%s' needs a value (see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "duet convert: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "duet convert: need IN and OUT (see --help)\n");
        return 2;
    }
    if (!quiet) {
        o.progress = on_progress;
        o.progress_ctx = &pr;
    }
    const char *in = argv[optind], *out = argv[optind + 1];
    if (duet_convert(in, out, &o)) {
        if (pr.tty && pr.last_pct >= 0) fputc('\n', stderr);
        fprintf(stderr, "duet convert: %s\n", duet_error());
        return 1;
    }
    if (!quiet) fprintf(stderr, "duet convert: wrote %s\n", out);
    return 0;
}
