/* cmd_generate.c: `duet generate`: tokenize a prompt, prefill it, decode N tokens, stream the text,
 * then report prompt and decode throughput. */
#include "cli_util.h"
#include "commands.h"

#include "backend.h"
#include "chat.h"
#include "error.h"
#include "engine/registry.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "generate";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet generate [-m PATH] [-p TEXT] [-n N] [options]\n"
            "Generates text from a prompt and streams it to stdout; throughput goes to stderr.\n\n"
            "  -m, --model PATH    GGUF file or Hugging Face LLaMA folder (default: $DUET_MODEL, else\n"
            "                      " CLI_DEFAULT_MODEL ", fetched by `make model`)\n"
            "  -p, --prompt TEXT   prompt (default: empty, i.e. start from BOS)\n"
            "      --chat          the prompt is a user turn: apply the model's chat template (ChatML or\n"
            "                      Llama-2 [INST]) and stop at its end token; prints only the answer\n"
            "      --system TEXT   --chat: the system prompt (default: the template's own; \"\" for none)\n"
            "      --parse-special match special tokens (e.g. <|im_start|>) written in the prompt text\n"
            "  -n, --tokens N      new tokens to generate (default 256; stops early at EOS)\n"
            "      --temp T        temperature, 0 = greedy (default 1.0)\n"
            "      --top-k K       keep the K most likely tokens (default 0 = off)\n"
            "      --top-p P       nucleus sampling mass (default 1.0 = off)\n"
            "      --seed S        sampling seed (default 0); same seed, same text\n"
            "      --ignore-eos    do not stop at EOS\n"
            "      --backend B     ref (CPU fp32 reference) or gpu (default ref)\n"
            "      --dtype T       fp32 (ref), fp16 or bf16 (gpu)\n"
            "      --weights MODE  quantize the linear weights on load (as `duet quantize`: int8, int4,\n"
            "                      int4-g128, int4-g64, q8_0, q4_0, q4_1; default none = as stored)\n"
            "      --kv-cache MODE none (the compute type, default), int8 or fp8: K and V stored as codes with a\n"
            "                      scale per layer and kv head from --calib (the ref emulates it)\n"
            "      --w8a8 MODE     W8A8 from --calib (ref: emulated exactly; gpu: the same codes on its int8 / FP8\n"
            "                      tensor cores, FP8 on compute capability 8.9+): none (default); sq: SmoothQuant,\n"
            "                      int8 weights per channel, int8 activations per token; fp8: E4M3 weights per\n"
            "                      channel, activations per token; fp8-tensor: per tensor, static activation scales\n"
            "      --sq-alpha A    SmoothQuant's migration strength in [0, 1] (default 0.5)\n"
            "      --calib FILE    the calibration file of --kv-cache and --w8a8 (duet calibrate)\n"
            "      --batch-invariant on|off  the products of `duet serve --batch-invariant` (each row's sums on\n"
            "                      its own: a greedy reply then equals the server's, whatever else it runs; default\n"
            "                      off: one product over the whole prompt, faster)\n"
            "      --host-sampling gpu: sample on the host from each step's logits instead of decoding in\n"
            "                      chunks of CUDA-graph steps with sampling on the GPU (same tokens, slower)\n"
            "  -h, --help          this text\n\n"
            "example:\n"
            "  duet generate --chat -p \"What is the capital of France?\" --temp 0\n"
            "  duet generate -m ../shared/data/stories260K -n 199 --temp 0\n");
}


int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"tokens", required_argument, 0, 'n'}, {"temp", required_argument, 0, 't'},
        {"top-k", required_argument, 0, 'k'},  {"top-p", required_argument, 0, 'P'},
        {"seed", required_argument, 0, 's'},   {"ignore-eos", no_argument, 0, 'e'},
        {"backend", required_argument, 0, 'b'}, {"dtype", required_argument, 0, 'd'},
        {"host-sampling", no_argument, 0, 'H'}, {"chat", no_argument, 0, 'c'},
        {"system", required_argument, 0, 'S'}, {"parse-special", no_argument, 0, 'x'},
        {"weights", required_argument, 0, 'W'}, {"kv-cache", required_argument, 0, 'V'},
        {"calib", required_argument, 0, 'A'},  {"w8a8", required_argument, 0, 'Q'},
        {"sq-alpha", required_argument, 0, 'L'}, {"batch-invariant", required_argument, 0, 'I'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *model_dir = NULL, *prompt = "", *backend = "ref", *dtype = NULL, *system = NULL;
    cli_quant_flags qf = {0};
    cli_quant qm = {0};
    int weights = DUET_Q_NONE;
    int n_new = 256, ignore_eos = 0, host_sampling = 0, chat = 0, parse_special = 0, invariant = 0;
    cli_sampling smp = CLI_SAMPLING_DEFAULTS;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (cli_int(CMD, "-n", optarg, 0, 1 << 24, &n_new)) return 2; break;
        case 't': case 'k': case 'P': case 's': if (cli_sampling_opt(CMD, c, optarg, &smp)) return 2; break;
        case 'e': ignore_eos = 1; break;
        case 'H': host_sampling = 1; break;
        case 'c': chat = 1; break;
        case 'S': system = optarg; break;
        case 'x': parse_special = 1; break;
        case 'b': backend = optarg; break;
        case 'd': dtype = optarg; break;
        case 'W': if ((weights = cli_weights(CMD, optarg)) < 0) return 2; break;
        case 'V': qf.kv_cache = optarg; break;
        case 'A': qf.calib = optarg; break;
        case 'Q': qf.w8a8 = optarg; break;
        case 'L': qf.sq_alpha = optarg; break;
        case 'I': if (cli_on_off(CMD, "--batch-invariant", optarg, &invariant)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s' (a prompt goes after -p)\n", CMD, argv[optind]);
        return 2;
    }
    if (system && !chat) {
        fprintf(stderr, "duet %s: --system goes with --chat\n", CMD);
        return 2;
    }
    if (duet_backend_check(backend)) return cli_fail(CMD); /* before the model is loaded (and quantized) */
    if (!(model_dir = cli_model_or_default(CMD, model_dir))) return 2;
    int rc = 1;
    duet_model *m = NULL;
    duet_tokenizer *tok = NULL;
    duet_backend *be = NULL;
    duet_detok *detok = NULL;
    duet_sampler sampler = {0};
    duet_chat_template tmpl = {0};
    int *ids = NULL, *out = NULL;
    size_t n_ids = 0;
    char *rendered = NULL;
    int end_id = -1;
    if (cli_open_model_weights(CMD, model_dir, weights, &m, &tok)) goto done;
    if (chat) {
        duet_chat_msg msg = {"user", prompt};
        if (cli_chat_template(m, tok, &tmpl, &end_id) || !(rendered = duet_chat_render(&tmpl, &msg, 1, system, 1)))
            goto done;
        if (duet_tokenizer_encode_opts(tok, rendered, strlen(rendered), tmpl.add_bos, 1, &ids, &n_ids)) goto done;
    } else if (duet_tokenizer_encode_opts(tok, prompt, strlen(prompt), 1, parse_special, &ids, &n_ids)) {
        goto done;
    }
    if (n_ids == 0) { /* a tokenizer that adds no BOS and an empty prompt: start from the config's BOS */
        if (m->cfg.bos_id < 0) {
            duet_errorf("empty prompt and no BOS token to start from; give -p TEXT");
            goto done;
        }
        free(ids);
        if (!(ids = malloc(sizeof(int)))) goto done;
        ids[n_ids++] = m->cfg.bos_id;
    }
    if ((int64_t)n_ids > m->cfg.max_pos) {
        duet_errorf("prompt is %zu tokens, longer than the model's %d positions (the model's context length; %s)",
                    n_ids, m->cfg.max_pos, model_dir);
        goto done;
    }
    if ((int64_t)n_ids + n_new - 1 > m->cfg.max_pos) {
        int fit = m->cfg.max_pos - (int)n_ids + 1;
        fprintf(stderr, "duet %s: prompt (%zu tokens) + %d new tokens exceed %d positions; generating %d\n", CMD, n_ids,
                n_new, m->cfg.max_pos, fit);
        n_new = fit;
    }
    /* The KV cache holds what this run needs, prompt + new tokens, not max_position_embeddings (for a
     * 128k-position model that would be gigabytes the run never touches). */
    int ctx = (int)n_ids + n_new;
    if (ctx > m->cfg.max_pos) ctx = m->cfg.max_pos;
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = ctx, .dtype = dtype, .batch_invariant = invariant};
    if ((rc = cli_quant_modes(CMD, &qf, m, &qm))) goto done_quiet;
    rc = 1;
    bo.kv_mode = qm.kv_mode, bo.kv_scales = qm.kv_scales, bo.w8a8 = qm.w8a8;
    if (!(be = duet_backend_create(backend, m, &bo))) goto done;
    fprintf(stderr, "[%s] %s\n", be->name, be->summary);
    if (duet_sampler_init(&sampler, m->cfg.vocab_size, smp.temp, smp.top_k, smp.top_p, smp.seed)) goto done;
    if (!(detok = duet_detok_new(tok)) || !(out = malloc(sizeof(int) * (n_new > 0 ? n_new : 1)))) goto done;
    int eos = end_id >= 0 ? end_id : cli_eos_id(tok, m);
    duet_gen_opts go = {.max_new = n_new, .eos_id = ignore_eos ? -1 : eos, .seq = 0, .sampler = &sampler,
                        .on_token = cli_stream_token, .ctx = detok, .host_sampling = host_sampling};
    duet_gen_stats st;
    if (!chat) fputs(prompt, stdout);
    if (duet_generate(be, &bo, ids, (int)n_ids, &go, out, &st)) goto done;
    char *tail;
    size_t tail_len;
    if (duet_detok_finish(detok, &tail, &tail_len) == 0 && tail_len) fwrite(tail, 1, tail_len, stdout);
    printf("\n");
    fflush(stdout);
    int steps = st.n_generated > 0 ? st.n_generated - 1 : 0; /* the first token comes from the prefill */
    fprintf(stderr, "[%s] prompt: %d tokens, %.1f tok/s | decode: %d tokens, %.1f tok/s\n", be->name, st.n_prompt,
            st.prefill_s > 0 ? st.n_prompt / st.prefill_s : 0.0, st.n_generated,
            st.decode_s > 0 ? steps / st.decode_s : 0.0);
    rc = 0;
done:
    if (rc) cli_fail(CMD);
done_quiet: /* cli_quant_modes printed its own error */
    cli_quant_free(&qm);
    free(ids);
    free(out);
    free(rendered);
    duet_chat_template_free(&tmpl);
    duet_detok_free(detok);
    duet_sampler_free(&sampler);
    duet_backend_free(be);
    duet_tokenizer_free(tok);
    duet_model_close(m);
    return rc;
}
