/* test_golden.c: every committed golden (golden/NAME.pN.fp32.safetensors) still holds: its synthetic model is
 * regenerated from the spec in its metadata and must hash to the recorded sha256 (duet synth is
 * byte-identical), then the ref runs the recorded token ids single-threaded and every tap must be
 * within golden/tolerances (mode fp32). Exit 0 pass, 1 a tap or the model hash differs, 99 a golden is
 * missing or corrupt (regenerate with `make golden`). */
#include "test_util.h"

#include "error.h"
#include "engine/registry.h"
#include "model.h"
#include "synth.h"
#include "tapfile.h"
#include "tolerances.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hard(const char *golden, const char *why)
{
    fprintf(stderr, "test_golden: %s: %s\nregenerate the goldens with `make golden` (and commit them)\n", golden, why);
    return TEST_EXIT_HARD;
}

/* 0 pass, 1 fail, 99 corrupt. */
static int check_one(const char *path, const duet_tolerances *tol, const char *tmp)
{
    duet_tapfile *gold = duet_tapfile_load(path);
    if (!gold) return hard(path, duet_error());
    const char *spec = duet_tapfile_meta(gold, "model_synth"), *sha = duet_tapfile_meta(gold, "model_sha256"),
               *ids_text = duet_tapfile_meta(gold, "token_ids"), *mode = duet_tapfile_meta(gold, "mode");
    int rc = 0;
    if (!spec || !sha || !ids_text || !mode) {
        rc = hard(path, "__metadata__ lacks model_synth, model_sha256, token_ids or mode");
        goto out;
    }
    if (strcmp(mode, "fp32")) {
        rc = hard(path, "not an fp32 golden");
        goto out;
    }
    duet_synth_opts o;
    if (duet_synth_spec_parse(&o, spec)) {
        rc = hard(path, duet_error());
        goto out;
    }
    char dir[512], mpath[600], have[65];
    snprintf(dir, sizeof dir, "%s/%s", tmp, duet_tapfile_meta(gold, "model_id") ? duet_tapfile_meta(gold, "model_id") : "m");
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    if (duet_synth_write(&o, dir) || duet_sha256_file(mpath, have)) {
        fprintf(stderr, "test_golden: %s: cannot regenerate its model: %s\n", path, duet_error());
        rc = 1;
        goto out;
    }
    if (strcmp(have, sha)) {
        fprintf(stderr,
                "test_golden: %s: duet synth (%s) now writes sha256 %s, the golden's model had %s: the generator "
                "is no longer byte-identical (if it changed on purpose, bump SYNTH_VERSION and `make golden`)\n",
                path, spec, have, sha);
        rc = 1;
        goto out;
    }
    int *ids = NULL, n = 0;
    if (duet_ids_parse(ids_text, &ids, &n)) {
        rc = hard(path, duet_error());
        goto out;
    }
    duet_model *m = duet_model_open(dir);
    duet_tapfile *run = m ? duet_tapfile_run(m, duet_backend_create, "ref", "fp32", 1, NULL, ids, n) : NULL;
    if (!run) {
        fprintf(stderr, "test_golden: %s: running the ref: %s\n", path, duet_error());
        rc = 1;
    } else {
        printf("== %s (%s; ids %s)\n", path, spec, ids_text);
        int fails = duet_diff_taps(stdout, gold, run, tol, "fp32");
        rc = fails ? 1 : 0;
    }
    duet_tapfile_free(run);
    duet_model_close(m);
    free(ids);
out:
    duet_tapfile_free(gold);
    return rc;
}

int main(void)
{
    char *pattern = test_src_path("golden/*.fp32.safetensors");
    char *tol_path = test_src_path("golden/tolerances");
    glob_t g;
    int grc = glob(pattern, 0, NULL, &g);
    if (grc != 0 || g.gl_pathc == 0) {
        int r = hard(pattern, "no golden files found");
        free(pattern);
        free(tol_path);
        return r;
    }
    duet_tolerances *tol = duet_tolerances_load(tol_path);
    if (!tol) {
        fprintf(stderr, "test_golden: %s\n", duet_error());
        return TEST_EXIT_HARD;
    }
    char tmp[256];
    if (test_tmpdir(tmp, sizeof tmp, "golden")) return TEST_EXIT_HARD;
    int worst = 0, failed = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int r = check_one(g.gl_pathv[i], tol, tmp);
        if (r == TEST_EXIT_HARD) worst = TEST_EXIT_HARD;
        else if (r) failed++;
    }
    printf("%zu goldens, %d failed%s\n", g.gl_pathc, failed, worst ? ", some corrupt" : "");
    if (test_rmtree(tmp) != 0) fprintf(stderr, "test_golden: could not remove %s\n", tmp);
    globfree(&g);
    duet_tolerances_free(tol);
    free(pattern);
    free(tol_path);
    return worst ? worst : failed ? 1 : 0;
}
