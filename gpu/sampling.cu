/* sampling.cu: greedy argmax, one block per row; ties go to the lowest id (NaN never wins). And gpu_sample:
 * duet_sample (common/sampler.c) on the GPU, bit for bit; how is explained above sample_kernel. */
#include "cuda_check.h"
#include "expf_exact.h"
#include "rng.h"
#include "sampling.h"

#include <limits.h>
#include <stdint.h>

__device__ __forceinline__ void better(float &bv, int &bi, float v, int i)
{
    if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
}

__global__ void argmax_kernel(int *ids, const float *logits, int V)
{
    const float *row = logits + (int64_t)blockIdx.x * V;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) better(bv, bi, row[i], i);
    for (int off = 16; off > 0; off >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, bv, off);
        int i = __shfl_xor_sync(0xffffffffu, bi, off);
        better(bv, bi, v, i);
    }
    __shared__ float sv[32];
    __shared__ int si[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sv[warp] = bv, si[warp] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) better(bv, bi, sv[w], si[w]);
        ids[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

extern "C" int gpu_argmax(int *ids, const float *logits, int R, int V, gpu_stream s)
{
    argmax_kernel<<<R, 1024, 0, s>>>(ids, logits, V);
    LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * gpu_sample. The host (duet_sample) does, for one row of V logits:
 *   T == 0: argmax (first maximum; NaN never wins unless logits[0] is NaN, then 0). Otherwise
 *   e_i = duet_expf((l_i - mx) / T) (float), sum = sequential double sum of e_0..e_{V-1}, p_i = (float)(e_i / sum);
 *   without top-k / top-p: walk ids 0..V-1; with either: order = ids sorted by (p desc, id asc) (qsort_r),
 *   n = top_k if 0 < top_k < V else V, top-p: kept = sequential double sum of the first n, mass += p / kept
 *   until mass >= top_p (n = that count); total = sequential double sum of the first n, r = u * total with
 *   u = duet_rng_uniform(seed, step++), the first i with r < acc_i (acc: running double sum) wins.
 * Every one of those roundings is reproduced here, so the id is the host's for every input (not only with
 * high probability):
 *  - exp: duet_expf (common/expf_exact.h), which the host sampler uses too: an exactly specified double
 *    evaluation with explicit FMAs, so both sides compute the same bits (libm's expf and CUDA's expf
 *    differ from each other and would not do).
 *  - sequential double sums: see seq_scan. Any other summation order rounds differently, and a sum off by
 *    one unit moves p_i by an ulp now and then, which changes sort orders of near ties and draws.
 *  - the sort: the host's order restricted to a candidate set that provably holds every id the host can
 *    return (a prefix of the host's order), compacted as 64-bit keys (float bits of p) << 32 | ~id, sorted
 *    descending with a bitonic network (ties in p go to the lower id, as the host's comparator).
 * Candidates (p >= 0 without NaN, so the uint32 bits of p order like p; ids with p == 0 are never drawn
 * since acc does not grow there, and sort after every positive p, so they are dropped):
 *  - 0 < top_k < V: t = the top_k-th largest p (radix select on the bits: 4 passes of 8 bits, a shared
 *    256-bin histogram); candidates = ids with p > t, and of those with p == t the lowest ids, as many as
 *    the top k still holds (the host's order puts equal p by id): exactly the host's first top_k ids.
 *    kept is then a sum over the sorted candidates: exact.
 *  - n == V with top-p (top_k == 0 or >= V): t' = the largest t' with mass(p >= t') >= top_p * total *
 *    (1 + 1e-5) (mass in units of 2^-31, truncated: a lower bound; total an upper bound), found the same way
 *    with the histogram weighted by mass. The host stops at the first prefix whose mass reaches top_p,
 *    and its mass, summed in double, is within ~V * 2^-53 relative of the real one, far inside the 1e-5
 *    margin: so the host's nucleus is a prefix of {p >= t'}. The host's kept, though, sums all V sorted
 *    p's; here it is the exact sum over the candidates plus the rest summed in a tree: |kept - host| <=
 *    ~2 V 2^-53 kept, so each mass differs from the host's by at most E = (8 V + 128) 2^-53. The cut is
 *    taken only when the masses around it clear top_p by more than E (then it is the host's cut); if not
 *    (or no candidate reaches top_p), everything is done again with all positive p (kept exact): never
 *    seen with random data, but it makes the result exact rather than probable.
 *  - otherwise (top_k >= V, top_p == 1): all positive p.
 * NaN / inf: one NaN logit, any +inf, or a row of -inf (mx - mx = NaN) makes the host's sum NaN, every
 * p NaN, r NaN, and its walk never returns: it returns order[n - 1]: V - 1 without sorting; with sorting,
 * glibc's qsort_r is a (stable) merge sort, and the comparator says "before" for any pair of NaNs, so the
 * order stays 0..V-1 and the id is n - 1 (n from top-k; top-p never cuts with NaN). That is what the GPU
 * returns then (step advanced, as the host's). -inf logits among finite ones give p = 0: never drawn.
 * Temperature < 0 or inf is unspecified (the host may then mix NaN and 0 in one row, and qsort_r's order
 * with such a comparator is not worth mirroring); the id stays in [0, V).
 * Layouts: logits (R, V) fp32 row-major; params, steps, ids (R); ws = P (R, PS) fp32 (e_i, then p_i), then
 * K (R, KS) uint64 candidate keys. PS = cv * NT with cv = ceil(V / NT): row r's id t * cv + j (thread t's
 * j-th) sits at P[r][j * NT + t] (ids >= V: 0), so the per-thread chunk loops read whole lines; KS = V
 * rounded up to a power of two.
 * One block of NT threads per row, everything on the device: no allocation, no sync, graph-capturable.
 * Cost: a handful of passes over the row; the sort only over the candidates (32 KiB shared tiles, plus
 * global-memory passes above 4096 candidates: top_k >= V or top-p over a flat row are the slow cases).
 * Measured on an H100, 64 rows of V = 32000 per launch (CUDA events): temperature only 100-140 us, top-k 40
 * ~165 us, top-p 0.9 ~230 us (LLM-like rows) to ~760 us (near-uniform rows: a nucleus of ~29000), top_k = V
 * ~620 us; V = 517: 40-95 us. The exact sums (seq_scan) are most of it: per sum ~20 us of guesses and a
 * dozen binade crossings walked by one warp. */
namespace {

typedef unsigned long long u64;
constexpr int NT = 1024;             /* threads per row */
constexpr int NW = NT / 32;          /* warps per row */
constexpr int TILE = 4096;           /* keys in a shared-memory bitonic tile (32 KiB) */
constexpr int EX_IDENT = 0x7fffffff; /* seq_scan: a chunk of zeros (leaves the sum as it is) */
constexpr int EX_COMPLEX = -1;       /* seq_scan: a chunk that is replayed term by term */
constexpr unsigned FULL = 0xffffffffu;
static_assert(NW == 32, "the block reductions reduce one value per warp in one warp");

constexpr int NSTASH = 24; /* seq_scan: chunks (of <= 32 terms) kept in shared memory for their replay */
struct SeqShared {
    double start[NT + 1];      /* exact running sum before chunk t; start[nch] = the total */
    u64 d0[NT], d1[NT];        /* chunk t's increment in grid units, for an even / odd starting mantissa */
    int ex[NT];                /* the binade (biased exponent) d0/d1 assume, or EX_IDENT / EX_COMPLEX */
    signed char slot[NT];      /* chunk t's terms are in stash[slot] (-1: not kept) */
    double stash[NSTASH][32];
    int nstash;
};

struct Shared {
    union { /* used one after the other, never at once */
        SeqShared seq;
        u64 tile[TILE];
        unsigned hist[256];
    } u;
    double red_d[NW];
    u64 red_u[NW];
    float am_v[NW];
    int am_i[NW];
    int bi, cnt, sel, found;
    u64 bu, need;
    double bd, fb, fa;
};

/* ---- block-wide helpers (every thread of the block calls them; they end with a barrier) ---- */

/* Warp sums by xor shuffles: double with explicit round-to-nearest adds, u64 exact. */
__device__ __forceinline__ double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) v = __dadd_rn(v, __shfl_xor_sync(FULL, v, o));
    return v;
}
__device__ __forceinline__ u64 warp_sum(u64 v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

/* Block sum over NW warps with a fixed summation tree (lane 0's order), so the result is the same on
 * every run; red (NW) and out are the block's shared scratch for this type. */
template <typename V> __device__ V block_sum(V v, V *red, V &out)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        const V t = warp_sum(red[lane]);
        if (lane == 0) out = t;
    }
    __syncthreads();
    const V r = out;
    __syncthreads();
    return r;
}

/* Inclusive prefix sum over the threads in thread order (exact). */
__device__ u64 block_incl_scan_u(u64 v, Shared &sh)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        const u64 t = __shfl_up_sync(FULL, v, o);
        if (lane >= o) v += t;
    }
    if (lane == 31) sh.red_u[w] = v;
    __syncthreads();
    if (w == 0) {
        u64 t = sh.red_u[lane];
        for (int o = 1; o < 32; o <<= 1) {
            const u64 y = __shfl_up_sync(FULL, t, o);
            if (lane >= o) t += y;
        }
        sh.red_u[lane] = t;
    }
    __syncthreads();
    if (w > 0) v += sh.red_u[w - 1];
    __syncthreads();
    return v;
}

/* Exclusive prefix sum of doubles in thread order: an estimate (rounded in a tree), only used for guesses. */
__device__ double block_excl_scan_d(double v, Shared &sh)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    double incl = v;
    for (int o = 1; o < 32; o <<= 1) {
        const double t = __shfl_up_sync(FULL, incl, o);
        if (lane >= o) incl = __dadd_rn(incl, t);
    }
    if (lane == 31) sh.red_d[w] = incl;
    __syncthreads();
    if (w == 0) {
        double t = sh.red_d[lane];
        for (int o = 1; o < 32; o <<= 1) {
            const double y = __shfl_up_sync(FULL, t, o);
            if (lane >= o) t = __dadd_rn(t, y);
        }
        sh.red_d[lane] = t;
    }
    __syncthreads();
    double ex = __shfl_up_sync(FULL, incl, 1);
    if (lane == 0) ex = 0;
    if (w > 0) ex = __dadd_rn(ex, sh.red_d[w - 1]);
    __syncthreads();
    return ex;
}

/* duet_argmax: the first maximum; NaN never wins, except that logits[0] == NaN gives 0 (the host
 * compares everything against x[best] with >). */
__device__ int block_argmax_host(const float *L, int V, Shared &sh)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = threadIdx.x; i < V; i += NT) better(bv, bi, L[i], i);
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(FULL, bv, o);
        const int i = __shfl_xor_sync(FULL, bi, o);
        better(bv, bi, v, i);
    }
    if (lane == 0) sh.am_v[w] = bv, sh.am_i[w] = bi;
    __syncthreads();
    if (w == 0) {
        bv = sh.am_v[lane], bi = sh.am_i[lane];
        for (int o = 16; o > 0; o >>= 1) {
            const float v = __shfl_xor_sync(FULL, bv, o);
            const int i = __shfl_xor_sync(FULL, bi, o);
            better(bv, bi, v, i);
        }
        if (lane == 0) sh.bi = bi == INT_MAX || isnan(L[0]) ? 0 : bi;
    }
    __syncthreads();
    const int r = sh.bi;
    __syncthreads();
    return r;
}

/* ---- exact sequential double sums ----
 * The host accumulates a_0 = 0, a_{i+1} = fl(a_i + x_i) (x_i >= 0: floats, or doubles p / kept), one term
 * after the other. seq_scan gets the same a_i on NT threads. Terms are cut into nch <= NT chunks of c:
 *  1. each thread sums its chunk (rounded; only an estimate; the caller may pass it when it made the
 *     terms) and a block scan estimates where each chunk starts: A_t. Within one binade [2^m, 2^(m+1))
 *     every double is a multiple of the grid g = 2^(m-52), and for a running sum a = M g (M an integer in
 *     [2^52, 2^53)) that stays in that binade, fl(a + x) = (M + k) g with k = x / g rounded to the
 *     nearest integer, a tie going to the even M + k: the increment does not depend on a except through
 *     the parity of M. So the thread computes its chunk's total increment D0 / D1 (grid units) for an
 *     even / odd starting M, assuming A_t's binade.
 *  2. one warp walks the chunks in order, G per lane and 32 G per step: the maps "parity -> increment"
 *     compose (in the lane, then a scan of shuffles over the lanes), which gives the exact start of each
 *     chunk of the step, as long as each chunk's binade guess is the binade of the exact running sum and
 *     the sum stays in it (then adding units is adding to the bits of the double). The lanes before the
 *     first where that fails are committed; that lane's group is then done chunk by chunk, and a chunk
 *     that fails on its own (the sum crosses a power of two inside it, its guess was off, the sum is
 *     still 0) is replayed term by term. A row crosses a few dozen binades at most, so a few replays of
 *     c terms; the chunks whose estimate crosses one keep their terms in shared memory for that (stash).
 *     A NaN / inf sum stops the walk (only the total is used then).
 * The result, the exact start of every chunk (then each thread can replay its own chunk exactly, see
 * seq_find), is the host's to the last bit: no assumption on the data beyond x_i >= 0.
 * Terms come from an accessor: x.run(t, j, c) = term t * c + j (thread t's j-th: all threads read at once,
 * so FloatAt stores a row interleaved, see there), x(i) = term i. */
__host__ __device__ __forceinline__ int chunk_of(int n) { return (n + NT - 1) / NT; }

/* The running sum S after adding chunk j's terms to it one by one, in every lane of the calling warp. */
template <class X>
__device__ __forceinline__ double replay(const X &x, const SeqShared &q, int j, int c, int n, double S, int lane)
{
    const int lo = j * c, e = min(lo + c, n);
    if (q.slot[j] >= 0) { /* kept in shared memory by its thread (zeros past its end) */
        const double *v = q.stash[q.slot[j]];
#pragma unroll
        for (int i = 0; i < 32; i++) S = __dadd_rn(S, v[i]);
        return S;
    }
    for (int i0 = lo; i0 < e; i0 += 32) {
        const double v = i0 + lane < e ? x(i0 + lane) : 0.0; /* + 0.0 leaves S as it is */
#pragma unroll
        for (int k = 0; k < 32; k++) S = __dadd_rn(S, __shfl_sync(FULL, v, k));
    }
    return S;
}

/* fl(a + x) for every a = M g of the binade of biased exponent be (g = 2^(be - 1075)): a + k g, plus one
 * more g if the rest of x / g is above one half (gt), or exactly one half (tie) and M + k is odd. Integer
 * work on the bits of x (x >= 0); false when x / g >= 2^52 (the sum would leave the binade). */
__device__ __forceinline__ bool grid_split(double x, int be, u64 &k, bool &gt, bool &tie)
{
    const u64 xb = (u64)__double_as_longlong(x);
    int bx = (int)(xb >> 52);
    u64 M = xb & ((1ull << 52) - 1);
    if (bx) M |= 1ull << 52;
    else bx = 1;
    const int sh = be - bx; /* x / g = M / 2^sh */
    k = 0, gt = tie = false;
    if (sh < 0) return false;
    if (sh >= 54) return true; /* x / g < 1/2 */
    k = M >> sh;
    if (k >= (1ull << 52)) return false;
    if (sh) {
        const u64 r = M & ((1ull << sh) - 1), half = 1ull << (sh - 1);
        gt = r > half, tie = r == half;
    }
    return true;
}

constexpr int G = 4; /* seq_scan's warp walk: chunks per lane and step */

/* In a binade, a double S = M g plus k grid units is the double whose bits are S's plus k (up to and
 * including the next power of two, where the carry lands in the exponent): the walk adds integers. */
__device__ __forceinline__ double plus_units(long long sb, u64 k) { return __longlong_as_double(sb + (long long)k); }

template <class X> __device__ double seq_scan(const X &x, int n, Shared &sh, bool have_s = false, double s_in = 0)
{
    SeqShared &q = sh.u.seq;
    const int c = chunk_of(n), nch = c ? (n + c - 1) / c : 0;
    const int t = threadIdx.x, m = t < nch ? min(c, n - t * c) : 0; /* terms in my chunk */
    double s = s_in;
    if (!have_s) {
        s = 0;
#pragma unroll 4
        for (int j = 0; j < m; j++) s = __dadd_rn(s, x.run(t, j, c));
    }
    if (t == 0) q.nstash = 0;
    const double A = block_excl_scan_d(s, sh);
    if (t < nch) {
        int ex = EX_COMPLEX;
        u64 D0 = 0, D1 = 0;
        if (s == 0) ex = EX_IDENT; /* all terms 0 (they are >= 0) */
        else if (A > 0 && A <= 0x1p1000) {
            const int be = (int)(__double_as_longlong(A) >> 52);
            bool fail = false, ties = false;
#pragma unroll 4
            for (int j = 0; j < m; j++) { /* no early exit: the loads go out together */
                u64 k;
                bool gt, tie;
                fail |= !grid_split(x.run(t, j, c), be, k, gt, tie);
                D0 += k + gt;
                ties |= tie;
            }
            D1 = D0;
            if (ties) { /* rare: a term's rest is exactly half a unit, the parity decides */
                D0 = D1 = 0;
                for (int j = 0; j < m; j++) {
                    u64 k;
                    bool gt, tie;
                    grid_split(x.run(t, j, c), be, k, gt, tie);
                    D0 += k + (gt || (tie && ((D0 + k) & 1)));
                    D1 += k + (gt || (tie && ((1 + D1 + k) & 1)));
                }
            }
            fail |= D0 >= (1ull << 53) || D1 >= (1ull << 53);
            ex = fail ? EX_COMPLEX : be;
        }
        q.ex[t] = ex, q.d0[t] = D0, q.d1[t] = D1;
        /* chunks likely to be replayed (the estimate crosses a power of two, or no guess): keep their terms */
        const long long ab = __double_as_longlong(A), eb = __double_as_longlong(__dadd_rn(A, s));
        int slot = -1;
        if (ex != EX_IDENT && c <= 32 && (ex == EX_COMPLEX || (ab >> 52) != (eb >> 52))) {
            slot = atomicAdd(&q.nstash, 1);
            if (slot < NSTASH)
                for (int j = 0; j < 32; j++) q.stash[slot][j] = j < m ? x.run(t, j, c) : 0.0;
            else slot = -1;
        }
        q.slot[t] = (signed char)slot;
    }
    __syncthreads();
    if (t < 32) {
        const int lane = t;
        double S = 0;
        int base = 0; /* the first chunk whose start is not known yet */
        while (base < nch) {
            const long long sb = __double_as_longlong(S);
            const int sbe = (int)(sb >> 52);
            /* my lane's group: chunks gb .. gb + G - 1, their maps composed (first chunk first) */
            const int gb = base + lane * G;
            bool ok = gb < nch;
            u64 a0 = 0, a1 = 0;
#pragma unroll
            for (int k = 0; k < G; k++) {
                const int j = gb + k;
                if (j < nch) {
                    const int ex = q.ex[j];
                    ok = ok && (ex == EX_IDENT || (S > 0 && ex == sbe));
                    const u64 b0 = q.d0[j], b1 = q.d1[j];
                    const u64 n0 = a0 + ((a0 & 1) ? b1 : b0), n1 = a1 + ((a1 & 1) ? b0 : b1);
                    a0 = n0, a1 = n1;
                }
            }
            const unsigned bad = __ballot_sync(FULL, !ok);
            const int nok = bad ? __ffs(bad) - 1 : 32;
            if (lane >= nok) a0 = a1 = 0;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) { /* inclusive scan of the maps over the lanes */
                const u64 b0 = __shfl_up_sync(FULL, a0, o), b1 = __shfl_up_sync(FULL, a1, o);
                if (lane >= o) {
                    const u64 n0 = b0 + ((b0 & 1) ? a1 : a0), n1 = b1 + ((b1 & 1) ? a0 : a1);
                    a0 = n0, a1 = n1;
                }
            }
            const u64 incl = (sb & 1) ? a1 : a0;
            u64 excl = __shfl_up_sync(FULL, incl, 1);
            if (lane == 0) excl = 0;
            /* fine: the sum stays below the next power of two (incl < 2^53 keeps the test from wrapping) */
            const bool fine = lane < nok && (S > 0 ? incl < (1ull << 53) && (int)((sb + (long long)incl) >> 52) == sbe
                                                   : incl == 0);
            const unsigned fm = __ballot_sync(FULL, fine);
            const int nf = ~fm ? __ffs(~fm) - 1 : 32; /* ends grow with the lane: a prefix is fine */
            if (lane < nf) { /* the starts of my group's chunks */
                u64 acc = excl;
#pragma unroll
                for (int k = 0; k < G; k++) {
                    const int j = gb + k;
                    if (j < nch) {
                        q.start[j] = plus_units(sb, acc);
                        acc += ((sb + acc) & 1) ? q.d1[j] : q.d0[j];
                    }
                }
            }
            if (nf > 0) {
                S = plus_units(sb, __shfl_sync(FULL, incl, nf - 1));
                base = min(base + nf * G, nch);
            }
            if (nf < 32 && base < nch) { /* the group at base needs care: chunk by chunk (the same in every lane) */
                const int ge = min(base + G, nch);
                for (int j = base; j < ge; j++) {
                    const long long b2 = __double_as_longlong(S);
                    const int e2 = (int)(b2 >> 52), ex = q.ex[j];
                    const double start = S;
                    bool done = ex == EX_IDENT;
                    if (!done && S > 0 && ex == e2) {
                        const u64 D = (b2 & 1) ? q.d1[j] : q.d0[j];
                        if (D < (1ull << 53) && (int)((b2 + (long long)D) >> 52) == e2) S = plus_units(b2, D), done = true;
                    }
                    if (!done) S = replay(x, q, j, c, n, S, lane);
                    if (lane == 0) q.start[j] = start;
                }
                base = ge;
                if (!(S <= 1.79769313486231570e308)) break; /* NaN or inf: only the total counts then */
            }
        }
        if (lane == 0) q.start[nch] = S;
    }
    __syncthreads();
    const double r = q.start[nch];
    __syncthreads();
    return r;
}

/* After seq_scan(x, n): the first i with pred(a_{i+1}) (pred monotone in the running sum), or -1;
 * *before = a_i, *after = a_{i+1}. */
template <class X, class Pred>
__device__ int seq_find(const X &x, int n, const Pred &pred, Shared &sh, double *before, double *after)
{
    const SeqShared &q = sh.u.seq;
    const int c = chunk_of(n), nch = c ? (n + c - 1) / c : 0, t = threadIdx.x;
    if (t == 0) sh.found = -1;
    __syncthreads();
    if (t < nch && pred(q.start[t + 1]) && (t == 0 || !pred(q.start[t]))) {
        double a = q.start[t], fb = 0, fa = 0;
        int f = -1;
#pragma unroll 4
        for (int j = 0; j < min(c, n - t * c); j++) { /* no early exit: the loads go out together */
            const double b = __dadd_rn(a, x.run(t, j, c));
            if (f < 0 && pred(b)) f = j, fb = a, fa = b;
            a = b;
        }
        sh.found = t * c + f, sh.fb = fb, sh.fa = fa; /* f >= 0: the chunk's end satisfies pred */
    }
    __syncthreads();
    const int r = sh.found;
    if (before) *before = sh.fb;
    if (after) *after = sh.fa;
    __syncthreads();
    return r;
}

/* A row of V floats (e_i, then p_i) stored interleaved by chunks of cv = chunk_of(V): id t * cv + j at
 * p[j * NT + t], so that the loops where every thread walks its own chunk read whole lines; ids >= V
 * (the tail of the last chunks) hold 0. */
struct FloatAt {
    const float *p;
    int cv;
    __device__ double operator()(int i) const { return (double)p[(i % cv) * NT + i / cv]; }
    __device__ double run(int t, int j, int) const { return (double)p[j * NT + t]; }
};
__device__ __forceinline__ float key_p(u64 k) { return __uint_as_float((unsigned)(k >> 32)); }
struct KeyAt { /* x_i = p of the i-th sorted candidate */
    const u64 *k;
    __device__ double operator()(int i) const { return (double)key_p(k[i]); }
    __device__ double run(int t, int j, int c) const { return (double)key_p(k[t * c + j]); }
};
struct MassAt { /* x_i = p / kept, as the host's top-p loop adds it */
    const u64 *k;
    double kept;
    __device__ double operator()(int i) const { return __ddiv_rn((double)key_p(k[i]), kept); }
    __device__ double run(int t, int j, int c) const { return (*this)(t * c + j); }
};

/* p in units of 2^-31, truncated: p <= 1 and the p's of a row sum to 1 (within V 2^-24), so any sum of
 * them fits in 32 bits. */
__device__ __forceinline__ unsigned fixed31(float p) { return (unsigned)__double2uint_rz(__dmul_rn((double)p, 0x1p31)); }

/* Radix select over the bits of the row's p (P interleaved, see FloatAt; p >= 0, no NaN): the bits of the
 * value where the weight summed from the largest value down first reaches `need` (1 <= need <= the total
 * weight). Weight 1: the need-th largest p. Weight fixed31(p): the largest t with the sum of fixed31(p)
 * over p >= t >= need. Each warp adds its lanes of one digit together (__match_any_sync) before the
 * shared atomic: rows of near-equal p would otherwise queue up on one bin. */
__device__ __noinline__ unsigned select_bits(const float *P, int V, int cv, u64 need, bool by_mass, Shared &sh,
                                             u64 *left)
{
    unsigned *hist = sh.u.hist;
    unsigned prefix = 0, mask = 0;
    const int lane = threadIdx.x & 31;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += NT) hist[i] = 0;
        __syncthreads();
        for (int j = 0; j < cv; j++) {
            const int id = threadIdx.x * cv + j;
            const float p = P[j * NT + threadIdx.x];
            const unsigned b = __float_as_uint(p);
            const bool has = id < V && (b & mask) == prefix;
            const unsigned w = has ? (by_mass ? fixed31(p) : 1u) : 0u;
            const unsigned key = has ? (b >> shift) & 255 : 0xffffffffu;
            const unsigned peers = __match_any_sync(FULL, key);
            const unsigned sum = __reduce_add_sync(peers, w);
            if (has && lane == __ffs(peers) - 1 && sum) atomicAdd(&hist[key], sum);
        }
        __syncthreads();
        const int d = 255 - (int)threadIdx.x;
        const u64 h = d >= 0 ? hist[d] : 0;
        const u64 ge = block_incl_scan_u(h, sh); /* weight of the digits >= d */
        if (d >= 0 && ge >= need && ge - h < need) sh.sel = d, sh.need = need - (ge - h);
        __syncthreads();
        prefix |= (unsigned)sh.sel << shift, mask |= 255u << shift, need = sh.need;
        __syncthreads();
    }
    *left = need; /* by count: how many of the values equal to the result are within the need-th largest */
    return prefix;
}

/* Bitonic stages on a shared tile s[0..len) that sits at offset ts of the whole array: for k from k0 to
 * k1, j from (k == k0 ? j0 : k / 2) down to 1; blocks whose index has bit k clear are sorted descending. */
__device__ void bitonic_tile(u64 *s, int ts, int len, int k0, int j0, int k1)
{
    for (int k = k0; k <= k1; k <<= 1)
        for (int j = k == k0 ? j0 : k >> 1; j > 0; j >>= 1) {
            for (int q = threadIdx.x; q < (len >> 1); q += NT) {
                const int i = 2 * q - (q & (j - 1)), l = i + j; /* i has bit j clear */
                const bool desc = ((ts + i) & k) == 0;
                const u64 a = s[i], b = s[l];
                if ((a < b) == desc) s[i] = b, s[l] = a;
            }
            __syncthreads();
        }
}

/* Sorts K[0..n2) (n2 a power of two, in global memory: __syncthreads orders it within the block)
 * descending: stages with j < TILE run on shared tiles, the others on K. */
__device__ __noinline__ void sort_desc(u64 *K, int n2, Shared &sh)
{
    u64 *tile = sh.u.tile;
    const int len = n2 < TILE ? n2 : TILE;
    for (int k = len; k <= n2; k <<= 1) {
        if (k > len)
            for (int j = k >> 1; j >= len; j >>= 1) {
                for (int q = threadIdx.x; q < (n2 >> 1); q += NT) {
                    const int i = 2 * q - (q & (j - 1)), l = i + j;
                    const bool desc = (i & k) == 0;
                    const u64 a = K[i], b = K[l];
                    if ((a < b) == desc) K[i] = b, K[l] = a;
                }
                __syncthreads();
            }
        for (int ts = 0; ts < n2; ts += len) {
            for (int i = threadIdx.x; i < len; i += NT) tile[i] = K[ts + i];
            __syncthreads();
            if (k == len) bitonic_tile(tile, ts, len, 2, 1, len); /* each tile sorted on its own */
            else bitonic_tile(tile, ts, len, k, len >> 1, k);
            for (int i = threadIdx.x; i < len; i += NT) K[ts + i] = tile[i];
            __syncthreads();
        }
    }
}

/* The host's sorted branch (top_k > 0 or top_p < 1) on the probabilities P (interleaved, see FloatAt;
 * finite, >= 0). */
__device__ int sample_sorted(const float *P, int cv, u64 *K, int V, const gpu_sample_params &prm, double u,
                             Shared &sh)
{
    const int lane = threadIdx.x & 31;
    const int nk = prm.top_k > 0 && prm.top_k < V ? prm.top_k : V; /* the host's n after top-k */
    const bool topp = prm.top_p < 1.0f;
    unsigned thr = 1; /* candidates: bits(p) >= thr (1: every p > 0) */
    u64 ties = 0;     /* > 0: of the p equal to thr, only the `ties` lowest ids (the rest are past the top k) */
    bool full = true; /* the candidates hold the host's first nk ids (but zeros): kept is exact */
    if (nk < V) {
        u64 left;
        const unsigned t = select_bits(P, V, cv, (u64)nk, false, sh, &left);
        if (t >= thr) thr = t, ties = left;
    } else if (topp) {
        u64 tot = 0;
        for (int j = 0; j < cv; j++) tot += fixed31(P[j * NT + threadIdx.x]); /* ids >= V hold 0 */
        tot = block_sum(tot, sh.red_u, sh.bu);
        const double want = (double)prm.top_p * (1.0 + 1e-5) * ((double)tot + (double)V);
        if (want < (double)tot) {
            u64 need = want > 1.0 ? (u64)ceil(want) : 1;
            if (need > tot) need = tot;
            u64 left;
            const unsigned t = select_bits(P, V, cv, need, true, sh, &left);
            if (t > thr) thr = t, full = false;
        }
    }
    for (;;) {
        /* compact the candidates to keys (float bits of p) << 32 | ~id: descending = the host's order */
        if (threadIdx.x == 0) sh.cnt = 0;
        u64 rank = 0; /* with ties: how many p == thr have lower ids than my next one */
        if (ties) {
            unsigned mine = 0;
            for (int j = 0; j < cv; j++)
                mine += threadIdx.x * cv + j < V && __float_as_uint(P[j * NT + threadIdx.x]) == thr;
            rank = block_incl_scan_u(mine, sh) - mine; /* my ids follow the lower threads' */
        }
        __syncthreads();
        double rest = 0;
        for (int j = 0; j < cv; j++) {
            const int id = threadIdx.x * cv + j;
            const float p = P[j * NT + threadIdx.x];
            const unsigned b = __float_as_uint(p);
            bool take = id < V && b >= thr;
            if (take && ties && b == thr) take = rank++ < ties;
            if (!take) rest = __dadd_rn(rest, (double)p);
            const unsigned m = __ballot_sync(FULL, take);
            int at = 0;
            if (lane == 0 && m) at = atomicAdd(&sh.cnt, __popc(m));
            at = __shfl_sync(FULL, at, 0);
            if (take) K[at + __popc(m & ((1u << lane) - 1))] = (u64)b << 32 | (unsigned)~id;
        }
        __syncthreads();
        const int nc = sh.cnt; /* >= 1: the largest p is >= 1 / V > 0 and >= thr */
        rest = block_sum(rest, sh.red_d, sh.bd);
        int n2 = 1;
        while (n2 < nc) n2 <<= 1;
        for (int i = nc + threadIdx.x; i < n2; i += NT) K[i] = 0; /* pads sort last */
        __syncthreads();
        sort_desc(K, n2, sh);

        int n = nc < nk ? nc : nk; /* the host's ids past nc (if any) have p == 0 */
        if (topp) {
            double kept = seq_scan(KeyAt{K}, n, sh);
            if (!full) kept = __dadd_rn(kept, rest);
            const MassAt mass{K, kept};
            seq_scan(mass, n, sh);
            const double tp = (double)prm.top_p;
            double mb = 0, ma = 0;
            const int i = seq_find(mass, n, [tp](double a) { return a >= tp; }, sh, &mb, &ma);
            if (!full) {
                const double E = (8.0 * V + 128.0) * 0x1p-53;
                if (!(i >= 0 && ma >= tp + E && (i == 0 || mb < tp - E))) { /* too close to call: all p */
                    thr = 1, ties = 0, full = true;
                    continue;
                }
            }
            if (i >= 0) n = i + 1;
        }
        const double total = seq_scan(KeyAt{K}, n, sh);
        const double r = __dmul_rn(u, total);
        const int i = seq_find(KeyAt{K}, n, [r](double a) { return r < a; }, sh, nullptr, nullptr);
        return (int)~(unsigned)K[i >= 0 ? i : n - 1];
    }
}

__global__ void __launch_bounds__(NT, 1)
    sample_kernel(int *ids, const float *logits, int V, const gpu_sample_params *params, uint64_t *steps,
                  float *wp, u64 *wk, int64_t ps, int64_t ks)
{
    __shared__ Shared sh;
    const int row = blockIdx.x, t = threadIdx.x, cv = chunk_of(V);
    const float *L = logits + (int64_t)row * V;
    float *P = wp + (int64_t)row * ps; /* interleaved: id t * cv + j at P[j * NT + t] */
    u64 *K = wk + (int64_t)row * ks;
    const gpu_sample_params prm = params[row];

    const int am = block_argmax_host(L, V, sh);
    if (prm.temperature == 0.0f) {
        if (t == 0) ids[row] = am;
        return;
    }
    /* e_i = expf((l_i - mx) / T), each thread its own chunk of ids (and its sum, which seq_scan needs) */
    const float mx = L[am], T = prm.temperature;
    double s = 0;
    if ((cv & 3) == 0 && (V & 3) == 0 && ((uintptr_t)L & 15) == 0) {
        for (int j = 0; j < cv; j += 4) {
            const int id = t * cv + j; /* a multiple of 4 below V: all 4 are ids */
            const float4 l = id < V ? *(const float4 *)(L + id) : make_float4(mx, mx, mx, mx);
            const float lv[4] = {l.x, l.y, l.z, l.w};
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float e = id < V ? duet_expf(__fdiv_rn(__fsub_rn(lv[k], mx), T)) : 0.0f;
                P[(j + k) * NT + t] = e;
                s = __dadd_rn(s, (double)e);
            }
        }
    } else
        for (int j = 0; j < cv; j++) {
            const int id = t * cv + j;
            const float e = id < V ? duet_expf(__fdiv_rn(__fsub_rn(L[id], mx), T)) : 0.0f;
            P[j * NT + t] = e;
            s = __dadd_rn(s, (double)e);
        }
    __syncthreads();
    const double sum = seq_scan(FloatAt{P, cv}, V, sh, true, s);
    const uint64_t step = steps[row];
    const double u = (double)duet_rng_uniform(prm.seed, step);
    const bool sorted = prm.top_k > 0 || prm.top_p < 1.0f;
    int id;
    if (!(sum <= 1.79769313486231570e308)) /* NaN (or inf): every p is NaN on the host */
        id = sorted ? (prm.top_k > 0 && prm.top_k < V ? prm.top_k : V) - 1 : V - 1;
    else {
        s = 0;
        for (int j = 0; j < cv; j++) { /* p_i = (float)(e_i / sum); ids >= V keep 0 */
            const float p = __double2float_rn(__ddiv_rn((double)P[j * NT + t], sum));
            P[j * NT + t] = p;
            s = __dadd_rn(s, (double)p);
        }
        __syncthreads();
        if (!sorted) { /* walk the ids in order */
            const double total = seq_scan(FloatAt{P, cv}, V, sh, true, s);
            const double r = __dmul_rn(u, total);
            const int i = seq_find(FloatAt{P, cv}, V, [r](double a) { return r < a; }, sh, nullptr, nullptr);
            id = i >= 0 ? i : V - 1;
        } else id = sample_sorted(P, cv, K, V, prm, u, sh);
    }
    if (t == 0) {
        ids[row] = id;
        steps[row] = step + 1;
    }
}

size_t p_stride(int V) { return (size_t)chunk_of(V) * NT; }
size_t k_stride(int V)
{
    size_t n = 1;
    while (n < (size_t)V) n <<= 1;
    return n;
}

} // namespace

extern "C" size_t gpu_sample_ws_bytes(int R, int V)
{
    if (R <= 0 || V <= 0) return 0;
    return (size_t)R * (p_stride(V) * sizeof(float) + k_stride(V) * sizeof(u64));
}

extern "C" int gpu_sample(int *ids, const float *logits, int R, int V, const gpu_sample_params *params,
                          uint64_t *steps, void *ws, gpu_stream s)
{
    if (R < 0 || V <= 0) return duet_errorf("gpu_sample: bad shape R %d V %d", R, V);
    if (R == 0) return 0;
    float *wp = (float *)ws;
    u64 *wk = (u64 *)(wp + (size_t)R * p_stride(V));
    sample_kernel<<<R, NT, 0, s>>>(ids, logits, V, params, steps, wp, wk, (int64_t)p_stride(V), (int64_t)k_stride(V));
    LAUNCH_CHECK();
    return 0;
}
