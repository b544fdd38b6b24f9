/* cmd_tokenize.c: `duet tokenize`: text -> token ids as one JSON array, or ids -> text with
 * --decode; the same answers as Hugging Face `tokenizers` (see common/tokenizer.h). */
#include "commands.h"
#include "file.h"
#include "tapfile.h"
#include "tokenizer.h"
#include "error.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet tokenize -m MODEL_DIR|tokenizer.json|MODEL.gguf (-p TEXT | -f FILE) [options]\n"
            "\n"
            "Prints the token ids of TEXT as a JSON array on one line (BOS/EOS added as\n"
            "tokenizer_config.json says, or as tokenizer.json's post_processor says without it,\n"
            "or as the GGUF's tokenizer.ggml.add_bos_token / add_eos_token say).\n"
            "\n"
            "options:\n"
            "  -m, --model PATH   model folder holding tokenizer.json (and tokenizer_config.json),\n"
            "                     a tokenizer.json file, or a GGUF model file (its tokenizer.ggml.*\n"
            "                     metadata: byte-level BPE, tokenizer.ggml.model gpt2)\n"
            "  -p, --prompt TEXT  the text (with --decode: ids, \"[1, 2, 3]\" or \"1 2 3\")\n"
            "  -f, --file FILE    read the text (or the ids) from FILE, '-' for stdin\n"
            "      --no-special   do not add BOS/EOS\n"
            "      --parse-special  special tokens written in the text (<|im_start|>, <s>) become\n"
            "                     their ids; the default for tokenizer.json (as HF does), while for\n"
            "                     a GGUF the text is plain text unless this is given\n"
            "  -d, --decode       decode ids to text (printed as is, then a newline)\n"
            "      --skip-special with --decode: drop special tokens (<s>, </s>, <unk>), as\n"
            "                     HF decode(skip_special_tokens=True); default keeps them\n"
            "  -t, --tokens       also print each id with its token string, one per line\n"
            "  -h, --help         this help\n"
            "\n"
            "examples:\n"
            "  duet tokenize -m ../shared/data/stories260K -p \"Once upon a time\"\n"
            "  duet tokenize -m ../shared/data/llama2-tokenizer/tokenizer.json -p \"Hello\" --no-special\n"
            "  duet tokenize -m ../shared/data/stories260K --decode -p \"[1, 403, 407, 261, 378]\"\n"
            "  duet tokenize -m models/SmolLM2-135M-Instruct.Q4_1.gguf --parse-special \\\n"
            "      -p \"<|im_start|>user\nHi<|im_end|>\"\n");
}

int cmd_tokenize(int argc, char **argv)
{
    enum { OPT_NO_SPECIAL = 256, OPT_SKIP_SPECIAL, OPT_PARSE_SPECIAL };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},
        {"decode", no_argument, 0, 'd'},
        {"tokens", no_argument, 0, 't'},
        {"no-special", no_argument, 0, OPT_NO_SPECIAL},
        {"skip-special", no_argument, 0, OPT_SKIP_SPECIAL},
        {"parse-special", no_argument, 0, OPT_PARSE_SPECIAL},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int decode = 0, tokens = 0, special = 1, skip_special = 0, parse_special = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:p:f:dth", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case 'd': decode = 1; break;
        case 't': tokens = 1; break;
        case OPT_NO_SPECIAL: special = 0; break;
        case OPT_SKIP_SPECIAL: skip_special = 1; break;
        case OPT_PARSE_SPECIAL: parse_special = 1; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "duet tokenize: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "duet tokenize: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet tokenize: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!model || (!prompt == !file)) {
        fprintf(stderr, "duet tokenize: need -m and exactly one of -p / -f (see --help)\n");
        return 2;
    }
    char *owned = NULL;
    size_t len = 0;
    if (file) {
        if (!(owned = duet_read_file(file, &len))) {
            fprintf(stderr, "duet tokenize: %s\n", duet_error());
            return 1;
        }
        prompt = owned;
    } else {
        len = strlen(prompt);
    }
    duet_tokenizer *t = duet_tokenizer_load(model);
    if (!t) {
        fprintf(stderr, "duet tokenize: %s\n", duet_error());
        free(owned);
        return 1;
    }
    int rc = 1, *ids = NULL;
    size_t n = 0;
    if (decode) {
        char *text;
        size_t tl;
        int n_parsed = 0;
        if (duet_ids_parse(prompt, &ids, &n_parsed) ||
            duet_tokenizer_decode(t, ids, (size_t)n_parsed, skip_special, &text, &tl)) {
            fprintf(stderr, "duet tokenize: %s\n", duet_error());
            goto out;
        }
        n = (size_t)n_parsed;
        fwrite(text, 1, tl, stdout);
        putchar('\n');
        free(text);
    } else {
        if (parse_special ? duet_tokenizer_encode_opts(t, prompt, len, special, 1, &ids, &n)
                          : duet_tokenizer_encode(t, prompt, len, special, &ids, &n)) {
            fprintf(stderr, "duet tokenize: %s\n", duet_error());
            goto out;
        }
        putchar('[');
        for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
    }
    if (tokens)
        for (size_t i = 0; i < n; i++) {
            const char *s = duet_tokenizer_token(t, ids[i]);
            printf("%6d  %s\n", ids[i], s ? s : "(none)");
        }
    rc = 0;
out:
    free(ids);
    free(owned);
    duet_tokenizer_free(t);
    return rc;
}
