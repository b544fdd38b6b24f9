/* test_util.c: see test_util.h. */
#include "test_util.h"

#include "backend.h"
#include "calib/calib.h"
#include "engine/registry.h"
#include "error.h"
#include "model.h"
#include "safetensors.h"
#include "synth.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

const char *test_srcdir(void)
{
    const char *s = getenv("DUET_SRCDIR");
    return s && *s ? s : ".";
}

const char *test_builddir(void)
{
    const char *s = getenv("DUET_BUILDDIR");
    return s && *s ? s : ".";
}

const char *test_data_dir(void)
{
    static char *dir;
    struct stat st;
    if (dir) return dir;
    const char *env = getenv("DUET_DATA");
    dir = env && *env ? strdup(env) : join(test_srcdir(), "../shared/data");
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(dir);
        dir = NULL;
    }
    return dir;
}

char *test_data_path(const char *rel)
{
    struct stat st;
    const char *d = test_data_dir();
    if (!d) return NULL;
    char *p = join(d, rel);
    if (stat(p, &st) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

char *test_src_path(const char *rel) { return join(test_srcdir(), rel); }

char *test_model_path(void)
{
    struct stat st;
    const char *env = getenv("DUET_MODEL");
    char *p = env && *env ? strdup(env) : join(test_srcdir(), "models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (p && stat(p, &st) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

void test_skip_unless(const char *path, const char *what)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        fprintf(stderr, "SKIP: %s not found (set DUET_DATA or put it under ../shared/data)\n", what);
        exit(TEST_EXIT_SKIP);
    }
}

int test_tmpdir(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "/tmp/duet_test_%s_XXXXXX", tag);
    return mkdtemp(buf) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

int test_rmtree(const char *dir)
{
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

int test_poison_weight(const char *dir, const char *name, int64_t index)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file *f = st_open(path);
    if (!f) return -1;
    st_writer *w = st_writer_new();
    int rc = w ? 0 : duet_errorf("out of memory"), found = 0;
    for (int i = 0; !rc && i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        void *copy = malloc(t->nbytes ? t->nbytes : 1);
        if (!copy) rc = duet_errorf("out of memory");
        else {
            memcpy(copy, t->data, t->nbytes);
            if (!strcmp(t->name, name) && t->dtype == ST_F32 && index >= 0 && index < t->numel) {
                float nan = NAN;
                memcpy((float *)copy + index, &nan, sizeof nan);
                found = 1;
            }
            rc = st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, copy);
            free(copy);
        }
    }
    st_close(f);
    if (!rc && !found) rc = duet_errorf("%s: no F32 tensor '%s' with an element %lld to poison", path, name, (long long)index);
    if (!rc) rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

double test_rel_l2(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(a[i]), "non-finite value %g at %lld", a[i], (long long)i);
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

duet_calib *test_calibrate(const duet_model *m, const int *ids, int n)
{
    const duet_config *c = &m->cfg;
    int *pos = malloc(sizeof(int) * (size_t)n), *seq = calloc((size_t)n, sizeof(int));
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)c->vocab_size);
    ck_assert(pos && seq && logits);
    for (int t = 0; t < n; t++) pos[t] = t;
    duet_calib *cal = duet_calib_new(c, duet_calib_fingerprint(m));
    ck_assert_msg(cal != NULL, "%s", duet_error());
    duet_backend_opts o = {.max_seqs = 1, .max_ctx = n, .dtype = "fp32", .threads = 1};
    duet_backend *b = duet_backend_create("ref", m, &o);
    ck_assert_msg(b != NULL, "%s", duet_error());
    duet_backend_set_tap(b, duet_calib_tap, cal);
    duet_batch batch = {n, ids, pos, seq, NULL};
    ck_assert_msg(b->forward(b, &batch, logits) == 0, "%s", duet_error());
    duet_backend_free(b);
    free(pos), free(seq), free(logits);
    return cal;
}

duet_model *test_synth_calibrated(char *dir, size_t size, const char *tag, int *ids, int n, duet_calib **cal)
{
    ck_assert_int_eq(test_tmpdir(dir, size, tag), 0);
    duet_synth_opts so;
    duet_synth_defaults(&so);
    ck_assert_msg(duet_synth_write(&so, dir) == 0, "%s", duet_error());
    duet_model *m = duet_model_open(dir);
    ck_assert_msg(m != NULL, "%s", duet_error());
    for (int t = 0; t < n; t++) ids[t] = (int)((37u * (unsigned)t + 11u) % (unsigned)m->cfg.vocab_size);
    *cal = test_calibrate(m, ids, n);
    return m;
}
