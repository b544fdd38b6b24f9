/* cli_util.c: see cli_util.h. */
#include "cli_util.h"
#include "calib/calib.h"
#include "calib/w8a8.h"
#include "chat.h"
#include "error.h"
#include "kvquant.h"
#include "model.h"
#include "tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_int(const char *cmd, const char *flag, const char *s, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "duet %s: %s: '%s' is not an integer in [%ld, %ld]\n", cmd, flag, s, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        fprintf(stderr, "duet %s: %s: '%s' is not a non-negative integer\n", cmd, flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *flag, const char *s, double min, double max, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "duet %s: %s: '%s' is not a number in [%g, %g]\n", cmd, flag, s, min, max);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int cli_sampling_opt(const char *cmd, int c, const char *arg, cli_sampling *s)
{
    switch (c) {
    case 't': return cli_float(cmd, "--temp", arg, 0, 1e6, &s->temp);
    case 'k': return cli_int(cmd, "--top-k", arg, 0, 1 << 30, &s->top_k);
    case 'P': return cli_float(cmd, "--top-p", arg, 1e-9, 1, &s->top_p);
    case 's': return cli_u64(cmd, "--seed", arg, &s->seed);
    default: fprintf(stderr, "duet %s: internal: option code %d is not a sampling flag\n", cmd, c); return -1;
    }
}

int cli_kv_budget(const char *cmd, const char *s, int64_t *bytes, double *fraction)
{
    char *end = NULL;
    *bytes = 0, *fraction = 0.0;
    if (strchr(s, '.')) {
        double f = strtod(s, &end);
        if (end != s && !*end && f > 0.0 && f <= 1.0) return *fraction = f, 0;
    } else {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        int shift = 0;
        if (end != s && *end && !end[1]) shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end == 'T' ? 40 : -1;
        else if (end != s && *end) shift = -1;
        if (end != s && !errno && v > 0 && shift >= 0 && v <= (INT64_MAX >> shift)) return *bytes = (int64_t)v << shift, 0;
    }
    fprintf(stderr,
            "duet %s: --kv-budget: '%s' is neither a size (bytes, or with K/M/G/T: 512M, 2G) nor a fraction of the free "
            "memory in (0, 1] (0.9)\n",
            cmd, s);
    return -1;
}

/* buf = $DUET_DATA/rel, else ../shared/data/rel; 1 when that path exists. */
static int data_path(char *buf, size_t n, const char *rel)
{
    struct stat st;
    const char *d = getenv("DUET_DATA");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/data", rel);
    return stat(buf, &st) == 0;
}

const char *cli_default_cnn_data(void)
{
    static char buf[4096];
    return data_path(buf, sizeof buf, "cnn_dailymail/test_100.jsonl") ? buf : NULL;
}

const char *cli_default_llama2_tokenizer(void)
{
    static char dir[4096];
    char file[4096];
    if (!data_path(file, sizeof file, "llama2-tokenizer/tokenizer.json")) return NULL;
    data_path(dir, sizeof dir, "llama2-tokenizer");
    return dir;
}

int cli_quant_modes(const char *cmd, const cli_quant_flags *f, const duet_model *m, cli_quant *q)
{
    memset(q, 0, sizeof *q);
    duet_kv_mode km = DUET_KV_F;
    if (f->kv_cache && duet_kv_mode_parse(f->kv_cache, &km)) {
        fprintf(stderr, "duet %s: --kv-cache: %s\n", cmd, duet_error());
        return 2;
    }
    duet_w8a8_mode wm = DUET_W8A8_NONE;
    if (f->w8a8 && duet_w8a8_mode_parse(f->w8a8, &wm)) {
        fprintf(stderr, "duet %s: --w8a8: %s\n", cmd, duet_error());
        return 2;
    }
    const int sq = wm == DUET_W8A8_SQ, w8 = wm != DUET_W8A8_NONE;
    float alpha = 0.5f;
    if (f->sq_alpha) {
        char *end;
        errno = 0;
        alpha = strtof(f->sq_alpha, &end);
        if (!sq || end == f->sq_alpha || *end || errno || !(alpha >= 0.0f && alpha <= 1.0f)) {
            fprintf(stderr, "duet %s: --sq-alpha: %s\n", cmd,
                    !sq ? "is SmoothQuant's: give --w8a8 sq" : "expected a number in [0, 1]");
            return 2;
        }
    }
    if (km == DUET_KV_F && !w8 && !f->calib) return 0;
    if ((km == DUET_KV_F && !w8) || !f->calib) {
        fprintf(stderr, "duet %s: %s\n", cmd,
                f->calib ? "--calib is for the calibrated modes: give --kv-cache int8|fp8 or --w8a8 sq|fp8|fp8-tensor"
                         : "--kv-cache and --w8a8 take their scales from a calibration file: give --calib FILE "
                           "(duet calibrate writes one)");
        return 2;
    }
    duet_calib *c = duet_calib_read(f->calib, m);
    if (!c) {
        fprintf(stderr, "duet %s: %s\n", cmd, duet_error());
        return 1;
    }
    int rc = 0;
    if (km != DUET_KV_F) {
        const int L = m->cfg.n_layers, Hk = m->cfg.n_kv_heads;
        if (!(q->kv_scales = malloc(sizeof(float) * 2 * (size_t)L * Hk))) {
            fprintf(stderr, "duet %s: out of memory\n", cmd);
            rc = 1;
        } else {
            duet_calib_kv_scales(c, km, q->kv_scales);
            q->kv_mode = km;
        }
    }
    if (!rc && w8 && !(q->w8a8 = duet_w8a8_build(m, c, wm, alpha))) {
        fprintf(stderr, "duet %s: %s: %s\n", cmd, f->calib, duet_error());
        rc = 1;
    }
    duet_calib_free(c);
    if (rc) cli_quant_free(q);
    return rc;
}

void cli_quant_name(const cli_quant *q, char *buf, size_t n)
{
    char w[32] = "";
    if (q->w8a8 && q->w8a8->mode == DUET_W8A8_SQ) snprintf(w, sizeof w, "w8a8-sq-a%.2f", q->w8a8->alpha);
    else if (q->w8a8) snprintf(w, sizeof w, "w8a8-%s", duet_w8a8_mode_name(q->w8a8->mode));
    snprintf(buf, n, "%s%s%s%s", w, *w && q->kv_mode ? "+" : "", q->kv_mode ? "kv-" : "",
             q->kv_mode ? duet_kv_mode_name((duet_kv_mode)q->kv_mode) : "");
}

void cli_quant_free(cli_quant *q)
{
    free(q->kv_scales);
    duet_w8a8_free(q->w8a8);
    memset(q, 0, sizeof *q);
}

int cli_on_off(const char *cmd, const char *flag, const char *s, int *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "off")) {
        *out = !strcmp(s, "on");
        return 0;
    }
    fprintf(stderr, "duet %s: %s: '%s' is not on or off\n", cmd, flag, s);
    return -1;
}

int cli_model_shape(const char *cmd, const char *name, duet_config *c)
{
    const duet_config b7 = {4096, 11008, 32, 32, 32, 128, 32000, 4096, 1e-5f, 10000.0f, 0, 1, 2};
    if (!strcmp(name, "7b")) {
        *c = b7;
    } else if (!strcmp(name, "tiny")) {
        *c = b7;
        c->dim = 256, c->ffn_dim = 688, c->n_layers = 4, c->n_heads = 8, c->n_kv_heads = 8, c->head_dim = 32;
    } else {
        fprintf(stderr, "duet %s: --model-shape: '%s' unknown (expected 7b or tiny)\n", cmd, name);
        return -1;
    }
    return 0;
}

const char *cli_default_model(void)
{
    static char beside_exe[4096];
    struct stat st;
    const char *env = getenv("DUET_MODEL");
    if (env && *env) return env;
    if (stat(CLI_DEFAULT_MODEL, &st) == 0) return CLI_DEFAULT_MODEL;
    /* models/ beside the duet binary (the build tree's top, where `make model` puts it) */
    ssize_t n = readlink("/proc/self/exe", beside_exe, sizeof beside_exe - 1);
    if (n > 0) {
        beside_exe[n] = 0;
        char *slash = strrchr(beside_exe, '/');
        if (slash && (size_t)(slash - beside_exe) + sizeof "/" CLI_DEFAULT_MODEL < sizeof beside_exe) {
            strcpy(slash + 1, CLI_DEFAULT_MODEL);
            if (stat(beside_exe, &st) == 0) return beside_exe;
        }
    }
    return NULL;
}

const char *cli_model_or_default(const char *cmd, const char *given)
{
    if (given) return given;
    const char *m = cli_default_model();
    if (!m)
        fprintf(stderr, "duet %s: no model: run `make model` (fetches %s) or give -m PATH (or set DUET_MODEL)\n", cmd,
                CLI_DEFAULT_MODEL);
    return m;
}

int cli_open_model(const char *cmd, const char *path, struct duet_model **m, struct duet_tokenizer **tok)
{
    *m = NULL;
    if (tok) *tok = NULL;
    if (!(*m = duet_model_open(path))) return -1;
    if (tok && !(*tok = duet_model_tokenizer(*m))) {
        duet_model_close(*m);
        *m = NULL;
        return -1;
    }
    return 0;
}

int cli_weights(const char *cmd, const char *s)
{
    duet_qmode q;
    if (duet_qmode_parse(s, &q) == 0) return (int)q;
    fprintf(stderr, "duet %s: --weights '%s' is not a mode: none, %s\n", cmd, s, duet_qmode_list());
    return -1;
}

int cli_open_model_weights(const char *cmd, const char *path, int weights, struct duet_model **m,
                           struct duet_tokenizer **tok)
{
    if (cli_open_model(cmd, path, m, tok)) return -1;
    if (weights != DUET_Q_NONE && duet_model_quantize(*m, (duet_qmode)weights, NULL, NULL)) {
        duet_error_prefix("--weights %s: ", duet_qmode_get((duet_qmode)weights)->name);
        if (tok) duet_tokenizer_free(*tok), *tok = NULL;
        duet_model_close(*m);
        *m = NULL;
        return -1;
    }
    return 0;
}

int cli_fail(const char *cmd)
{
    fprintf(stderr, "duet %s: %s\n", cmd, duet_error());
    return 1;
}

int cli_bad_option(const char *cmd)
{
    fprintf(stderr, "duet %s: see 'duet %s --help'\n", cmd, cmd);
    return 2;
}

int cli_mode(const char *cmd, const char *flag, const char *s)
{
    if (!strcmp(s, "fp32") || !strcmp(s, "fp16") || !strcmp(s, "bf16")) return 0;
    fprintf(stderr, "duet %s: %s '%s' is not a mode: expected fp32 (ref), fp16 or bf16 (gpu)\n", cmd, flag, s);
    return -1;
}

int cli_eos_id(const struct duet_tokenizer *tok, const struct duet_model *m)
{
    int eos = duet_tokenizer_eos_id(tok);
    return eos >= 0 ? eos : m->cfg.eos_id;
}

int cli_stream_token(void *ctx, int id)
{
    char *text;
    size_t len;
    if (duet_detok_push(ctx, id, &text, &len) == 0 && len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int cli_chat_template(const struct duet_model *m, const struct duet_tokenizer *tok, struct duet_chat_template *tmpl,
                      int *end_id)
{
    *end_id = -1;
    if (duet_model_chat_template(m, tmpl)) return -1;
    if (tmpl->end_token && (*end_id = duet_tokenizer_token_id(tok, tmpl->end_token, strlen(tmpl->end_token))) < 0)
        return duet_errorf("%s: the chat template ends turns with %s, which the vocabulary lacks", m->path,
                           tmpl->end_token);
    return 0;
}

float *cli_kv_placeholder_scales(const duet_config *c, int kv_mode)
{
    const int n = 2 * c->n_layers * c->n_kv_heads;
    float *s = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!s) {
        duet_errorf("out of host memory for %d KV scales", n);
        return NULL;
    }
    for (int i = 0; i < n; i++) s[i] = duet_kv_scale((duet_kv_mode)kv_mode, 8.0f);
    return s;
}
