/* cmd_diff.c: `duet diff`: compare tap files, or re-run a golden's token ids on a model and compare
 * every tap, against golden/tolerances. Exit 0: all within tolerance; 1: any tap out; 2: usage or I/O. */
#include "cli_util.h"
#include "commands.h"

#include "error.h"
#include "engine/registry.h"
#include "model.h"
#include "tapfile.h"
#include "tolerances.h"

#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *CMD = "diff";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet diff GOLDEN.safetensors FILE.safetensors [--mode M] [--tolerances FILE]\n"
            "       duet diff -m DIR GOLDEN.safetensors [--backend ref|gpu] [--mode M] [--tolerances FILE]\n"
            "Compares every tap with the golden, one row per tap in forward order, and marks the first out of\n"
            "tolerance. The second form re-runs the golden's token ids on model DIR. Exit status: 0 all taps\n"
            "within tolerance, 1 any out (or missing on one side), 2 usage or I/O error.\n\n"
            "  -m, --model DIR         model to run (second form)\n"
            "      --backend B         ref or gpu (default ref)\n"
            "      --mode M            tolerance mode and backend dtype: fp32, fp16, bf16 (default: fp32 for ref,\n"
            "                          fp16 for gpu; the first form reads FILE's metadata)\n"
            "      --threads N         CPU threads for the ref (default 1)\n"
            "      --weights MODE      second form: quantize DIR's linear weights on load (as `duet quantize`:\n"
            "                          int8, int4, int4-g128, int4-g64, q8_0, q4_0, q4_1; default none). The\n"
            "                          golden must be the ref's in the same mode (duet golden --weights MODE);\n"
            "                          the bounds are the rows of mode DTYPE:MODE (e.g. fp16:q4_1)\n"
            "      --cost              with --weights, --w8a8 or --kv-cache: the mode's accuracy cost against an\n"
            "                          unquantized golden (e.g. fp32, made without them): every tap's error\n"
            "                          printed, no bounds; exit 1 only for NaN/Inf, a shape change or a missing tap\n"
            "      --w8a8 MODE, --sq-alpha A, --kv-cache MODE, --calib FILE\n"
            "                          second form: run in W8A8 (sq, fp8, fp8-tensor) and / or a quantized KV\n"
            "                          cache (int8, fp8) calibrated from FILE, as duet generate does, against a\n"
            "                          golden of the ref in the same mode (duet golden with the same flags; rows\n"
            "                          DTYPE:NAME, e.g. fp16:kv-fp8), or with --cost against an uncalibrated one.\n"
            "                          In W8A8 the taps attn_norm, attn, ffn_norm and act hold the smoothed\n"
            "                          inputs x / s\n"
            "      --tolerances FILE   the bounds (default $DUET_TOLERANCES, else 'tolerances' beside GOLDEN,\n"
            "                          else the source tree's golden/tolerances, else the installed one)\n"
            "  -h, --help              this text\n\n"
            "examples:\n"
            "  duet diff golden/mha.p7.fp32.safetensors /tmp/mine.safetensors\n"
            "  duet diff -m /tmp/mha golden/mha.p7.fp32.safetensors --backend ref\n"
            "  duet golden -m /tmp/q --ids 1,5,9,2 --weights q4_1 -o /tmp/q4_1.safetensors\n"
            "  duet diff -m /tmp/q /tmp/q4_1.safetensors --backend gpu --mode fp16 --weights q4_1\n"
            "  duet diff -m /tmp/mha golden/mha.p7.fp32.safetensors --weights int4-g64 --cost\n"
            "  duet diff -m /tmp/mha golden/mha.p7.fp32.safetensors --w8a8 sq --calib mha.calib.json --cost\n"
            "  duet golden -m /tmp/mha --ids 1,5,9,2 --kv-cache fp8 --calib mha.calib.json -o /tmp/kv.safetensors\n"
            "  duet diff -m /tmp/mha /tmp/kv.safetensors --backend gpu --kv-cache fp8 --calib mha.calib.json\n");
}

#ifndef DUET_SOURCE_DIR
#define DUET_SOURCE_DIR "."
#endif
#ifndef DUET_PKGDATADIR
#define DUET_PKGDATADIR "/usr/local/share/duet"
#endif

/* $DUET_TOLERANCES, else the first readable of: <dir of golden>/tolerances, the source tree's
 * golden/tolerances (DUET_SOURCE_DIR, baked in at build time), the installed $(pkgdatadir)/tolerances.
 * None relative to the working directory: `duet diff` finds its table from anywhere. When none is
 * readable, the source tree's path (the load error then names it). */
static void default_tolerances(const char *golden, char *out, size_t n)
{
    const char *env = getenv("DUET_TOLERANCES");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    const char *slash = strrchr(golden, '/');
    if (slash) snprintf(out, n, "%.*s/tolerances", (int)(slash - golden), golden);
    else snprintf(out, n, "tolerances"); /* the golden's own folder is the working directory */
    if (access(out, R_OK) == 0) return;
    snprintf(out, n, "%s", DUET_SOURCE_DIR "/golden/tolerances");
    if (access(out, R_OK) == 0) return;
    snprintf(out, n, "%s", DUET_PKGDATADIR "/tolerances");
    if (access(out, R_OK) != 0) snprintf(out, n, "%s", DUET_SOURCE_DIR "/golden/tolerances");
}

/* Whether any rule of the table is for `mode` (its mode glob matches): a mode none covers would fail every
 * tap with "no rule", which reads as 33 failures rather than as the typo it is. */
static int mode_covered(const duet_tolerances *tol, const char *mode)
{
    for (int i = 0; i < tol->n; i++)
        if (!fnmatch(tol->rules[i].mode, mode, 0)) return 1;
    return 0;
}

static int mode_fail(const duet_tolerances *tol, const char *mode, const char *from)
{
    fprintf(stderr, "duet %s: %s '%s': no rule of %s is for this mode (expected fp32, fp16 or bf16); see duet %s "
            "--help\n", CMD, from, mode, tol->path, CMD);
    return 2;
}

static int io_fail(void)
{
    fprintf(stderr, "duet %s: %s\n", CMD, duet_error());
    return 2;
}

/* The golden's 'weights' (duet golden --weights) against the run's, checked before the run: with --weights
 * MODE, a golden of the ref in MODE (with --cost, an unquantized one); without, a golden whose mode is the
 * model's as stored (one made with --weights q4_1 from an fp32 model is not that model's: every tap would
 * read as out of tolerance). 0, or 2 after saying why. */
static int golden_weights_match(const duet_tapfile *gold, const char *golden_path, const duet_model *m,
                                const char *dir, int weights, int cost)
{
    const char *gw = duet_tapfile_meta(gold, "weights");
    if (weights == DUET_Q_NONE) {
        const char *stored = duet_qmode_get(m->weights)->name;
        if (!gw || !strcmp(gw, stored)) return 0;
        fprintf(stderr, "duet %s: %s was made with weights '%s', but %s's linear weights are '%s' as stored: pass "
                "--weights %s (the ref in the golden's mode)\n", CMD, golden_path, gw, dir, stored, gw);
        return 2;
    }
    const char *wname = duet_qmode_get((duet_qmode)weights)->name;
    if (cost && gw) {
        fprintf(stderr, "duet %s: --cost compares with an unquantized golden, but %s was made with weights '%s'\n",
                CMD, golden_path, gw);
        return 2;
    }
    if (!cost && (!gw || strcmp(gw, wname))) {
        fprintf(stderr, "duet %s: %s was made with weights '%s', not '%s': make the golden with `duet golden "
                "--weights %s` (the ref in the same mode)\n", CMD, golden_path, gw ? gw : "none", wname, wname);
        return 2;
    }
    return 0;
}

int cmd_diff(int argc, char **argv)
{
    enum { O_BACKEND = 256, O_MODE, O_THREADS, O_TOL, O_WEIGHTS, O_COST, O_KV, O_W8A8, O_ALPHA, O_CALIB };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"backend", required_argument, 0, O_BACKEND},
        {"mode", required_argument, 0, O_MODE},     {"threads", required_argument, 0, O_THREADS},
        {"tolerances", required_argument, 0, O_TOL}, {"weights", required_argument, 0, O_WEIGHTS},
        {"cost", no_argument, 0, O_COST},           {"kv-cache", required_argument, 0, O_KV},
        {"w8a8", required_argument, 0, O_W8A8},     {"sq-alpha", required_argument, 0, O_ALPHA},
        {"calib", required_argument, 0, O_CALIB},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    cli_quant_flags qf = {0};
    cli_quant qm = {0};
    char qname[64] = ""; /* the calibrated mode's name (cli_quant_name), set with -m DIR */
    const char *dir = NULL, *backend = "ref", *mode = NULL, *tol_path = NULL;
    int threads = 1, weights = DUET_Q_NONE, cost = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case O_BACKEND: backend = optarg; break;
        case O_MODE: mode = optarg; break;
        case O_THREADS: if (cli_int(CMD, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case O_TOL: tol_path = optarg; break;
        case O_WEIGHTS: if ((weights = cli_weights(CMD, optarg)) < 0) return 2; break;
        case O_COST: cost = 1; break;
        case O_KV: qf.kv_cache = optarg; break;
        case O_W8A8: qf.w8a8 = optarg; break;
        case O_ALPHA: qf.sq_alpha = optarg; break;
        case O_CALIB: qf.calib = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    const int calibrated = qf.kv_cache || qf.w8a8 || qf.sq_alpha || qf.calib;
    if (cost && ((weights == DUET_Q_NONE && !calibrated) || !dir)) {
        fprintf(stderr, "duet %s: --cost goes with -m DIR and --weights MODE, --w8a8 sq or --kv-cache int8|fp8 (the "
                "mode's accuracy cost against an unquantized golden); see duet %s --help\n", CMD, CMD);
        return 2;
    }
    if (calibrated && !dir) {
        fprintf(stderr, "duet %s: --w8a8, --kv-cache and --calib go with -m DIR (they set how the model is run); see "
                "duet %s --help\n", CMD, CMD);
        return 2;
    }
    if (weights != DUET_Q_NONE && !dir) {
        fprintf(stderr, "duet %s: --weights goes with -m DIR (it quantizes the model that is run); see duet %s --help\n",
                CMD, CMD);
        return 2;
    }
    int npos = argc - optind;
    if ((dir && npos != 1) || (!dir && npos != 2)) {
        fprintf(stderr, "duet %s: expected %s; see duet %s --help\n", CMD,
                dir ? "one golden file after -m DIR" : "GOLDEN and FILE (or -m DIR GOLDEN)", CMD);
        return 2;
    }
    const char *golden_path = argv[optind];
    char tbuf[4096];
    if (!tol_path) {
        default_tolerances(golden_path, tbuf, sizeof tbuf);
        tol_path = tbuf;
    }
    /* --cost: no bounds (every metric reported, only NaN/Inf, shape or missing taps fail) */
    static const char open_rules[] = "* logits top1 0\n* logits kl 1e300\n* * rel_l2 1e300\n";
    duet_tolerances *tol = cost ? duet_tolerances_parse(open_rules, "no bounds: the accuracy cost, reported, not failed")
                                : duet_tolerances_load(tol_path);
    if (!tol) return io_fail();
    if (mode && !mode_covered(tol, mode)) {
        int r = mode_fail(tol, mode, "--mode");
        duet_tolerances_free(tol);
        return r;
    }
    duet_tapfile *gold = duet_tapfile_load(golden_path), *cand = NULL;
    duet_model *m = NULL;
    int *ids = NULL, n = 0, rc = 2;
    if (!gold) {
        io_fail();
        goto out;
    }
    if (!dir) {
        cand = duet_tapfile_load(argv[optind + 1]);
        if (!cand) {
            io_fail();
            goto out;
        }
        if (!mode) {
            mode = duet_tapfile_meta(cand, "mode") ? duet_tapfile_meta(cand, "mode") : "fp32";
            if (!mode_covered(tol, mode)) {
                rc = mode_fail(tol, mode, "the metadata's mode");
                goto out;
            }
        }
    } else {
        if (duet_backend_check(backend)) { /* before the model is loaded (and quantized) */
            io_fail();
            goto out;
        }
        if (!mode) mode = strcmp(backend, "ref") ? "fp16" : "fp32";
        const char *ids_text = duet_tapfile_meta(gold, "token_ids");
        if (!ids_text) {
            fprintf(stderr, "duet %s: %s: no token_ids in __metadata__; regenerate it with `make golden`\n", CMD,
                    golden_path);
            goto out;
        }
        if (duet_ids_parse(ids_text, &ids, &n)) {
            fprintf(stderr, "duet %s: %s: %s\n", CMD, golden_path, duet_error());
            goto out;
        }
        if (cli_open_model_weights(CMD, dir, weights, &m, NULL)) {
            io_fail();
            goto out;
        }
        const char *want = duet_tapfile_meta(gold, "model_sha256");
        char have[65] = "", path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (want && access(path, R_OK) == 0 && duet_sha256_file(path, have) == 0 && strcmp(want, have))
            fprintf(stderr, "duet %s: warning: %s has sha256 %s, the golden was made from %s\n", CMD, path, have,
                    want);
        if (golden_weights_match(gold, golden_path, m, dir, weights, cost)) goto out;
        if ((rc = cli_quant_modes(CMD, &qf, m, &qm))) goto out; /* it printed the error */
        rc = 2;
        /* the golden's calibrated mode: the run's (none with --cost) */
        cli_quant_name(&qm, qname, sizeof qname);
        const char *gq = duet_tapfile_meta(gold, "calibrated");
        if (cost ? gq != NULL : strcmp(gq ? gq : "", qname)) {
            if (cost)
                fprintf(stderr, "duet %s: --cost compares with an uncalibrated golden, but %s was made in '%s'\n", CMD,
                        golden_path, gq);
            else
                fprintf(stderr, "duet %s: %s was made in calibrated mode '%s', this run is '%s': make the golden with "
                        "`duet golden` and the same --kv-cache / --w8a8 / --sq-alpha / --calib (the ref in that "
                        "mode)\n", CMD, golden_path, gq ? gq : "none", *qname ? qname : "none");
            goto out;
        }
        duet_backend_opts quant = {.kv_mode = qm.kv_mode, .kv_scales = qm.kv_scales, .w8a8 = qm.w8a8};
        cand = duet_tapfile_run(m, duet_backend_create, backend, mode, threads, &quant, ids, n);
        if (!cand) {
            io_fail();
            goto out;
        }
    }
    /* quantized weights: the tolerance rows of "DTYPE:WEIGHTS" (golden/tolerances), against a golden of the
     * ref in the same mode */
    char tol_mode[64];
    snprintf(tol_mode, sizeof tol_mode, "%s", mode);
    if (dir && (weights != DUET_Q_NONE || calibrated)) {
        const char *wname = weights != DUET_Q_NONE ? duet_qmode_get((duet_qmode)weights)->name : "";
        snprintf(tol_mode, sizeof tol_mode, "%s:%s%s%s%s", mode, wname, *wname && *qname ? "+" : "", qname,
                 cost ? " cost" : "");
        if (!mode_covered(tol, tol_mode)) {
            rc = mode_fail(tol, tol_mode, "--mode with --weights");
            goto out;
        }
    }
    int fails = duet_diff_taps(stdout, gold, cand, tol, tol_mode);
    rc = fails ? 1 : 0;
out:
    duet_tolerances_free(tol);
    duet_tapfile_free(gold);
    duet_tapfile_free(cand);
    duet_model_close(m);
    cli_quant_free(&qm);
    free(ids);
    return rc;
}
