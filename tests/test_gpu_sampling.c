/* test_gpu_sampling.c: gpu_sample against the host sampler, draw for draw. Rows of random logits of
 * several kinds (peaked, flat, wide, exact ties, all equal, -inf entries, a few finite ids, NaN / +inf /
 * all -inf rows), V = 32000 and small odd V, up to 64 rows per call, each row with its own seed and step;
 * every parameter set of interest (greedy, plain temperature, top-k 1 / 40 / V, top-p 0.9 / 1e-6,
 * top-k 50 + top-p 0.95, and all of them mixed in one call), hundreds of calls each. Every id the GPU
 * returns must be the id duet_sample returns for the same logits, settings, seed and step: the mismatch
 * budget is 0 (gpu/sampling.cu reproduces every rounding of the host, exp included: both use duet_expf, so there is
 * no boundary case to excuse). steps[] must advance as the host's s->step does, ids must be in [0, V),
 * and the ids buffer is poisoned (-1) before every call. One case captures gpu_sample in a CUDA graph and
 * replays it with new logits, params and steps. DUET_SAMPLING_CALLS=n overrides the number of calls per
 * case (default: 300 with V <= 4096 or without sorting, 60 with sorting at V = 32000: duet_sample's
 * qsort of 32000 ids is the slow part; the host side runs on all cores). Exits 77 without a CUDA device. */
#include "test_gpu_util.h"

#include "error.h"
#include "gpu/gpu.h"
#include "gpu/sampling.h"
#include "sampler.h"

#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RMAX 64

/* ---- random logits ---- */
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t next_u64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double unif(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); } /* [0, 1) */
static double normal(void)
{
    double u = unif(), v = unif();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

enum { PEAKED, FLAT, WIDE, TIES, ALLEQ, NEGINF, FEWFINITE, NANROW, NAN0, PINF, ALLNEGINF, NKIND };
static const char *KIND_NAME[NKIND] = {"peaked", "flat", "wide", "ties", "all-equal", "-inf entries", "few finite",
                                       "NaN",    "NaN at 0", "+inf", "all -inf"};
/* Row r's kind: mostly the ordinary kinds, one row in 16 of each special one. */
static const int KIND_OF[16] = {PEAKED, FLAT, WIDE, TIES, NEGINF, PEAKED, FLAT, WIDE,
                                TIES, ALLEQ, FEWFINITE, NEGINF, NANROW, NAN0, PINF, ALLNEGINF};

static void fill_row(float *x, int V, int kind)
{
    switch (kind) {
    case PEAKED: /* a few ids far above a normal background */
        for (int i = 0; i < V; i++) x[i] = (float)(2.0 * normal());
        for (int j = 0; j < 4; j++) x[next_u64() % V] = (float)(8.0 + 4.0 * unif());
        break;
    case FLAT: /* nearly uniform: big nuclei, many near ties */
        for (int i = 0; i < V; i++) x[i] = (float)(0.05 * (2.0 * unif() - 1.0));
        break;
    case WIDE: /* LLM-like spread */
        for (int i = 0; i < V; i++) x[i] = (float)(3.0 * normal());
        break;
    case TIES: /* 8 distinct values: exact ties everywhere, also at the top-k threshold */
        for (int i = 0; i < V; i++) x[i] = 0.5f * (float)(next_u64() % 8);
        break;
    case ALLEQ:
        for (int i = 0; i < V; i++) x[i] = 1.25f;
        break;
    case NEGINF: /* a third of the ids banned */
        for (int i = 0; i < V; i++) x[i] = unif() < 0.33 ? -INFINITY : (float)(2.0 * normal());
        x[next_u64() % V] = 3.0f;
        break;
    case FEWFINITE: /* all banned but three */
        for (int i = 0; i < V; i++) x[i] = -INFINITY;
        for (int j = 0; j < 3; j++) x[next_u64() % V] = (float)normal();
        break;
    case NANROW:
        for (int i = 0; i < V; i++) x[i] = (float)normal();
        x[next_u64() % V] = NAN;
        break;
    case NAN0:
        for (int i = 0; i < V; i++) x[i] = (float)normal();
        x[0] = NAN;
        break;
    case PINF:
        for (int i = 0; i < V; i++) x[i] = (float)normal();
        x[next_u64() % V] = INFINITY;
        break;
    case ALLNEGINF:
        for (int i = 0; i < V; i++) x[i] = -INFINITY;
        break;
    }
}

/* ---- parameter sets ---- */
typedef struct {
    const char *name;
    float temperature;
    int top_k; /* -1: V */
    float top_p;
} pset;
static const pset PSETS[] = {
    {"greedy", 0.0f, 0, 1.0f},           {"T 0.7", 0.7f, 0, 1.0f},
    {"top-k 1", 1.0f, 1, 1.0f},          {"top-k 40", 0.9f, 40, 1.0f},
    {"top-k V", 1.0f, -1, 1.0f},         {"top-p 0.9", 1.0f, 0, 0.9f},
    {"top-k 50 top-p 0.95", 0.8f, 50, 0.95f}, {"top-p 1e-6", 1.0f, 0, 1e-6f},
};
#define NPSET ((int)(sizeof PSETS / sizeof PSETS[0]))

static gpu_sample_params params_of(const pset *p, int V, uint64_t seed)
{
    gpu_sample_params g = {p->temperature, p->top_k < 0 ? V : p->top_k, p->top_p, seed};
    return g;
}
static int sorts(const gpu_sample_params *g) { return g->temperature != 0.0f && (g->top_k > 0 || g->top_p < 1.0f); }

/* ---- the host side: duet_sample for every row, on all cores ---- */
typedef struct {
    int R, V;
    const float *logits;
    duet_sampler *smp; /* R, initialised with each row's settings */
    const uint64_t *step_before;
    int *want;
    uint64_t *step_after;
    int nthreads, tid;
} host_job;

static void *host_rows(void *arg)
{
    host_job *j = arg;
    for (int r = j->tid; r < j->R; r += j->nthreads) {
        j->smp[r].step = j->step_before[r];
        j->want[r] = duet_sample(&j->smp[r], j->logits + (size_t)r * j->V);
        j->step_after[r] = j->smp[r].step;
    }
    return NULL;
}

static int ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static void host_sample(int R, int V, const float *logits, duet_sampler *smp, const uint64_t *step_before, int *want,
                        uint64_t *step_after)
{
    int nt = ncpu();
    if (nt > R) nt = R;
    pthread_t th[64];
    host_job jobs[64];
    for (int t = 0; t < nt; t++) {
        jobs[t] = (host_job){R, V, logits, smp, step_before, want, step_after, nt, t};
        ck_assert(pthread_create(&th[t], NULL, host_rows, &jobs[t]) == 0);
    }
    for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int calls_for(int V, int any_sort)
{
    const char *e = getenv("DUET_SAMPLING_CALLS");
    if (e && atoi(e) > 0) return atoi(e);
    return V > 4096 && any_sort ? 60 : 300;
}

/* Device buffers for R rows of V. */
typedef struct {
    int R, V;
    float *logits;
    gpu_sample_params *params;
    uint64_t *steps;
    int *ids;
    void *ws;
} dev_bufs;

static dev_bufs dev_make(int R, int V)
{
    dev_bufs d = {R, V, gpu_alloc(sizeof(float) * (size_t)R * V), gpu_alloc(sizeof(gpu_sample_params) * R),
                  gpu_alloc(sizeof(uint64_t) * R), gpu_alloc(sizeof(int) * R), gpu_alloc(gpu_sample_ws_bytes(R, V))};
    ck_assert_msg(d.logits && d.params && d.steps && d.ids && d.ws, "%s", duet_error());
    return d;
}
static void dev_free(dev_bufs *d)
{
    gpu_free(d->logits), gpu_free(d->params), gpu_free(d->steps), gpu_free(d->ids), gpu_free(d->ws);
}
static void upload(void *dst, const void *src, size_t bytes)
{
    ck_assert_msg(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "cudaMemcpy H2D");
}
static void download(void *dst, const void *src, size_t bytes)
{
    ck_assert_msg(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost) == cudaSuccess, "cudaMemcpy D2H");
}
static void poison_ids(dev_bufs *d)
{
    int p[RMAX];
    for (int r = 0; r < d->R; r++) p[r] = -1;
    ck_assert(gpu_upload_i32(d->ids, p, d->R) == 0);
}

/* Fresh logits for every row (kind from KIND_OF) into x and onto the device. */
static void new_logits(dev_bufs *d, float *x, int *kind)
{
    for (int r = 0; r < d->R; r++) {
        kind[r] = KIND_OF[r % 16];
        fill_row(x + (size_t)r * d->V, d->V, kind[r]);
    }
    upload(d->logits, x, sizeof(float) * (size_t)d->R * d->V);
}

typedef struct {
    long draws, mismatches, steps_wrong, out_of_range;
} tally;

/* Compares one call's GPU ids / steps with the host's; prints the first mismatches. */
static void compare(const char *what, int R, int V, const int *got, const int *want, const uint64_t *gsteps,
                    const uint64_t *hsteps, const uint64_t *before, const int *kind, const gpu_sample_params *prm,
                    const float *x, tally *t)
{
    for (int r = 0; r < R; r++) {
        t->draws++;
        if (got[r] < 0 || got[r] >= V) t->out_of_range++;
        if (gsteps[r] != hsteps[r]) t->steps_wrong++;
        if (got[r] != want[r]) {
            if (t->mismatches < 10) {
                const float *row = x + (size_t)r * V;
                printf("  MISMATCH %s V %d row %d (%s; T %g top_k %d top_p %g seed %llu step %llu): gpu %d (logit "
                       "%g) host %d (logit %g)\n",
                       what, V, r, KIND_NAME[kind[r]], prm[r].temperature, prm[r].top_k, prm[r].top_p,
                       (unsigned long long)prm[r].seed, (unsigned long long)before[r], got[r],
                       got[r] >= 0 && got[r] < V ? row[got[r]] : NAN, want[r], row[want[r]]);
            }
            t->mismatches++;
        }
    }
}

/* One shape with one parameter set (pi >= 0) or all sets mixed over the rows (pi < 0). */
static void run_case(int R, int V, int pi)
{
    dev_bufs d = dev_make(R, V);
    float *x = malloc(sizeof(float) * (size_t)R * V);
    int kind[RMAX], got[RMAX], want[RMAX];
    uint64_t steps[RMAX], gsteps[RMAX], hsteps[RMAX];
    gpu_sample_params prm[RMAX];
    duet_sampler smp[RMAX];
    int any_sort = 0;
    for (int r = 0; r < R; r++) {
        const pset *p = &PSETS[pi >= 0 ? pi : r % NPSET];
        prm[r] = params_of(p, V, 0x51ed270b27d1ull * (r + 1) ^ (uint64_t)(V * 31 + pi));
        any_sort |= sorts(&prm[r]);
        ck_assert_msg(duet_sampler_init(&smp[r], V, prm[r].temperature, prm[r].top_k, prm[r].top_p, prm[r].seed) == 0,
                      "%s", duet_error());
        steps[r] = (uint64_t)r * 1000003u + (r % 3 == 0 ? 0xfffffffffffffff0ull : 0); /* some wrap around */
    }
    upload(d.params, prm, sizeof prm[0] * R);
    upload(d.steps, steps, sizeof steps[0] * R);
    const int calls = calls_for(V, any_sort);
    tally t = {0, 0, 0, 0};
    double gpu_s = 0;
    const char *name = pi >= 0 ? PSETS[pi].name : "mixed";
    for (int c = 0; c < calls; c++) {
        if (c % 20 == 0) new_logits(&d, x, kind);
        poison_ids(&d);
        ck_assert(gpu_sync() == 0);
        double t0 = now_s();
        ck_assert_msg(gpu_sample(d.ids, d.logits, R, V, d.params, d.steps, d.ws, NULL) == 0, "%s", duet_error());
        ck_assert_msg(gpu_sync() == 0, "%s", duet_error());
        gpu_s += now_s() - t0;
        ck_assert(gpu_download_i32(got, d.ids, R) == 0);
        download(gsteps, d.steps, sizeof gsteps[0] * R);
        host_sample(R, V, x, smp, steps, want, hsteps);
        compare(name, R, V, got, want, gsteps, hsteps, steps, kind, prm, x, &t);
        memcpy(steps, hsteps, sizeof steps[0] * R);
        upload(d.steps, steps, sizeof steps[0] * R); /* stay in lockstep even after a wrong step */
    }
    printf("%-22s V %5d R %2d: %6ld draws, %ld mismatches, %ld wrong steps, %ld out of range; %.1f us per call\n", name,
           V, R, t.draws, t.mismatches, t.steps_wrong, t.out_of_range, 1e6 * gpu_s / calls);
    fflush(stdout);
    ck_assert_msg(t.mismatches == 0, "%s V %d: %ld of %ld draws differ from duet_sample", name, V, t.mismatches,
                  t.draws);
    ck_assert_msg(t.steps_wrong == 0, "%s V %d: %ld steps differ from the host's", name, V, t.steps_wrong);
    ck_assert_msg(t.out_of_range == 0, "%s V %d: %ld ids out of range", name, V, t.out_of_range);
    for (int r = 0; r < R; r++) duet_sampler_free(&smp[r]);
    free(x);
    dev_free(&d);
}

static const int SHAPES[][2] = {{64, 32000}, {64, 517}, {13, 7}, {5, 1}}; /* (R, V) */
#define NSHAPE ((int)(sizeof SHAPES / sizeof SHAPES[0]))

START_TEST(test_sample_vs_host)
{
    const int si = _i / (NPSET + 1), pi = _i % (NPSET + 1) - 1; /* pi -1: mixed */
    run_case(SHAPES[si][0], SHAPES[si][1], pi);
}
END_TEST

/* Hand-made rows where the answer is known, besides matching the host. */
START_TEST(test_known)
{
    const int V = 6, R = 4;
    const float p[6] = {0.4f, 0.3f, 0.15f, 0.1f, 0.05f, 0.0f};
    float x[4 * 6];
    for (int r = 0; r < R; r++)
        for (int i = 0; i < V; i++) x[r * V + i] = p[i] > 0 ? logf(p[i]) : -INFINITY;
    x[3 * V + 4] = x[3 * V + 1]; /* row 3: ids 1 and 4 tie */
    gpu_sample_params prm[4] = {{1.0f, 1, 1.0f, 1}, {1.0f, 0, 1e-3f, 2}, {0.0f, 0, 1.0f, 3}, {1.0f, 2, 1.0f, 4}};
    dev_bufs d = dev_make(R, V);
    upload(d.logits, x, sizeof x);
    upload(d.params, prm, sizeof prm);
    uint64_t steps[4] = {0, 5, 9, 0}, gs[4];
    upload(d.steps, steps, sizeof steps);
    int got[4];
    for (int c = 0; c < 50; c++) {
        poison_ids(&d);
        ck_assert(gpu_sample(d.ids, d.logits, R, V, d.params, d.steps, d.ws, NULL) == 0);
        ck_assert(gpu_sync() == 0 && gpu_download_i32(got, d.ids, R) == 0);
        ck_assert_int_eq(got[0], 0); /* top-k 1 */
        ck_assert_int_eq(got[1], 0); /* tiny top-p: the most likely id */
        ck_assert_int_eq(got[2], 0); /* greedy */
        ck_assert(got[3] == 0 || got[3] == 1); /* top-k 2 with a tie at the 2nd place: the lower id */
    }
    download(gs, d.steps, sizeof gs);
    ck_assert(gs[0] == 50 && gs[1] == 55 && gs[2] == 9 && gs[3] == 50);
    dev_free(&d);
}
END_TEST

/* gpu_sample inside a CUDA graph: captured once, replayed with new logits, params and steps each time. */
START_TEST(test_graph)
{
    const int R = 48, V = 2053, REPLAYS = 40;
    dev_bufs d = dev_make(R, V);
    float *x = malloc(sizeof(float) * (size_t)R * V);
    int kind[RMAX], got[RMAX], want[RMAX];
    uint64_t steps[RMAX], gsteps[RMAX], hsteps[RMAX];
    gpu_sample_params prm[RMAX];
    duet_sampler smp[RMAX];
    for (int r = 0; r < R; r++) {
        steps[r] = 77u * r;
        prm[r] = params_of(&PSETS[r % NPSET], V, 1000 + r);
    }
    upload(d.steps, steps, sizeof steps[0] * R);
    upload(d.params, prm, sizeof prm[0] * R);
    cudaStream_t st;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    ck_assert(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
    ck_assert(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess);
    ck_assert_msg(gpu_sample(d.ids, d.logits, R, V, d.params, d.steps, d.ws, (gpu_stream)st) == 0, "%s",
                  duet_error());
    ck_assert(cudaStreamEndCapture(st, &g) == cudaSuccess);
    ck_assert(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess);
    tally t = {0, 0, 0, 0};
    for (int c = 0; c < REPLAYS; c++) {
        for (int r = 0; r < R; r++) /* rotate the settings over the rows */
            prm[r] = params_of(&PSETS[(r + c) % NPSET], V, 1000 + r + 7 * c);
        upload(d.params, prm, sizeof prm[0] * R);
        for (int r = 0; r < R; r++)
            ck_assert(duet_sampler_init(&smp[r], V, prm[r].temperature, prm[r].top_k, prm[r].top_p, prm[r].seed) == 0);
        new_logits(&d, x, kind);
        poison_ids(&d);
        ck_assert(cudaGraphLaunch(ge, st) == cudaSuccess && cudaStreamSynchronize(st) == cudaSuccess);
        ck_assert(gpu_download_i32(got, d.ids, R) == 0);
        download(gsteps, d.steps, sizeof gsteps[0] * R);
        host_sample(R, V, x, smp, steps, want, hsteps);
        compare("graph", R, V, got, want, gsteps, hsteps, steps, kind, prm, x, &t);
        memcpy(steps, hsteps, sizeof steps[0] * R);
        for (int r = 0; r < R; r++) duet_sampler_free(&smp[r]);
    }
    printf("graph replays V %d R %d: %ld draws, %ld mismatches, %ld wrong steps\n", V, R, t.draws, t.mismatches,
           t.steps_wrong);
    ck_assert(t.mismatches == 0 && t.steps_wrong == 0 && t.out_of_range == 0);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(st);
    free(x);
    dev_free(&d);
}
END_TEST

int main(void)
{
    if (test_gpu_absent()) return TEST_EXIT_SKIP;
    /* CUDA state does not survive fork(): run the tests in this process. */
    Suite *s = suite_create("gpu_sampling");
    TCase *tc = tcase_create("sample");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, test_known);
    tcase_add_test(tc, test_graph);
    tcase_add_loop_test(tc, test_sample_vs_host, 0, NSHAPE * (NPSET + 1));
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
