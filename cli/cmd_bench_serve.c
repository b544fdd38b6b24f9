/* cmd_bench_serve.c: `duet bench --serve`: a request stream against the in-flight batching scheduler
 * (serve/scheduler.h), in process. Prompts are cnn_dailymail articles tokenized by the model's tokenizer
 * (their real lengths, cut at --max-input), arrivals are Poisson at each --rates value (0: all at once,
 * the saturated throughput), max_tokens is drawn per request from --max-tokens; greedy, no stop id, so
 * every request generates exactly its max_tokens. Each rate runs twice on the same stream: in-flight (the
 * scheduler admits as slots and blocks free up) and static batching (a batch of up to --max-seqs arrived
 * requests is admitted only when the previous one has finished, as HF generate or a static engine). Per
 * run: generated tokens/s, time to first token and inter-token latency p50/p99, end-to-end latency p99,
 * peak KV blocks, preemptions, ms per scheduler step and the scheduler's own host share of it; one JSON
 * object per line on stdout (and --json FILE), a table on stderr.
 * --model-shape runs a synthetic model instead (the gpu backend's random weights, made on the GPU, in
 * --weights' layout), its prompts tokenized by the Llama-2 tokenizer (LLaMA-7B's vocabulary). */
#include "build_config.h"
#include "cli_util.h"
#include "commands.h"

#include "backend.h"
#include "calib/w8a8.h"
#include "engine/registry.h"
#include "error.h"
#include "eval/cnn_dailymail.h"
#include "generate.h"
#include "kvquant.h"
#include "model.h"
#include "quant.h"
#include "rng.h"
#include "scheduler.h"
#include "tokenizer.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef DUET_HAVE_CUDA
#include "gpu/gpu_backend.h"
#endif

static const char *CMD = "bench --serve";

#define MAX_RATES 16
#define MAX_MT 16

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet bench --serve [options]\n"
            "Replays cnn_dailymail prompts (their real token lengths) against the in-flight batching scheduler, in\n"
            "process, with Poisson arrivals at each rate, and the same stream with static batching for comparison:\n"
            "generated tokens/s, time to first token (TTFT) and inter-token latency (ITL) p50/p99, end-to-end p99,\n"
            "peak KV blocks in use, preemptions, ms per step (step_ms) and the scheduler's host work in it (host_ms).\n"
            "One JSON object per line on stdout, a table on stderr.\n\n"
            "  -m, --model PATH       model (default: $DUET_MODEL, else %s)\n"
            "      --model-shape S    a synthetic model instead of -m: 7b (LLaMA-7B's shapes) or tiny, random\n"
            "                         weights made on the GPU (--backend gpu); prompts tokenized by --tokenizer\n"
            "      --weights M        the synthetic model's layer matrices: none (dense, default) or a weight-only\n"
            "                         mode (%s)\n"
            "      --w8a8 M           the synthetic model's layer products in W8A8: sq, fp8 or fp8-tensor (seeded codes\n"
            "                         and scales, timing only; FP8: compute capability 8.9+)\n"
            "      --kv-cache M       the synthetic model's KV cache: none (default), int8 or fp8 (placeholder\n"
            "                         scales, max |x| 8: timing only)\n"
            "      --tokenizer DIR    tokenizer of the synthetic model's prompts (default: $DUET_DATA/llama2-tokenizer,\n"
            "                         else ../shared/data/llama2-tokenizer)\n"
            "      --backend B        ref (default) or gpu\n"
            "      --dtype T          the backend's compute type (ref: fp32; gpu: fp16, bf16)\n"
            "      --data FILE        cnn_dailymail JSON Lines (default: $DUET_DATA/cnn_dailymail/test_100.jsonl,\n"
            "                         else ../shared/data/cnn_dailymail/test_100.jsonl)\n"
            "  -n, --requests N       requests per run (default 32; prompts reused in order when N > items)\n"
            "      --max-input N      prompt tokens at most (default 256)\n"
            "      --max-tokens LIST  max_tokens drawn uniformly from this list per request (default 16,32,64)\n"
            "      --rates LIST       arrival rates in requests/s, comma-separated; 0 = all at time 0 (default 0)\n"
            "      --max-seqs N       requests running at once, = the static batch size (default 8)\n"
            "      --token-budget N   tokens per step (default 256)\n"
            "      --policy P         no-evict (default) or max-utilization\n"
            "      --kv-budget B      the backend's KV pool: bytes (512M, 2G) or a fraction of the memory free\n"
            "                         after the weights (0.9); default room for every slot full\n"
            "      --batch-invariant on|off  each row's sums in one order whatever the batch (default: on for the\n"
            "                         ref, off for the gpu; run both to measure its cost)\n"
            "      --kv-blocks N      KV blocks the scheduler may use (default: the backend's pool)\n"
            "      --no-static        skip the static-batching runs\n"
            "      --threads N        CPU threads for the ref (default: OpenBLAS's)\n"
            "      --seed S           arrivals and max_tokens draws (default 1)\n"
            "      --json FILE        also write the JSON lines to FILE\n"
            "  -h, --help             this text\n\n"
            "example:\n"
            "  duet bench --serve -n 16 --max-input 128 --max-tokens 8,16 --rates 0,2\n"
            "  duet bench --serve --backend gpu --model-shape 7b -n 512 --max-input 128 --max-tokens 128 \\\n"
            "             --max-seqs 256 --token-budget 2048 --no-static\n"
            "  duet bench --serve --backend gpu --model-shape 7b -n 512 --max-input 128 --max-tokens 128 \\\n"
            "             --max-seqs 256 --token-budget 2048 --no-static --w8a8 fp8 --kv-cache fp8\n",
            CLI_DEFAULT_MODEL, duet_qmode_list());
}

static int parse_nums(const char *flag, const char *s, double *a, int *n, int max, double lo, double hi)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        double x = strtod(tok, &end);
        if (end == tok || *end || !(x >= lo && x <= hi) || *n == max) {
            fprintf(stderr, "duet %s: %s: '%s' is not a list of at most %d numbers in [%g, %g]\n", CMD, flag, s, max, lo,
                    hi);
            return -1;
        }
        a[(*n)++] = x;
    }
    if (!*n) fprintf(stderr, "duet %s: %s: empty list\n", CMD, flag);
    return *n ? 0 : -1;
}

/* ---- one run ---------------------------------------------------------------------------------- */

typedef struct breq {
    const int *prompt;
    int n_prompt, max_tokens;
    double arrival;    /* seconds after the run's start */
    double *tok_t;     /* [max_tokens] time of each token */
    int n_tok, done, submitted;
    int64_t id;
} breq;

typedef struct run_result {
    double wall, tok_s, ttft50, ttft99, itl50, itl99, e2e99;
    int64_t generated, preemptions, steps;
    double step_ms, backend_ms; /* per step: all of duet_sched_step, and the backend's calls in it */
    int peak_blocks, blocks;
} run_result;

static double t0_run;

static void on_token(void *ctx, int64_t id, int tok)
{
    breq *r = ctx;
    if (r->n_tok < r->max_tokens) r->tok_t[r->n_tok++] = duet_now() - t0_run;
}

static void on_done(void *ctx, int64_t id, duet_finish why, const duet_request_stats *st)
{
    breq *r = ctx;
    r->done = why == DUET_FINISH_ERROR ? -1 : 1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return 0.0;
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    return v[i < n ? i : n - 1];
}

static void sleep_until(double t)
{
    double now = duet_now() - t0_run;
    if (t <= now) return;
    struct timespec ts = {(time_t)(t - now), (long)((t - now - (double)(time_t)(t - now)) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Runs the stream R[0..n) through a fresh scheduler; static_batch: admit only when idle, a batch of the
 * arrived requests at a time. */
static int run_stream(duet_backend *be, const duet_sched_opts *so, breq *R, int n, int static_batch,
                      run_result *out)
{
    duet_sched *s = duet_sched_create(be, so);
    if (!s) return -1;
    for (int i = 0; i < n; i++) R[i].n_tok = R[i].done = R[i].submitted = 0;
    t0_run = duet_now();
    int next = 0, alive = 0, peak = 0, fin = 0;
    while (next < n || alive > 0) {
        double now = duet_now() - t0_run;
        int room = static_batch ? (alive == 0 ? so->max_seqs : 0) : n;
        while (next < n && room > 0 && R[next].arrival <= now) {
            duet_request q = {.prompt = R[next].prompt, .n_prompt = R[next].n_prompt, .max_tokens = R[next].max_tokens,
                              .top_p = 1.0f, .on_token = on_token, .on_done = on_done, .ctx = &R[next]};
            if (duet_sched_submit(s, &q, &R[next].id)) {
                duet_sched_free(s);
                return -1;
            }
            R[next].submitted = 1;
            next++, room--;
        }
        alive = duet_sched_step(s);
        if (alive < 0) {
            duet_sched_free(s);
            return -1;
        }
        duet_sched_stats st;
        duet_sched_get_stats(s, &st);
        if (st.kv_blocks_used > peak) peak = st.kv_blocks_used;
        if (alive == 0 && next < n) sleep_until(R[next].arrival);
        const int f = (int)st.finished;
        if (f != fin) {
            fin = f;
            fprintf(stderr, "\r[bench --serve] %s: %d/%d requests done", static_batch ? "static" : "in-flight", fin, n);
        }
    }
    fprintf(stderr, "\n");
    double wall = duet_now() - t0_run;
    duet_sched_stats st;
    duet_sched_get_stats(s, &st);
    out->peak_blocks = peak;
    out->blocks = st.kv_blocks_total;
    out->preemptions = st.preemptions;
    out->steps = st.steps;
    out->step_ms = st.steps ? 1e3 * st.step_s / (double)st.steps : 0.0;
    out->backend_ms = st.steps ? 1e3 * st.backend_s / (double)st.steps : 0.0;
    duet_sched_free(s);
    /* latencies */
    double *ttft = malloc(sizeof(double) * (size_t)n), *e2e = malloc(sizeof(double) * (size_t)n), *itl = NULL;
    size_t n_itl = 0, cap_itl = 0;
    int64_t gen = 0;
    for (int i = 0; i < n; i++) cap_itl += (size_t)(R[i].max_tokens > 1 ? R[i].max_tokens - 1 : 0);
    itl = malloc(sizeof(double) * (cap_itl ? cap_itl : 1));
    if (!ttft || !e2e || !itl) {
        free(ttft), free(e2e), free(itl);
        return duet_errorf("bench --serve: out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (R[i].done < 0 || !R[i].n_tok) {
            free(ttft), free(e2e), free(itl);
            return duet_errorf("bench --serve: request %d ended without tokens", i);
        }
        ttft[i] = R[i].tok_t[0] - R[i].arrival;
        e2e[i] = R[i].tok_t[R[i].n_tok - 1] - R[i].arrival;
        for (int k = 1; k < R[i].n_tok; k++) itl[n_itl++] = R[i].tok_t[k] - R[i].tok_t[k - 1];
        gen += R[i].n_tok;
    }
    out->wall = wall;
    out->generated = gen;
    out->tok_s = gen / wall;
    out->ttft50 = pct(ttft, (size_t)n, 0.5), out->ttft99 = pct(ttft, (size_t)n, 0.99);
    out->itl50 = pct(itl, n_itl, 0.5), out->itl99 = pct(itl, n_itl, 0.99);
    out->e2e99 = pct(e2e, (size_t)n, 0.99);
    free(ttft), free(e2e), free(itl);
    return 0;
}

int cmd_bench_serve(int argc, char **argv)
{
    const char *model_path = NULL, *backend = "ref", *dtype = NULL, *data = NULL, *json_path = NULL;
    const char *shape = NULL, *tok_dir = NULL;
    duet_config syn;
    duet_qmode weights = DUET_Q_NONE;
    int weights_given = 0, invariant = -1;
    duet_w8a8_mode w8mode = DUET_W8A8_NONE;
    duet_kv_mode kvmode = DUET_KV_F;
    int n_req = 32, max_input = 256, max_seqs = 8, budget = 256, kv_blocks = 0, no_static = 0, threads = 0;
    double rates[MAX_RATES] = {0}, mts[MAX_MT] = {16, 32, 64};
    int n_rates = 1, n_mt = 3;
    uint64_t seed = 1;
    duet_sched_policy policy = DUET_SCHED_NO_EVICT;
    int64_t kv_budget = 0;
    double kv_fraction = 0.0;
    static const struct option lo[] = {
        {"serve", no_argument, 0, 'S'},          {"model", required_argument, 0, 'm'},
        {"backend", required_argument, 0, 'B'},  {"dtype", required_argument, 0, 'T'},
        {"data", required_argument, 0, 'd'},     {"requests", required_argument, 0, 'n'},
        {"max-input", required_argument, 0, 'I'}, {"max-tokens", required_argument, 0, 'M'},
        {"rates", required_argument, 0, 'R'},    {"max-seqs", required_argument, 0, 's'},
        {"token-budget", required_argument, 0, 'b'}, {"policy", required_argument, 0, 'p'},
        {"kv-blocks", required_argument, 0, 'k'}, {"no-static", no_argument, 0, 'x'},
        {"kv-budget", required_argument, 0, 'V'},
        {"threads", required_argument, 0, 't'},  {"seed", required_argument, 0, 'e'},
        {"model-shape", required_argument, 0, 'P'}, {"tokenizer", required_argument, 0, 'K'},
        {"weights", required_argument, 0, 'w'}, {"batch-invariant", required_argument, 0, 'i'},
        {"json", required_argument, 0, 'j'},     {"help", no_argument, 0, 'h'},
        {"w8a8", required_argument, 0, 'Q'},     {"kv-cache", required_argument, 0, 'C'},
        {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "m:n:h", lo, NULL)) != -1;) {
        switch (c) {
        case 'S': break;
        case 'm': model_path = optarg; break;
        case 'P':
            if (cli_model_shape(CMD, optarg, &syn)) return 2;
            shape = optarg;
            break;
        case 'K': tok_dir = optarg; break;
        case 'i': if (cli_on_off(CMD, "--batch-invariant", optarg, &invariant)) return 2; break;
        case 'w':
            if (duet_qmode_parse(optarg, &weights)) {
                fprintf(stderr, "duet %s: --weights: %s\n", CMD, duet_error());
                return 2;
            }
            weights_given = 1;
            break;
        case 'Q':
            if (duet_w8a8_mode_parse(optarg, &w8mode)) {
                fprintf(stderr, "duet %s: --w8a8: %s\n", CMD, duet_error());
                return 2;
            }
            break;
        case 'C':
            if (duet_kv_mode_parse(optarg, &kvmode)) {
                fprintf(stderr, "duet %s: --kv-cache: %s\n", CMD, duet_error());
                return 2;
            }
            break;
        case 'B': backend = optarg; break;
        case 'T': dtype = optarg; break;
        case 'd': data = optarg; break;
        case 'n': if (cli_int(CMD, "--requests", optarg, 1, 1000000, &n_req)) return 2; break;
        case 'I': if (cli_int(CMD, "--max-input", optarg, 1, 1 << 20, &max_input)) return 2; break;
        case 'M': {
            if (parse_nums("--max-tokens", optarg, mts, &n_mt, MAX_MT, 1, 1 << 20)) return 2;
            for (int i = 0; i < n_mt; i++)
                if (mts[i] != floor(mts[i])) {
                    fprintf(stderr, "duet %s: --max-tokens: %g is not an integer\n", CMD, mts[i]);
                    return 2;
                }
            break;
        }
        case 'R': if (parse_nums("--rates", optarg, rates, &n_rates, MAX_RATES, 0, 1e6)) return 2; break;
        case 's': if (cli_int(CMD, "--max-seqs", optarg, 1, 4096, &max_seqs)) return 2; break;
        case 'b': if (cli_int(CMD, "--token-budget", optarg, 1, 1 << 20, &budget)) return 2; break;
        case 'p':
            if (!strcmp(optarg, "no-evict")) policy = DUET_SCHED_NO_EVICT;
            else if (!strcmp(optarg, "max-utilization")) policy = DUET_SCHED_MAX_UTIL;
            else {
                fprintf(stderr, "duet %s: --policy: '%s' is not no-evict or max-utilization\n", CMD, optarg);
                return 2;
            }
            break;
        case 'k': if (cli_int(CMD, "--kv-blocks", optarg, 1, 1 << 30, &kv_blocks)) return 2; break;
        case 'x': no_static = 1; break;
        case 'V': if (cli_kv_budget(CMD, optarg, &kv_budget, &kv_fraction)) return 2; break;
        case 't': if (cli_int(CMD, "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'e': if (cli_u64(CMD, "--seed", optarg, &seed)) return 2; break;
        case 'j': json_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'\n", CMD, argv[optind]);
        return 2;
    }
    if (budget < max_seqs) {
        fprintf(stderr, "duet %s: --token-budget %d is below --max-seqs %d (every running request needs a token)\n",
                CMD, budget, max_seqs);
        return 2;
    }
    if (shape && model_path) {
        fprintf(stderr, "duet %s: --model-shape makes a synthetic model: not with -m %s\n", CMD, model_path);
        return 2;
    }
    if (!shape && (weights_given || tok_dir || w8mode != DUET_W8A8_NONE || kvmode != DUET_KV_F)) {
        fprintf(stderr, "duet %s: %s is for the synthetic model: give --model-shape%s\n", CMD,
                weights_given ? "--weights" : tok_dir ? "--tokenizer" : w8mode != DUET_W8A8_NONE ? "--w8a8" : "--kv-cache",
                weights_given || tok_dir ? "" : " (a model's calibrated modes: duet serve --calib)");
        return 2;
    }
    if (w8mode != DUET_W8A8_NONE && weights != DUET_Q_NONE) {
        fprintf(stderr, "duet %s: --w8a8 replaces the layer matrices: not with --weights %s\n", CMD,
                duet_qmode_get(weights)->name);
        return 2;
    }
    if (shape && strcmp(backend, "gpu")) {
        fprintf(stderr, "duet %s: --model-shape: the synthetic model's weights are made on the GPU: give --backend gpu\n",
                CMD);
        return 2;
    }
    if (duet_backend_check(backend)) return cli_fail(CMD);
    if (!data && !(data = cli_default_cnn_data())) {
        fprintf(stderr, "duet %s: no cnn_dailymail data: give --data FILE or set DUET_DATA\n", CMD);
        return 1;
    }
    if (shape && !tok_dir && !(tok_dir = cli_default_llama2_tokenizer())) {
        fprintf(stderr, "duet %s: no tokenizer for the synthetic model's prompts: give --tokenizer DIR or set DUET_DATA\n",
                CMD);
        return 1;
    }
    if (!shape && !(model_path = cli_model_or_default(CMD, model_path))) return 1;
    FILE *jf = NULL;
    if (json_path && !(jf = fopen(json_path, "w"))) {
        fprintf(stderr, "duet %s: --json %s: cannot open for writing\n", CMD, json_path);
        return 1;
    }

    int rc = 1, max_mt = 0;
    for (int i = 0; i < n_mt; i++) max_mt = (int)mts[i] > max_mt ? (int)mts[i] : max_mt;
    duet_model *m = NULL;
    duet_tokenizer *tok = NULL;
    duet_backend *be = NULL;
    cnn_item *items = NULL;
    size_t n_items = 0;
    int **ids = NULL, *n_ids = NULL;
    breq *R = NULL;
    duet_w8a8 *w8 = NULL; /* --w8a8: seeded codes (calib/w8a8.h) */
    float *kv_scales = NULL; /* --kv-cache: placeholder scales */
    if (shape) {
        if (!(tok = duet_tokenizer_load(tok_dir))) goto done;
    } else if (cli_open_model(CMD, model_path, &m, &tok)) {
        goto done;
    }
    const duet_config *cfg = shape ? &syn : &m->cfg;
    if (cnn_load(data, 0, &items, &n_items)) goto done;
    ids = calloc(n_items, sizeof *ids);
    n_ids = calloc(n_items, sizeof *n_ids);
    R = calloc((size_t)n_req, sizeof *R);
    if (!ids || !n_ids || !R) {
        duet_errorf("out of memory");
        goto done;
    }
    int longest = 0;
    for (size_t i = 0; i < n_items; i++) {
        size_t n = 0;
        if (duet_tokenizer_encode(tok, items[i].article, items[i].article_len, 1, &ids[i], &n)) goto done;
        n_ids[i] = (int)n < max_input ? (int)n : max_input;
        if (n_ids[i] > longest) longest = n_ids[i];
    }
    const int ctx = longest + max_mt;
    if (ctx > cfg->max_pos) {
        duet_errorf("--max-input %d + --max-tokens %d = %d positions, beyond the model's %d", longest, max_mt, ctx,
                    cfg->max_pos);
        goto done;
    }
    duet_backend_opts bo = {.max_seqs = max_seqs, .max_ctx = ctx, .dtype = dtype, .threads = threads,
                            .batch_invariant = invariant < 0 ? strcmp(backend, "gpu") != 0 : invariant,
                            .kv_budget = kv_budget,
                            .kv_fraction = kv_fraction};
    if (w8mode != DUET_W8A8_NONE && !(w8 = duet_w8a8_random(&syn, w8mode, seed))) goto done;
    if (kvmode != DUET_KV_F && !(kv_scales = cli_kv_placeholder_scales(&syn, kvmode))) goto done;
    bo.w8a8 = w8, bo.kv_mode = kvmode, bo.kv_scales = kv_scales;
    if (shape) {
#ifdef DUET_HAVE_CUDA
        be = gpu_backend_create_random(&syn, &bo, seed, weights);
#else
        duet_errorf("--model-shape needs the gpu backend, and this build has no CUDA");
#endif
    } else {
        be = duet_backend_create(backend, m, &bo);
    }
    if (!be) goto done;
    fprintf(stderr, "duet %s: %s; %d requests, prompts %d tokens at most, max_tokens from {", CMD, be->summary, n_req,
            max_input);
    for (int i = 0; i < n_mt; i++) fprintf(stderr, "%s%d", i ? "," : "", (int)mts[i]);
    fprintf(stderr, "}, %d slots, budget %d, %s\n", max_seqs, budget,
            policy == DUET_SCHED_NO_EVICT ? "no-evict" : "max-utilization");
    char model_label[4200];
    if (shape) snprintf(model_label, sizeof model_label, "synthetic %s", shape);
    else snprintf(model_label, sizeof model_label, "%s", model_path);
    duet_sched_opts so = {.max_seqs = max_seqs, .max_ctx = ctx, .token_budget = budget, .policy = policy,
                          .kv_blocks = kv_blocks};
    fprintf(stderr, "%-9s %7s %8s %9s %9s %9s %9s %9s %9s %6s %8s %8s %8s\n", "mode", "rate", "tok/s", "ttft_p50",
            "ttft_p99", "itl_p50", "itl_p99", "e2e_p99", "wall_s", "peakKV", "preempt", "step_ms", "host_ms");
    for (int ri = 0; ri < n_rates; ri++) {
        uint64_t draw = 0;
        double t = 0.0;
        for (int i = 0; i < n_req; i++) {
            const size_t it = (size_t)i % n_items;
            R[i].prompt = ids[it];
            R[i].n_prompt = n_ids[it];
            double u = duet_rng_uniform(seed, draw++);
            R[i].max_tokens = (int)mts[(int)(u * n_mt) < n_mt ? (int)(u * n_mt) : n_mt - 1];
            if (rates[ri] > 0) {
                double v = 1.0 - duet_rng_uniform(seed, draw++); /* (0, 1] */
                t += -log(v) / rates[ri];
            }
            R[i].arrival = t;
            free(R[i].tok_t);
            if (!(R[i].tok_t = malloc(sizeof(double) * (size_t)R[i].max_tokens))) {
                duet_errorf("out of memory");
                goto done;
            }
        }
        for (int mode = 0; mode < (no_static ? 1 : 2); mode++) {
            run_result res = {0};
            if (run_stream(be, &so, R, n_req, mode, &res)) goto done;
            const char *name = mode ? "static" : "in-flight";
            fprintf(stderr, "%-9s %7.2f %8.1f %9.3f %9.3f %9.4f %9.4f %9.3f %9.2f %6d %8lld %8.3f %8.3f\n", name,
                    rates[ri], res.tok_s, res.ttft50, res.ttft99, res.itl50, res.itl99, res.e2e99, res.wall,
                    res.peak_blocks, (long long)res.preemptions, res.step_ms, res.step_ms - res.backend_ms);
            json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:i, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                                  "s:i, s:i, s:I, s:I, s:f, s:f}",
                                  "bench", "serve", "model", model_label, "weights", duet_qmode_get(weights)->name,
                                  "w8a8", duet_w8a8_mode_name(w8mode), "kv_cache", duet_kv_mode_name(kvmode),
                                  "batch_invariant", bo.batch_invariant ? "on" : "off",
                                  "mode", name, "backend", backend, "rate", rates[ri], "requests", n_req,
                                  "max_seqs", max_seqs, "token_budget", budget, "policy",
                                  policy == DUET_SCHED_NO_EVICT ? "no-evict" : "max-utilization", "generated",
                                  (json_int_t)res.generated, "tok_s", res.tok_s, "wall_s", res.wall, "ttft_p50_s",
                                  res.ttft50, "ttft_p99_s", res.ttft99, "itl_p50_s", res.itl50, "itl_p99_s", res.itl99,
                                  "e2e_p99_s", res.e2e99, "peak_kv_blocks", res.peak_blocks, "kv_blocks", res.blocks,
                                  "preemptions", (json_int_t)res.preemptions, "steps", (json_int_t)res.steps,
                                  "step_ms", res.step_ms, "sched_host_ms", res.step_ms - res.backend_ms);
            if (!o) {
                duet_errorf("cannot build the JSON line");
                goto done;
            }
            char *line = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            if (line) {
                printf("%s\n", line);
                if (jf) fprintf(jf, "%s\n", line);
                free(line);
            }
        }
    }
    rc = 0;
done:
    if (rc) cli_fail(CMD);
    for (int i = 0; R && i < n_req; i++) free(R[i].tok_t);
    free(R);
    for (size_t i = 0; ids && i < n_items; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    cnn_free(items, n_items);
    duet_backend_free(be);
    duet_w8a8_free(w8);
    free(kv_scales);
    if (tok) duet_tokenizer_free(tok);
    if (m) duet_model_close(m);
    if (jf) fclose(jf);
    return rc;
}
