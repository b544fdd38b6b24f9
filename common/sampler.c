/* sampler.c: greedy / temperature / top-k / top-p sampling (see sampler.h). */
#include "sampler.h"
#include "error.h"
#include "expf_exact.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>

int duet_sampler_init(duet_sampler *s, int vocab, float temperature, int top_k, float top_p, uint64_t seed)
{
    if (!(temperature >= 0.0f)) return duet_errorf("temperature %g must be >= 0", temperature);
    if (top_k < 0) return duet_errorf("top-k %d must be >= 0", top_k);
    if (!(top_p > 0.0f && top_p <= 1.0f)) return duet_errorf("top-p %g must be in (0, 1]", top_p);
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->seed = seed;
    s->step = 0;
    s->vocab = vocab;
    s->probs = malloc(sizeof(float) * vocab);
    s->order = malloc(sizeof(int) * vocab);
    if (!s->probs || !s->order) return duet_errorf("sampler: out of memory");
    return 0;
}

void duet_sampler_free(duet_sampler *s)
{
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

int duet_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* qsort_r comparator: ids by descending probability, lower id first on ties. */
static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const float *probs = ctx;
    float x = probs[*(const int *)a], y = probs[*(const int *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b; /* stable: lower id first */
}

int duet_sample(duet_sampler *s, const float *logits)
{
    const int V = s->vocab;
    if (s->temperature == 0.0f) return duet_argmax(logits, V);
    /* softmax(logits / T) */
    float mx = logits[duet_argmax(logits, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = duet_expf((logits[i] - mx) / s->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < V; i++) {
        s->probs[i] = (float)(s->probs[i] / sum);
        s->order[i] = i;
    }
    int n = V;
    if (s->top_k > 0 || s->top_p < 1.0f) {
        qsort_r(s->order, V, sizeof(int), cmp_desc, s->probs);
        if (s->top_k > 0 && s->top_k < n) n = s->top_k;
        if (s->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p (at least one token) */
            double mass = 0, kept = 0;
            for (int i = 0; i < n; i++) kept += s->probs[s->order[i]];
            int m = 0;
            while (m < n) {
                mass += s->probs[s->order[m++]] / kept;
                if (mass >= s->top_p) break;
            }
            n = m;
        }
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += s->probs[s->order[i]];
    double r = duet_rng_uniform(s->seed, s->step++) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->probs[s->order[i]];
        if (r < acc) return s->order[i];
    }
    return s->order[n - 1];
}
