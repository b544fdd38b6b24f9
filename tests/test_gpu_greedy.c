/* test_gpu_greedy.c: the GPU-side greedy paths `duet bench` times (gpu_backend_forward_argmax,
 * gpu_backend_decode_greedy with CUDA graphs, gpu_backend_create_random) give exactly the tokens of the
 * plain seam (forward + host argmax, one step at a time) on the same engine, with graphs and without,
 * across calls that reuse a captured graph; and their errors (NaN logits among them). Exits 77 without
 * a GPU. */
#include "test_gpu_util.h"

#include "backend.h"
#include "error.h"
#include "engine/registry.h"
#include "gpu/gpu.h"
#include "gpu/gpu_backend.h"
#include "model.h"
#include "sampler.h"
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define B 3
#define STEPS 12
static const int LEN[B] = {5, 9, 2}; /* prompt lengths of the three sequences (slots 2, 0, 1) */
static const int SLOT[B] = {2, 0, 1};
static duet_model *model;
static char dir[64];

static duet_backend *make(const char *dtype)
{
    duet_backend_opts o = {.max_seqs = 4, .max_ctx = 64, .dtype = dtype};
    duet_backend *b = duet_backend_create("gpu", model, &o);
    ck_assert_msg(b != NULL, "%s", duet_error());
    return b;
}

static void prompt(duet_batch *bt, int *tok, int *pos, int *seq, uint8_t *want)
{
    int t = 0;
    for (int s = 0; s < B; s++)
        for (int i = 0; i < LEN[s]; i++, t++) {
            tok[t] = (7 * t + 3 * s + 1) % model->cfg.vocab_size;
            pos[t] = i;
            seq[t] = SLOT[s];
            want[t] = i == LEN[s] - 1;
        }
    *bt = (duet_batch){t, tok, pos, seq, want};
}

/* The seam, one step at a time: ids[(1 + STEPS) * B], row 0 from the prefill. */
static void seam_greedy(const char *dtype, int *ids)
{
    duet_backend *be = make(dtype);
    int V = model->cfg.vocab_size, tok[32], pos[32], seq[32];
    uint8_t want[32];
    duet_batch bt;
    prompt(&bt, tok, pos, seq, want);
    float *lg = malloc(sizeof(float) * B * V);
    ck_assert_msg(be->forward(be, &bt, lg) == 0, "%s", duet_error());
    for (int s = 0; s < B; s++) ids[s] = duet_argmax(lg + (size_t)s * V, V);
    for (int i = 0; i < STEPS; i++) {
        int st[B], sp[B], sq[B];
        for (int s = 0; s < B; s++) st[s] = ids[i * B + s], sp[s] = LEN[s] + i, sq[s] = SLOT[s];
        duet_batch step = {B, st, sp, sq, NULL};
        ck_assert_msg(be->forward(be, &step, lg) == 0, "%s", duet_error());
        for (int s = 0; s < B; s++) ids[(i + 1) * B + s] = duet_argmax(lg + (size_t)s * V, V);
    }
    free(lg);
    duet_backend_free(be);
}

/* The GPU-side path: forward_argmax then decode_greedy in two calls (the second replays the graph of a
 * new length bound, the first's graph stays cached). */
static void gpu_greedy(const char *dtype, int *ids)
{
    duet_backend *be = make(dtype);
    int tok[32], pos[32], seq[32];
    uint8_t want[32];
    duet_batch bt;
    prompt(&bt, tok, pos, seq, want);
    ck_assert_msg(gpu_backend_forward_argmax(be, &bt, ids) == 0, "%s", duet_error());
    int h = STEPS / 2, sp[B];
    for (int s = 0; s < B; s++) sp[s] = LEN[s];
    ck_assert_msg(gpu_backend_decode_greedy(be, B, SLOT, sp, ids, h, ids + B) == 0, "%s", duet_error());
    for (int s = 0; s < B; s++) sp[s] = LEN[s] + h;
    ck_assert_msg(gpu_backend_decode_greedy(be, B, SLOT, sp, ids + h * B, STEPS - h, ids + (h + 1) * B) == 0, "%s",
                  duet_error());
    duet_backend_free(be);
}

START_TEST(test_same_tokens)
{
    const char *dtype = _i % 2 ? "bf16" : "fp16";
    int graphs = _i < 2;
    if (graphs) unsetenv("DUET_NO_GRAPHS");
    else setenv("DUET_NO_GRAPHS", "1", 1);
    int want[(1 + STEPS) * B], got[(1 + STEPS) * B];
    memset(got, 0xff, sizeof got);
    seam_greedy(dtype, want);
    gpu_greedy(dtype, got);
    int distinct = 0;
    for (int k = 0; k < (1 + STEPS) * B; k++) {
        ck_assert_msg(got[k] == want[k], "%s, graphs %d: step %d row %d: gpu greedy %d, seam %d", dtype, graphs,
                      k / B, k % B, got[k], want[k]);
        distinct += k && want[k] != want[k - 1];
    }
    ck_assert_msg(distinct > 3, "the tokens hardly change (%d changes): a weak test", distinct);
    printf("%s graphs %d: %d greedy tokens identical to the seam\n", dtype, graphs, (1 + STEPS) * B);
    unsetenv("DUET_NO_GRAPHS");
}
END_TEST

START_TEST(test_random_model)
{
    duet_config c = model->cfg;
    c.n_layers = 2;
    duet_backend_opts o = {.max_seqs = 2, .max_ctx = 32, .dtype = "fp16"};
    int ids[2][2 * 10];
    for (int r = 0; r < 2; r++) {
        duet_backend *be = gpu_backend_create_random(&c, &o, 42, DUET_Q_NONE);
        ck_assert_msg(be != NULL, "%s", duet_error());
        int tok[8] = {1, 2, 3, 4, 5, 6, 7, 8}, pos[8] = {0, 1, 2, 3, 0, 1, 2, 3}, seq[8] = {0, 0, 0, 0, 1, 1, 1, 1};
        uint8_t want[8] = {0, 0, 0, 1, 0, 0, 0, 1};
        duet_batch bt = {8, tok, pos, seq, want};
        int first[2], slots[2] = {0, 1}, dp[2] = {4, 4};
        ck_assert_msg(gpu_backend_forward_argmax(be, &bt, first) == 0, "%s", duet_error());
        ck_assert_msg(gpu_backend_decode_greedy(be, 2, slots, dp, first, 10, ids[r]) == 0, "%s", duet_error());
        for (int k = 0; k < 20; k++) ck_assert(ids[r][k] >= 0 && ids[r][k] < c.vocab_size);
        duet_backend_free(be);
    }
    ck_assert_msg(!memcmp(ids[0], ids[1], sizeof ids[0]), "random weights differ between two creations, same seed");
}
END_TEST

START_TEST(test_errors)
{
    duet_backend *be = make("fp16");
    int slots[2] = {1, 1}, pos[2] = {0, 0}, tok[2] = {1, 2}, out[2 * 70];
    ck_assert_int_eq(gpu_backend_decode_greedy(be, 2, slots, pos, tok, 1, out), -1); /* same slot twice */
    ck_assert_msg(strstr(duet_error(), "twice"), "%s", duet_error());
    slots[1] = 0;
    ck_assert_int_eq(gpu_backend_decode_greedy(be, 2, slots, pos, tok, 65, out), -1); /* past max_ctx 64 */
    ck_assert_msg(strstr(duet_error(), "context 64"), "%s", duet_error());
    ck_assert_int_eq(gpu_backend_decode_greedy(be, 5, slots, pos, tok, 1, out), -1); /* > max_seqs */
    tok[0] = model->cfg.vocab_size;
    ck_assert_int_eq(gpu_backend_decode_greedy(be, 2, slots, pos, tok, 1, out), -1); /* id outside vocab */
    duet_backend_free(be);
}
END_TEST

/* NaN logits in a device decode are an error naming NaN and the slot, greedy and sampled, with graphs
 * and without (gpu_sample itself still returns the host's id for a NaN row: test_gpu_sampling). */
START_TEST(test_nan_logits)
{
    char nd[64];
    snprintf(nd, sizeof nd, "/tmp/duet_gpu_nanXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(nd));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/model.safetensors' '%s/'", dir, dir, nd);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(test_poison_weight(nd, "model.norm.weight", 0) == 0, "%s", duet_error());
    duet_model *m = duet_model_open(nd);
    ck_assert_msg(m != NULL, "%s", duet_error());
    duet_backend_opts o = {.max_seqs = 2, .max_ctx = 32, .dtype = "fp16"};
    for (int graphs = 0; graphs < 2; graphs++) {
        if (graphs) unsetenv("DUET_NO_GRAPHS");
        else setenv("DUET_NO_GRAPHS", "1", 1);
        duet_backend *be = duet_backend_create("gpu", m, &o);
        ck_assert_msg(be != NULL, "%s", duet_error());
        int slots[2] = {0, 1}, pos[2] = {0, 0}, tok[2] = {1, 2}, out[2 * 4];
        ck_assert_int_eq(gpu_backend_decode_greedy(be, 2, slots, pos, tok, 4, out), -1);
        ck_assert_msg(strstr(duet_error(), "NaN") && strstr(duet_error(), "slot 0"), "%s", duet_error());
        duet_sampler sm;
        ck_assert_int_eq(duet_sampler_init(&sm, m->cfg.vocab_size, 1.0f, 0, 0.9f, 5), 0);
        duet_sampler *sp[1] = {&sm};
        pos[0] = 4;
        ck_assert_int_eq(be->decode(be, 1, slots, pos, tok, 4, sp, out), -1);
        ck_assert_msg(strstr(duet_error(), "NaN") && strstr(duet_error(), "slot 0"), "%s", duet_error());
        duet_sampler_free(&sm);
        duet_backend_free(be);
    }
    unsetenv("DUET_NO_GRAPHS");
    duet_model_close(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", nd);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    if (test_gpu_absent()) return TEST_EXIT_SKIP;
    duet_synth_opts o;
    duet_synth_defaults(&o);
    /* head_dim 64: the prefill goes through the tensor-core attention where it is built */
    o.cfg.dim = 128, o.cfg.ffn_dim = 344, o.cfg.n_layers = 2, o.cfg.n_heads = 2, o.cfg.n_kv_heads = 1;
    o.cfg.head_dim = 64, o.cfg.vocab_size = 512, o.cfg.max_pos = 128, o.seed = 11;
    snprintf(dir, sizeof dir, "/tmp/duet_gpu_greedyXXXXXX");
    if (!mkdtemp(dir) || duet_synth_write(&o, dir) || !(model = duet_model_open(dir))) {
        fprintf(stderr, "synthetic model: %s\n", duet_error());
        return TEST_EXIT_HARD;
    }
    Suite *s = suite_create("gpu_greedy");
    TCase *tc = tcase_create("greedy");
    tcase_add_loop_test(tc, test_same_tokens, 0, 4);
    tcase_add_test(tc, test_random_model);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_nan_logits);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    duet_model_close(model);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
