/* cmd_synth.c: `duet synth`: write a seeded synthetic LLaMA model as a Hugging Face folder; the same
 * options give the same bytes on every machine (common/synth.h). */
#include "cli_util.h"
#include "commands.h"

#include "error.h"
#include "synth.h"
#include "tapfile.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char *CMD = "synth";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet synth -o DIR [options]\n"
            "Writes a synthetic LLaMA checkpoint (config.json + model.safetensors, no tokenizer) from a seed;\n"
            "the bytes are identical on every machine. Weights: embeddings N(0,1), matrices N(0,1/in),\n"
            "norm weights 1 + 0.1 N(0,1) (normals from an integer Irwin-Hall sum, no libm).\n\n"
            "  -o, --output DIR        folder to write (created if missing)\n"
            "      --seed N            seed (default 1)\n"
            "      --dim D             hidden size (default 64)\n"
            "      --ffn F             intermediate size (default 172)\n"
            "      --layers L          layers (default 2)\n"
            "      --heads H           attention heads (default 8)\n"
            "      --kv-heads K        key/value heads (default 8 / 2 = 4; must divide H)\n"
            "      --head-dim d        head dim (default 8)\n"
            "      --vocab V           vocabulary size (default 512)\n"
            "      --max-pos P         max positions (default 512)\n"
            "      --theta T           rope theta (default 10000)\n"
            "      --eps E             rms_norm_eps (default 1e-5)\n"
            "      --tied              tie lm_head to the embedding\n"
            "      --outliers K        K hidden channels with large activations (SmoothQuant-style)\n"
            "      --outlier-scale S   those channels' layer-norm weights times S (default 1)\n"
            "      --dtype T           f32, f16 or bf16 (default f32)\n"
            "      --from-golden FILE  the model a golden tap file was made from (its model_synth metadata;\n"
            "                          other shape options are then not allowed)\n"
            "  -h, --help              this text\n\n"
            "example:\n"
            "  duet synth -o /tmp/tiny --seed 7 --dim 96 --heads 6 --kv-heads 2 --head-dim 16 --tied\n"
            "  duet synth -o /tmp/mha --from-golden golden/mha.p7.fp32.safetensors\n");
}

int cmd_synth(int argc, char **argv)
{
    enum { O_SEED = 256, O_DIM, O_FFN, O_LAYERS, O_HEADS, O_KV, O_HD, O_VOCAB, O_MAXPOS, O_THETA, O_EPS, O_TIED,
           O_OUTL, O_OSCALE, O_DTYPE, O_GOLDEN };
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},   {"seed", required_argument, 0, O_SEED},
        {"dim", required_argument, 0, O_DIM},    {"ffn", required_argument, 0, O_FFN},
        {"layers", required_argument, 0, O_LAYERS}, {"heads", required_argument, 0, O_HEADS},
        {"kv-heads", required_argument, 0, O_KV}, {"head-dim", required_argument, 0, O_HD},
        {"vocab", required_argument, 0, O_VOCAB}, {"max-pos", required_argument, 0, O_MAXPOS},
        {"theta", required_argument, 0, O_THETA}, {"eps", required_argument, 0, O_EPS},
        {"tied", no_argument, 0, O_TIED},        {"outliers", required_argument, 0, O_OUTL},
        {"outlier-scale", required_argument, 0, O_OSCALE}, {"dtype", required_argument, 0, O_DTYPE},
        {"from-golden", required_argument, 0, O_GOLDEN}, {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    duet_synth_opts o;
    duet_synth_defaults(&o);
    duet_config *cfg = &o.cfg;
    const char *out = NULL, *golden = NULL;
    int kv_given = 0, shape_given = 0, c;
    const long BIG = 1 << 20;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_GOLDEN: golden = optarg; break;
        case O_SEED: if (cli_u64(CMD, "--seed", optarg, &o.seed)) return 2; break;
        case O_DIM: if (cli_int(CMD, "--dim", optarg, 1, BIG, &cfg->dim)) return 2; break;
        case O_FFN: if (cli_int(CMD, "--ffn", optarg, 1, BIG, &cfg->ffn_dim)) return 2; break;
        case O_LAYERS: if (cli_int(CMD, "--layers", optarg, 1, 4096, &cfg->n_layers)) return 2; break;
        case O_HEADS: if (cli_int(CMD, "--heads", optarg, 1, 4096, &cfg->n_heads)) return 2; break;
        case O_KV: if (cli_int(CMD, "--kv-heads", optarg, 1, 4096, &cfg->n_kv_heads)) return 2; kv_given = 1; break;
        case O_HD: if (cli_int(CMD, "--head-dim", optarg, 2, 4096, &cfg->head_dim)) return 2; break;
        case O_VOCAB: if (cli_int(CMD, "--vocab", optarg, 3, 1 << 24, &cfg->vocab_size)) return 2; break;
        case O_MAXPOS: if (cli_int(CMD, "--max-pos", optarg, 1, 1 << 24, &cfg->max_pos)) return 2; break;
        case O_THETA: if (cli_float(CMD, "--theta", optarg, 1e-3, 1e12, &cfg->rope_theta)) return 2; break;
        case O_EPS: if (cli_float(CMD, "--eps", optarg, 1e-12, 1, &cfg->norm_eps)) return 2; break;
        case O_TIED: cfg->tie_embeddings = 1; break;
        case O_OUTL: if (cli_int(CMD, "--outliers", optarg, 0, BIG, &o.n_outliers)) return 2; break;
        case O_OSCALE: if (cli_float(CMD, "--outlier-scale", optarg, 1e-3, 1e4, &o.outlier_scale)) return 2; break;
        case O_DTYPE:
            if (!strcmp(optarg, "f32") || !strcmp(optarg, "fp32")) o.dtype = ST_F32;
            else if (!strcmp(optarg, "f16") || !strcmp(optarg, "fp16")) o.dtype = ST_F16;
            else if (!strcmp(optarg, "bf16")) o.dtype = ST_BF16;
            else {
                fprintf(stderr, "duet %s: --dtype: '%s' is not f32, f16 or bf16\n", CMD, optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
        if (c >= O_SEED && c <= O_DTYPE) shape_given = 1;
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s'; see duet %s --help\n", CMD, argv[optind], CMD);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "duet %s: -o DIR is required; see duet %s --help\n", CMD, CMD);
        return 2;
    }
    if (golden) {
        if (shape_given) {
            fprintf(stderr, "duet %s: --from-golden takes the whole model from the golden; drop the other options\n", CMD);
            return 2;
        }
        duet_tapfile *g = duet_tapfile_load(golden);
        if (!g) return cli_fail(CMD);
        const char *spec = duet_tapfile_meta(g, "model_synth");
        int rc = spec ? duet_synth_spec_parse(&o, spec)
                      : duet_errorf("%s: no model_synth in its metadata (not made from a synthetic model)", golden);
        duet_tapfile_free(g);
        if (rc) return cli_fail(CMD);
        kv_given = 1;
    }
    if (!kv_given && cfg->n_heads % cfg->n_kv_heads) cfg->n_kv_heads = cfg->n_heads; /* --heads 6 alone: MHA */
    if (duet_synth_write(&o, out)) return cli_fail(CMD);
    char spec[512];
    duet_synth_spec_format(&o, spec, sizeof spec);
    fprintf(stderr, "duet %s: wrote %s (%s)\n", CMD, out, spec);
    return 0;
}
