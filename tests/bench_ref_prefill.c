/* bench_ref_prefill.c: the ref's prefill and decode speed with and without batch_invariant, a
 * benchmark (not a test: `make tests/bench_ref_prefill`, then
 * tests/bench_ref_prefill MODEL [PROMPT_TOKENS [THREADS]]). Runs a prompt of pseudo-random ids as one
 * prefill, then 16 decode steps, 3 times per setting, and prints the best tok/s of each. */
#include "engine/registry.h"
#include "error.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PROMPT_TOKENS [THREADS]]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200, threads = argc > 3 ? atoi(argv[3]) : 0, steps = 16;
    duet_model *m = duet_model_open(argv[1]);
    if (!m) {
        fprintf(stderr, "%s\n", duet_error());
        return 1;
    }
    if (n <= 0 || n + steps > m->cfg.max_pos) {
        fprintf(stderr, "prompt of %d tokens does not fit %d positions\n", n, m->cfg.max_pos);
        return 2;
    }
    int *ids = malloc(sizeof(int) * (n + steps)), *pos = malloc(sizeof(int) * (n + steps)),
        *seq = calloc(n + steps, sizeof(int));
    uint8_t *last = calloc(n, 1);
    float *logits = malloc(sizeof(float) * m->cfg.vocab_size);
    uint32_t r = 12345;
    for (int i = 0; i < n + steps; i++) {
        r = r * 1664525u + 1013904223u;
        ids[i] = (int)((r >> 8) % (uint32_t)m->cfg.vocab_size);
        pos[i] = i;
    }
    last[n - 1] = 1;
    for (int inv = 0; inv < 2; inv++) {
        duet_backend_opts o = {.max_seqs = 1, .max_ctx = n + steps, .threads = threads, .batch_invariant = inv};
        duet_backend *b = duet_backend_create("ref", m, &o);
        if (!b) {
            fprintf(stderr, "%s\n", duet_error());
            return 1;
        }
        double best_p = 0, best_d = 0;
        for (int rep = 0; rep < 3; rep++) {
            duet_batch pb = {n, ids, pos, seq, last};
            double t0 = now();
            if (b->forward(b, &pb, logits)) break;
            double t1 = now();
            for (int i = 0; i < steps; i++) {
                duet_batch db = {1, ids + n + i, pos + n + i, seq, NULL};
                if (b->forward(b, &db, logits)) break;
            }
            double t2 = now();
            if (n / (t1 - t0) > best_p) best_p = n / (t1 - t0);
            if (steps / (t2 - t1) > best_d) best_d = steps / (t2 - t1);
        }
        printf("batch_invariant %d: prefill %d tokens %.1f tok/s, decode %.1f tok/s (threads %d, best of 3)\n", inv, n,
               best_p, best_d, threads);
        duet_backend_free(b);
    }
    free(ids);
    free(pos);
    free(seq);
    free(last);
    free(logits);
    duet_model_close(m);
    return 0;
}
