/* test_kv_pool.c: the ref's paged KV pool and batch_invariant, on a synthetic model (common/synth.h's
 * defaults: 2 layers, 4 kv heads x 8, vocab 512; no data needed): release gives blocks back (a slot
 * reused after release computes what a fresh backend computes), pool exhaustion is an error naming the
 * slot that leaves the pool and the caches as they were, a budget of N blocks holds exactly N x 16
 * positions across slots, and with batch_invariant a sequence's logits are bit-identical alone, packed
 * with other sequences, and prefilled in chunks of any size. */
#include "test_util.h"

#include "backend.h"
#include "error.h"
#include "engine/registry.h"
#include "model.h"
#include "synth.h"

#include <stdlib.h>
#include <string.h>

static char dir[128];
static duet_model *model;
static int V;
static int64_t block_bytes; /* K + V of one block: 2 x layers x 16 positions x kv heads x head_dim fp32 */

static void setup(void)
{
    ck_assert_int_eq(test_tmpdir(dir, sizeof dir, "kv_pool"), 0);
    duet_synth_opts so;
    duet_synth_defaults(&so);
    ck_assert_msg(duet_synth_write(&so, dir) == 0, "%s", duet_error());
    model = duet_model_open(dir);
    ck_assert_msg(model != NULL, "%s", duet_error());
    const duet_config *c = &model->cfg;
    V = c->vocab_size;
    block_bytes = 2LL * c->n_layers * 16 * c->n_kv_heads * c->head_dim * (int64_t)sizeof(float);
}

static void teardown(void)
{
    duet_model_close(model);
    test_rmtree(dir);
}

static duet_backend *make(int max_seqs, int max_ctx, int64_t budget, int invariant)
{
    duet_backend_opts o = {.max_seqs = max_seqs, .max_ctx = max_ctx, .dtype = "fp32", .threads = 1,
                           .kv_budget = budget, .batch_invariant = invariant};
    duet_backend *b = duet_backend_create("ref", model, &o);
    ck_assert_msg(b != NULL, "%s", duet_error());
    ck_assert_int_eq(b->kv_block, 16);
    return b;
}

/* Pseudo-random ids in [0, V) from a seed. */
static void ids_of(int seed, int *ids, int n)
{
    uint32_t r = 2654435761u * (uint32_t)(seed + 1);
    for (int i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        ids[i] = (int)((r >> 8) % (uint32_t)V);
    }
}

/* Forward of ids[from, from + n) at positions from.. of slot `seq`, logits for every token into out
 * (n x V). Returns the forward's status. */
static int run(duet_backend *b, int seq, const int *ids, int from, int n, float *out)
{
    int pos[64], sq[64];
    ck_assert(n <= 64);
    for (int i = 0; i < n; i++) pos[i] = from + i, sq[i] = seq;
    duet_batch bt = {n, ids + from, pos, sq, NULL};
    return b->forward(b, &bt, out);
}

/* Runs ids[0, n) in slot seq as chunks of `chunk` tokens; every token's logits into out (n x V). */
static void run_chunked(duet_backend *b, int seq, const int *ids, int n, int chunk, float *out)
{
    for (int at = 0; at < n; at += chunk) {
        int k = n - at < chunk ? n - at : chunk;
        ck_assert_msg(run(b, seq, ids, at, k, out + (int64_t)at * V) == 0, "chunk at %d: %s", at, duet_error());
    }
}

static float *logits_buf(int rows)
{
    float *p = malloc(sizeof(float) * (size_t)rows * V);
    ck_assert(p != NULL);
    return p;
}

/* Sizing: 0 = every slot full; a budget holds floor(budget / block) blocks, at most every slot full;
 * under one block (or negative) is refused naming kv_budget. */
START_TEST(test_sizing)
{
    duet_backend *b = make(3, 40, 0, 0);
    ck_assert_int_eq(b->kv_blocks, 3 * 3); /* ceil(40 / 16) = 3 per slot */
    duet_backend_free(b);
    b = make(3, 40, 5 * block_bytes + block_bytes - 1, 0);
    ck_assert_int_eq(b->kv_blocks, 5);
    duet_backend_free(b);
    b = make(3, 40, 100 * block_bytes, 0);
    ck_assert_int_eq(b->kv_blocks, 9);
    duet_backend_free(b);
    duet_backend_opts o = {.max_seqs = 1, .max_ctx = 16, .kv_budget = block_bytes - 1};
    ck_assert(duet_backend_create("ref", model, &o) == NULL);
    ck_assert_msg(strstr(duet_error(), "kv_budget") && strstr(duet_error(), "no KV block"), "%s", duet_error());
    o.kv_budget = -1;
    ck_assert(duet_backend_create("ref", model, &o) == NULL);
    ck_assert_msg(strstr(duet_error(), "kv_budget") && strstr(duet_error(), "negative"), "%s", duet_error());
}
END_TEST

/* A pool of 4 blocks holds one 64-position sequence: after release, another slot runs a sequence and
 * gets a fresh backend's logits bit for bit, and the first slot reruns its own bit for bit. */
START_TEST(test_release)
{
    enum { NA = 64, NB = 50 };
    int a[NA], bb[NB];
    ids_of(1, a, NA);
    ids_of(2, bb, NB);
    float *la = logits_buf(NA), *lb = logits_buf(NB), *want = logits_buf(NA), *one = logits_buf(1);
    duet_backend *fresh = make(1, 64, 0, 0);
    run_chunked(fresh, 0, bb, NB, 16, want);
    duet_backend_free(fresh);

    duet_backend *b = make(2, 64, 4 * block_bytes, 0);
    ck_assert_int_eq(b->kv_blocks, 4);
    run_chunked(b, 0, a, NA, 16, la);
    ck_assert_int_eq(run(b, 1, bb, 0, 1, one), -1); /* the pool is full */
    ck_assert_int_eq(b->release(b, 0), 0);
    run_chunked(b, 1, bb, NB, 16, lb);
    ck_assert(memcmp(lb, want, sizeof(float) * (size_t)NB * V) == 0);
    ck_assert_int_eq(b->release(b, 1), 0);
    ck_assert_int_eq(b->release(b, 1), 0); /* an empty slot: nothing to give back */
    float *la2 = logits_buf(NA);
    run_chunked(b, 0, a, NA, 16, la2);
    ck_assert(memcmp(la, la2, sizeof(float) * (size_t)NA * V) == 0);
    /* slots out of range */
    ck_assert_int_eq(b->release(b, 2), -1);
    ck_assert_msg(strstr(duet_error(), "slot 2"), "%s", duet_error());
    ck_assert_int_eq(b->release(b, -1), -1);
    ck_assert_msg(strstr(duet_error(), "slot -1"), "%s", duet_error());
    duet_backend_free(b);
    free(la);
    free(la2);
    free(lb);
    free(want);
    free(one);
}
END_TEST

/* Exhaustion: the error names the slot, the position and the pool; the failing batch changes nothing
 * (a batch whose first token fits and whose second does not leaves the fitting slot's cache and the
 * free blocks as they were), and the pool works on: the slot's next token matches a backend that never
 * saw the failure, and a release lets the refused slot in. */
START_TEST(test_exhaustion)
{
    enum { N0 = 20, N1 = 16 };
    int s0[N0 + 4], s1[N1 + 1], s2[1];
    ids_of(3, s0, N0 + 4);
    ids_of(4, s1, N1 + 1);
    ids_of(5, s2, 1);
    float *l = logits_buf(N0 + 4), *want = logits_buf(1), *got = logits_buf(2);
    duet_backend *ref = make(1, 64, 0, 0); /* slot 0's history without any failure */
    run(ref, 0, s0, 0, N0, l);
    ck_assert_int_eq(run(ref, 0, s0, N0, 1, want), 0);
    duet_backend_free(ref);

    duet_backend *b = make(3, 64, 3 * block_bytes, 0);
    ck_assert_int_eq(run(b, 0, s0, 0, N0, l), 0); /* blocks 0, 1 */
    ck_assert_int_eq(run(b, 1, s1, 0, N1, l), 0); /* block 2: the pool is full */
    ck_assert_int_eq(run(b, 2, s2, 0, 1, got), -1);
    ck_assert_msg(strstr(duet_error(), "slot 2") && strstr(duet_error(), "position 0") &&
                      strstr(duet_error(), "3 blocks"),
                  "%s", duet_error());
    /* slot 0 position 20 fits its block 1; slot 1 position 16 needs a block: the batch fails whole */
    int tok[2] = {s0[N0], s1[N1]}, pos[2] = {N0, N1}, seq[2] = {0, 1};
    duet_batch mixed = {2, tok, pos, seq, NULL};
    ck_assert_int_eq(b->forward(b, &mixed, got), -1);
    ck_assert_msg(strstr(duet_error(), "slot 1") && strstr(duet_error(), "position 16"), "%s", duet_error());
    /* the pool still runs slot 0, as if nothing had failed */
    ck_assert_int_eq(run(b, 0, s0, N0, 1, got), 0);
    ck_assert(memcmp(got, want, sizeof(float) * V) == 0);
    /* and slot 2 gets in once slot 1 is released (one block free) */
    ck_assert_int_eq(run(b, 2, s2, 0, 1, got), -1);
    ck_assert_int_eq(b->release(b, 1), 0);
    /* a slot's blocks cover positions 0 to its last: a token at position 16 of the empty slot 2 needs
     * two blocks, one is free: refused, and the block it took goes back (position 0 then fits) */
    int far_tok = s2[0], far_pos = 16, far_seq = 2;
    duet_batch far = {1, &far_tok, &far_pos, &far_seq, NULL};
    ck_assert_int_eq(b->forward(b, &far, got), -1);
    ck_assert_msg(strstr(duet_error(), "slot 2") && strstr(duet_error(), "position 16"), "%s", duet_error());
    ck_assert_msg(run(b, 2, s2, 0, 1, got) == 0, "%s", duet_error());
    duet_backend_free(b);
    free(l);
    free(want);
    free(got);
}
END_TEST

/* A budget of 5 blocks holds exactly 80 positions across slots (32 + 16 + 32, written one token at a
 * time, the slots interleaved); the 81st, in any slot, is refused; a release of 16 positions lets
 * exactly 16 more in. */
START_TEST(test_budget_exact)
{
    enum { NB = 5 };
    duet_backend *b = make(4, 64, NB * block_bytes, 0);
    ck_assert_int_eq(b->kv_blocks, NB);
    int len[4] = {32, 16, 32, 0}, at[4] = {0, 0, 0, 0}, ids[4][64];
    for (int s = 0; s < 4; s++) ids_of(10 + s, ids[s], 64);
    float *l = logits_buf(1);
    int written = 0;
    for (int more = 1; more;) {
        more = 0;
        for (int s = 0; s < 4; s++)
            if (at[s] < len[s]) {
                ck_assert_msg(run(b, s, ids[s], at[s]++, 1, l) == 0, "position %d of slot %d: %s", at[s] - 1, s,
                              duet_error());
                written++;
                more = 1;
            }
    }
    ck_assert_int_eq(written, NB * 16);
    for (int s = 0; s < 4; s++) {
        ck_assert_int_eq(run(b, s, ids[s], at[s], 1, l), -1);
        ck_assert_msg(strstr(duet_error(), "exhausted"), "%s", duet_error());
    }
    ck_assert_int_eq(b->release(b, 1), 0);
    for (int p = 0; p < 16; p++)
        ck_assert_msg(run(b, 3, ids[3], p, 1, l) == 0, "slot 3 position %d: %s", p, duet_error());
    ck_assert_int_eq(run(b, 3, ids[3], 16, 1, l), -1);
    ck_assert_int_eq(run(b, 1, ids[1], 0, 1, l), -1);
    duet_backend_free(b);
    free(l);
}
END_TEST

/* batch_invariant: sequence X (37 tokens) alone in one prefill, as chunks of 1, 5, 16 and 20, and
 * packed with two other sequences (its tokens at other rows of the batch, interleaved): the same
 * logits, bit for bit. The last token's logits asked alone (logits_for) are the same row too. */
START_TEST(test_batch_invariant)
{
    enum { NX = 37, NY = 23, NZ = 9 };
    int x[NX], y[NY], z[NZ];
    ids_of(20, x, NX);
    ids_of(21, y, NY);
    ids_of(22, z, NZ);
    float *alone = logits_buf(NX), *got = logits_buf(NX), *packed = logits_buf(NX + NY + NZ);
    duet_backend *b = make(4, 64, 0, 1);
    run_chunked(b, 0, x, NX, NX, alone);
    const int chunks[] = {1, 5, 16, 20};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        duet_backend *c = make(2, 64, 0, 1);
        run_chunked(c, 1, x, NX, chunks[i], got);
        ck_assert_msg(memcmp(got, alone, sizeof(float) * (size_t)NX * V) == 0, "chunks of %d differ", chunks[i]);
        duet_backend_free(c);
    }
    /* one batch: y's first 11 tokens, then x and z and the rest of y interleaved, x in slot 3 */
    int tok[NX + NY + NZ], pos[NX + NY + NZ], seq[NX + NY + NZ], xrow[NX], T = 0, ix = 0, iy = 0, iz = 0;
    for (; iy < 11; iy++, T++) tok[T] = y[iy], pos[T] = iy, seq[T] = 1;
    while (ix < NX || iy < NY || iz < NZ) {
        if (ix < NX) xrow[ix] = T, tok[T] = x[ix], pos[T] = ix, seq[T++] = 3, ix++;
        if (iz < NZ && ix % 3 == 0) tok[T] = z[iz], pos[T] = iz, seq[T++] = 0, iz++;
        if (iy < NY && ix % 2 == 0) tok[T] = y[iy], pos[T] = iy, seq[T++] = 1, iy++;
    }
    ck_assert_int_eq(T, NX + NY + NZ);
    duet_backend *p = make(4, 64, 0, 1);
    duet_batch bt = {T, tok, pos, seq, NULL};
    ck_assert_msg(p->forward(p, &bt, packed) == 0, "%s", duet_error());
    for (int i = 0; i < NX; i++)
        ck_assert_msg(memcmp(packed + (int64_t)xrow[i] * V, alone + (int64_t)i * V, sizeof(float) * V) == 0,
                      "x's token %d (batch row %d) differs packed", i, xrow[i]);
    duet_backend_free(p);
    /* the last token alone, its logits asked through logits_for (the one-row lm_head path) */
    duet_backend *q = make(1, 64, 0, 1);
    run_chunked(q, 0, x, NX - 1, NX - 1, got);
    int lpos = NX - 1, lseq = 0;
    uint8_t want_row = 1;
    duet_batch last = {1, x + NX - 1, &lpos, &lseq, &want_row};
    ck_assert_msg(q->forward(q, &last, got) == 0, "%s", duet_error());
    ck_assert(memcmp(got, alone + (int64_t)(NX - 1) * V, sizeof(float) * V) == 0);
    duet_backend_free(q);
    duet_backend_free(b);
    free(alone);
    free(got);
    free(packed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kv_pool");
    TCase *tc = tcase_create("kv_pool");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sizing);
    tcase_add_test(tc, test_release);
    tcase_add_test(tc, test_exhaustion);
    tcase_add_test(tc, test_budget_exact);
    tcase_add_test(tc, test_batch_invariant);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
