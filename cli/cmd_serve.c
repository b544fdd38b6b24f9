/* cmd_serve.c: `duet serve`: an OpenAI-compatible HTTP server over the in-flight batching scheduler.
 * Loads the model, its tokenizer and chat template as `duet generate` does, creates the backend with
 * max-seqs slots of max-ctx positions, starts the engine thread (serve/engine.h) and the HTTP server
 * (serve/http_server.h), then waits for SIGTERM or SIGINT: it stops accepting, lets the running requests
 * finish and exits 0. */
#include "cli_util.h"
#include "commands.h"

#include "backend.h"
#include "chat.h"
#include "engine/registry.h"
#include "error.h"
#include "model.h"
#include "tokenizer.h"

#include "serve/engine.h"
#include "serve/http_server.h"
#include "serve/metrics.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "serve";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet serve [-m PATH] [--host ADDR] [--port N] [options]\n"
            "Serves the model over HTTP with OpenAI's API: POST /v1/completions, POST /v1/chat/completions\n"
            "(\"stream\": true for server-sent events), GET /v1/models, GET /health, GET /metrics (Prometheus).\n"
            "Requests are batched in flight, batch-invariant by default on the ref (a greedy reply does not depend\n"
            "on what else runs) and with --batch-invariant on on the gpu;\n"
            "SIGTERM or SIGINT lets the running ones finish, then exits.\n\n"
            "  -m, --model PATH        GGUF file or Hugging Face LLaMA folder (default: $DUET_MODEL, else\n"
            "                          " CLI_DEFAULT_MODEL ")\n"
            "      --host ADDR         address to listen on (default 127.0.0.1)\n"
            "      --port N            port (default 8000; 0: any free port, printed at startup)\n"
            "      --backend B         ref (CPU fp32 reference) or gpu (default ref)\n"
            "      --dtype T           fp32 (ref), fp16 or bf16 (gpu)\n"
            "      --threads N         CPU threads of the ref backend (default: the library's)\n"
            "      --max-seqs N        requests running at once, one KV slot each (default 8)\n"
            "      --max-ctx N         positions per request, prompt + max_tokens (default 2048, at most the\n"
            "                          model's)\n"
            "      --token-budget N    tokens per step: decode tokens and prefill chunks (default 512)\n"
            "      --policy P          no-evict (reserve prompt + max_tokens at admission) or max-utilization\n"
            "                          (admit on current need, preempt the newest when blocks run out;\n"
            "                          default no-evict)\n"
            "      --kv-budget B       the KV pool: bytes (512M, 2G) or a fraction of the memory free after the\n"
            "                          weights (0.9); default room for every slot full (max-seqs x max-ctx)\n"
            "      --batch-invariant on|off  each row's sums in one order whatever the batch (default: on for the ref,\n"
            "                          off for the gpu, where it costs throughput: README)\n"
            "      --kv-cache MODE, --w8a8 MODE, --sq-alpha A, --calib FILE  the calibrated modes, as duet generate\n"
            "                          (int8 / fp8 KV cache; sq, fp8, fp8-tensor W8A8; ref and gpu backends)\n"
            "      --api-key KEY       require 'Authorization: Bearer KEY' on /v1/*\n"
            "      --max-body BYTES    request body size limit (default 1048576; 413 beyond)\n"
            "      --max-tokens-limit N  max_tokens at most (default: --max-ctx; 400 beyond)\n"
            "      --max-concurrent N  generation requests at once, running or queued (default 64; 429 beyond)\n"
            "  -h, --help              this text\n\n"
            "example:\n"
            "  duet serve --port 8000 &\n"
            "  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
            "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}],\n"
            "            \"max_tokens\": 32, \"temperature\": 0}'\n");
}

/* The name the server answers to: the model file's or folder's name, without .gguf. */
static void model_id(const char *path, char *out, size_t n)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t k = len - start;
    if (k > 5 && !strncmp(path + len - 5, ".gguf", 5)) k -= 5;
    snprintf(out, n, "%.*s", (int)k, path + start);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},         {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},          {"backend", required_argument, 0, 'b'},
        {"dtype", required_argument, 0, 'd'},         {"threads", required_argument, 0, 'T'},
        {"max-seqs", required_argument, 0, 'S'},      {"max-ctx", required_argument, 0, 'C'},
        {"token-budget", required_argument, 0, 'B'},  {"policy", required_argument, 0, 'P'},
        {"api-key", required_argument, 0, 'K'},       {"max-body", required_argument, 0, 'Y'},
        {"max-tokens-limit", required_argument, 0, 'L'}, {"max-concurrent", required_argument, 0, 'N'},
        {"kv-budget", required_argument, 0, 'V'},     {"help", no_argument, 0, 'h'},
        {"batch-invariant", required_argument, 0, 'I'}, {"kv-cache", required_argument, 0, 256},
        {"w8a8", required_argument, 0, 257},          {"sq-alpha", required_argument, 0, 258},
        {"calib", required_argument, 0, 259},         {0, 0, 0, 0}};
    cli_quant_flags qf = {0};
    cli_quant qm = {0};
    const char *model_path = NULL, *host = "127.0.0.1", *backend = "ref", *dtype = NULL, *api_key = NULL;
    int port = 8000, threads = 0, max_seqs = 8, max_ctx = 0, token_budget = 512, max_body = 1 << 20;
    int max_tokens_limit = 0, max_concurrent = 64, invariant = -1;
    int64_t kv_budget = 0;
    double kv_fraction = 0.0;
    duet_sched_policy policy = DUET_SCHED_NO_EVICT;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'H': host = optarg; break;
        case 'p': if (cli_int(CMD, "--port", optarg, 0, 65535, &port)) return 2; break;
        case 'b': backend = optarg; break;
        case 'd': if (cli_mode(CMD, "--dtype", optarg)) return 2; dtype = optarg; break;
        case 'T': if (cli_int(CMD, "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'S': if (cli_int(CMD, "--max-seqs", optarg, 1, 4096, &max_seqs)) return 2; break;
        case 'C': if (cli_int(CMD, "--max-ctx", optarg, 2, 1 << 24, &max_ctx)) return 2; break;
        case 'B': if (cli_int(CMD, "--token-budget", optarg, 1, 1 << 24, &token_budget)) return 2; break;
        case 'P':
            if (!strcmp(optarg, "no-evict")) policy = DUET_SCHED_NO_EVICT;
            else if (!strcmp(optarg, "max-utilization")) policy = DUET_SCHED_MAX_UTIL;
            else {
                fprintf(stderr, "duet %s: --policy '%s' is not a policy: no-evict or max-utilization\n", CMD, optarg);
                return 2;
            }
            break;
        case 'K':
            if (!*optarg) {
                fprintf(stderr, "duet %s: --api-key is empty\n", CMD);
                return 2;
            }
            api_key = optarg;
            break;
        case 'Y': if (cli_int(CMD, "--max-body", optarg, 64, 1 << 30, &max_body)) return 2; break;
        case 'L': if (cli_int(CMD, "--max-tokens-limit", optarg, 1, 1 << 24, &max_tokens_limit)) return 2; break;
        case 'N': if (cli_int(CMD, "--max-concurrent", optarg, 1, 1 << 16, &max_concurrent)) return 2; break;
        case 'V': if (cli_kv_budget(CMD, optarg, &kv_budget, &kv_fraction)) return 2; break;
        case 'I': if (cli_on_off(CMD, "--batch-invariant", optarg, &invariant)) return 2; break;
        case 256: qf.kv_cache = optarg; break;
        case 257: qf.w8a8 = optarg; break;
        case 258: qf.sq_alpha = optarg; break;
        case 259: qf.calib = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'\n", CMD, argv[optind]);
        return 2;
    }
    if (token_budget < max_seqs) {
        fprintf(stderr, "duet %s: --token-budget %d is below --max-seqs %d (each running request decodes one token a step)\n",
                CMD, token_budget, max_seqs);
        return 2;
    }
    if (duet_backend_check(backend)) return cli_fail(CMD); /* before the model is loaded */
    if (!(model_path = cli_model_or_default(CMD, model_path))) return 2;

    int rc = 1;
    duet_model *m = NULL;
    duet_tokenizer *tok = NULL;
    duet_backend *be = NULL;
    duet_chat_template tmpl = {0};
    int have_tmpl = 0, end_id = -1;
    srv_metrics metrics;
    srv_metrics_init(&metrics);
    srv_engine *eng = NULL;
    srv_http *http = NULL;
    char id[256];
    model_id(model_path, id, sizeof id);
    if (cli_open_model(CMD, model_path, &m, &tok)) goto done;
    if (cli_chat_template(m, tok, &tmpl, &end_id) == 0) {
        have_tmpl = 1;
    } else {
        fprintf(stderr, "duet %s: %s: /v1/chat/completions answers 400\n", CMD, duet_error());
        duet_chat_template_free(&tmpl);
        memset(&tmpl, 0, sizeof tmpl);
        end_id = -1;
    }
    if (!max_ctx) max_ctx = m->cfg.max_pos < 2048 ? m->cfg.max_pos : 2048;
    if (max_ctx > m->cfg.max_pos) {
        fprintf(stderr, "duet %s: --max-ctx %d is beyond the model's %d positions\n", CMD, max_ctx, m->cfg.max_pos);
        rc = 2;
        goto done;
    }
    if (!max_tokens_limit || max_tokens_limit > max_ctx - 1) max_tokens_limit = max_ctx - 1;
    /* batch-invariant: a reply must not depend on what else is in the batch (greedy replies equal duet
     * generate's whatever the load). The default on the ref, where it costs prefill speed (one sgemv per row)
     * and nothing is raced; off by default on the gpu, where it costs throughput (pinned GEMMs, no fused
     * GEMV, no attention split) and replies can differ from a solo run's in the last bits with the load */
    if (invariant < 0) invariant = strcmp(backend, "gpu") != 0;
    duet_backend_opts bo = {.max_seqs = max_seqs, .max_ctx = max_ctx, .dtype = dtype, .threads = threads,
                            .batch_invariant = invariant, .kv_budget = kv_budget,
                            .kv_fraction = kv_fraction};
    if ((rc = cli_quant_modes(CMD, &qf, m, &qm))) goto done_quiet;
    rc = 1;
    bo.kv_mode = qm.kv_mode, bo.kv_scales = qm.kv_scales, bo.w8a8 = qm.w8a8;
    if (!(be = duet_backend_create(backend, m, &bo))) goto done;
    fprintf(stderr, "[%s] %s\n", be->name, be->summary);

    /* SIGTERM and SIGINT are taken by sigwait below, on this thread only: blocked before any thread starts,
     * so that every thread inherits the mask. A client that goes away must not kill the server. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    duet_sched_opts so = {.max_seqs = max_seqs, .max_ctx = max_ctx, .token_budget = token_budget, .policy = policy,
                          .max_waiting = max_concurrent, .tokenizer = tok};
    if (!(eng = srv_engine_start(be, &so, &metrics))) goto done;
    srv_config cfg = {.host = host, .port = port, .api_key = api_key, .max_body = (size_t)max_body,
                      .max_tokens_limit = max_tokens_limit, .max_concurrent = max_concurrent, .max_ctx = max_ctx,
                      .model_id = id, .tok = tok, .tmpl = have_tmpl ? &tmpl : NULL, .chat_end_id = end_id,
                      .eos_id = cli_eos_id(tok, m), .bos_id = duet_tokenizer_bos_id(tok) >= 0 ? duet_tokenizer_bos_id(tok)
                                                                                         : m->cfg.bos_id};
    if (!(http = srv_http_start(&cfg, eng, &metrics))) goto done;
    fprintf(stderr, "serve: listening on http://%s:%d (model %s; %d slots of %d positions, %s)\n", host,
            srv_http_port(http), id, max_seqs, max_ctx, policy == DUET_SCHED_NO_EVICT ? "no-evict" : "max-utilization");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "serve: %s: draining (no new connections; running requests finish)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_http_drain(http);
    srv_http_stop(http);
    http = NULL;
    fprintf(stderr, "serve: drained; exiting\n");
    rc = 0;
done:
    if (rc == 1) cli_fail(CMD);
done_quiet: /* cli_quant_modes printed its own error */
    srv_http_stop(http);
    srv_engine_stop(eng);
    srv_metrics_destroy(&metrics);
    duet_chat_template_free(&tmpl);
    duet_backend_free(be);
    duet_tokenizer_free(tok);
    duet_model_close(m);
    cli_quant_free(&qm);
    return rc;
}
