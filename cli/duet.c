/* duet.c: the `duet` command line; dispatches to one subcommand (cli/cmd_*.c). */
#include "build_config.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"generate", cmd_generate, "generate text from a prompt (streams tokens, reports tok/s)"},
    {"chat",     cmd_chat,     "a multi-turn conversation on stdin (chat template, KV cache kept across turns)"},
    {"golden",   cmd_golden,   "run a prompt and write every tap (intermediate tensor) to a file"},
    {"diff",     cmd_diff,     "compare a run or a tap file with a golden file, per tap"},
    {"tokenize", cmd_tokenize, "print the token ids of a text (or decode ids with --decode)"},
    {"synth",    cmd_synth,    "write a synthetic LLaMA model (HF format) from a seed"},
    {"rouge",    cmd_rouge,    "score predictions against references with ROUGE-1/2/L/Lsum"},
    {"bench",    cmd_bench,    "benchmark the gpu backend on a synthetic LLaMA-7B (prefill, decode, end to end, vs HF)"},
    {"convert",  cmd_convert,  "convert a model: Hugging Face folder -> GGUF file, or GGUF -> Hugging Face folder"},
    {"quantize", cmd_quantize, "quantize a model's linear weights (int8, int4, int4-g128/g64, q8_0, q4_0, q4_1) and write it"},
    {"eval",     cmd_eval,     "summarize cnn_dailymail (summarize.py protocol) and report latency and ROUGE"},
    {"calibrate", cmd_calibrate, "activation maxima per channel and KV head over calibration prompts (for SmoothQuant, FP8, KV int8/fp8)"},
    {"serve",    cmd_serve,    "an OpenAI-compatible HTTP server (completions, chat, streaming) over in-flight batching"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: duet <command> [options]   (duet <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("duet %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "duet: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
