/* test_util.h: what every Check suite shares: where the sources and the shared data are, the
 * Automake exit codes, and a runner that turns a Check suite into the process exit status. */
#ifndef DUET_TEST_UTIL_H
#define DUET_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdint.h>

#define TEST_EXIT_SKIP 77 /* Automake: skipped (no GPU, no data) */
#define TEST_EXIT_HARD 99 /* Automake: hard error (corrupt golden, broken setup) */

/* The source tree's root: $DUET_SRCDIR (set by make check), else ".". */
const char *test_srcdir(void);

/* The build tree's root: $DUET_BUILDDIR (set by make check), else ".". */
const char *test_builddir(void);

/* The shared data folder: $DUET_DATA, else <srcdir>/../shared/data; NULL when it is not there. */
const char *test_data_dir(void);

/* Path of `rel` under the shared data folder, or NULL (caller frees) when the data folder or the
 * file is absent. Use with test_skip_unless(). */
char *test_data_path(const char *rel);

/* The default model (SmolLM2-135M-Instruct Q4_1 GGUF, fetched by `make model`): $DUET_MODEL when set,
 * else <srcdir>/models/SmolLM2-135M-Instruct.Q4_1.gguf; NULL (caller frees otherwise) when absent. */
char *test_model_path(void);

/* Path of `rel` under the source tree (caller frees). */
char *test_src_path(const char *rel);

/* Exits 77 with a message on stderr when `path` is NULL or does not exist. */
void test_skip_unless(const char *path, const char *what);

/* Makes a fresh private folder /tmp/duet_test_<tag>_XXXXXX into buf (at least 64 bytes); 0 or -1. */
int test_tmpdir(char *buf, size_t size, const char *tag);

/* Removes a folder and everything under it (what test_tmpdir made); 0 or -1. */
int test_rmtree(const char *dir);

/* Rewrites <dir>/model.safetensors (F32) with element `index` of tensor `name` set to NaN: a model whose
 * forward pass breaks down (NaN in model.norm.weight: every logit NaN; in row X of the embedding: from the
 * step that feeds token X on). 0 or -1 + duet_error(). */
int test_poison_weight(const char *dir, const char *name, int64_t index);

/* ||a - b|| / ||b|| in double over n floats; fails the running test at a non-finite a[i]. */
double test_rel_l2(const float *a, const float *b, int64_t n);

/* The calibrated modes' fixture: common/synth.h's default model written to a fresh test_tmpdir(tag) folder
 * (dir, at least 64 bytes) and opened, and its calibration (calib/calib.h) over the prompt ids[n] =
 * (37 t + 11) mod V on the ref in fp32 (one thread), so nothing the prompt reaches saturates. Fails the
 * running test on any error; free with duet_calib_free, duet_model_close and test_rmtree(dir). */
struct duet_model;
struct duet_calib;
/* The calibration of model m over ids[n] (positions 0..n-1 of one sequence) on the ref in fp32, one
 * thread. Fails the running test on any error; free with duet_calib_free. */
struct duet_calib *test_calibrate(const struct duet_model *m, const int *ids, int n);
struct duet_model *test_synth_calibrated(char *dir, size_t size, const char *tag, int *ids, int n,
                                         struct duet_calib **cal);

/* Runs the suite, prints Check's totals, returns 0 when every test passed, 1 otherwise. */
int test_run_suite(Suite *s);

#endif
