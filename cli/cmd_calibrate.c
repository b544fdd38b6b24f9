/* cmd_calibrate.c: `duet calibrate`: the activation statistics of calib/calib.h over calibration prompts,
 * written as a calibration file. Each prompt (a cnn_dailymail article, BOS + its first --max-tokens - 1
 * tokens) runs as one prefill on a backend with the calibration tap sink attached; the maxima accumulate
 * over every token of every prompt. */
#include "cli_util.h"
#include "commands.h"

#include "backend.h"
#include "calib/calib.h"
#include "engine/registry.h"
#include "error.h"
#include "eval/cnn_dailymail.h"
#include "model.h"
#include "tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "calibrate";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet calibrate [-m PATH] [-o FILE] [options]\n"
            "Runs calibration prompts through the model and writes, per layer, the largest |activation| of every\n"
            "input channel of the q/k/v, o, gate/up and down projections and of every K and V head as the KV\n"
            "cache stores them (K after RoPE): the statistics SmoothQuant, FP8 and the int8 / fp8 KV cache are\n"
            "calibrated from. The prompts are cnn_dailymail articles, items 50-99 by default (disjoint from\n"
            "duet eval's items 0-49), each cut to --max-tokens tokens (BOS included).\n\n"
            "  -m, --model PATH       GGUF file or HF folder (default: $DUET_MODEL, else " CLI_DEFAULT_MODEL ")\n"
            "  -o, --output FILE      the calibration file (default calibration.json)\n"
            "      --data FILE        cnn_dailymail JSON Lines (default: $DUET_DATA/cnn_dailymail/test_100.jsonl,\n"
            "                         else ../shared/data/cnn_dailymail/test_100.jsonl)\n"
            "      --items A-B        items A to B of the file, 0-based, inclusive (default 50-99)\n"
            "      --max-tokens N     tokens per prompt at most (default 512, capped by the model's positions)\n"
            "      --backend B        ref (default) or gpu\n"
            "      --dtype T          the backend's compute type (ref: fp32; gpu: fp16, bf16)\n"
            "      --threads N        CPU threads of the ref (default: OpenBLAS's)\n"
            "  -h, --help             this text\n\n"
            "example:\n"
            "  duet calibrate -o smollm2.calib.json\n"
            "  duet calibrate -m ../shared/data/stories260K --items 50-59 --max-tokens 256 -o stories.calib.json\n");
}

static int parse_items(const char *s, int *a, int *b)
{
    char tail = 0;
    if (sscanf(s, "%d-%d%c", a, b, &tail) != 2 || *a < 0 || *b < *a) {
        fprintf(stderr, "duet %s: --items: '%s' is not A-B with 0 <= A <= B\n", CMD, s);
        return -1;
    }
    return 0;
}

int cmd_calibrate(int argc, char **argv)
{
    const char *model_path = NULL, *out = "calibration.json", *data = NULL, *backend = "ref", *dtype = NULL;
    int first = 50, last = 99, max_tokens = 512, threads = 0;
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},    {"output", required_argument, 0, 'o'},
        {"data", required_argument, 0, 'd'},     {"items", required_argument, 0, 'i'},
        {"max-tokens", required_argument, 0, 'M'}, {"backend", required_argument, 0, 'B'},
        {"dtype", required_argument, 0, 'T'},    {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "m:o:h", lo, NULL)) != -1;) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'o': out = optarg; break;
        case 'd': data = optarg; break;
        case 'i': if (parse_items(optarg, &first, &last)) return 2; break;
        case 'M': if (cli_int(CMD, "--max-tokens", optarg, 1, 1 << 20, &max_tokens)) return 2; break;
        case 'B': backend = optarg; break;
        case 'T': dtype = optarg; break;
        case 't': if (cli_int(CMD, "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'\n", CMD, argv[optind]);
        return 2;
    }
    if (duet_backend_check(backend)) return cli_fail(CMD);
    if (!data && !(data = cli_default_cnn_data())) {
        fprintf(stderr, "duet %s: no cnn_dailymail data: give --data FILE or set DUET_DATA\n", CMD);
        return 1;
    }
    if (!(model_path = cli_model_or_default(CMD, model_path))) return 1;

    int rc = 1;
    duet_model *m = NULL;
    duet_tokenizer *tok = NULL;
    duet_backend *be = NULL;
    duet_calib *cal = NULL;
    cnn_item *items = NULL;
    size_t n_items = 0;
    int *ids = NULL, *pos = NULL, *seq = NULL;
    uint8_t *want = NULL;
    float *logits = NULL;
    if (cli_open_model(CMD, model_path, &m, &tok) || cnn_load(data, 0, &items, &n_items)) goto done;
    if ((size_t)last >= n_items) {
        duet_errorf("--items %d-%d: %s has %zu items (0-%zu)", first, last, data, n_items, n_items - 1);
        goto done;
    }
    if (max_tokens > m->cfg.max_pos) max_tokens = m->cfg.max_pos;
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = max_tokens, .dtype = dtype, .threads = threads};
    if (!(be = duet_backend_create(backend, m, &bo)) || !(cal = duet_calib_new(&m->cfg, duet_calib_fingerprint(m))))
        goto done;
    snprintf(cal->source, sizeof cal->source, "%s items %d-%d, at most %d tokens each", data, first, last,
             max_tokens);
    duet_backend_set_tap(be, duet_calib_tap, cal);
    pos = malloc(sizeof(int) * (size_t)max_tokens);
    seq = calloc((size_t)max_tokens, sizeof(int));
    want = calloc((size_t)max_tokens, 1);
    logits = malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    if (!pos || !seq || !want || !logits) {
        duet_errorf("out of memory");
        goto done;
    }
    for (int i = 0; i < max_tokens; i++) pos[i] = i;
    fprintf(stderr, "duet %s: %s; %d prompts of at most %d tokens -> %s\n", CMD, be->summary, last - first + 1,
            max_tokens, out);
    for (int it = first; it <= last; it++) {
        size_t n = 0;
        free(ids);
        ids = NULL;
        if (duet_tokenizer_encode(tok, items[it].article, items[it].article_len, 1, &ids, &n)) goto done;
        const int T = (int)n < max_tokens ? (int)n : max_tokens;
        if (T < 1) continue;
        memset(want, 0, (size_t)max_tokens);
        want[T - 1] = 1;
        duet_batch b = {T, ids, pos, seq, want};
        if (be->forward(be, &b, logits) || be->release(be, 0)) goto done;
        cal->samples++;
        cal->tokens += T;
        fprintf(stderr, "\r[calibrate] item %d (%d of %d): %d tokens", it, it - first + 1, last - first + 1, T);
    }
    fprintf(stderr, "\n");
    if (!cal->samples) {
        duet_errorf("items %d-%d of %s hold no tokens", first, last, data);
        goto done;
    }
    if (duet_calib_write(cal, out)) goto done;
    fprintf(stderr, "duet %s: %lld prompts, %lld tokens -> %s\n", CMD, (long long)cal->samples,
            (long long)cal->tokens, out);
    rc = 0;
done:
    if (rc) cli_fail(CMD);
    free(ids), free(pos), free(seq), free(want), free(logits);
    duet_calib_free(cal);
    cnn_free(items, n_items);
    duet_backend_free(be);
    if (tok) duet_tokenizer_free(tok);
    if (m) duet_model_close(m);
    return rc;
}
