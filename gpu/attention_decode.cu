/* attention_decode.cu: attention of one query row per (token, head) against the paged KV cache
 * (see attention.h). Two kernels:
 * - the vectorized one (d % 8 == 0, the default): a block of 4 warps takes one (token, group of NQ
 *   query heads sharing a kv head, split); K and V rows are read with 16-byte loads by LPK = pow2 >= d/8
 *   lanes each, several keys in flight per lane group, one online softmax (fp32, log2 domain) per lane
 *   group, merged by shuffles and shared memory at the end;
 * - the scalar one (any d; the fallback for d % 8 != 0 and the reference the bench compares with): a
 *   block per (token, head, split), lane j scores key j of a 32-key tile, P.V with lanes over d,
 *   2-byte V loads key by key.
 * With more than one split, partial (max, sum, unnormalized out) go to a workspace and a second kernel
 * merges them. Splits are used when the batch has too few blocks to fill the GPU.
 * A quantized cache (kv.mode int8 / fp8, kv_codes.cuh) is read by the vectorized kernel only, 8-byte
 * loads of 8 codes per lane: the K scale of the block's kv head is folded into q (q . (c s) = (q s) . c)
 * and the V scale applied to the unnormalized output, so the inner loops run on the codes. */
#include "attention.h"
#include "cuda_check.h"
#include "kv_codes.cuh"

#include <type_traits>

#define WARPS 4
#define MIN_SPLIT_KEYS 256
#define MAX_SPLITS 64
#define VEC_MIN_SPLIT_KEYS 64
/* Length-bound invariance: a token's split count is n_eff = min(grid splits, ceil(n / min keys)) from
 * its own length n, and its split boundaries follow from n and n_eff. The grid's split count depends on
 * the number of tokens and heads (the fill) and on a bound of the lengths, and that bound only caps
 * n_eff where n already does. So a token's result does not depend on the bound a decode graph was
 * captured with (graph replays give forward's bits); it may depend on the batch's size through the fill.
 * Splits past n_eff are empty (m = -inf, l = 0) and the merge skips them; one non-empty split merges to
 * exactly O / L. */

/* q . k for one key row, 16-byte loads when d allows. */
template <typename T> __device__ __forceinline__ float dot_row(const float *sq, const T *kr, int d)
{
    float acc = 0.0f;
    if ((d & 7) == 0) {
        for (int i = 0; i < d; i += 8) {
            uint4 raw = *(const uint4 *)(kr + i);
            const T *e = (const T *)&raw;
#pragma unroll
            for (int u = 0; u < 8; u++) acc += sq[i + u] * to_f32(e[u]);
        }
    } else {
        for (int i = 0; i < d; i++) acc += sq[i] * to_f32(kr[i]);
    }
    return acc;
}

template <typename T>
__global__ void __launch_bounds__(WARPS * 32)
    attn_decode_kernel(T *out, const T *q, int64_t ldq, const T *kc, const T *vc, const int *table, int max_blocks,
                       const int *pos, const int *seq, int H, int Hk, int d, float scale, int n_split, float *ws_o,
                       float *ws_ml, int t_off)
{
    pdl_trigger();
    pdl_wait();
    const int h = blockIdx.x, t = t_off + blockIdx.y, sp = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n = pos[t] + 1;
    const int n_eff = min(n_split, (n + MIN_SPLIT_KEYS - 1) / MIN_SPLIT_KEYS);
    const int chunk = (((n + n_eff - 1) / n_eff) + 31) & ~31;
    const int start = sp * chunk, end = min(n, start + chunk);
    const int kh = h / (H / Hk);
    __shared__ __align__(16) float sq[GPU_ATTN_MAX_D];
    __shared__ float so[WARPS][GPU_ATTN_MAX_D];
    __shared__ float sm[WARPS], sl[WARPS];
    const T *qh = q + t * ldq + (int64_t)h * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) sq[i] = to_f32(qh[i]);
    __syncthreads();

    const int *tab = table + (int64_t)seq[t] * max_blocks;
    float m = -INFINITY, l = 0.0f, o[GPU_ATTN_MAX_D / 32];
#pragma unroll
    for (int r = 0; r < GPU_ATTN_MAX_D / 32; r++) o[r] = 0.0f;
    for (int base = start + warp * 32; base < end; base += WARPS * 32) {
        int p = base + lane;
        float sc = -INFINITY;
        if (p < end) {
            const T *kr = kc + gpu_kv_row(gpu_kv_block_of(tab, p), Hk, kh, p, d);
            sc = dot_row(sq, kr, d) * scale;
        }
        float tm = sc;
        for (int off = 16; off > 0; off >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, off));
        float mn = fmaxf(m, tm); /* finite: lane 0's key is valid */
        float corr = expf(m - mn);
        float pr = p < end ? expf(sc - mn) : 0.0f;
        float ps = pr;
        for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
        l = l * corr + ps;
#pragma unroll
        for (int r = 0; r < GPU_ATTN_MAX_D / 32; r++) o[r] *= corr;
        int nk = min(32, end - base);
        for (int j = 0; j < nk; j++) {
            float pj = __shfl_sync(0xffffffffu, pr, j);
            int pp = base + j;
            const T *vr = vc + gpu_kv_row(gpu_kv_block_of(tab, pp), Hk, kh, pp, d);
#pragma unroll
            for (int r = 0; r < GPU_ATTN_MAX_D / 32; r++) {
                int i = lane + 32 * r;
                if (i < d) o[r] += pj * to_f32(vr[i]);
            }
        }
        m = mn;
    }
    if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
    for (int r = 0; r < GPU_ATTN_MAX_D / 32; r++) {
        int i = lane + 32 * r;
        if (i < d) so[warp][i] = o[r];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < WARPS; w++) M = fmaxf(M, sm[w]);
    int64_t row = (int64_t)t * H + h, wrow = (int64_t)blockIdx.y * H + h; /* output row, workspace row */
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float L = 0.0f, O = 0.0f;
        for (int w = 0; w < WARPS; w++)
            if (sm[w] > -INFINITY) {
                float f = expf(sm[w] - M);
                L += sl[w] * f;
                O += so[w][i] * f;
            }
        if (n_split == 1) {
            out[row * d + i] = from_f32<T>(O / L);
        } else {
            ws_o[(wrow * n_split + sp) * d + i] = O;
            if (i == 0) ws_ml[(wrow * n_split + sp) * 2] = M, ws_ml[(wrow * n_split + sp) * 2 + 1] = L;
        }
    }
}

/* ---- vectorized kernel (d % 8 == 0) ----------------------------------------------------------- */

/* Streamed once per step: read through the non-coherent path, no L1 allocation. */
__device__ __forceinline__ uint4 ld_stream(const void *p)
{
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}
__device__ __forceinline__ uint2 ld_stream8(const void *p)
{
    uint2 r;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];\n" : "=r"(r.x), "=r"(r.y) : "l"(p));
    return r;
}

/* Eight cache elements starting at element off: 16 bytes of T (KM 0) or 8 bytes of codes; to fp32. */
template <typename T, int KM> struct kv_vec {
    typedef typename std::conditional<KM == 0, uint4, uint2>::type raw;
    static __device__ __forceinline__ raw zero() { return raw{}; }
    static __device__ __forceinline__ raw load(const void *base, int64_t off)
    {
        if constexpr (KM == 0) return ld_stream((const T *)base + off);
        else return ld_stream8((const uint8_t *)base + off);
    }
    static __device__ __forceinline__ void cvt(const raw &r, float f[8])
    {
        if constexpr (KM == 0) cvt8(r, f, T());
        else cvt8_codes(r, f, KM);
    }
};

/* Merges (m2, l2, o2) into (m, l, o); m in log2 units, -inf = empty. */
template <int NQ>
__device__ __forceinline__ void merge_state(float m[NQ], float l[NQ], float o[NQ][8], const float m2[NQ],
                                            const float l2[NQ], const float o2[NQ][8])
{
#pragma unroll
    for (int j = 0; j < NQ; j++) {
        float M = fmaxf(m[j], m2[j]);
        float f1 = m[j] == -INFINITY ? 0.0f : exp2f(m[j] - M), f2 = m2[j] == -INFINITY ? 0.0f : exp2f(m2[j] - M);
        l[j] = l[j] * f1 + l2[j] * f2;
#pragma unroll
        for (int u = 0; u < 8; u++) o[j][u] = o[j][u] * f1 + o2[j][u] * f2;
        m[j] = M;
    }
}

/* One block (VW warps) per (token, group of NQ query heads of one kv head, split). A key row of d
 * elements is read by LPK = pow2 >= d / 8 lanes, 16 bytes each (lanes past d / 8 idle); a warp works
 * on 32 / LPK keys at a time, VU of them per lane group per step (all K and V loads of a step issued
 * before use). Each lane group keeps its own online-softmax state (log2 domain) for the NQ heads;
 * groups merge by shuffles, warps in shared memory; splits as in the scalar kernel. */
#define VW 4
#ifndef VU
#define VU 4 /* keys per lane group per step (8: 158 registers, 25% slower at batch 64 on the H100) */
#endif
/* Keys per lane group per step on 1-byte codes (8-byte loads) at NQ < 4. 8 (the same bytes in flight as
 * fp16 at VU 4, 72 registers at NQ 1) was slower on the H200: batch 64 at 923/100 (MHA), decode step
 * fp8 12.19 ms against 10.91 at 4, int8 12.40 against 11.57. */
#ifndef VU_CODES
#define VU_CODES 4
#endif
template <typename T, int NQ, int KM>
__global__ void __launch_bounds__(VW * 32)
    attn_decode_vec_kernel(T *out, const T *q, int64_t ldq, gpu_kv_view kv, const int *pos, const int *seq, int H,
                           int lpk, float scale2, int n_split, float *ws_o, float *ws_ml, int t_off)
{
    typedef kv_vec<T, KM> KV;
    constexpr int NU = KM && NQ < 4 ? VU_CODES : VU; /* keys per lane group per step */
    const void *kc = kv.k, *vc = kv.v;
    const int *table = kv.block_table;
    const int max_blocks = kv.max_blocks, Hk = kv.Hk, d = kv.d;
    pdl_trigger();
    pdl_wait();
    const int h0 = blockIdx.x * NQ, t = t_off + blockIdx.y, sp = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nch = d >> 3, c = lane & (lpk - 1), kpw = 32 / lpk;
    const int gi = warp * kpw + lane / lpk, ng = VW * kpw;
    const bool act = c < nch;
    const int n = pos[t] + 1;
    const int n_eff = min(n_split, (n + VEC_MIN_SPLIT_KEYS - 1) / VEC_MIN_SPLIT_KEYS);
    const int chunk = (((n + n_eff - 1) / n_eff) + 15) & ~15;
    const int start = sp * chunk, end = min(n, start + chunk);
    const int kh = h0 / (H / Hk);
    __shared__ float so[VW][NQ][GPU_ATTN_MAX_D];
    __shared__ float sm[VW][NQ], sl[VW][NQ];
    const float k_sc = KM ? kv.k_scale[kh] : 1.0f, v_sc = KM ? kv.v_scale[kh] : 1.0f;

    float qv[NQ][8], m[NQ], l[NQ], o[NQ][8];
#pragma unroll
    for (int j = 0; j < NQ; j++) {
        const T *qh = q + t * ldq + (int64_t)(h0 + j) * d + c * 8;
#pragma unroll
        for (int u = 0; u < 8; u++) {
            qv[j][u] = act ? to_f32(qh[u]) * scale2 : 0.0f, o[j][u] = 0.0f;
            if (KM) qv[j][u] *= k_sc;
        }
        m[j] = -INFINITY, l[j] = 0.0f;
    }
    const int *tab = table + (int64_t)seq[t] * max_blocks;

    for (int base = start; base < end; base += ng * NU) {
        typename KV::raw kr[NU], vr[NU];
        bool ok[NU];
#pragma unroll
        for (int u = 0; u < NU; u++) {
            int p = base + u * ng + gi;
            ok[u] = p < end;
            kr[u] = vr[u] = KV::zero();
            if (ok[u] && act) {
                const int64_t off = gpu_kv_row(gpu_kv_block_of(tab, p), Hk, kh, p, d) + c * 8;
                kr[u] = KV::load(kc, off);
                vr[u] = KV::load(vc, off);
            }
        }
        float s[NU][NQ];
#pragma unroll
        for (int u = 0; u < NU; u++) {
            float kf[8];
            KV::cvt(kr[u], kf);
#pragma unroll
            for (int j = 0; j < NQ; j++) {
                float a = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) a += qv[j][e] * kf[e];
                s[u][j] = a;
            }
        }
        for (int off = lpk >> 1; off > 0; off >>= 1)
#pragma unroll
            for (int u = 0; u < NU; u++)
#pragma unroll
                for (int j = 0; j < NQ; j++) s[u][j] += __shfl_xor_sync(0xffffffffu, s[u][j], off);
#pragma unroll
        for (int j = 0; j < NQ; j++) {
            float mx = m[j];
#pragma unroll
            for (int u = 0; u < NU; u++)
                if (ok[u]) mx = fmaxf(mx, s[u][j]);
            if (mx == -INFINITY) continue; /* no key of this group in this step */
            float corr = exp2f(m[j] - mx), ps = 0.0f; /* m = -inf: 0 */
#pragma unroll
            for (int e = 0; e < 8; e++) o[j][e] *= corr;
#pragma unroll
            for (int u = 0; u < NU; u++) {
                float pr = ok[u] ? exp2f(s[u][j] - mx) : 0.0f;
                float vf[8];
                KV::cvt(vr[u], vf);
                ps += pr;
#pragma unroll
                for (int e = 0; e < 8; e++) o[j][e] += pr * vf[e];
            }
            l[j] = l[j] * corr + ps;
            m[j] = mx;
        }
    }
    /* lane groups of the warp -> lanes 0..lpk-1 */
    for (int off = lpk; off < 32; off <<= 1) {
        float m2[NQ], l2[NQ], o2[NQ][8];
#pragma unroll
        for (int j = 0; j < NQ; j++) {
            m2[j] = __shfl_xor_sync(0xffffffffu, m[j], off);
            l2[j] = __shfl_xor_sync(0xffffffffu, l[j], off);
#pragma unroll
            for (int e = 0; e < 8; e++) o2[j][e] = __shfl_xor_sync(0xffffffffu, o[j][e], off);
        }
        merge_state<NQ>(m, l, o, m2, l2, o2);
    }
    if (lane < lpk) {
#pragma unroll
        for (int j = 0; j < NQ; j++) {
            if (act)
#pragma unroll
                for (int e = 0; e < 8; e++) so[warp][j][c * 8 + e] = o[j][e];
            if (lane == 0) sm[warp][j] = m[j], sl[warp][j] = l[j];
        }
    }
    __syncthreads();
    const float ln2 = 0.69314718055994531f;
    for (int x = threadIdx.x; x < NQ * d; x += blockDim.x) {
        int j = x / d, i = x - j * d, h = h0 + j;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < VW; w++) M = fmaxf(M, sm[w][j]);
        float L = 0.0f, O = 0.0f;
#pragma unroll
        for (int w = 0; w < VW; w++)
            if (sm[w][j] > -INFINITY) {
                float f = exp2f(sm[w][j] - M);
                L += sl[w][j] * f;
                O += so[w][j][i] * f;
            }
        int64_t row = (int64_t)t * H + h, wrow = (int64_t)blockIdx.y * H + h; /* output row, workspace row */
        if (KM) O *= v_sc; /* the sums ran over V's codes */
        if (n_split == 1) {
            out[row * d + i] = from_f32<T>(O / L);
        } else {
            ws_o[(wrow * n_split + sp) * d + i] = O;
            /* the merge kernel works in natural-log units */
            if (i == 0) ws_ml[(wrow * n_split + sp) * 2] = M * ln2, ws_ml[(wrow * n_split + sp) * 2 + 1] = L;
        }
    }
}

template <typename T>
__global__ void attn_merge_kernel(T *out, const float *ws_o, const float *ws_ml, int n_split, int d, int t_off)
{
    pdl_trigger();
    pdl_wait();
    int64_t row = (int64_t)blockIdx.y * gridDim.x + blockIdx.x; /* workspace row */
    const float *ml = ws_ml + row * n_split * 2;
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++) M = fmaxf(M, ml[2 * s]);
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float L = 0.0f, O = 0.0f;
        for (int s = 0; s < n_split; s++)
            if (ml[2 * s] > -INFINITY) {
                float f = expf(ml[2 * s] - M);
                L += ml[2 * s + 1] * f;
                O += ws_o[(row * n_split + s) * d + i] * f;
            }
        out[(row + (int64_t)t_off * gridDim.x) * d + i] = from_f32<T>(O / L);
    }
}

/* Splits: the vectorized kernel aims at VEC_FILL blocks per SM (each keeps ~16 KB of loads in flight),
 * at least MIN_SPLIT_KEYS keys per split; with NQ <= 4 heads per block, T H n_split <= 16 n_sm + T H. */
#ifndef VEC_FILL
#define VEC_FILL 4 /* 8 and 16: no faster on the H100 (DUET_DECODE_BENCH) */
#endif
extern "C" size_t gpu_attention_ws_floats(int T, int H, int d, int n_sm)
{
    return ((size_t)4 * VEC_FILL * n_sm + (size_t)T * H) * (size_t)(d + 2);
}

static int choose_splits(const gpu_attn_params *p, int n_tok)
{
    int64_t rows = (int64_t)n_tok * p->H;
    if (p->max_len <= MIN_SPLIT_KEYS || rows >= 2 * (int64_t)p->n_sm) return 1;
    int64_t by_fill = (2 * (int64_t)p->n_sm + rows - 1) / rows;
    int64_t by_len = (p->max_len + MIN_SPLIT_KEYS - 1) / MIN_SPLIT_KEYS;
    int64_t n = by_fill < by_len ? by_fill : by_len;
    return (int)(n < MAX_SPLITS ? n : MAX_SPLITS);
}

static int choose_splits_vec(const gpu_attn_params *p, int n_tok, int nq)
{
    int64_t blocks = (int64_t)n_tok * (p->H / nq), want = (int64_t)VEC_FILL * p->n_sm;
    if (p->max_len <= VEC_MIN_SPLIT_KEYS || blocks >= want) return 1;
    int64_t by_fill = (want + blocks - 1) / blocks;
    int64_t by_len = (p->max_len + VEC_MIN_SPLIT_KEYS - 1) / VEC_MIN_SPLIT_KEYS;
    int64_t n = by_fill < by_len ? by_fill : by_len;
    return (int)(n < MAX_SPLITS ? n : MAX_SPLITS);
}

template <typename T, int NQ>
static int launch_vec(const gpu_attn_params *p, gpu_stream s, int t_off, int n_tok, int n_split, float *ws_o,
                       float *ws_ml)
{
    const gpu_kv_view *kv = &p->kv;
    int d = kv->d, lpk = 1;
    while (lpk < d / 8) lpk <<= 1;
    dim3 grid(p->H / NQ, n_tok, n_split);
    void (*k)(T *, const T *, int64_t, gpu_kv_view, const int *, const int *, int, int, float, int, float *, float *,
              int) = kv->mode == DUET_KV_INT8  ? attn_decode_vec_kernel<T, NQ, DUET_KV_INT8>
                     : kv->mode == DUET_KV_FP8 ? attn_decode_vec_kernel<T, NQ, DUET_KV_FP8>
                                               : attn_decode_vec_kernel<T, NQ, DUET_KV_F>;
    CUDA_CHECK(gpu_launch(k, grid, dim3(VW * 32), 0, s, (T *)p->out, (const T *)p->q, p->ldq, *kv, p->pos, p->seq,
                          p->H, lpk, 1.4426950408889634f / sqrtf((float)d), n_split, ws_o, ws_ml, t_off));
    return 0;
}

template <typename T> static int run(const gpu_attn_params *p, gpu_stream s, int t_off, int n_tok, int scalar)
{
    const gpu_kv_view *kv = &p->kv;
    int d = kv->d;
    if (d > GPU_ATTN_MAX_D || d <= 0) return duet_errorf("gpu attention: head_dim %d unsupported (at most %d)", d, GPU_ATTN_MAX_D);
    if (kv->Hk <= 0 || p->H % kv->Hk) return duet_errorf("gpu attention: H %d not a multiple of Hk %d", p->H, kv->Hk);
    if (kv->mode < DUET_KV_F || kv->mode > DUET_KV_FP8)
        return duet_errorf("gpu attention: KV cache mode %d unknown", kv->mode);
    if (kv->mode && (scalar || d % 8))
        return duet_errorf("gpu attention: the %s KV cache is read by the vectorized decode kernel only, which needs "
                           "head_dim a multiple of 8 (head_dim %d%s)",
                           duet_kv_mode_name((duet_kv_mode)kv->mode), d, scalar ? ", scalar kernel asked for" : "");
    if (n_tok <= 0) return 0;
    int g = p->H / kv->Hk, nq = g % 4 == 0 ? 4 : g % 2 == 0 ? 2 : 1;
    int vec = !scalar && d % 8 == 0;
    int n_split = p->fixed_order ? 1 : vec ? choose_splits_vec(p, n_tok, nq) : choose_splits(p, n_tok);
    float *ws_o = p->ws, *ws_ml = p->ws + (size_t)n_tok * p->H * n_split * d;
    if (vec) {
        int rc = nq == 4   ? launch_vec<T, 4>(p, s, t_off, n_tok, n_split, ws_o, ws_ml)
                 : nq == 2 ? launch_vec<T, 2>(p, s, t_off, n_tok, n_split, ws_o, ws_ml)
                           : launch_vec<T, 1>(p, s, t_off, n_tok, n_split, ws_o, ws_ml);
        if (rc) return rc;
    } else {
        dim3 grid(p->H, n_tok, n_split);
        attn_decode_kernel<T><<<grid, WARPS * 32, 0, s>>>((T *)p->out, (const T *)p->q, p->ldq, (const T *)kv->k,
                                                           (const T *)kv->v, kv->block_table, kv->max_blocks, p->pos,
                                                           p->seq, p->H, kv->Hk, d, 1.0f / sqrtf((float)d), n_split,
                                                           ws_o, ws_ml, t_off);
    }
    LAUNCH_CHECK();
    if (n_split > 1) {
        CUDA_CHECK(gpu_launch(attn_merge_kernel<T>, dim3(p->H, n_tok), dim3(d < 32 ? 32 : d), 0, s, (T *)p->out,
                              (const float *)ws_o, (const float *)ws_ml, n_split, d, t_off));
        LAUNCH_CHECK();
    }
    return 0;
}

extern "C" int gpu_attention_decode(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s)
{
    return dt == GPU_BF16 ? run<__nv_bfloat16>(p, s, 0, p->T, 0) : run<__half>(p, s, 0, p->T, 0);
}

extern "C" int gpu_attention_decode_range(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s, int t0, int n)
{
    return dt == GPU_BF16 ? run<__nv_bfloat16>(p, s, t0, n, 0) : run<__half>(p, s, t0, n, 0);
}

extern "C" int gpu_attention_decode_scalar(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s)
{
    return dt == GPU_BF16 ? run<__nv_bfloat16>(p, s, 0, p->T, 1) : run<__half>(p, s, 0, p->T, 1);
}
