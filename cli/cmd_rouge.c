/* cmd_rouge.c: `duet rouge FILE.jsonl` scores {"prediction", "reference"} lines with ROUGE-1/2/L/Lsum
 * exactly as rouge_score does and prints what summarize.py reports (bootstrap mid F x100 with its
 * 95% interval) plus the plain mean; --per-item prints each line's P/R/F, --json the aggregate. */
#include "commands.h"

#include "error.h"
#include "eval/jsonl.h"
#include "eval/rouge.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet rouge [options] FILE.jsonl\n"
            "\n"
            "Scores each line {\"prediction\": \"...\", \"reference\": \"...\"} with ROUGE-1, ROUGE-2,\n"
            "ROUGE-L and ROUGE-Lsum as Google's rouge_score computes them (lowercase, runs of\n"
            "characters outside [a-z0-9] separate tokens, Lsum splits sentences on newlines), then\n"
            "prints the aggregate that HF evaluate / TensorRT-LLM summarize.py report: the median\n"
            "(\"mid\") F-measure x100 of 1000 bootstrap resamples drawn after np.random.seed(0), its\n"
            "95%% interval (low/high), and the plain mean F x100.\n"
            "\n"
            "options:\n"
            "  --stem           use the Porter stemmer on tokens longer than 3 characters (off by\n"
            "                   default, as in summarize.py)\n"
            "  --per-item       print one JSON object per input line instead of the table:\n"
            "                   {\"rouge1\": [p, r, f], \"rouge2\": ..., \"rougeL\": ..., \"rougeLsum\": ...}\n"
            "                   (fractions in [0, 1])\n"
            "  --json FILE      also write the aggregate as JSON to FILE (\"-\": stdout, instead of\n"
            "                   the table); values x100\n"
            "  --samples N      bootstrap resamples (default 1000)\n"
            "  --seed S         numpy seed for the bootstrap (default 0)\n"
            "  -h, --help       show this help\n"
            "\n"
            "example:\n"
            "  printf '{\"prediction\": \"the cat sat\", \"reference\": \"The cat sat down.\"}\\n' > p.jsonl\n"
            "  duet rouge p.jsonl\n"
            "  duet rouge --stem --json scores.json p.jsonl\n");
}

static int parse_size(const char *s, const char *flag, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, "duet rouge: %s: invalid value '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_rouge(int argc, char **argv)
{
    enum { OPT_STEM = 256, OPT_PER_ITEM, OPT_JSON, OPT_SAMPLES, OPT_SEED };
    static const struct option opts[] = {
        {"stem", no_argument, NULL, OPT_STEM},
        {"per-item", no_argument, NULL, OPT_PER_ITEM},
        {"json", required_argument, NULL, OPT_JSON},
        {"samples", required_argument, NULL, OPT_SAMPLES},
        {"seed", required_argument, NULL, OPT_SEED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int stem = 0, per_item = 0;
    const char *json_path = NULL;
    unsigned long long samples = ROUGE_BOOTSTRAP_SAMPLES, seed = ROUGE_BOOTSTRAP_SEED;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_STEM: stem = 1; break;
        case OPT_PER_ITEM: per_item = 1; break;
        case OPT_JSON: json_path = optarg; break;
        case OPT_SAMPLES:
            if (parse_size(optarg, "--samples", 100000000ull, &samples) || samples == 0) {
                if (samples == 0)
                    fprintf(stderr, "duet rouge: --samples: must be at least 1\n");
                return 2;
            }
            break;
        case OPT_SEED:
            if (parse_size(optarg, "--seed", 0xffffffffull, &seed))
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "duet rouge: option '%s' needs a value (see duet rouge --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "duet rouge: unknown option '%s' (see duet rouge --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "duet rouge: expected one FILE.jsonl, got %d arguments (see duet rouge --help)\n",
                argc - optind);
        return 2;
    }
    const char *path = argv[optind];

    jsonl_reader *r = jsonl_open(path);
    if (!r) {
        fprintf(stderr, "duet rouge: %s\n", duet_error());
        return 1;
    }
    rouge_aggregator *agg = rouge_aggregator_create();
    if (!agg) {
        jsonl_close(r);
        fprintf(stderr, "duet rouge: %s\n", duet_error());
        return 1;
    }
    int rc = 1, got;
    json_t *obj;
    size_t line;
    while ((got = jsonl_next(r, &obj, &line)) == 1) {
        const char *pred, *ref;
        size_t pred_len, ref_len;
        rouge_scores s;
        int bad = jsonl_get_string(obj, "prediction", path, line, &pred, &pred_len) ||
                  jsonl_get_string(obj, "reference", path, line, &ref, &ref_len) ||
                  rouge_score_len(&s, pred, pred_len, ref, ref_len, stem) || rouge_aggregator_add(agg, &s);
        json_decref(obj);
        if (bad)
            goto out;
        if (per_item)
            rouge_write_item_json(stdout, &s);
    }
    if (got < 0)
        goto out;
    if (rouge_aggregator_count(agg) == 0) {
        duet_errorf("file %s: no items", path);
        goto out;
    }
    if (per_item && !json_path) {
        rc = 0;
        goto out;
    }
    rouge_aggregate a;
    if (rouge_aggregate_compute(&a, rouge_aggregator_items(agg), rouge_aggregator_count(agg),
                                (size_t)samples, (uint32_t)seed))
        goto out;
    a.use_stemmer = stem;
    if (json_path && !strcmp(json_path, "-")) {
        if (rouge_write_json(stdout, &a)) {
            duet_errorf("stdout: write error");
            goto out;
        }
    } else {
        if (!per_item)
            rouge_print_table(stdout, &a);
        if (json_path) {
            FILE *f = fopen(json_path, "w");
            if (!f) {
                duet_errorf("file %s: cannot create: %s", json_path, strerror(errno));
                goto out;
            }
            int werr = rouge_write_json(f, &a);
            if (fclose(f) || werr) {
                duet_errorf("file %s: write error", json_path);
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "duet rouge: %s\n", duet_error());
    rouge_aggregator_free(agg);
    jsonl_close(r);
    return rc;
}
