/* attention_prefill.cu: flash-style causal GQA attention on tensor cores for the prefill segments of a
 * packed batch (see attention.h), and the dispatcher gpu_attention.
 * A segment is a run of batch tokens of one slot at consecutive positions. Its rows are the (token,
 * query head) pairs of one kv group, flattened token-major (row R: token R / g, head kh g + R % g,
 * g = H / Hk), so the g query heads of a kv head share every K/V tile. A block of 4 warps takes 64 rows
 * (16 per warp) of one (segment, kv head) and walks 64-key tiles of the slot's paged cache from
 * position 0 to the tile's last position: K/V tiles go to shared memory with cp.async, two stages;
 * S = Q K^T and O += P V are mma.sync m16n8k16 (fp16/bf16 in, fp32 accumulate), Q and P stay in
 * registers; online softmax in fp32 (exp2 with the 1/sqrt(d) scale folded in); the causal mask is
 * applied only on tiles that reach past the tile's first row position. Keys past the tile's last
 * position are never read (zero-filled). Head dims 64 and 128; others go to the decode kernel.
 * Q is staged in the second K stage (69.6 KB of shared memory at d 128, 3 blocks per SM; registers
 * capped by __launch_bounds__(128, PF_MINB = 3): a few bytes spill at d 128, still faster at batch 8).
 * bf16: P is split into hi + lo bf16 halves, two mma per P V step (PF_SPLIT_P): rounding P to bf16
 * alone made the output ~20% noisier than the decode kernel's and flipped synthGQA's argmax past
 * test_gpu_model's 0.99; costs ~18% of bf16 speed (gpu/NOTES.md). fp16 rounds P once (2^-11).
 * The segment table goes to the kernel by value (no device buffer, safe in a captured graph).
 * Build with -DDUET_ATTN_NO_PREFILL to send every token to the decode kernel (debugging). */
#include "attention.h"
#include "cuda_check.h"
#include "kv_codes.cuh"
#include "kvquant.h"

#include <stdint.h>
#include <type_traits>

#define PF_WARPS 4
#define PF_BM 64 /* query rows per block */
#define PF_BN 64 /* keys per tile */
#define PF_PAD 8 /* elements of padding per shared row: rows shift by 16 bytes, ldmatrix conflict-free */
#define PF_MAX_SEGS 256
#ifndef PF_SPLIT_P
#define PF_SPLIT_P 1 /* bf16: P = hi + lo, two mma for P V (P rounding 2^-9 -> ~2^-17) */
#endif
#ifndef PF_MINB
#define PF_MINB 3 /* blocks per SM the register budget aims at */
#endif

typedef struct pf_segs {
    int n;
    int t0[PF_MAX_SEGS];       /* first batch token */
    int len[PF_MAX_SEGS];      /* tokens */
    int tile_end[PF_MAX_SEGS]; /* running sum of row tiles */
} pf_segs;

/* ---- PTX helpers ------------------------------------------------------------------------------ */

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared; src_bytes 0 zero-fills without reading. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

/* c (16x8 fp32) += a (16x16) . b (16x8) */
template <typename T> __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* two floats -> one register of two 16-bit values, the first in the low half */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&v;
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* bf16 only: x = hi + lo, both bf16 */
__device__ __forceinline__ void split2(float x0, float x1, uint32_t &hi, uint32_t &lo)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    float2 f = __bfloat1622float2(h);
    hi = *(uint32_t *)&h;
    lo = pack2<__nv_bfloat16>(x0 - f.x, x1 - f.y);
}

/* ---- kernel ----------------------------------------------------------------------------------- */

/* K and V, two stages each; Q is staged in the second K stage before the loop (PF_BM == PF_BN) */
template <int D> constexpr int pf_smem_bytes() { return 4 * PF_BN * (D + PF_PAD) * 2; }

/* KM (duet_kv_mode): 0 the cache holds T; int8 / fp8: 1-byte codes, each tile's codes loaded with 8-byte
 * loads (synchronously: no cp.async) and stored to shared memory as T holding the code itself (exact:
 * int8 codes and E4M3 values are fp16 and bf16 values), so S = Q C_K^T and O = P C_V run on the codes;
 * the block's kv-head scales go into the score scale (K) and the final normalization (V). */
template <typename T, int D, int KM>
__global__ void __launch_bounds__(PF_WARPS * 32, PF_MINB)
    attn_prefill_kernel(T *out, const T *q, int64_t ldq, const gpu_kv_view kv, const int *pos, const int *seq, int H,
                        float scale_log2, const __grid_constant__ pf_segs sg)
{
    const T *kc = (const T *)kv.k, *vc = (const T *)kv.v;
    const int *table = kv.block_table;
    const int max_blocks = kv.max_blocks, Hk = kv.Hk;
    constexpr int SR = D + PF_PAD;    /* shared row stride, elements */
    constexpr int CH = D / 8;         /* 16-byte chunks per row */
    constexpr int NB = PF_BN / 8;     /* 8-key blocks of S */
    constexpr int ND = D / 8;         /* 8-wide blocks of O */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    static_assert(PF_BM == PF_BN, "Q is staged in one K stage");
    T *sK = (T *)smem_raw; /* [2][BN][SR] */
    T *sV = sK + 2 * PF_BN * SR;
    T *sQ = sK + PF_BN * SR; /* K stage 1 until tile 1 is loaded */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int kh = blockIdx.x % Hk, tile = blockIdx.x / Hk;
    int s = 0;
    while (tile >= sg.tile_end[s]) s++;
    const int first = s ? sg.tile_end[s - 1] : 0, ntiles = sg.tile_end[s] - first;
    const int g = H / Hk, t0 = sg.t0[s], nrows = sg.len[s] * g;
    const int r0 = (ntiles - 1 - (tile - first)) * PF_BM; /* last (longest) row tiles first */
    const int rlast = min(r0 + PF_BM, nrows) - 1;
    const int min_pos = pos[t0 + r0 / g], kend = pos[t0 + rlast / g] + 1;
    const int *tab = table + (int64_t)seq[t0] * max_blocks;
    const int nkt = (kend + PF_BN - 1) / PF_BN;
    float v_sc = 1.0f;
    if (KM) scale_log2 *= kv.k_scale[kh], v_sc = kv.v_scale[kh];

    /* Q rows (rows past the segment repeat its last row; never stored) */
    for (int i = tid; i < PF_BM * CH; i += PF_WARPS * 32) {
        int r = i / CH, c = i % CH, R = min(r0 + r, nrows - 1);
        const T *src = q + (int64_t)(t0 + R / g) * ldq + (int64_t)(kh * g + R % g) * D + c * 8;
        cp_async16(sQ + r * SR + c * 8, src, 16);
    }
    auto load_kv = [&](int j, int buf) {
        T *dk = sK + buf * PF_BN * SR, *dv = sV + buf * PF_BN * SR;
        for (int i = tid; i < PF_BN * CH; i += PF_WARPS * 32) {
            int key = i / CH, c = i % CH, p = j * PF_BN + key;
            int64_t off = 0;
            int bytes = 0;
            if (p < kend) {
                off = gpu_kv_row(gpu_kv_block_of(tab, p), Hk, kh, p, D) + c * 8;
                bytes = 16;
            }
            if constexpr (KM == 0) {
                cp_async16(dk + key * SR + c * 8, kc + off, bytes);
                cp_async16(dv + key * SR + c * 8, vc + off, bytes);
            } else { /* 8 codes -> 8 T holding them (zeros past kend, as cp.async's zero fill) */
                uint2 ck = make_uint2(0, 0), cv = make_uint2(0, 0);
                if (bytes) {
                    ck = *(const uint2 *)((const uint8_t *)kv.k + off);
                    cv = *(const uint2 *)((const uint8_t *)kv.v + off);
                }
                float fk[8], fv[8];
                cvt8_codes(ck, fk, KM);
                cvt8_codes(cv, fv, KM);
                uint4 wk, wv;
                wk.x = pack2<T>(fk[0], fk[1]), wk.y = pack2<T>(fk[2], fk[3]), wk.z = pack2<T>(fk[4], fk[5]);
                wk.w = pack2<T>(fk[6], fk[7]);
                wv.x = pack2<T>(fv[0], fv[1]), wv.y = pack2<T>(fv[2], fv[3]), wv.z = pack2<T>(fv[4], fv[5]);
                wv.w = pack2<T>(fv[6], fv[7]);
                *(uint4 *)(dk + key * SR + c * 8) = wk;
                *(uint4 *)(dv + key * SR + c * 8) = wv;
            }
        }
    };
    load_kv(0, 0);
    cp_async_commit();

    /* positions of this thread's two rows (lane / 4 and lane / 4 + 8 of the warp's 16) */
    int rp[2];
#pragma unroll
    for (int u = 0; u < 2; u++) {
        int R = min(r0 + warp * 16 + (lane >> 2) + 8 * u, nrows - 1);
        rp[u] = pos[t0 + R / g];
    }
    uint32_t qf[D / 16][4];
    float o[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    /* Q and tile 0 */
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) ldsm_x4(qf[kk], sQ + (warp * 16 + (lane & 15)) * SR + kk * 16 + (lane >> 4) * 8);
    __syncthreads();

    for (int j = 0; j < nkt; j++) {
        if (j + 1 < nkt) {
            load_kv(j + 1, (j + 1) & 1);
            cp_async_commit();
        }
        if (j > 0) {
            if (j + 1 < nkt)
                cp_async_wait<1>();
            else
                cp_async_wait<0>();
            __syncthreads();
        }
        const T *bk = sK + (j & 1) * PF_BN * SR, *bv = sV + (j & 1) * PF_BN * SR;
        /* S = Q K^T */
        float sc[NB][4];
#pragma unroll
        for (int n = 0; n < NB; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int np = 0; np < NB / 2; np++) {
                uint32_t b[4];
                ldsm_x4(b, bk + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * SR + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816<T>(sc[2 * np], qf[kk], b[0], b[1]);
                mma16816<T>(sc[2 * np + 1], qf[kk], b[2], b[3]);
            }
        }
        const int k0 = j * PF_BN;
        if (k0 + PF_BN - 1 > min_pos) {
#pragma unroll
            for (int n = 0; n < NB; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = k0 + n * 8 + 2 * (lane & 3) + (e & 1);
                    if (key > rp[e >> 1]) sc[n][e] = -INFINITY;
                }
        }
        /* online softmax: row max over the quad, rescale, p = exp2(s c - m c) */
#pragma unroll
        for (int u = 0; u < 2; u++) {
            float mx = m[u];
#pragma unroll
            for (int n = 0; n < NB; n++) mx = fmaxf(mx, fmaxf(sc[n][2 * u], sc[n][2 * u + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            /* mx is finite: key 0 <= every row's position is in tile 0 */
            float corr = exp2f((m[u] - mx) * scale_log2), ms = mx * scale_log2, sum = 0.0f;
            m[u] = mx;
#pragma unroll
            for (int n = 0; n < NB; n++) {
                sc[n][2 * u] = exp2f(fmaf(sc[n][2 * u], scale_log2, -ms));
                sc[n][2 * u + 1] = exp2f(fmaf(sc[n][2 * u + 1], scale_log2, -ms));
                sum += sc[n][2 * u] + sc[n][2 * u + 1];
            }
            l[u] = l[u] * corr + sum;
#pragma unroll
            for (int n = 0; n < ND; n++) o[n][2 * u] *= corr, o[n][2 * u + 1] *= corr;
        }
        /* O += P V; the S accumulators of key blocks 2kk, 2kk+1 are the A fragment of key step kk */
        constexpr bool SPLIT = PF_SPLIT_P && sizeof(T) == 2 && !std::is_same<T, __half>::value;
#pragma unroll
        for (int kk = 0; kk < PF_BN / 16; kk++) {
            uint32_t a[4], al[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const float *c = &sc[2 * kk + (u >> 1)][2 * (u & 1)];
                if (SPLIT)
                    split2(c[0], c[1], a[u], al[u]);
                else
                    a[u] = pack2<T>(c[0], c[1]);
            }
#pragma unroll
            for (int nd = 0; nd < ND / 2; nd++) {
                uint32_t b[4];
                ldsm_x4_t(b, bv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * SR + nd * 16 + (lane >> 4) * 8);
                mma16816<T>(o[2 * nd], a, b[0], b[1]);
                mma16816<T>(o[2 * nd + 1], a, b[2], b[3]);
                if (SPLIT) {
                    mma16816<T>(o[2 * nd], al, b[0], b[1]);
                    mma16816<T>(o[2 * nd + 1], al, b[2], b[3]);
                }
            }
        }
        __syncthreads();
    }

    /* normalize and store this thread's two rows */
#pragma unroll
    for (int u = 0; u < 2; u++) {
        float L = l[u];
        L += __shfl_xor_sync(0xffffffffu, L, 1);
        L += __shfl_xor_sync(0xffffffffu, L, 2);
        float inv = 1.0f / L;
        if (KM) inv *= v_sc; /* O ran over V's codes */
        int R = r0 + warp * 16 + (lane >> 2) + 8 * u;
        if (R >= nrows) continue;
        T *dst = out + ((int64_t)(t0 + R / g) * H + kh * g + R % g) * D + 2 * (lane & 3);
#pragma unroll
        for (int n = 0; n < ND; n++) *(uint32_t *)(dst + n * 8) = pack2<T>(o[n][2 * u] * inv, o[n][2 * u + 1] * inv);
    }
}

/* ---- launchers -------------------------------------------------------------------------------- */

static int prefill_supported(const gpu_attn_params *p)
{
    int d = p->kv.d;
    return (d == 64 || d == 128) && p->kv.mode >= DUET_KV_F && p->kv.mode <= DUET_KV_FP8 && p->kv.Hk > 0 && p->H % p->kv.Hk == 0 && p->ldq % 8 == 0 &&
           (uintptr_t)p->q % 16 == 0 && (uintptr_t)p->kv.k % 16 == 0 && (uintptr_t)p->kv.v % 16 == 0;
}

template <typename T, int D, int KM> static int launch_prefill_km(const gpu_attn_params *p, const pf_segs *sg, gpu_stream s)
{
    static int attr_done = 0;
    const int bytes = pf_smem_bytes<D>();
    if (!attr_done) {
        CUDA_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<T, D, KM>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        attr_done = 1;
    }
    int64_t blocks = (int64_t)sg->tile_end[sg->n - 1] * p->kv.Hk;
    float scale_log2 = 1.4426950408889634f / sqrtf((float)D);
    attn_prefill_kernel<T, D, KM><<<(unsigned)blocks, PF_WARPS * 32, bytes, s>>>(
        (T *)p->out, (const T *)p->q, p->ldq, p->kv, p->pos, p->seq, p->H, scale_log2, *sg);
    LAUNCH_CHECK();
    return 0;
}
template <typename T, int D> static int launch_prefill(const gpu_attn_params *p, const pf_segs *sg, gpu_stream s)
{
    return p->kv.mode == DUET_KV_INT8  ? launch_prefill_km<T, D, DUET_KV_INT8>(p, sg, s)
           : p->kv.mode == DUET_KV_FP8 ? launch_prefill_km<T, D, DUET_KV_FP8>(p, sg, s)
                                       : launch_prefill_km<T, D, DUET_KV_F>(p, sg, s);
}

static int flush_prefill(const gpu_attn_params *p, gpu_dtype dt, pf_segs *sg, gpu_stream s)
{
    if (!sg->n) return 0;
    int rc;
    if (p->kv.d == 64)
        rc = dt == GPU_BF16 ? launch_prefill<__nv_bfloat16, 64>(p, sg, s) : launch_prefill<__half, 64>(p, sg, s);
    else
        rc = dt == GPU_BF16 ? launch_prefill<__nv_bfloat16, 128>(p, sg, s) : launch_prefill<__half, 128>(p, sg, s);
    sg->n = 0;
    return rc;
}

static int add_segment(const gpu_attn_params *p, gpu_dtype dt, pf_segs *sg, int t0, int len, gpu_stream s)
{
    int g = p->H / p->kv.Hk, tiles = (int)(((int64_t)len * g + PF_BM - 1) / PF_BM);
    int before = sg->n ? sg->tile_end[sg->n - 1] : 0;
    if (sg->n == PF_MAX_SEGS || (int64_t)before + tiles > (int64_t)(INT32_MAX / p->kv.Hk)) {
        if (flush_prefill(p, dt, sg, s)) return -1;
        before = 0;
    }
    sg->t0[sg->n] = t0;
    sg->len[sg->n] = len;
    sg->tile_end[sg->n] = before + tiles;
    sg->n++;
    return 0;
}

/* Walks the batch's segments; min_prefill: segments shorter than this go to the decode kernel. */
static int dispatch(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s, int min_prefill)
{
    pf_segs sg;
    sg.n = 0;
    int dec0 = -1; /* start of the pending run of decode tokens */
    for (int t = 0; t < p->T;) {
        int e = t + 1;
        while (e < p->T && p->h_seq[e] == p->h_seq[t] && p->h_pos[e] == p->h_pos[e - 1] + 1) e++;
        if (e - t < min_prefill) {
            if (dec0 < 0) dec0 = t;
        } else {
            if (dec0 >= 0 && gpu_attention_decode_range(p, dt, s, dec0, t - dec0)) return -1;
            dec0 = -1;
            if (add_segment(p, dt, &sg, t, e - t, s)) return -1;
        }
        t = e;
    }
    if (dec0 >= 0 && gpu_attention_decode_range(p, dt, s, dec0, p->T - dec0)) return -1;
    return flush_prefill(p, dt, &sg, s);
}

extern "C" int gpu_attention_prefill(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s)
{
    if (!p->h_pos || !p->h_seq) return duet_errorf("gpu attention prefill: host pos/seq (h_pos, h_seq) not given");
    if (!prefill_supported(p))
        return duet_errorf("gpu attention prefill: head_dim %d (H %d, Hk %d, KV cache %s) unsupported (64 or 128, "
                           "16-byte aligned)",
                           p->kv.d, p->H, p->kv.Hk, duet_kv_mode_name((duet_kv_mode)p->kv.mode));
    return dispatch(p, dt, s, 1);
}

extern "C" int gpu_attention(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s)
{
    if (p->T <= 0) return 0;
#ifdef DUET_ATTN_NO_PREFILL /* debug: the decode kernel for every token, as before the prefill kernel */
    return gpu_attention_decode(p, dt, s);
#endif
    if (p->fixed_order || !p->h_pos || !p->h_seq || !prefill_supported(p)) return gpu_attention_decode(p, dt, s);
    return dispatch(p, dt, s, 2);
}
