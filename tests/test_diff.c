/* test_diff.c: the `duet synth`, `duet golden` and `duet diff` command lines, end to end: a perturbed
 * tap is named as the first failure, a missing tap and a NaN fail, identical files pass, the exit codes
 * are 0 / 1 / 2, and every subcommand has --help and rejects unknown flags. Runs $DUET_BUILDDIR/duet. */
#include "test_util.h"

#include "error.h"
#include "compare.h"
#include "tapfile.h"
#include "tolerances.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char tmpdir[256], duet[1024], golden[1024], tol[1024];
static char out[1 << 16]; /* stdout + stderr of the last run */

/* Runs `duet ARGS` (a shell-quoted string), captures its output, returns its exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", duet, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The table row of tap `name` in `out`, or NULL. */
static const char *row_of(const char *name)
{
    static char row[1024];
    size_t n = strlen(name);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, name, n) && l[n] == ' ') {
            const char *e = strchr(l, '\n');
            snprintf(row, sizeof row, "%.*s", e ? (int)(e - l) : (int)strlen(l), l);
            return row;
        }
    return NULL;
}

static void setup(void)
{
    ck_assert_int_eq(test_tmpdir(tmpdir, sizeof tmpdir, "diff"), 0);
    snprintf(duet, sizeof duet, "%s/duet", test_builddir());
    snprintf(golden, sizeof golden, "%s/golden/mha.p7.fp32.safetensors", test_srcdir());
    snprintf(tol, sizeof tol, "%s/golden/tolerances", test_srcdir());
}

static void teardown(void) { ck_assert_int_eq(test_rmtree(tmpdir), 0); }

/* A copy of the golden with tap `name` changed by `edit` (NULL: removed). Returns its path. */
static const char *variant(const char *file, const char *name, void (*edit)(duet_tap *))
{
    static char path[1024];
    duet_tapfile *g = duet_tapfile_load(golden);
    ck_assert_msg(g != NULL, "%s", duet_error());
    duet_tapfile *c = duet_tapfile_new();
    for (int i = 0; i < g->n; i++) {
        duet_tap *t = &g->taps[i];
        if (!strcmp(t->name, name)) {
            if (!edit) continue;
            edit(t);
        }
        duet_tapfile_sink(c, t->name, t->data, t->rows, t->cols);
    }
    for (int i = 0; i < g->n_meta; i++) duet_tapfile_set_meta(c, g->meta[2 * i], g->meta[2 * i + 1]);
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    ck_assert_msg(duet_tapfile_save(c, path) == 0, "%s", duet_error());
    duet_tapfile_free(g);
    duet_tapfile_free(c);
    return path;
}

static void scale_1pct(duet_tap *t)
{
    for (int64_t i = 0; i < t->rows * t->cols; i++) t->data[i] *= 1.01f;
}

static void one_nan(duet_tap *t) { t->data[t->cols + 3] = NAN; }

static void tiny(duet_tap *t) { t->data[5] += 1e-7f * fabsf(t->data[5]); }

START_TEST(test_identical_passes)
{
    ck_assert_int_eq(run("diff '%s' '%s'", golden, golden), 0);
    ck_assert_msg(strstr(out, "all 33 taps within tolerance"), "%s", out);
    ck_assert_ptr_nonnull(row_of("layers.0.attn_norm"));
    ck_assert_ptr_nonnull(strstr(row_of("logits"), "top1"));
    /* a rounding-sized change stays within the fp32 bound */
    ck_assert_int_eq(run("diff '%s' '%s'", golden, variant("tiny.safetensors", "layers.1.q", tiny)), 0);
}
END_TEST

START_TEST(test_perturbed_is_first)
{
    const char *v = variant("scaled.safetensors", "layers.1.attn", scale_1pct);
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s'", golden, v, tol), 1);
    const char *r = row_of("layers.1.attn");
    ck_assert_msg(r && strstr(r, "FAIL") && strstr(r, "<- first"), "row: %s\n%s", r ? r : "(none)", out);
    ck_assert_msg(strstr(r, "1.0e-02"), "rel_l2 of a 1%% scale should print 1.0e-02: %s", r);
    ck_assert_msg(strstr(row_of("layers.1.attn_out"), " ok"), "%s", out); /* other taps untouched */
    ck_assert_msg(strstr(out, "1 of 33 taps out of tolerance") && strstr(out, "first: layers.1.attn"), "%s", out);
}
END_TEST

START_TEST(test_missing_and_nan)
{
    const char *v = variant("missing.safetensors", "layers.0.gate", NULL);
    ck_assert_int_eq(run("diff '%s' '%s'", golden, v), 1);
    const char *r = row_of("layers.0.gate");
    ck_assert_msg(r && strstr(r, "FAIL") && strstr(r, "missing"), "%s", out);
    /* and the other way round: a tap only the candidate has */
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s'", v, golden, tol), 1);
    ck_assert_msg(strstr(row_of("layers.0.gate"), "not in the golden"), "%s", out);
    v = variant("nan.safetensors", "final_norm", one_nan);
    ck_assert_int_eq(run("diff '%s' '%s'", golden, v), 1);
    r = row_of("final_norm");
    ck_assert_msg(r && strstr(r, "NaN") && strstr(r, "(1,3)") && strstr(r, "<- first"), "%s", out);
}
END_TEST

START_TEST(test_rerun_model)
{
    /* regenerate the golden's model with the CLI, then re-run it through the ref */
    duet_tapfile *g = duet_tapfile_load(golden);
    ck_assert_ptr_nonnull(g);
    char flags[1024] = "";
    const char *spec = duet_tapfile_meta(g, "model_synth");
    ck_assert_ptr_nonnull(spec);
    /* spec "v=1 seed=11 dim=64 ... tied=0 ..." -> flags "--seed 11 --dim 64 ..." */
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        *eq = '\0';
        if (!strcmp(tok, "v")) continue;
        if (!strcmp(tok, "tied")) {
            if (!strcmp(eq + 1, "1")) strcat(flags, " --tied");
            continue;
        }
        for (char *p = tok; *p; p++)
            if (*p == '_') *p = '-';
        snprintf(flags + strlen(flags), sizeof flags - strlen(flags), " --%s %s", tok, eq + 1);
    }
    free(copy);
    ck_assert_int_eq(run("synth -o '%s/mha' %s", tmpdir, flags), 0);
    ck_assert_int_eq(run("diff -m '%s/mha' '%s'", tmpdir, golden), 0);
    ck_assert_msg(strstr(out, "all 33 taps within tolerance") && !strstr(out, "warning"), "%s", out);
    /* golden from the CLI: same file content as the committed one for the same ids */
    ck_assert_int_eq(run("golden -m '%s/mha' --ids %s -o '%s/mine.safetensors'", tmpdir,
                         duet_tapfile_meta(g, "token_ids"), tmpdir), 0);
    ck_assert_int_eq(run("diff '%s' '%s/mine.safetensors'", golden, tmpdir), 0);
    /* a different model is caught by its hash and by the taps */
    ck_assert_int_eq(run("synth -o '%s/other' %s --seed 99", tmpdir, flags), 0);
    ck_assert_int_eq(run("diff -m '%s/other' '%s'", tmpdir, golden), 1);
    ck_assert_msg(strstr(out, "warning") && strstr(out, "<- first"), "%s", out);
    duet_tapfile_free(g);
}
END_TEST

START_TEST(test_usage)
{
    const char *cmds[] = {"synth", "golden", "diff"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(run("%s --help", cmds[i]), 0);
        ck_assert_msg(strstr(out, "usage: duet") && strstr(out, "example"), "%s --help: %s", cmds[i], out);
        ck_assert_int_eq(run("%s --no-such-flag", cmds[i]), 2);
    }
    ck_assert_int_eq(run("diff"), 2);
    ck_assert_int_eq(run("diff '%s'", golden), 2);
    ck_assert_int_eq(run("diff '%s' '%s/nope.safetensors'", golden, tmpdir), 2);
    ck_assert_msg(strstr(out, "nope.safetensors"), "%s", out);
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s/nope'", golden, golden, tmpdir), 2);
    ck_assert_int_eq(run("golden -m '%s' -o '%s/x.safetensors'", tmpdir, tmpdir), 2); /* no prompt */
    ck_assert_int_eq(run("golden -m '%s' --ids 1,x -o '%s/x.safetensors'", tmpdir, tmpdir), 2);
    ck_assert_int_eq(run("synth"), 2);
    ck_assert_int_eq(run("synth -o '%s/s' --heads 8 --kv-heads 3", tmpdir), 1);
    ck_assert_msg(strstr(out, "multiple"), "%s", out);
    ck_assert_int_eq(run("synth -o '%s/s' --dtype f8", tmpdir), 2);
    /* a mode no tolerance rule covers is a usage error naming it, not a FAIL row per tap */
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s' --mode unknown", golden, golden, tol), 2);
    ck_assert_msg(strstr(out, "--mode 'unknown'") && !strstr(out, "FAIL"), "%s", out);
    duet_tapfile *g = duet_tapfile_load(golden);
    ck_assert_ptr_nonnull(g);
    duet_tapfile_set_meta(g, "mode", "int4");
    char odd[512];
    snprintf(odd, sizeof odd, "%s/int4.safetensors", tmpdir);
    ck_assert_int_eq(duet_tapfile_save(g, odd), 0);
    duet_tapfile_free(g);
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s'", golden, odd, tol), 2);
    ck_assert_msg(strstr(out, "mode 'int4'") && !strstr(out, "FAIL"), "%s", out);
    /* golden --mode names --mode, not the gpu's --dtype */
    ck_assert_int_eq(run("golden -m '%s' --ids 1,2 --mode int4 -o '%s/x.safetensors'", tmpdir, tmpdir), 2);
    ck_assert_msg(strstr(out, "--mode 'int4'") && !strstr(out, "--dtype"), "%s", out);
    /* bad tolerance table: the error names file:line */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.tol", tmpdir);
    FILE *fp = fopen(bad, "w");
    fputs("# comment\n\nfp32 * rel_l2 1e-5\nfp32 * rel_l3 1\n", fp);
    fclose(fp);
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s'", golden, golden, bad), 2);
    ck_assert_msg(strstr(out, "bad.tol:4") && strstr(out, "rel_l3"), "%s", out);
}
END_TEST

/* A crafted tap file whose byte count wraps (F32 [2^40, 2^22] = 2^64 bytes, offsets [0, 0]) is an I/O
 * error naming the file and tensor, not a 1-byte tap that diff then reads 2^62 floats of. */
START_TEST(test_crafted_wrapping_tap)
{
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1099511627776,4194304],\"data_offsets\":[0,0]}}";
    char path[600];
    snprintf(path, sizeof path, "%s/wrap.safetensors", tmpdir);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    size_t h = strlen(hdr);
    for (int i = 0; i < 8; i++) fputc((int)((h >> (8 * i)) & 0xff), fp);
    fputs(hdr, fp);
    fclose(fp);
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s'", path, golden, tol), 2);
    ck_assert_msg(strstr(out, "wrap.safetensors") && strstr(out, "'x'") && strstr(out, "overflow"), "%s", out);
    ck_assert_int_eq(run("diff '%s' '%s' --tolerances '%s'", golden, path, tol), 2);
    ck_assert_msg(strstr(out, "wrap.safetensors") && strstr(out, "overflow"), "%s", out);
    /* The sink checks the product itself (backends call it directly). */
    duet_tapfile *f = duet_tapfile_new();
    float x = 0;
    duet_tapfile_sink(f, "x", &x, (int64_t)1 << 40, (int64_t)1 << 22);
    ck_assert_msg(f->error && strstr(f->error, "overflow") && f->n == 0, "%s", f->error ? f->error : "(no error)");
    duet_tapfile_free(f);
}
END_TEST

/* The default tolerance table is found from any working directory (it was golden/tolerances relative to
 * the cwd): a golden copied to a folder without a table, diffed from /, uses the source tree's. */
START_TEST(test_default_tolerances_any_cwd)
{
    char copy[600], cmd[2048];
    snprintf(copy, sizeof copy, "%s/g.safetensors", tmpdir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", golden, copy);
    ck_assert_int_eq(system(cmd), 0);
    unsetenv("DUET_TOLERANCES");
    snprintf(cmd, sizeof cmd, "cd / && '%s' diff '%s' '%s' 2>&1", duet, copy, copy);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d: %s", WEXITSTATUS(st), out);
    ck_assert_msg(strstr(out, "within tolerance") && strstr(out, "golden/tolerances"), "%s", out);
}
END_TEST

START_TEST(test_synth_cli_deterministic)
{
    ck_assert_int_eq(run("synth -o '%s/a' --seed 5 --outliers 2 --outlier-scale 8 --dtype bf16", tmpdir), 0);
    ck_assert_int_eq(run("synth -o '%s/b' --seed 5 --outliers 2 --outlier-scale 8 --dtype bf16", tmpdir), 0);
    char a[600], b[600], ha[65], hb[65];
    snprintf(a, sizeof a, "%s/a/model.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/b/model.safetensors", tmpdir);
    ck_assert_int_eq(duet_sha256_file(a, ha), 0);
    ck_assert_int_eq(duet_sha256_file(b, hb), 0);
    ck_assert_str_eq(ha, hb);
}
END_TEST

START_TEST(test_metrics)
{
    float b[6] = {1, -2, 3, 0.5f, 0, 4}, a[6];
    for (int i = 0; i < 6; i++) a[i] = b[i] * 1.01f;
    duet_metrics m;
    duet_compare(&m, a, b, 2, 3, 0);
    ck_assert_msg(fabs(m.rel_l2 - 0.01) < 1e-6 && fabs(m.nmse - 1e-4) < 1e-8, "rel_l2 %g", m.rel_l2);
    ck_assert_msg(fabs(m.cosine - 1) < 1e-12, "cos %g", m.cosine);
    ck_assert_int_eq(m.max_row, 1); /* |4 * 0.01| is the largest, at (1, 2) */
    ck_assert_int_eq(m.max_col, 2);
    a[0] = -1; /* one sign flip */
    duet_compare(&m, a, b, 2, 3, 0);
    ck_assert_int_eq(m.max_row, 0);
    ck_assert_int_eq(m.max_col, 0);
    ck_assert(m.cosine < 0.95);
    a[4] = INFINITY;
    duet_compare(&m, a, b, 2, 3, 0);
    ck_assert_int_eq(m.nonfinite_a, 1);
    ck_assert_int_eq(m.bad_row, 1);
    ck_assert_int_eq(m.bad_col, 1);
    ck_assert(!duet_metric_ok(METRIC_REL_L2, duet_metric_value(&m, METRIC_REL_L2), 1e30));
    /* logits: a constant shift changes no softmax (KL 0, same argmax); a swap of the top two does */
    float lb[8] = {1, 5, 2, 0, 0, 1, 3, 2.5f}, la[8];
    for (int i = 0; i < 8; i++) la[i] = lb[i] + 3;
    duet_compare(&m, la, lb, 2, 4, 1);
    ck_assert(m.has_logits && m.top1 == 1.0 && m.kl < 1e-12);
    la[5] = 10; /* row 1's argmax moves from col 2 to col 1 */
    duet_compare(&m, la, lb, 2, 4, 1);
    ck_assert_msg(m.top1 == 0.5 && m.kl > 0.1, "top1 %g kl %g", m.top1, m.kl);
    ck_assert(!duet_metric_ok(METRIC_TOP1, m.top1, 1.0) && duet_metric_ok(METRIC_TOP1, m.top1, 0.5));
    /* both zero: equal */
    float z[2] = {0, 0};
    duet_compare(&m, z, z, 1, 2, 0);
    ck_assert(m.rel_l2 == 0 && m.cosine == 1);
}
END_TEST

START_TEST(test_tolerance_table)
{
    duet_tolerances *t = duet_tolerances_parse("# header\n\n"
                                               "fp32  logits      top1    1      # exact\n"
                                               "fp32  layers.*.q  rel_l2  1e-3\n"
                                               "fp*   *           rel_l2  1e-5   # measured: x\n", "T");
    ck_assert_msg(t != NULL, "%s", duet_error());
    ck_assert_int_eq(t->n, 3);
    ck_assert(duet_tolerances_find(t, "fp32", "layers.3.q", METRIC_REL_L2)->bound == 1e-3); /* first wins */
    ck_assert(duet_tolerances_find(t, "fp32", "layers.3.q_rope", METRIC_REL_L2)->bound == 1e-5);
    ck_assert_int_eq(duet_tolerances_find(t, "fp16", "logits", METRIC_REL_L2)->line, 5);
    ck_assert_ptr_null(duet_tolerances_find(t, "fp16", "logits", METRIC_TOP1));
    ck_assert_ptr_null(duet_tolerances_find(t, "int8", "embed", METRIC_REL_L2));
    duet_tolerances_free(t);
    const char *bad[][2] = {{"fp32 * rel_l2\n", "T:1: 3 fields"},
                            {"\nfp32 * rel_l2 1e-5 extra\n", "T:2: unexpected 'extra'"},
                            {"fp32 * cosine 1e-5\n", "T:1: unknown metric 'cosine'"},
                            {"fp32 * rel_l2 tiny\n", "T:1: bound 'tiny'"},
                            {"fp32 * rel_l2 -1\n", "T:1: bound '-1'"},
                            {"fp32 logits top1 2\n", "T:1: top1 bound"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_null(duet_tolerances_parse(bad[i][0], "T"));
        ck_assert_msg(strstr(duet_error(), bad[i][1]), "'%s': %s", bad[i][0], duet_error());
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("diff");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_identical_passes);
    tcase_add_test(tc, test_perturbed_is_first);
    tcase_add_test(tc, test_missing_and_nan);
    tcase_add_test(tc, test_rerun_model);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_synth_cli_deterministic);
    tcase_add_test(tc, test_crafted_wrapping_tap);
    tcase_add_test(tc, test_default_tolerances_any_cwd);
    suite_add_tcase(s, tc);
    TCase *lib = tcase_create("metrics");
    tcase_add_test(lib, test_metrics);
    tcase_add_test(lib, test_tolerance_table);
    suite_add_tcase(s, lib);
    return s;
}

int main(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/duet", test_builddir());
    test_skip_unless(path, "the duet binary (make duet)");
    return test_run_suite(suite());
}
