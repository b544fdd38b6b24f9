/* cmd_bench.c: `duet bench`: throughput and latency of the gpu backend on a synthetic LLaMA (LLaMA-7B's
 * shapes by default) with random weights generated on the GPU, or on a model file (-m). Per (batch, input/output) case: one packed
 * prefill of batch x input tokens (tokens/s), greedy decode steps of the whole batch on the GPU (ms per
 * step), end to end (prefill + output - 1 decode steps, as HF generate), and the GPU memory it took.
 * Before the cases it measures the device's ceilings in the same run (copy bandwidth, cuBLAS fp16 GEMM
 * rate) and the engine's GEMM time per decode step. Optionally compares with scripts/hf_baseline.py's
 * JSON lines. JSON lines on stdout (and --json FILE), a table on stderr. */
#include "build_config.h"
#include "cli_util.h"
#include "commands.h"

#include "backend.h"
#include "calib/w8a8.h"
#include "config.h"
#include "error.h"
#include "generate.h"
#include "kvquant.h"
#include "model.h"
#include "rng.h"
#ifdef DUET_HAVE_CUDA
#include "gpu/bench_gpu.h"
#include "gpu/gpu_backend.h"
#endif

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "bench";

#define MAX_LIST 16

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet bench [options]\n"
            "Benchmarks the gpu backend on a synthetic LLaMA with random weights made on the GPU: per batch size\n"
            "and input/output length, prefill tokens/s (one packed prefill of batch x input tokens), greedy\n"
            "decode ms per step of the whole batch, end-to-end seconds (prefill + output-1 decode steps, as HF\n"
            "generate) and peak GPU memory; medians of --repeat runs after a warm-up. Also measures the device's\n"
            "copy bandwidth and cuBLAS fp16 GEMM peak (the ceilings) and the GEMM time of one decode step.\n"
            "One JSON object per line on stdout, a table on stderr. `duet bench --serve --help`: the request-stream\n"
            "benchmark of the in-flight batching scheduler.\n\n"
            "      --model-shape S   7b (LLaMA-7B: hidden 4096, ffn 11008, 32 layers, 32 heads, vocab 32000;\n"
            "                        default) or tiny (hidden 256, ffn 688, 4 layers, 8 heads, vocab 32000)\n"
            "      --dim N --ffn N --layers N --heads N --kv-heads N --vocab N   override one dimension\n"
            "  -m, --model PATH      benchmark this model (GGUF file or HF folder) instead of a synthetic one: its\n"
            "                        shapes and weights (random prompt tokens); --weights none = as stored (a\n"
            "                        Q4_1 GGUF runs natively), a mode = requantized from it in memory\n"
            "  -b, --batch LIST      batch sizes, comma-separated (default 1,8,64)\n"
            "  -l, --lengths LIST    input/output token counts (default 8/50,923/100)\n"
            "  -r, --repeat N        timed runs per case, median reported (default 3)\n"
            "      --dtype T         fp16 (default) or bf16 activations\n"
            "      --weights LIST    weight modes, comma-separated, each benchmarked in turn: none (dense in the\n"
            "                        activation dtype, the default) or a weight-only mode: %s;\n"
            "                        the layer matrices are built in that mode's layout from seeded codes\n"
            "      --kv-cache LIST   KV cache storages, comma-separated, each benchmarked in turn: none (the\n"
            "                        activation dtype, the default), int8, fp8 (1-byte codes, common/kvquant.h);\n"
            "                        timing only: every head's scale is a placeholder (max |x| 8), not calibrated\n"
            "      --w8a8 MODE       W8A8 layer products (synthetic model, --weights none): sq (SmoothQuant int8),\n"
            "                        fp8 (E4M3 per channel x per token), fp8-tensor (per tensor, static); seeded\n"
            "                        codes and scales, timing only (FP8: compute capability 8.9 or newer)\n"
            "      --seed S          weights and prompt tokens (default 1)\n"
            "      --json FILE       also write the JSON lines to FILE\n"
            "      --hf-baseline F   JSON lines of scripts/hf_baseline.py: add HF's numbers and the speedups\n"
            "      --no-ceilings     skip the ceiling and GEMM measurements\n"
            "  -h, --help            this text\n\n"
            "example:\n"
            "  duet bench --batch 1,8,64 --lengths 8/50,923/100 --json duet_bench.jsonl \\\n"
            "             --hf-baseline hf_baseline.jsonl\n"
            "  duet bench --model-shape tiny --batch 4 --lengths 16/8 --repeat 2\n"
            "  duet bench --batch 1,8,64 --weights none,int8,q8_0,int4-g128,q4_0,q4_1\n"
            "  duet bench --batch 64 --lengths 923/100 --kv-cache none,int8,fp8\n"
            "  duet bench --batch 1,64 --lengths 8/50,923/100 --w8a8 fp8 --kv-cache none,fp8\n"
            "  duet bench -m models/SmolLM2-135M-Instruct.Q4_1.gguf --batch 1,8 --lengths 128/64 --weights none,int8\n",
            duet_qmode_list());
}

static int parse_list(const char *flag, const char *s, int *a, int *b, int *n, int pairs)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        long x = strtol(tok, &end, 10), y = 0;
        int ok = end != tok && x > 0 && x <= 1 << 20;
        if (ok && pairs) {
            ok = *end == '/';
            if (ok) {
                char *e2 = NULL;
                y = strtol(end + 1, &e2, 10);
                ok = e2 != end + 1 && *e2 == 0 && y > 0 && y <= 1 << 20;
            }
        } else if (ok) {
            ok = *end == 0;
        }
        if (!ok || *n == MAX_LIST) {
            fprintf(stderr, "duet %s: %s: '%s' is not a list of %s (at most %d)\n", CMD, flag, s,
                    pairs ? "IN/OUT pairs such as 8/50,923/100" : "positive integers such as 1,8,64", MAX_LIST);
            return -1;
        }
        a[*n] = (int)x;
        if (pairs) b[*n] = (int)y;
        (*n)++;
    }
    if (*n == 0) {
        fprintf(stderr, "duet %s: %s: empty list\n", CMD, flag);
        return -1;
    }
    return 0;
}

/* ---- the HF baseline file: flat JSON objects, one a line ------------------------------------------ */

typedef struct hf_row {
    int batch, input, output;
    double prefill_tok_s, decode_ms, e2e_s, peak_gib;
} hf_row;

static int json_num(const char *line, const char *key, double *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == ':') p++;
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p) return -1;
    *out = v;
    return 0;
}

static int read_hf(const char *path, hf_row **rows, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return duet_errorf("--hf-baseline %s: cannot open", path);
    char line[4096];
    int cap = 0, ln = 0;
    *rows = NULL;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (line[0] != '{') continue;
        double b, i, o;
        hf_row r;
        if (json_num(line, "batch", &b) || json_num(line, "input", &i) || json_num(line, "output", &o) ||
            json_num(line, "prefill_tok_s", &r.prefill_tok_s) || json_num(line, "decode_ms_per_token", &r.decode_ms) ||
            json_num(line, "e2e_s", &r.e2e_s)) {
            fclose(f);
            free(*rows);
            return duet_errorf("--hf-baseline %s: line %d: missing batch/input/output/prefill_tok_s/"
                               "decode_ms_per_token/e2e_s",
                               path, ln);
        }
        if (json_num(line, "peak_mem_gib", &r.peak_gib)) r.peak_gib = 0;
        r.batch = (int)b, r.input = (int)i, r.output = (int)o;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            hf_row *nr = realloc(*rows, sizeof(hf_row) * cap);
            if (!nr) {
                fclose(f);
                free(*rows);
                return duet_errorf("out of memory");
            }
            *rows = nr;
        }
        (*rows)[(*n)++] = r; /* a later line for the same case wins */
    }
    fclose(f);
    return 0;
}

static const hf_row *find_hf(const hf_row *rows, int n, int b, int i, int o)
{
    const hf_row *hit = NULL;
    for (int k = 0; k < n; k++)
        if (rows[k].batch == b && rows[k].input == i && rows[k].output == o) hit = &rows[k];
    return hit;
}

/* ---- the benchmark ------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void emit(FILE *a, FILE *b, const char *line)
{
    fputs(line, a);
    if (b) fputs(line, b);
}

typedef struct case_result {
    double prefill_s, decode_ms, e2e_s, peak_gib, prefill_tflops;
    int deterministic;
} case_result;

#ifdef DUET_HAVE_CUDA
/* Matmul FLOPs of a prefill of B sequences of n tokens (lm_head on the last token of each) plus the
 * causal attention FLOPs (QK^T and PV over the positions actually attended). */
static double prefill_flops(const duet_config *c, int B, int n)
{
    double D = c->dim, F = c->ffn_dim, Hd = (double)c->n_heads * c->head_dim,
           Q = (double)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim, T = (double)B * n;
    double per_tok = c->n_layers * (D * Q + Hd * D + 3.0 * D * F);
    double attn = c->n_layers * 4.0 * Hd * (double)B * n * (n + 1) / 2.0;
    return 2.0 * per_tok * T + 2.0 * B * D * c->vocab_size + attn;
}

/* Bytes one decode step reads of the weights in mode q: the layer matrices in the mode's codes, fp16 scales
 * (and zero points or mins) per group, plus lm_head in fp16. */
static double weight_bytes(const duet_config *c, duet_qmode q)
{
    const duet_qmode_info *m = duet_qmode_get(q);
    double D = c->dim, F = c->ffn_dim, Hd = (double)c->n_heads * c->head_dim,
           Q = (double)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    const double NK[4][2] = {{Q, D}, {D, Hd}, {2 * F, D}, {D, F}};
    double layer = 0;
    for (int i = 0; i < 4; i++) {
        double n = NK[i][0] * NK[i][1];
        if (q == DUET_Q_NONE) {
            layer += 2 * n;
        } else {
            double groups = n / (m->group ? m->group : NK[i][1]);
            layer += n * m->bits / 8 + groups * (2 + (m->has_zeros ? 1 : 0) + (q == DUET_Q_Q4_1 ? 2 : 0));
        }
    }
    return c->n_layers * layer + 2.0 * c->vocab_size * D;
}

/* The weights column of a W8A8 run (9 characters at most). */
static const char *w8_column(duet_w8a8_mode m)
{
    return m == DUET_W8A8_SQ ? "w8a8-sq" : m == DUET_W8A8_FP8 ? "w8a8-fp8" : "w8a8-f8t";
}

/* One case on the synthetic model (model NULL: random weights of shape c in mode `weights`) or on a loaded
 * model (already in its mode; c = its config). */
static int run_case(const duet_config *c, const duet_model *model, const char *dtype, duet_qmode weights,
                    duet_kv_mode kv, const duet_w8a8 *w8, uint64_t seed, int B, int n_in, int n_out, int repeat,
                    case_result *res)
{
    size_t free0 = 0, free1 = 0;
    if (gpu_device_info(NULL, 0, &free0, NULL, NULL)) return -1;
    float *kv_scales = cli_kv_placeholder_scales(c, kv);
    if (!kv_scales) return -1;
    duet_backend_opts o = {.max_seqs = B, .max_ctx = n_in + n_out, .dtype = dtype, .kv_mode = kv, .kv_scales = kv_scales,
                           .w8a8 = w8};
    duet_backend *be = model ? gpu_backend_create(model, &o) : gpu_backend_create_random(c, &o, seed, weights);
    if (!be) {
        free(kv_scales);
        return -1;
    }
    int T = B * n_in, steps = n_out - 1, rc = -1;
    int *tok = malloc(sizeof(int) * T), *pos = malloc(sizeof(int) * T), *seq = malloc(sizeof(int) * T);
    uint8_t *want = calloc(T, 1);
    int *first = malloc(sizeof(int) * B), *dpos = malloc(sizeof(int) * B), *slots = malloc(sizeof(int) * B);
    int *ids = malloc(sizeof(int) * ((size_t)B * (steps > 0 ? steps : 1))),
        *ids0 = malloc(sizeof(int) * ((size_t)B * (steps > 0 ? steps : 1)));
    double *tp = malloc(sizeof(double) * repeat), *td = malloc(sizeof(double) * repeat),
           *te = malloc(sizeof(double) * repeat);
    if (!tok || !pos || !seq || !want || !first || !dpos || !slots || !ids || !ids0 || !tp || !td || !te) {
        duet_errorf("out of host memory");
        goto out;
    }
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < n_in; i++) {
            int t = b * n_in + i;
            tok[t] = 3 + (int)(duet_rng_u64(seed + 1000, (uint64_t)t) % (uint64_t)(c->vocab_size - 3));
            pos[t] = i;
            seq[t] = b;
        }
        want[b * n_in + n_in - 1] = 1;
        slots[b] = b;
        dpos[b] = n_in;
    }
    duet_batch batch = {T, tok, pos, seq, want};
    res->deterministic = 1;
    for (int r = -1; r < repeat; r++) { /* r = -1: warm-up (graph capture, cuBLAS heuristics) */
        double t0 = duet_now();
        if (gpu_backend_forward_argmax(be, &batch, first)) goto out;
        double t1 = duet_now();
        if (steps > 0 && gpu_backend_decode_greedy(be, B, slots, dpos, first, steps, ids)) goto out;
        double t2 = duet_now();
        if (r < 0) {
            memcpy(ids0, ids, sizeof(int) * (size_t)B * (steps > 0 ? steps : 1));
            continue;
        }
        if (steps > 0 && memcmp(ids0, ids, sizeof(int) * (size_t)B * steps)) res->deterministic = 0;
        te[r] = t2 - t0;
        td[r] = steps > 0 ? (t2 - t1) / steps : 0;
        /* the prefill alone, timed on its own as well (the end-to-end run includes it) */
        double t3 = duet_now();
        if (gpu_backend_forward_argmax(be, &batch, first)) goto out;
        tp[r] = duet_now() - t3;
    }
    for (int k = 0; k < B * (steps > 0 ? steps : 0); k++)
        if (ids[k] < 0 || ids[k] >= c->vocab_size) {
            duet_errorf("bench: decode produced token id %d outside the vocabulary", ids[k]);
            goto out;
        }
    if (gpu_device_info(NULL, 0, &free1, NULL, NULL)) goto out;
    res->prefill_s = median(tp, repeat);
    res->decode_ms = 1e3 * median(td, repeat);
    res->e2e_s = median(te, repeat);
    res->peak_gib = (double)(free0 > free1 ? free0 - free1 : 0) / (1024.0 * 1024 * 1024);
    res->prefill_tflops = prefill_flops(c, B, n_in) / res->prefill_s / 1e12;
    rc = 0;
out:
    free(tok), free(pos), free(seq), free(want), free(first), free(dpos), free(slots), free(ids), free(ids0);
    free(tp), free(td), free(te);
    duet_backend_free(be);
    free(kv_scales);
    return rc;
}
#endif

int cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* the request-stream benchmark of the scheduler (cmd_bench_serve.c) */
        if (!strcmp(argv[i], "--serve")) return cmd_bench_serve(argc, argv);
    static const struct option opts[] = {
        {"model-shape", required_argument, 0, 'S'}, {"dim", required_argument, 0, 'D'},
        {"ffn", required_argument, 0, 'F'},         {"layers", required_argument, 0, 'L'},
        {"heads", required_argument, 0, 'H'},       {"kv-heads", required_argument, 0, 'K'},
        {"vocab", required_argument, 0, 'V'},       {"batch", required_argument, 0, 'b'},
        {"lengths", required_argument, 0, 'l'},     {"repeat", required_argument, 0, 'r'},
        {"dtype", required_argument, 0, 'd'},       {"seed", required_argument, 0, 's'},
        {"json", required_argument, 0, 'j'},        {"hf-baseline", required_argument, 0, 'f'},
        {"no-ceilings", no_argument, 0, 'n'},       {"help", no_argument, 0, 'h'},
        {"weights", required_argument, 0, 'w'},     {"model", required_argument, 0, 'm'},
        {"kv-cache", required_argument, 0, 'k'},    {"w8a8", required_argument, 0, 'W'},
        {0, 0, 0, 0}};
    duet_config c;
    cli_model_shape(CMD, "7b", &c);
    int dim = 0, ffn = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, repeat = 3, ceilings = 1;
    int batches[MAX_LIST] = {1, 8, 64}, n_batch = 3, ins[MAX_LIST] = {8, 923}, outs[MAX_LIST] = {50, 100}, n_len = 2;
    const char *dtype = "fp16", *json_path = NULL, *hf_path = NULL, *model_path = NULL;
    int shape_given = 0; /* a synthetic shape flag: not with -m */
    uint64_t seed = 1;
    duet_qmode modes[DUET_Q_N_MODES] = {DUET_Q_NONE};
    int n_modes = 1;
    duet_kv_mode kvs[3] = {DUET_KV_F};
    int n_kv = 1;
    duet_w8a8_mode w8mode = DUET_W8A8_NONE;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:b:l:r:h", opts, NULL)) != -1) {
        if (strchr("SDFLHKV", ch)) shape_given = 1;
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'S':
            if (cli_model_shape(CMD, optarg, &c)) return 2;
            break;
        case 'D': if (cli_int(CMD, "--dim", optarg, 8, 1 << 16, &dim)) return 2; break;
        case 'F': if (cli_int(CMD, "--ffn", optarg, 8, 1 << 18, &ffn)) return 2; break;
        case 'L': if (cli_int(CMD, "--layers", optarg, 1, 1024, &layers)) return 2; break;
        case 'H': if (cli_int(CMD, "--heads", optarg, 1, 1024, &heads)) return 2; break;
        case 'K': if (cli_int(CMD, "--kv-heads", optarg, 1, 1024, &kv_heads)) return 2; break;
        case 'V': if (cli_int(CMD, "--vocab", optarg, 4, 1 << 22, &vocab)) return 2; break;
        case 'b': if (parse_list("--batch", optarg, batches, NULL, &n_batch, 0)) return 2; break;
        case 'l': if (parse_list("--lengths", optarg, ins, outs, &n_len, 1)) return 2; break;
        case 'r': if (cli_int(CMD, "--repeat", optarg, 1, 1000, &repeat)) return 2; break;
        case 'd':
            if (strcmp(optarg, "fp16") && strcmp(optarg, "bf16")) {
                fprintf(stderr, "duet %s: --dtype: '%s' unknown (expected fp16 or bf16)\n", CMD, optarg);
                return 2;
            }
            dtype = optarg;
            break;
        case 's': if (cli_u64(CMD, "--seed", optarg, &seed)) return 2; break;
        case 'w': {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            n_modes = 0;
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                duet_qmode q;
                if (duet_qmode_parse(tok, &q)) {
                    fprintf(stderr, "duet %s: --weights: %s\n", CMD, duet_error());
                    return 2;
                }
                if (n_modes == DUET_Q_N_MODES) {
                    fprintf(stderr, "duet %s: --weights: at most %d modes\n", CMD, DUET_Q_N_MODES);
                    return 2;
                }
                modes[n_modes++] = q;
            }
            if (!n_modes) {
                fprintf(stderr, "duet %s: --weights: empty list\n", CMD);
                return 2;
            }
            break;
        }
        case 'k': {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            n_kv = 0;
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n_kv == 3) {
                    fprintf(stderr, "duet %s: --kv-cache: at most 3 modes (none, int8, fp8)\n", CMD);
                    return 2;
                }
                if (duet_kv_mode_parse(tok, &kvs[n_kv])) {
                    fprintf(stderr, "duet %s: --kv-cache: %s\n", CMD, duet_error());
                    return 2;
                }
                n_kv++;
            }
            if (!n_kv) {
                fprintf(stderr, "duet %s: --kv-cache: empty list\n", CMD);
                return 2;
            }
            break;
        }
        case 'W':
            if (duet_w8a8_mode_parse(optarg, &w8mode)) {
                fprintf(stderr, "duet %s: --w8a8: %s\n", CMD, duet_error());
                return 2;
            }
            break;
        case 'j': json_path = optarg; break;
        case 'f': hf_path = optarg; break;
        case 'n': ceilings = 0; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'; see duet %s --help\n", CMD, argv[optind], CMD);
        return 2;
    }
    if (w8mode != DUET_W8A8_NONE && (model_path || n_modes > 1 || modes[0] != DUET_Q_NONE)) {
        fprintf(stderr, "duet %s: --w8a8 times seeded W8A8 layers of the synthetic model: it goes without -m and "
                        "--weights (a model's W8A8 needs its calibration: duet eval / generate --w8a8 --calib)\n", CMD);
        return 2;
    }
    duet_model *probe = NULL; /* -m: the model's shapes (its weights are loaded per mode below) */
    if (model_path) {
        if (shape_given) {
            fprintf(stderr, "duet %s: --model-shape and the dimension flags describe the synthetic model, not -m %s\n",
                    CMD, model_path);
            return 2;
        }
        if (cli_open_model(CMD, model_path, &probe, NULL)) return cli_fail(CMD);
        c = probe->cfg;
        duet_model_close(probe);
        for (int i = 0; i < n_len; i++)
            if (ins[i] + outs[i] > c.max_pos) {
                fprintf(stderr, "duet %s: --lengths %d/%d: %d positions, more than %s's %d\n", CMD, ins[i], outs[i],
                        ins[i] + outs[i], model_path, c.max_pos);
                return 2;
            }
    }
    if (dim) c.dim = dim;
    if (ffn) c.ffn_dim = ffn;
    if (layers) c.n_layers = layers;
    if (heads) c.n_heads = heads;
    if (kv_heads) c.n_kv_heads = kv_heads;
    if (vocab) c.vocab_size = vocab;
    if (!kv_heads && c.n_kv_heads > c.n_heads) c.n_kv_heads = c.n_heads;
    c.head_dim = c.dim / c.n_heads;
    for (int i = 0; i < n_len && !model_path; i++)
        if (ins[i] + outs[i] > c.max_pos) c.max_pos = ins[i] + outs[i];
    if (c.dim % c.n_heads || duet_config_validate(&c, "duet bench shape")) {
        if (c.dim % c.n_heads) duet_errorf("--dim %d is not a multiple of --heads %d", c.dim, c.n_heads);
        return cli_fail(CMD);
    }
    hf_row *hf = NULL;
    int n_hf = 0;
    if (hf_path && read_hf(hf_path, &hf, &n_hf)) return cli_fail(CMD);
#ifndef DUET_HAVE_CUDA
    (void)modes, (void)n_modes, (void)kvs, (void)n_kv, (void)w8mode, (void)repeat, (void)model_path, (void)ceilings, (void)json_path, (void)dtype, (void)find_hf, (void)emit, (void)median, (void)seed;
    free(hf);
    fprintf(stderr, "duet %s: the gpu backend is not built (configure found no nvcc): duet bench measures the gpu "
                    "backend only; rebuild with --with-cuda on a machine with the CUDA toolkit\n", CMD);
    return 1;
#else
    char gpu[256], line[2048];
    size_t free_b = 0, total_b = 0;
    int n_sm = 0;
    if (gpu_device_count(NULL, 0) == 0) {
        char why[256];
        gpu_device_count(why, sizeof why);
        free(hf);
        fprintf(stderr, "duet %s: no CUDA device (%s)\n", CMD, why);
        return 1;
    }
    if (gpu_device_info(gpu, sizeof gpu, &free_b, &total_b, &n_sm)) {
        free(hf);
        return cli_fail(CMD);
    }
    FILE *jf = NULL;
    case_result *res = NULL;
    duet_w8a8 *w8 = NULL; /* --w8a8: seeded codes for every layer, made once */
    if (json_path && !(jf = fopen(json_path, "w"))) {
        free(hf);
        duet_errorf("--json %s: cannot open for writing", json_path);
        return cli_fail(CMD);
    }
    gpu_dtype dt = strcmp(dtype, "bf16") ? GPU_F16 : GPU_BF16;
    fprintf(stderr, "# duet bench: %s (%d SMs, %.1f GiB free of %.1f), %s, model dim %d ffn %d layers %d heads %d/%d "
                    "vocab %d\n", gpu, n_sm, free_b / 1073741824.0, total_b / 1073741824.0, dtype, c.dim, c.ffn_dim,
            c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size);
    double copy_gbps = 0, peak_tflops = 0;
    if (ceilings) {
        double ms = 0;
        const int G = 8192;
        if (gpu_measure_copy((size_t)2 << 30, 10, &copy_gbps) || gpu_measure_gemm(G, G, G, dt, DUET_Q_NONE, GPU_PATH_CUBLAS, 10, &ms)) goto fail;
        peak_tflops = 2.0 * G * G * (double)G / (ms * 1e-3) / 1e12;
        double wbytes = weight_bytes(&c, DUET_Q_NONE);
        snprintf(line, sizeof line,
                 "{\"kind\": \"ceilings\", \"gpu\": \"%s\", \"copy_GBps\": %.1f, \"gemm_tflops\": %.1f, "
                 "\"gemm_shape\": [%d, %d, %d], \"dtype\": \"%s\", \"decode_weight_GB\": %.3f, "
                 "\"decode_floor_ms\": %.3f}\n",
                 gpu, copy_gbps, peak_tflops, G, G, G, dtype, wbytes / 1e9, wbytes / (copy_gbps * 1e9) * 1e3);
        emit(stdout, jf, line);
        fprintf(stderr, "# ceilings: copy %.0f GB/s (read + write), cuBLAS %s GEMM %dx%dx%d %.0f TFLOP/s; decode "
                        "weight bytes %.2f GB -> floor %.2f ms/step\n",
                copy_gbps, dtype, G, G, G, peak_tflops, wbytes / 1e9, wbytes / (copy_gbps * 1e9) * 1e3);
        /* the GEMMs of one decode step per weight mode and batch size: the engine's choice, cuBLAS alone (on
         * W dequantized to dt for a quantized mode), the GEMV kernel (B <= 8; at B = 1 with quantized weights
         * also the register GEMV, the bulk-copy one's predecessor), the tensor-core qmma
         * (quantized, B <= 64), batch-invariant mode's pinned products (--batch-invariant's cost) */
        const int Q = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim, Hd = c.n_heads * c.head_dim;
        const int shp[5][3] = {{Q, c.dim, c.n_layers}, {c.dim, Hd, c.n_layers}, {2 * c.ffn_dim, c.dim, c.n_layers},
                               {c.dim, c.ffn_dim, c.n_layers}, {c.vocab_size, c.dim, 1}};
        for (int mi = 0; mi < n_modes; mi++) {
            const char *mname = duet_qmode_get(modes[mi])->name;
            double mbytes = weight_bytes(&c, modes[mi]);
            for (int bi = 0; bi < n_batch; bi++) {
                int B = batches[bi];
                const gpu_gemm_path paths[6] = {GPU_PATH_ENGINE, GPU_PATH_CUBLAS, GPU_PATH_GEMV, GPU_PATH_QMMA,
                                                GPU_PATH_INVARIANT, GPU_PATH_GEMV_REGS};
                double tot[6] = {0, 0, 0, 0, 0, 0}; /* < 0: the path does not take this case */
                for (int path = 0; path < 6; path++) {
                    if ((paths[path] == GPU_PATH_GEMV && B > 8) ||
                        (paths[path] == GPU_PATH_GEMV_REGS && (B != 1 || modes[mi] == DUET_Q_NONE)) ||
                        (paths[path] == GPU_PATH_QMMA && (B > 64 || modes[mi] == DUET_Q_NONE))) {
                        tot[path] = -1;
                        continue;
                    }
                    for (int k = 0; k < 5; k++) {
                        double m = 0;
                        duet_qmode q = k == 4 ? DUET_Q_NONE : modes[mi]; /* lm_head stays dense */
                        /* lm_head is dense: qmma does not take it, the engine's choice stands in */
                        gpu_gemm_path p = k == 4 && paths[path] == GPU_PATH_QMMA ? GPU_PATH_ENGINE : paths[path];
                        if (gpu_measure_gemm(B, shp[k][0], shp[k][1], dt, q, p, 20, &m)) goto fail;
                        tot[path] += m * shp[k][2];
                    }
                }
                char gv[32] = "null", qm[32] = "null", gr[32] = "null"; /* null: the path does not take this case */
                if (tot[2] >= 0) snprintf(gv, sizeof gv, "%.3f", tot[2]);
                if (tot[5] >= 0) snprintf(gr, sizeof gr, "%.3f", tot[5]);
                if (tot[3] >= 0) snprintf(qm, sizeof qm, "%.3f", tot[3]);
                snprintf(line, sizeof line,
                         "{\"kind\": \"decode_gemms\", \"weights\": \"%s\", \"batch\": %d, \"weight_GB\": %.3f, "
                         "\"floor_ms\": %.3f, \"engine_ms_per_step\": %.3f, \"cublas_ms_per_step\": %.3f, "
                         "\"gemv_ms_per_step\": %s, \"gemv_regs_ms_per_step\": %s, \"qmma_ms_per_step\": %s, "
                         "\"invariant_ms_per_step\": %.3f, \"GBps\": %.1f, \"pct_of_copy\": %.1f}\n",
                         mname, B, mbytes / 1e9, mbytes / (copy_gbps * 1e9) * 1e3, tot[0], tot[1], gv, gr, qm, tot[4],
                         mbytes / (tot[0] * 1e-3) / 1e9, 100.0 * mbytes / (tot[0] * 1e-3) / 1e9 / copy_gbps);
                emit(stdout, jf, line);
                fprintf(stderr, "# decode GEMMs, %s, batch %d: %.3f ms/step (%.0f GB/s, %.0f%% of copy; floor %.3f); "
                                "cuBLAS alone %.3f", mname, B, tot[0], mbytes / (tot[0] * 1e-3) / 1e9,
                        100.0 * mbytes / (tot[0] * 1e-3) / 1e9 / copy_gbps, mbytes / (copy_gbps * 1e9) * 1e3, tot[1]);
                if (tot[2] >= 0) fprintf(stderr, ", GEMV kernel alone %.3f", tot[2]);
                if (tot[5] >= 0) fprintf(stderr, " (the register GEMV %.3f)", tot[5]);
                if (tot[3] >= 0) fprintf(stderr, ", qmma alone %.3f", tot[3]);
                fprintf(stderr, ", batch-invariant %.3f ms/step\n", tot[4]);
            }
        }
    }
    /* the model as a JSON string (escaped by jansson) */
    char model_json[1024] = "\"synthetic\"";
    if (model_path) {
        json_t *js = json_string(model_path);
        char *enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        if (enc) snprintf(model_json, sizeof model_json, "%s", enc);
        free(enc);
        json_decref(js);
    }
    if (w8mode != DUET_W8A8_NONE) {
        fprintf(stderr, "# seeded W8A8 %s layers (host) ...\n", duet_w8a8_mode_name(w8mode));
        if (!(w8 = duet_w8a8_random(&c, w8mode, seed))) goto fail;
    }
    const char *w8name = w8 ? duet_w8a8_mode_name(w8mode) : "none";
    /* res[((mi * n_kv + ki) * n_len + li) * n_batch + bi] */
    res = malloc(sizeof(case_result) * (size_t)n_modes * n_kv * n_len * n_batch);
    if (!res) {
        duet_errorf("out of host memory");
        goto fail;
    }
    for (int mi = 0; mi < n_modes; mi++) {
        duet_model *mm = NULL; /* -m: the model in this mode (none: as stored) */
        if (model_path && cli_open_model_weights(CMD, model_path, modes[mi], &mm, NULL)) goto fail;
        for (int ki = 0; ki < n_kv; ki++)
        for (int li = 0; li < n_len; li++)
        for (int bi = 0; bi < n_batch; bi++) {
            int B = batches[bi], ni = ins[li], no = outs[li];
            case_result *r = &res[((mi * n_kv + ki) * n_len + li) * n_batch + bi];
            const char *mname = duet_qmode_get(modes[mi])->name, *kname = duet_kv_mode_name(kvs[ki]);
            if (w8) mname = w8_column(w8mode);
            fprintf(stderr, "# case weights %s, kv cache %s, batch %d, %d/%d ...\n", mname, kname, B, ni, no);
            if (run_case(&c, mm, dtype, modes[mi], kvs[ki], w8, seed, B, ni, no, repeat, r)) {
                duet_model_close(mm);
                goto fail;
            }
            const hf_row *h = find_hf(hf, n_hf, B, ni, no);
            int n = snprintf(line, sizeof line,
                             "{\"impl\": \"duet\", \"model\": %s, \"dtype\": \"%s\", \"weights\": \"%s\", "
                             "\"w8a8\": \"%s\", \"kv_cache\": \"%s\", \"gpu\": \"%s\", \"batch\": %d, \"input\": %d, "
                             "\"output\": %d, \"prefill_tok_s\": %.1f, \"prefill_ms\": %.3f, \"prefill_tflops\": %.1f, "
                             "\"decode_ms_per_token\": %.3f, \"e2e_s\": %.4f, \"peak_mem_gib\": %.2f, "
                             "\"deterministic\": %s, \"repeat\": %d",
                             model_json, dtype, mname, w8name, kname, gpu, B, ni, no, B * ni / r->prefill_s, 1e3 * r->prefill_s, r->prefill_tflops,
                             r->decode_ms, r->e2e_s, r->peak_gib, r->deterministic ? "true" : "false", repeat);
            if (ceilings && n < (int)sizeof line)
                n += snprintf(line + n, sizeof line - n, ", \"prefill_pct_of_gemm_peak\": %.1f",
                              100.0 * r->prefill_tflops / peak_tflops);
            if (h && n < (int)sizeof line)
                n += snprintf(line + n, sizeof line - n,
                              ", \"hf_prefill_tok_s\": %.1f, \"hf_decode_ms_per_token\": %.3f, \"hf_e2e_s\": %.4f, "
                              "\"speedup_e2e\": %.2f, \"speedup_prefill\": %.2f, \"speedup_decode\": %.2f",
                              h->prefill_tok_s, h->decode_ms, h->e2e_s, h->e2e_s / r->e2e_s,
                              (B * ni / r->prefill_s) / h->prefill_tok_s, h->decode_ms / r->decode_ms);
            if (n < (int)sizeof line) snprintf(line + n, sizeof line - n, "}\n");
            emit(stdout, jf, line);
            fflush(stdout);
        }
        duet_model_close(mm);
    }
    fprintf(stderr, "\n%-9s %-4s %5s %9s %13s %8s %6s %10s %8s %8s", "weights", "kv", "batch", "in/out", "prefill tok/s", "TFLOP/s", "%peak",
            "dec ms/tok", "e2e s", "peak GiB");
    if (hf) fprintf(stderr, " | %9s %10s %8s %7s %7s %7s", "HF tok/s", "HF ms/tok", "HF e2e", "x e2e", "x pre", "x dec");
    fprintf(stderr, "\n");
    for (int mi = 0; mi < n_modes; mi++)
    for (int ki = 0; ki < n_kv; ki++)
    for (int li = 0; li < n_len; li++)
        for (int bi = 0; bi < n_batch; bi++) {
            int B = batches[bi], ni = ins[li], no = outs[li];
            const case_result *r = &res[((mi * n_kv + ki) * n_len + li) * n_batch + bi];
            char io[32];
            snprintf(io, sizeof io, "%d/%d", ni, no);
            const char *wname = w8 ? w8_column(w8mode) : duet_qmode_get(modes[mi])->name;
            fprintf(stderr, "%-9s %-4s %5d %9s %13.0f %8.1f %6.1f %10.3f %8.3f %8.2f", wname,
                    duet_kv_mode_name(kvs[ki]), B, io,
                    B * ni / r->prefill_s, r->prefill_tflops, ceilings ? 100.0 * r->prefill_tflops / peak_tflops : 0.0,
                    r->decode_ms, r->e2e_s, r->peak_gib);
            const hf_row *h = find_hf(hf, n_hf, B, ni, no);
            if (h)
                fprintf(stderr, " | %9.0f %10.2f %8.3f %7.2f %7.2f %7.2f", h->prefill_tok_s, h->decode_ms, h->e2e_s,
                        h->e2e_s / r->e2e_s, (B * ni / r->prefill_s) / h->prefill_tok_s, h->decode_ms / r->decode_ms);
            else if (hf)
                fprintf(stderr, " | (no HF row for this case)");
            fprintf(stderr, "\n");
        }
    if (jf) fclose(jf);
    free(hf);
    free(res);
    duet_w8a8_free(w8);
    return 0;
fail:
    if (jf) fclose(jf);
    free(hf);
    free(res);
    duet_w8a8_free(w8);
    return cli_fail(CMD);
#endif
}
