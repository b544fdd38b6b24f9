/* test_sampler.c: greedy, temperature, top-k and top-p on known distributions; seeded draws are
 * reproducible; parameters out of range are refused with the flag's name; NaN logits stop generation. */
#include "test_util.h"

#include "backend.h"
#include "error.h"
#include "engine/registry.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V 6
/* probabilities 0.4 0.3 0.15 0.1 0.05 0 (last one -inf) as logits */
static void logits_of(float *l)
{
    const float p[V] = {0.4f, 0.3f, 0.15f, 0.1f, 0.05f, 0.0f};
    for (int i = 0; i < V; i++) l[i] = p[i] > 0 ? logf(p[i]) : -INFINITY;
}

START_TEST(test_greedy_and_ties)
{
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, V, 0.0f, 0, 1.0f, 1), 0);
    float l[V] = {1, 3, 3, 2, 0, -1};
    ck_assert_int_eq(duet_sample(&s, l), 1); /* lowest id among the tied maxima */
    duet_sampler_free(&s);
}
END_TEST

/* Empirical frequencies over 20000 seeded draws are within 0.015 of the expected ones. */
static void frequencies(float temp, int top_k, float top_p, const double *want)
{
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, V, temp, top_k, top_p, 42), 0);
    float l[V];
    logits_of(l);
    int count[V] = {0}, n = 20000;
    for (int i = 0; i < n; i++) count[duet_sample(&s, l)]++;
    for (int i = 0; i < V; i++)
        ck_assert_msg(fabs(count[i] / (double)n - want[i]) < 0.015, "T=%g k=%d p=%g: id %d freq %.4f, want %.4f", temp,
                      top_k, top_p, i, count[i] / (double)n, want[i]);
    duet_sampler_free(&s);
}

START_TEST(test_distributions)
{
    const double plain[V] = {0.4, 0.3, 0.15, 0.1, 0.05, 0};
    frequencies(1.0f, 0, 1.0f, plain);
    const double k2[V] = {0.4 / 0.7, 0.3 / 0.7, 0, 0, 0, 0};
    frequencies(1.0f, 2, 1.0f, k2);
    /* top-p 0.8: the smallest prefix reaching 0.8 is {0.4, 0.3, 0.15} (0.85) */
    const double p8[V] = {0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0, 0};
    frequencies(1.0f, 0, 0.8f, p8);
    /* temperature 0.5 squares the probabilities (then renormalises) */
    double z = 0.16 + 0.09 + 0.0225 + 0.01 + 0.0025;
    const double t5[V] = {0.16 / z, 0.09 / z, 0.0225 / z, 0.01 / z, 0.0025 / z, 0};
    frequencies(0.5f, 0, 1.0f, t5);
    const double k1[V] = {1, 0, 0, 0, 0, 0};
    frequencies(1.0f, 1, 1.0f, k1);
}
END_TEST

START_TEST(test_reproducible)
{
    duet_sampler a, b, c;
    float l[V];
    logits_of(l);
    ck_assert_int_eq(duet_sampler_init(&a, V, 1.0f, 0, 1.0f, 7), 0);
    ck_assert_int_eq(duet_sampler_init(&b, V, 1.0f, 0, 1.0f, 7), 0);
    ck_assert_int_eq(duet_sampler_init(&c, V, 1.0f, 0, 1.0f, 8), 0);
    int same = 1, differ = 0;
    for (int i = 0; i < 200; i++) {
        int x = duet_sample(&a, l), y = duet_sample(&b, l), z = duet_sample(&c, l);
        same &= x == y;
        differ |= x != z;
    }
    ck_assert(same);
    ck_assert(differ);
    duet_sampler_free(&a);
    duet_sampler_free(&b);
    duet_sampler_free(&c);
}
END_TEST

START_TEST(test_bad_parameters)
{
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, V, -1.0f, 0, 1.0f, 0), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "temperature"));
    ck_assert_int_eq(duet_sampler_init(&s, V, 1.0f, -2, 1.0f, 0), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "top-k"));
    ck_assert_int_eq(duet_sampler_init(&s, V, 1.0f, 0, 1.5f, 0), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "top-p"));
}
END_TEST

/* Generation of 8 tokens from ids {1, 2} on the ref at temperature `temp`; returns duet_generate's status. */
static int gen8(const char *dir, float temp, int *out)
{
    duet_model *m = duet_model_open(dir);
    ck_assert_msg(m != NULL, "%s", duet_error());
    duet_backend_opts bo = {.max_seqs = 1, .max_ctx = 16};
    duet_backend *b = duet_backend_create("ref", m, &bo);
    ck_assert_msg(b != NULL, "%s", duet_error());
    duet_sampler s;
    ck_assert_int_eq(duet_sampler_init(&s, m->cfg.vocab_size, temp, 0, 1.0f, 3), 0);
    int prompt[2] = {1, 2};
    duet_gen_opts o = {.max_new = 8, .eos_id = -1, .sampler = &s};
    duet_gen_stats st;
    duet_error_clear();
    int rc = duet_generate(b, &bo, prompt, 2, &o, out, &st);
    duet_sampler_free(&s);
    duet_backend_free(b);
    duet_model_close(m);
    return rc;
}

/* NaN logits end generation with an error naming NaN and the position, at the prefill and at a decode
 * step, greedy and sampled (the sampler alone returns an id for a NaN row, and generation went on). */
START_TEST(test_nan_logits)
{
    char dir[128];
    ck_assert_int_eq(test_tmpdir(dir, sizeof dir, "nan"), 0);
    duet_synth_opts so;
    duet_synth_defaults(&so);
    ck_assert_msg(duet_synth_write(&so, dir) == 0, "%s", duet_error());
    int clean[2][8], out[8];
    /* the first generated token's embedding row (greedy and sampled): the prefill is clean, the step
     * that feeds that token is not */
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(gen8(dir, k ? 1.0f : 0.0f, clean[k]) == 0, "%s", duet_error());
        ck_assert_msg(clean[k][0] != 1 && clean[k][0] != 2, "first token %d is in the prompt", clean[k][0]);
    }
    for (int k = 0; k < 2; k++)
        ck_assert_msg(test_poison_weight(dir, "model.embed_tokens.weight", (int64_t)clean[k][0] * so.cfg.dim) == 0,
                      "%s", duet_error());
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(gen8(dir, k ? 1.0f : 0.0f, out), -1);
        ck_assert_msg(strstr(duet_error(), "NaN") && strstr(duet_error(), "position 2"), "%s", duet_error());
    }
    ck_assert_msg(test_poison_weight(dir, "model.norm.weight", 0) == 0, "%s", duet_error());
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(gen8(dir, k ? 1.0f : 0.0f, out), -1);
        ck_assert_msg(strstr(duet_error(), "NaN") && strstr(duet_error(), "position 1"), "%s", duet_error());
    }
    ck_assert_int_eq(test_rmtree(dir), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_add_test(tc, test_greedy_and_ties);
    tcase_add_test(tc, test_distributions);
    tcase_add_test(tc, test_reproducible);
    tcase_add_test(tc, test_bad_parameters);
    tcase_add_test(tc, test_nan_logits);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
