/* cmd_chat.c: `duet chat`: an interactive multi-turn conversation with the model's chat template. Each
 * line of stdin is one user message; the answer streams to stdout. The KV cache is kept across turns
 * (common/chat_session.h): a turn prefills only the ids after the ones already cached. */
#include "cli_util.h"
#include "commands.h"

#include "backend.h"
#include "chat.h"
#include "chat_session.h"
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
#include <unistd.h>

static const char *CMD = "chat";

#define DEFAULT_CTX 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet chat [-m PATH] [options]\n"
            "A conversation with the model: each line of stdin is a user message (a \"> \" prompt on stderr\n"
            "when stdin is a terminal; piped input works too), the answer streams to stdout. The KV cache is\n"
            "kept across turns, so a turn prefills only its new tokens.\n"
            "Lines: an empty line is skipped; /reset forgets the conversation; /system TEXT sets the system\n"
            "prompt and resets (/system alone: back to the template's own); /exit or end of input quits.\n\n"
            "  -m, --model PATH    GGUF file or Hugging Face LLaMA folder with a chat template (ChatML or\n"
            "                      Llama-2 [INST]) (default: $DUET_MODEL, else " CLI_DEFAULT_MODEL ")\n"
            "      --system TEXT   the system prompt (default: the template's own; \"\" for none)\n"
            "  -n, --tokens N      new tokens per answer at most (default 512; an answer stops at the\n"
            "                      template's end token)\n"
            "      --ctx N         KV cache positions for the whole conversation (default %d, at most the\n"
            "                      model's context length); when full: /reset\n"
            "      --temp T        temperature, 0 = greedy (default 1.0)\n"
            "      --top-k K       keep the K most likely tokens (default 0 = off)\n"
            "      --top-p P       nucleus sampling mass (default 1.0 = off)\n"
            "      --seed S        sampling seed (default 0); same seed and input, same conversation\n"
            "      --backend B     ref (CPU fp32 reference) or gpu (default ref)\n"
            "      --dtype T       fp32 (ref), fp16 or bf16 (gpu)\n"
            "      --weights MODE  quantize the linear weights on load (as `duet quantize`: int8, int4,\n"
            "                      int4-g128, int4-g64, q8_0, q4_0, q4_1; default none = as stored)\n"
            "  -h, --help          this text\n\n"
            "example:\n"
            "  printf 'What is the capital of France?\\nAnd of Italy?\\n' | duet chat --temp 0\n",
            DEFAULT_CTX);
}


static void context_full(int ctx)
{
    fprintf(stderr, "duet %s: context full (%d positions): /reset to start over\n", CMD, ctx);
}

int cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"tokens", required_argument, 0, 'n'},
        {"temp", required_argument, 0, 't'},    {"top-k", required_argument, 0, 'k'},
        {"top-p", required_argument, 0, 'P'},   {"seed", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'}, {"dtype", required_argument, 0, 'd'},
        {"system", required_argument, 0, 'S'},  {"ctx", required_argument, 0, 'C'},
        {"weights", required_argument, 0, 'W'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int weights = DUET_Q_NONE;
    const char *model_dir = NULL, *backend = "ref", *dtype = NULL, *system = NULL;
    int n_new = 512, ctx = DEFAULT_CTX, ctx_given = 0;
    cli_sampling smp = CLI_SAMPLING_DEFAULTS;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'n': if (cli_int(CMD, "-n", optarg, 1, 1 << 24, &n_new)) return 2; break;
        case 't': case 'k': case 'P': case 's': if (cli_sampling_opt(CMD, c, optarg, &smp)) return 2; break;
        case 'S': system = optarg; break;
        case 'C': if (cli_int(CMD, "--ctx", optarg, 1, 1 << 24, &ctx)) return 2; ctx_given = 1; break;
        case 'b': backend = optarg; break;
        case 'd': dtype = optarg; break;
        case 'W': if ((weights = cli_weights(CMD, optarg)) < 0) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet %s: unexpected argument '%s' (messages come on stdin)\n", CMD, argv[optind]);
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
    duet_chat_session chat = {0};
    int *out = NULL, end_id = -1;
    char *line = NULL;
    size_t line_cap = 0;
    if (cli_open_model_weights(CMD, model_dir, weights, &m, &tok)) goto done;
    if (cli_chat_template(m, tok, &tmpl, &end_id)) goto done;
    if (end_id < 0 && (end_id = cli_eos_id(tok, m)) < 0) {
        duet_errorf("%s: no end token: the template ends turns at EOS and the model has none", model_dir);
        goto done;
    }
    if (ctx > m->cfg.max_pos) {
        if (ctx_given)
            fprintf(stderr, "duet %s: --ctx %d is more than the model's %d positions; using %d\n", CMD, ctx,
                    m->cfg.max_pos, m->cfg.max_pos);
        ctx = m->cfg.max_pos;
    }
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = ctx, .dtype = dtype};
    if (!(be = duet_backend_create(backend, m, &bo))) goto done;
    fprintf(stderr, "[%s] %s\n", be->name, be->summary);
    if (duet_sampler_init(&sampler, m->cfg.vocab_size, smp.temp, smp.top_k, smp.top_p, smp.seed)) goto done;
    if (!(out = malloc(sizeof(int) * (size_t)n_new))) {
        duet_errorf("out of memory");
        goto done;
    }
    if (duet_chat_session_init(&chat, &tmpl, tok, system)) goto done;
    const int tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty) fputs("> ", stderr);
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            duet_chat_session_reset(&chat);
            fprintf(stderr, "[conversation reset]\n");
            continue;
        }
        if (!strcmp(line, "/system") || !strncmp(line, "/system ", 8)) {
            if (duet_chat_session_set_system(&chat, line[7] ? line + 8 : NULL)) goto done;
            fprintf(stderr, "[system prompt set; conversation reset]\n");
            continue;
        }
        if (line[0] == '/' && line[1] != '/' && line[1] != ' ' && line[1] != 0) {
            fprintf(stderr, "duet %s: unknown command '%s' (/reset, /system TEXT, /exit)\n", CMD, line);
            continue;
        }
        int start;
        if (duet_chat_session_begin(&chat, line, &start)) goto done;
        if (chat.n_ids > ctx) {
            context_full(ctx);
            duet_chat_session_cancel(&chat);
            continue;
        }
        /* The prompt's positions plus the answer's, all but its last id fed back (generate.h). */
        int room = ctx - chat.n_ids + 1, max_new = n_new < room ? n_new : room;
        if (!(detok = duet_detok_new(tok))) goto done;
        duet_gen_opts go = {.max_new = max_new, .eos_id = end_id, .seq = 0, .start_pos = start,
                            .sampler = &sampler, .on_token = cli_stream_token, .ctx = detok};
        duet_gen_stats st;
        if (duet_generate(be, &bo, chat.ids + start, chat.n_ids - start, &go, out, &st)) goto done;
        char *tail;
        size_t tail_len;
        if (duet_detok_finish(detok, &tail, &tail_len) == 0 && tail_len) fwrite(tail, 1, tail_len, stdout);
        duet_detok_free(detok);
        detok = NULL;
        printf("\n");
        fflush(stdout);
        int n_gen = st.n_generated;
        int ended = n_gen > 0 && out[n_gen - 1] == end_id;
        if (duet_chat_session_end(&chat, out, n_gen, end_id)) goto done;
        int steps = n_gen > 0 ? n_gen - 1 : 0;
        fprintf(stderr,
                "[%s] prompt: %d new tokens (%d cached), %.1f tok/s | decode: %d tokens, %.1f tok/s | %d/%d "
                "positions\n",
                be->name, st.n_prompt, start, st.prefill_s > 0 ? st.n_prompt / st.prefill_s : 0.0, n_gen,
                st.decode_s > 0 ? steps / st.decode_s : 0.0, chat.n_cached, ctx);
        if (!ended && max_new < n_new) context_full(ctx); /* the answer was cut by the context */
    }
    if (ferror(stdin)) {
        duet_errorf("reading stdin failed");
        goto done;
    }
    rc = 0;
done:
    if (rc) cli_fail(CMD);
    free(line);
    free(out);
    duet_chat_session_free(&chat);
    duet_chat_template_free(&tmpl);
    duet_detok_free(detok);
    duet_sampler_free(&sampler);
    duet_backend_free(be);
    duet_tokenizer_free(tok);
    duet_model_close(m);
    return rc;
}
