/* cmd_eval.c: `duet eval`: TensorRT-LLM summarize.py's protocol on cnn_dailymail for any backend:
 * greedy summaries of the first N articles, total latency and tokens/s, ROUGE-1/2/L/Lsum exactly as
 * rouge_score + HF evaluate compute them; `--compare A.json B.json` prints the deltas of two runs. */
#include "cli_util.h"
#include "calib/w8a8.h"
#include "kvquant.h"
#include "commands.h"

#include "backend.h"
#include "chat.h"
#include "error.h"
#include "engine/registry.h"
#include "eval/cnn_dailymail.h"
#include "eval/rouge.h"
#include "eval/summarize.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *CMD = "eval";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet eval [-m PATH] [--data FILE] [-n N] [options]\n"
            "       duet eval --compare A.json B.json\n"
            "Summarizes cnn_dailymail articles with summarize.py's protocol (article + \" TL;DR: \", BOS kept,\n"
            "left-truncated to --max-input tokens, greedy, stop at EOS) and scores them with ROUGE.\n\n"
            "  -m, --model PATH       GGUF file or HF folder (default: $DUET_MODEL, else " CLI_DEFAULT_MODEL ")\n"
            "      --prompt P         summarize (default: summarize.py's \"article TL;DR: \") or chat (the article\n"
            "                         in a user turn of the model's chat template after the line \"" SUMMARIZE_CHAT_INSTRUCTION "\")\n"
            "      --data FILE        cnn_dailymail JSON Lines (default: $DUET_DATA/cnn_dailymail/test_100.jsonl,\n"
            "                         else ../shared/data/cnn_dailymail/test_100.jsonl)\n"
            "  -n, --items N          first N items (default 20)\n"
            "      --max-input N      prompt tokens kept, BOS included (default 923, or the model's positions\n"
            "                         less --max-output when 923 does not fit, with a note)\n"
            "      --max-output N     new tokens at most (default 100)\n"
            "      --backend B        ref or gpu (default ref)\n"
            "      --dtype T          fp32 (ref), fp16 or bf16 (gpu)\n"
            "      --kv-cache MODE    none (default), int8 or fp8: the KV cache as codes with a scale per layer and kv\n"
            "                         head from --calib FILE (duet calibrate; the ref emulates it)\n"
            "      --w8a8 MODE        none (default), sq (SmoothQuant), fp8 (E4M3 per channel x per token) or\n"
            "                         fp8-tensor (per tensor, static activation scales), from --calib (ref: emulated;\n"
            "                         gpu: int8 / FP8 tensor cores, FP8 on compute capability 8.9+)\n"
            "      --sq-alpha A       SmoothQuant's migration strength in [0, 1] (default 0.5)\n"
            "      --calib FILE       the calibration file of --kv-cache and --w8a8\n"
            "      --weights MODE     quantize the linear weights on load (as `duet quantize`: int8, int4,\n"
            "                         int4-g128, int4-g64, q8_0, q4_0, q4_1; default none = as stored)\n"
            "      --stem             Porter stemmer in ROUGE (off by default, as summarize.py)\n"
            "      --json FILE        write the run (config, latency, ROUGE, every item's ids and summary)\n"
            "      --check-accuracy   exit 1 when ROUGE-1 (mid F x100) is below --rouge1-threshold\n"
            "      --rouge1-threshold X  (default 15, summarize.py's)\n"
            "      --compare A B      print the ROUGE deltas of two --json files (B - A)\n"
            "  -h, --help             this text\n\n"
            "examples:\n"
            "  duet eval -n 20 --json ref.json\n"
            "  duet eval -n 20 --prompt chat --backend gpu --json gpu_chat.json\n"
            "  duet eval -m ../shared/data/stories260K -n 20 --max-input 412 --json ref.json\n"
            "  duet eval --compare ref.json gpu_fp16.json\n");
}

static void progress(int done, int total, double elapsed)
{
    int width = 30, fill = total ? done * width / total : width;
    fprintf(stderr, "\r[eval] %3d/%d |", done, total);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "| %5.1f s", elapsed);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static json_t *prf_json(const rouge_prf *p) { return json_pack("[f, f, f]", p->p, p->r, p->f); }

static json_t *aggregate_json(const rouge_aggregate *a)
{
    json_t *o = json_object();
    for (int t = 0; t < ROUGE_N_TYPES; t++)
        json_object_set_new(o, rouge_type_names[t],
                            json_pack("{s:f, s:f, s:f, s:f}", "mid", 100 * a->mid[t].f, "low", 100 * a->low[t].f,
                                      "high", 100 * a->high[t].f, "mean", 100 * a->mean[t].f));
    return o;
}

/* --compare: both files' rouge.<type>.mid and the delta B - A. */
static int compare(const char *a_path, const char *b_path)
{
    json_error_t e;
    json_t *a = json_load_file(a_path, 0, &e), *b = NULL;
    if (!a) {
        fprintf(stderr, "duet %s: %s: %s (line %d)\n", CMD, a_path, e.text, e.line);
        return 1;
    }
    if (!(b = json_load_file(b_path, 0, &e))) {
        fprintf(stderr, "duet %s: %s: %s (line %d)\n", CMD, b_path, e.text, e.line);
        json_decref(a);
        return 1;
    }
    int rc = 0;
    printf("%-10s %10s %10s %8s\n", "", "A", "B", "B - A");
    for (int t = 0; t < ROUGE_N_TYPES; t++) {
        json_t *va = json_object_get(json_object_get(json_object_get(a, "rouge"), rouge_type_names[t]), "mid");
        json_t *vb = json_object_get(json_object_get(json_object_get(b, "rouge"), rouge_type_names[t]), "mid");
        if (!json_is_number(va) || !json_is_number(vb)) {
            fprintf(stderr, "duet %s: %s: no rouge.%s.mid (not a `duet eval --json` file?)\n", CMD,
                    json_is_number(va) ? b_path : a_path, rouge_type_names[t]);
            rc = 1;
            break;
        }
        double x = json_number_value(va), y = json_number_value(vb);
        printf("%-10s %10.4f %10.4f %+8.4f\n", rouge_type_names[t], x, y, y - x);
    }
    const char *labels[] = {"backend", "dtype", "n_items", "tokens_per_s"};
    for (int i = 0; !rc && i < 4; i++) {
        char *sa = json_dumps(json_object_get(a, labels[i]), JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        char *sb = json_dumps(json_object_get(b, labels[i]), JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        printf("%-10s %10s %10s\n", labels[i], sa ? sa : "-", sb ? sb : "-");
        free(sa);
        free(sb);
    }
    json_decref(a);
    json_decref(b);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"data", required_argument, 0, 'D'},
        {"items", required_argument, 0, 'n'},     {"max-input", required_argument, 0, 'I'},
        {"max-output", required_argument, 0, 'O'}, {"backend", required_argument, 0, 'b'},
        {"dtype", required_argument, 0, 'd'},     {"stem", no_argument, 0, 's'},
        {"json", required_argument, 0, 'j'},      {"check-accuracy", no_argument, 0, 'c'},
        {"rouge1-threshold", required_argument, 0, 't'}, {"compare", no_argument, 0, 'C'},
        {"prompt", required_argument, 0, 'p'},    {"weights", required_argument, 0, 'W'},
        {"kv-cache", required_argument, 0, 'V'},  {"calib", required_argument, 0, 'A'},
        {"w8a8", required_argument, 0, 'Q'},      {"sq-alpha", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int weights = DUET_Q_NONE;
    const char *model_dir = NULL, *data = NULL, *backend = "ref", *dtype = NULL, *json_path = NULL;
    const char *prompt_kind = "summarize";
    cli_quant_flags qf = {0};
    cli_quant qm = {0};
    int n_items = 20, max_input = 923, max_output = 100, stem = 0, check = 0, do_compare = 0, input_given = 0;
    float threshold = 15.0f;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'p':
            if (strcmp(optarg, "summarize") && strcmp(optarg, "chat")) {
                fprintf(stderr, "duet %s: --prompt: '%s' is not summarize or chat\n", CMD, optarg);
                return 2;
            }
            prompt_kind = optarg;
            break;
        case 'D': data = optarg; break;
        case 'n': if (cli_int(CMD, "-n", optarg, 1, 1 << 24, &n_items)) return 2; break;
        case 'I': if (cli_int(CMD, "--max-input", optarg, 2, 1 << 24, &max_input)) return 2; input_given = 1; break;
        case 'O': if (cli_int(CMD, "--max-output", optarg, 1, 1 << 24, &max_output)) return 2; break;
        case 'b': backend = optarg; break;
        case 'd': dtype = optarg; break;
        case 's': stem = 1; break;
        case 'j': json_path = optarg; break;
        case 'c': check = 1; break;
        case 't': if (cli_float(CMD, "--rouge1-threshold", optarg, 0, 100, &threshold)) return 2; break;
        case 'C': do_compare = 1; break;
        case 'W': if ((weights = cli_weights(CMD, optarg)) < 0) return 2; break;
        case 'V': qf.kv_cache = optarg; break;
        case 'A': qf.calib = optarg; break;
        case 'Q': qf.w8a8 = optarg; break;
        case 'L': qf.sq_alpha = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (do_compare) {
        if (argc - optind != 2) {
            fprintf(stderr, "duet %s: --compare takes two files: duet eval --compare A.json B.json\n", CMD);
            return 2;
        }
        return compare(argv[optind], argv[optind + 1]);
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'\n", CMD, argv[optind]);
        return 2;
    }
    if (duet_backend_check(backend)) return cli_fail(CMD); /* before the model is loaded (and quantized) */
    if (!(model_dir = cli_model_or_default(CMD, model_dir))) return 2;
    if (!data && !(data = cli_default_cnn_data())) {
        fprintf(stderr, "duet %s: no data: give --data FILE (cnn_dailymail JSON Lines) or set DUET_DATA\n", CMD);
        return 2;
    }
    /* --json is opened first: an unwritable path fails now, with the reason, not after the whole run */
    FILE *jf = NULL;
    if (json_path && !(jf = fopen(json_path, "w"))) {
        fprintf(stderr, "duet %s: --json %s: cannot write: %s\n", CMD, json_path, strerror(errno));
        return 1;
    }
    int rc = 1;
    duet_model *m = NULL;
    duet_tokenizer *tok = NULL;
    duet_backend *be = NULL;
    cnn_item *items = NULL;
    size_t n_loaded = 0;
    duet_sampler sampler = {0};
    rouge_scores *scores = NULL;
    int *out = NULL;
    json_t *jitems = json_array();
    duet_chat_template tmpl = {0};
    const int chat = !strcmp(prompt_kind, "chat");
    int end_id = -1;
    if (cli_open_model_weights(CMD, model_dir, weights, &m, &tok)) goto done;
    if (chat) {
        if (cli_chat_template(m, tok, &tmpl, &end_id)) goto done;
    }
    if (cnn_load(data, (size_t)n_items, &items, &n_loaded)) goto done; /* a bad data path first */
    if (!input_given && max_input + max_output > m->cfg.max_pos && m->cfg.max_pos - max_output >= 2) {
        /* summarize.py's default 923 is for 1024+-position models: fit the default to this one */
        int fit = m->cfg.max_pos - max_output;
        fprintf(stderr, "duet %s: note: the default --max-input %d + --max-output %d exceed %s's %d positions; "
                "using --max-input %d\n", CMD, max_input, max_output, model_dir, m->cfg.max_pos, fit);
        max_input = fit;
    }
    if (summarize_check_lengths(max_input, max_output, m->cfg.max_pos, model_dir)) goto done;
    if (n_loaded < (size_t)n_items)
        fprintf(stderr, "duet %s: %s has %zu items; evaluating those\n", CMD, data, n_loaded);
    /* KV cache for the longest item: max_input + max_output positions (checked to fit), not max_pos */
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = max_input + max_output, .dtype = dtype};
    if ((rc = cli_quant_modes(CMD, &qf, m, &qm))) {
        duet_error_clear(); /* cli_quant_modes printed its own error */
        goto done;
    }
    rc = 1;
    bo.kv_mode = qm.kv_mode, bo.kv_scales = qm.kv_scales, bo.w8a8 = qm.w8a8;
    if (!(be = duet_backend_create(backend, m, &bo))) goto done;
    fprintf(stderr, "[%s] %s\n", be->name, be->summary);
    if (duet_sampler_init(&sampler, m->cfg.vocab_size, 0.0f, 0, 1.0f, 0)) goto done;
    scores = calloc(n_loaded, sizeof *scores);
    out = malloc(sizeof(int) * max_output);
    if (!scores || !out) {
        duet_errorf("out of memory");
        goto done;
    }
    int eos = end_id >= 0 ? end_id : cli_eos_id(tok, m);
    double latency = 0, t_start = duet_now();
    long out_tokens = 0;
    for (size_t i = 0; i < n_loaded; i++) {
        int *ids = NULL;
        size_t n_ids = 0;
        char *summary = NULL;
        size_t summary_len = 0;
        if (chat ? summarize_chat_prompt_ids(tok, &tmpl, items[i].article, items[i].article_len, max_input, &ids, &n_ids)
                 : summarize_prompt_ids(tok, items[i].article, items[i].article_len, max_input, &ids, &n_ids)) {
            duet_error_prefix("%s line %zu: ", data, items[i].line);
            goto done;
        }
        duet_gen_opts go = {.max_new = max_output, .eos_id = eos, .seq = 0, .sampler = &sampler};
        duet_gen_stats st;
        double t0 = duet_now();
        int grc = duet_generate(be, &bo, ids, (int)n_ids, &go, out, &st);
        latency += duet_now() - t0;
        if (grc) {
            free(ids);
            duet_error_prefix("item %zu (%s): ", i, items[i].id);
            goto done;
        }
        out_tokens += st.n_generated;
        if (duet_tokenizer_decode(tok, out, st.n_generated, 1, &summary, &summary_len) ||
            rouge_score_len(&scores[i], summary, summary_len, items[i].highlights, items[i].highlights_len, stem)) {
            free(ids);
            free(summary);
            goto done;
        }
        json_t *oid = json_array(), *iid = json_array();
        for (size_t k = 0; k < n_ids; k++) json_array_append_new(iid, json_integer(ids[k]));
        for (int k = 0; k < st.n_generated; k++) json_array_append_new(oid, json_integer(out[k]));
        json_t *r = json_object();
        for (int t = 0; t < ROUGE_N_TYPES; t++) json_object_set_new(r, rouge_type_names[t], prf_json(&scores[i].s[t]));
        json_array_append_new(jitems, json_pack("{s:s%, s:i, s:o, s:o, s:s%, s:o}", "id", items[i].id, items[i].id_len,
                                                "input_tokens", (int)n_ids, "input_ids", iid, "output_ids", oid,
                                                "summary", summary, summary_len, "rouge", r));
        free(ids);
        free(summary);
        progress((int)i + 1, (int)n_loaded, duet_now() - t_start);
    }
    rouge_aggregate agg;
    if (rouge_aggregate_compute(&agg, scores, n_loaded, ROUGE_BOOTSTRAP_SAMPLES, ROUGE_BOOTSTRAP_SEED)) goto done;
    agg.use_stemmer = stem;
    const char *dt = dtype ? dtype : (!strcmp(backend, "ref") ? "fp32" : "fp16");
    printf("[duet %s %s] total latency: %.3f sec\n", be->name, dt, latency);
    printf("[duet %s %s] total output tokens: %ld\n", be->name, dt, out_tokens);
    printf("[duet %s %s] tokens per second: %.2f\n", be->name, dt, latency > 0 ? out_tokens / latency : 0.0);
    printf("[duet %s %s] rouge scores over %zu items (F x100; mid = bootstrap median, as summarize.py):\n", be->name, dt,
           n_loaded);
    rouge_print_table(stdout, &agg);
    if (json_path) {
        json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:f, s:I, s:f, s:o, s:o}", "model",
                                 model_dir, "data", data, "prompt", prompt_kind, "backend", be->name, "dtype", dt,
                                 "weights", duet_qmode_get(m->weights)->name, "n_items", (int)n_loaded, "max_input",
                                 max_input, "max_output", max_output, "stem", stem, "latency_s", latency,
                                 "output_tokens", (json_int_t)out_tokens, "tokens_per_s",
                                 latency > 0 ? out_tokens / latency : 0.0, "rouge", aggregate_json(&agg), "items",
                                 jitems);
        jitems = NULL;
        if (root) { /* the calibrated modes (none: the compute type) */
            json_object_set_new(root, "kv_cache", json_string(qm.kv_mode ? duet_kv_mode_name(qm.kv_mode) : "none"));
            json_object_set_new(root, "w8a8", json_string(qm.w8a8 ? duet_w8a8_mode_name(qm.w8a8->mode) : "none"));
            if (qm.w8a8 && qm.w8a8->mode == DUET_W8A8_SQ)
                json_object_set_new(root, "sq_alpha", json_real(qm.w8a8->alpha));
        }
        int wrc = json_dumpf(root, jf, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        json_decref(root);
        errno = 0;
        if (fclose(jf) != 0 || wrc) {
            jf = NULL;
            duet_errorf("--json %s: write failed: %s", json_path, errno ? strerror(errno) : "cannot serialise");
            goto done;
        }
        jf = NULL;
    }
    rc = 0;
    if (check) {
        double r1 = 100 * agg.mid[ROUGE_1].f;
        if (r1 < threshold) {
            duet_error_clear();
            fprintf(stderr, "duet %s: accuracy check FAILED: rouge1 %.4f < threshold %.4f\n", CMD, r1, threshold);
            rc = 1;
        } else {
            fprintf(stderr, "duet %s: accuracy check passed: rouge1 %.4f >= threshold %.4f\n", CMD, r1, threshold);
        }
    }
done:
    if (jf) { /* the run failed before writing: leave no empty file behind */
        fclose(jf);
        unlink(json_path);
    }
    if (rc == 1 && duet_error()[0]) cli_fail(CMD);
    cli_quant_free(&qm);
    json_decref(jitems);
    duet_chat_template_free(&tmpl);
    free(scores);
    free(out);
    cnn_free(items, n_loaded);
    duet_sampler_free(&sampler);
    duet_backend_free(be);
    duet_tokenizer_free(tok);
    duet_model_close(m);
    return rc;
}
