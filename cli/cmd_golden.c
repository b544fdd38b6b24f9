/* cmd_golden.c: `duet golden`: run a prompt as one prefill through a backend with the tap recorder
 * attached and write every tap to a golden file (common/tapfile.h), saying how it was made. */
#include "build_config.h" /* PACKAGE_VERSION, DUET_HAVE_OPENBLAS */
#include "backend.h"
#include "cli_util.h"
#include "commands.h"

#include "error.h"
#include "engine/registry.h"
#include "model.h"
#include "tapfile.h"
#include "tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "golden";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet golden -m DIR (-p TEXT | --ids 1,2,3) -o FILE [options]\n"
            "Runs the prompt as one prefill and writes every tap (docs/design.md's tap names) as fp32\n"
            "safetensors, with the model's sha256, the token ids, the mode and duet's version in __metadata__.\n\n"
            "  -m, --model DIR     Hugging Face LLaMA folder\n"
            "  -p, --prompt TEXT   prompt, tokenized with DIR/tokenizer.json (BOS added)\n"
            "      --ids LIST      token ids instead of text: \"1,2,3\" (synthetic models have no tokenizer)\n"
            "  -o, --output FILE   golden file to write\n"
            "      --backend B     ref or gpu (default ref)\n"
            "      --mode M        fp32 (ref), fp16 or bf16 (gpu) (default fp32)\n"
            "      --threads N     CPU threads for the ref (default 1: goldens are made single-threaded)\n"
            "      --weights MODE  quantize the linear weights on load (as `duet quantize`: int8, int4,\n"
            "                      int4-g128, int4-g64, q8_0, q4_0, q4_1; recorded as 'weights' in\n"
            "                      __metadata__; default none = as stored)\n"
            "      --kv-cache MODE, --w8a8 MODE, --sq-alpha A, --calib FILE\n"
            "                      the calibrated modes, as duet generate's (int8 / fp8 KV cache, SmoothQuant or\n"
            "                      FP8 W8A8 with duet calibrate's file); recorded as 'calibrated' in __metadata__:\n"
            "                      duet diff runs a backend in the same mode against it\n"
            "  -h, --help          this text\n\n"
            "example:\n"
            "  duet synth -o /tmp/tiny && duet golden -m /tmp/tiny --ids 1,17,42,7 -o /tmp/tiny.fp32.safetensors\n"
            "  duet golden -m /tmp/tiny --ids 1,17,42,7 --kv-cache fp8 --calib tiny.calib.json -o /tmp/tiny.kv-fp8.safetensors\n");
}

int cmd_golden(int argc, char **argv)
{
    enum { O_IDS = 256, O_BACKEND, O_MODE, O_THREADS, O_WEIGHTS, O_KV, O_W8A8, O_ALPHA, O_CALIB };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
        {"ids", required_argument, 0, O_IDS},   {"output", required_argument, 0, 'o'},
        {"backend", required_argument, 0, O_BACKEND}, {"mode", required_argument, 0, O_MODE},
        {"threads", required_argument, 0, O_THREADS}, {"weights", required_argument, 0, O_WEIGHTS},
        {"kv-cache", required_argument, 0, O_KV},   {"w8a8", required_argument, 0, O_W8A8},
        {"sq-alpha", required_argument, 0, O_ALPHA}, {"calib", required_argument, 0, O_CALIB},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    cli_quant_flags qf = {0};
    const char *dir = NULL, *prompt = NULL, *ids_text = NULL, *out = NULL, *backend = "ref", *mode = "fp32";
    int threads = 1, weights = DUET_Q_NONE, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'p': prompt = optarg; break;
        case O_IDS: ids_text = optarg; break;
        case 'o': out = optarg; break;
        case O_BACKEND: backend = optarg; break;
        case O_MODE: mode = optarg; break;
        case O_THREADS: if (cli_int(CMD, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case O_WEIGHTS: if ((weights = cli_weights(CMD, optarg)) < 0) return 2; break;
        case O_KV: qf.kv_cache = optarg; break;
        case O_W8A8: qf.w8a8 = optarg; break;
        case O_ALPHA: qf.sq_alpha = optarg; break;
        case O_CALIB: qf.calib = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'; see duet %s --help\n", CMD, argv[optind], CMD);
        return 2;
    }
    if (cli_mode(CMD, "--mode", mode)) return 2;
    if (!dir || !out || !prompt == !ids_text) {
        fprintf(stderr, "duet %s: need -m DIR, -o FILE and one of -p TEXT or --ids LIST; see duet %s --help\n", CMD,
                CMD);
        return 2;
    }
    if (duet_backend_check(backend)) return cli_fail(CMD); /* before the model is loaded (and quantized) */
    int *ids = NULL, n = 0;
    if (ids_text) {
        if (duet_ids_parse(ids_text, &ids, &n)) {
            fprintf(stderr, "duet %s: --ids: %s\n", CMD, duet_error());
            return 2;
        }
        if (n == 0) {
            free(ids);
            fprintf(stderr, "duet %s: --ids: no token ids in '%s'\n", CMD, ids_text);
            return 2;
        }
    } else {
        duet_model *tm = NULL;
        duet_tokenizer *tok = NULL;
        if (cli_open_model(CMD, dir, &tm, &tok)) return cli_fail(CMD);
        size_t nn = 0;
        int rc = duet_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &nn);
        duet_tokenizer_free(tok);
        duet_model_close(tm);
        if (rc) return cli_fail(CMD);
        n = (int)nn;
    }
    duet_model *m = NULL;
    if (cli_open_model_weights(CMD, dir, weights, &m, NULL)) {
        free(ids);
        return cli_fail(CMD);
    }
    for (int i = 0; i < n; i++)
        if (ids[i] >= m->cfg.vocab_size) {
            fprintf(stderr, "duet %s: token id %d (position %d) is outside the vocabulary of %s (%d)\n", CMD, ids[i],
                    i, dir, m->cfg.vocab_size);
            free(ids);
            duet_model_close(m);
            return 2;
        }
    cli_quant qm;
    int rc = cli_quant_modes(CMD, &qf, m, &qm);
    if (rc) {
        free(ids);
        duet_model_close(m);
        return rc;
    }
    char qname[64];
    cli_quant_name(&qm, qname, sizeof qname);
    duet_backend_opts quant = {.kv_mode = qm.kv_mode, .kv_scales = qm.kv_scales, .w8a8 = qm.w8a8};
    duet_tapfile *f = duet_tapfile_run(m, duet_backend_create, backend, mode, threads, &quant, ids, n);
    if (!f) {
        rc = cli_fail(CMD);
    } else {
#ifdef DUET_HAVE_OPENBLAS
        const char *blas = "openblas";
#else
        const char *blas = "none (plain C loops)";
#endif
        duet_tapfile_set_meta(f, "duet_version", PACKAGE_VERSION);
        duet_tapfile_set_meta(f, "blas", blas);
        duet_tapfile_set_meta(f, "made_by", "duet golden");
        if (weights != DUET_Q_NONE) duet_tapfile_set_meta(f, "weights", duet_qmode_get((duet_qmode)weights)->name);
        if (*qname) duet_tapfile_set_meta(f, "calibrated", qname);
        if (duet_tapfile_save(f, out)) rc = cli_fail(CMD);
        else fprintf(stderr, "duet %s: wrote %d taps for %d tokens to %s\n", CMD, f->n, n, out);
    }
    duet_tapfile_free(f);
    duet_model_close(m);
    cli_quant_free(&qm);
    free(ids);
    return rc;
}
