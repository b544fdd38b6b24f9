/* gemv.cuh: the weight-streaming GEMV kernel and its launchers (included by the gemv_<format>.cu files,
 * each of which instantiates gemv_run for one weight format). */
#ifndef DUET_GPU_GEMV_CUH
#define DUET_GPU_GEMV_CUH
#include "cuda_check.h"
#include "gemv.h"
#include "kv_codes.cuh"
#include "rope.h"

#include <stdint.h>

/* ---- GEMV-like path ------------------------------------------------------------------------------ */

#define GEMV_U 4     /* 256-wide K chunks in flight per lane: 2 rows x 4 x 16 bytes = 8 loads per lane */
#define GEMV_WARPS 8 /* warps per block */

/* One kernel, two inputs x three outputs. Shapes (row-major): W (rows, K) in T. Work unit: a row pair,
 * (2p, 2p+1) of W (N rows) for GV_STORE / GV_RESID and (p, N + p) of W = [G; U] (2N rows) for
 * GV_SWIGLU. A group of KS warps (KS = 1, 2, 4 or 8; GEMV_WARPS / KS groups per block) owns a contiguous
 * range of pairs; its warps split K in interleaved 256-element chunks and add their partial sums in a
 * fixed order (deterministic). The grid is sized to the resident blocks (no second wave), every group gets
 * floor or ceil of pairs / groups, and KS is picked so that the last round wastes least (gemv_plan).
 *  - input GV_X: x (NT, K) in T, read through the read-only path (tiny, L1/L2 resident);
 *  - input GV_NORM: x = rmsnorm(xr) * norm_w of the fp32 residual xr (NT, K), on the fly: the warps
 *    accumulate W . (norm_w * xr) and sum(xr^2) from the same x chunks and scale by 1/sqrt(mean + eps)
 *    at the end, so no block-wide prologue delays the weight stream. Unlike gpu_add_rmsnorm + GEMM, the
 *    normalized row is never rounded to T (closer to the fp32 ref, not bit-equal to the unfused path);
 *    every warp sums the squares in the same order, so the result is deterministic;
 *  - output GV_STORE: y (NT, N) in TO; GV_SWIGLU: y (NT, N) = silu(g) * u in T, with g and u rounded to T
 *    first (what gpu_swiglu reads); GV_RESID: resid (NT, N) fp32 += the T-rounded product (what
 *    gpu_add_rmsnorm adds); GV_ROPE: the qkv projection y (NT, (H + 2 Hk) d) in T with RoPE applied to
 *    the q and k heads and k, v stored into the paged cache (encoded as kv_codes.cuh says), as gpu_rope_kv does to the T-rounded
 *    product. Its pairs are the rotated pairs (h d + i, h d + i + d/2) of the q and k heads, then
 *    (2j, 2j+1) of the v heads.
 * PDL: each warp loads its first chunks of W (never written by a kernel) before pdl_wait(), so the
 * weight stream starts while the previous kernel finishes. */

/* Weight formats in the kernel (weights.h's table): E elements per 16-byte load (a lane's chunk), and the
 * decode of piece p (elements 8p .. 8p + 7 of the chunk) into exact floats: the weight (dense) or the
 * integer code (quantized; the scale is applied per chunk, which lies inside one group). */
template <int WF> struct wf_traits;
template <> struct wf_traits<GPU_W_DENSE> { static constexpr int E = 8, BITS = 16; };
template <> struct wf_traits<GPU_W_I8> { static constexpr int E = 16, BITS = 8; };
template <> struct wf_traits<GPU_W_U4> { static constexpr int E = 32, BITS = 4; };
template <> struct wf_traits<GPU_W_U4_MIN> { static constexpr int E = 32, BITS = 4; };

template <int WF, typename T>
__device__ __forceinline__ void decode8(const uint4 &w, int p, float c[8], uint32_t hz2)
{
    const uint32_t *u = (const uint32_t *)&w;
    if (WF == GPU_W_DENSE) {
        cvt8(w, c, T());
    } else if (WF == GPU_W_I8) {
        /* int8 q -> float: byte b ^ 0x80 = q + 128 placed under the exponent of 2^23, minus 2^23 + 128 */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            uint32_t v = u[2 * p + h] ^ 0x80808080u;
#pragma unroll
            for (int j = 0; j < 4; j++)
                c[4 * h + j] = __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7440u | j)) - 8388736.0f;
        }
    } else {
        /* 8 nibbles of word p, nibble i = element i: (1024 + q) as fp16 pairs (elements i, i + 4), minus
         * hz2 = (1024 + z) in both halves: q - z, a small integer, exact in fp16 and then in fp32 */
        uint32_t v = u[p];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t hb = ((v >> (4 * i)) & 0x000F000Fu) | 0x64006400u;
            __half2 d = __hsub2(*(const __half2 *)&hb, *(const __half2 *)&hz2);
            float2 f = __half22float2(d);
            c[i] = f.x;
            c[i + 4] = f.y;
        }
    }
}

/* One lane's loads of a row pair: U chunks of 16 bytes each, and for quantized formats each chunk's
 * scale (and zero point or min) of both rows. */
template <int WF> struct gemv_chunk {
    uint4 w[GEMV_U][2];
    float s[GEMV_U][2], z[GEMV_U][2]; /* scale; zero point (U4) or min (U4_MIN) */
};

template <int WF>
__device__ __forceinline__ void gemv_load(gemv_chunk<WF> &c, const gpu_wdesc &W, int r0, int r1, int k0, int step,
                                          int K)
{
    constexpr int BITS = wf_traits<WF>::BITS;
    const int64_t row_bytes = (int64_t)K * BITS / 8;
    const char *b0 = (const char *)W.w + r0 * row_bytes, *b1 = (const char *)W.w + r1 * row_bytes;
    const int G = WF == GPU_W_DENSE ? 1 : K / W.group;
#pragma unroll
    for (int u = 0; u < GEMV_U; u++) {
        int k = k0 + u * step;
        bool in = k < K;
        c.w[u][0] = in ? ld_stream16(b0 + (int64_t)k * BITS / 8) : make_uint4(0, 0, 0, 0);
        c.w[u][1] = in ? ld_stream16(b1 + (int64_t)k * BITS / 8) : make_uint4(0, 0, 0, 0);
        if (WF != GPU_W_DENSE) {
            int g = in ? k / W.group : 0;
            int64_t i0 = (int64_t)r0 * G + g, i1 = (int64_t)r1 * G + g;
            c.s[u][0] = __half2float(__ushort_as_half(__ldg(W.scales + i0)));
            c.s[u][1] = __half2float(__ushort_as_half(__ldg(W.scales + i1)));
            if (WF == GPU_W_U4) {
                c.z[u][0] = W.zeros ? (float)__ldg(W.zeros + i0) : 8.0f;
                c.z[u][1] = W.zeros ? (float)__ldg(W.zeros + i1) : 8.0f;
            } else if (WF == GPU_W_U4_MIN) {
                c.z[u][0] = __half2float(__ushort_as_half(__ldg(W.mins + i0)));
                c.z[u][1] = __half2float(__ushort_as_half(__ldg(W.mins + i1)));
            }
        }
    }
}

__device__ __forceinline__ void group_barrier(int id, int threads)
{
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

/* The output of row pair p (gemv_kernel's pair_rows) for token t: v0, v1 the fp32 products of its two rows,
 * written as OUT says (the header comment above). Shared with the TMA GEMV (gemv_tma.cu). */
template <typename T, typename TO, int OUT>
__device__ __forceinline__ void gemv_out_pair(const gemv_args &a, int p, int t, float v0, float v1)
{
    const int N = a.N;
    if (OUT == GV_SWIGLU) {
        float gg = to_f32(from_f32<T>(v0)), u = to_f32(from_f32<T>(v1));
        ((T *)a.y)[(int64_t)t * N + p] = from_f32<T>(gg / (1.0f + expf(-gg)) * u);
    } else if (OUT == GV_ROPE) {
        const int d = a.kv.d, half = d / 2, qk_pairs = (a.H + a.kv.Hk) * half;
        int r0, r1, ps = a.pos[t];
        if (p < qk_pairs) r0 = (p / half) * d + p % half, r1 = r0 + half;
        else r0 = 2 * p, r1 = r0 + 1;
        T y0 = from_f32<T>(v0), y1 = from_f32<T>(v1);
        if (p < qk_pairs) {
            float o0, o1;
            rope_pair(to_f32(y0), to_f32(y1), ps, r0 % d, d, a.theta, o0, o1);
            y0 = from_f32<T>(o0), y1 = from_f32<T>(o1);
        }
        ((T *)a.y)[(int64_t)t * N + r0] = y0;
        ((T *)a.y)[(int64_t)t * N + r1] = y1;
        int h = r0 / d; /* head in q | k | v order */
        if (h >= a.H) {
            int kvh = h < a.H + a.kv.Hk ? h - a.H : h - a.H - a.kv.Hk, i = r0 % d;
            const int blk = gpu_kv_block_of(a.kv.block_table + (int64_t)a.seq[t] * a.kv.max_blocks, ps);
            const int is_v = h >= a.H + a.kv.Hk;
            void *cache = is_v ? a.kv.v : a.kv.k;
            const int64_t off = gpu_kv_row(blk, a.kv.Hk, kvh, ps, d);
            kv_store<T>(a.kv, cache, off + i, kvh, is_v, y0);
            kv_store<T>(a.kv, cache, off + r1 % d, kvh, is_v, y1);
        }
    } else {
        const float v[2] = {v0, v1};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int n = 2 * p + r;
            if (n >= N) break;
            if (OUT == GV_RESID) ((float *)a.y)[(int64_t)t * N + n] += to_f32(from_f32<T>(v[r]));
            else ((TO *)a.y)[(int64_t)t * N + n] = from_f32<TO>(v[r]);
        }
    }
}

template <typename T, typename TO, int NT, int IN, int OUT, int WF>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(gemv_args a)
{
    constexpr int E = wf_traits<WF>::E, CW = 32 * E; /* chunk elements per lane, per warp */
    __shared__ float part[GEMV_WARPS][3][NT]; /* per-warp partial sums of the group's current pair (and sum x^2) */
    /* quantized weights with the RMSNorm input, one token: the block normalizes x once into shared memory (xs,
     * (NT, K) in T, rounded as gpu_add_rmsnorm rounds) instead of once per row pair: with 8- and 4-bit codes
     * the x side of a row pair would cost more than its weights. (At 2 tokens the prologue measured slower than
     * a gpu_add_rmsnorm kernel before the GEMV, which is what gpu_backend.cu does there.) */
    constexpr bool XS = IN == GV_NORM && WF != GPU_W_DENSE && NT == 1;
    extern __shared__ __align__(16) unsigned char gv_smem[];
    T *xs = (T *)gv_smem;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, N = a.N, K = a.K, ks = a.ks;
    const int groups_per_block = GEMV_WARPS / ks, group = warp / ks, kpart = warp % ks;
    const int n_groups = gridDim.x * groups_per_block, g = blockIdx.x * groups_per_block + group;
    const int n_pairs = OUT == GV_SWIGLU ? N : (N + 1) / 2;
    const int d = a.kv.d, half = d / 2, qk_pairs = (a.H + a.kv.Hk) * half; /* GV_ROPE */
    const int p_begin = (int)((int64_t)g * n_pairs / n_groups), p_end = (int)((int64_t)(g + 1) * n_pairs / n_groups);
    const int step = ks * CW, k_first = kpart * CW + lane * E;
    auto pair_rows = [&](int p, int &r0, int &r1) {
        if (OUT == GV_SWIGLU) r0 = p, r1 = N + p;
        else if (OUT == GV_ROPE && p < qk_pairs) r0 = (p / half) * d + p % half, r1 = r0 + half;
        else if (OUT == GV_ROPE) r0 = 2 * p, r1 = r0 + 1; /* v: row (H + Hk) d + 2 (p - qk_pairs) = 2 p */
        else r0 = 2 * p, r1 = min(2 * p + 1, N - 1);
    };
    gemv_chunk<WF> wc;
    if (p_begin < p_end) {
        int r0, r1;
        pair_rows(p_begin, r0, r1);
        gemv_load<WF>(wc, a.W, r0, r1, k_first, step, K);
    }
    pdl_trigger();
    pdl_wait();
    if (XS) { /* sum of squares per token (fixed order: per thread, warp shuffles, warps in order), then xs */
        __shared__ float inv_s[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float ss = 0.0f;
            for (int k = threadIdx.x; k < K; k += GEMV_WARPS * 32) {
                float v = a.xr[(int64_t)t * K + k];
                ss = fmaf(v, v, ss);
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
            if (lane == 0) part[warp][0][t] = ss;
        }
        __syncthreads();
        if (threadIdx.x < NT) {
            float tot = 0.0f;
            for (int w = 0; w < GEMV_WARPS; w++) tot += part[w][0][threadIdx.x];
            inv_s[threadIdx.x] = 1.0f / sqrtf(tot / K + a.eps);
        }
        __syncthreads();
#pragma unroll
        for (int t = 0; t < NT; t++)
            for (int k = threadIdx.x; k < K; k += GEMV_WARPS * 32)
                xs[(int64_t)t * K + k] =
                    from_f32<T>(to_f32(((const T *)a.norm_w)[k]) * (a.xr[(int64_t)t * K + k] * inv_s[t]));
        __syncthreads(); /* part[] is free again; xs is ready */
    }

    for (int p = p_begin; p < p_end; p++) {
        float acc[3][NT]; /* rows 0, 1; [2]: sum of x^2 (GV_NORM) */
#pragma unroll
        for (int r = 0; r < 3; r++)
#pragma unroll
            for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
        for (int k0 = k_first;;) {
#pragma unroll
            for (int u = 0; u < GEMV_U; u++) {
                int kc = k0 + u * step;
                if (kc < K) {
                    /* dense: the products go straight into acc; quantized: per token the code products of the
                     * chunk (one group), in two interleaved chains (even and odd elements: more FMAs in flight),
                     * and for U4_MIN its sum of x; scaled once at the end of the chunk */
                    float dq[2][2][NT], sx[NT];
#pragma unroll
                    for (int t = 0; t < NT; t++) dq[0][0][t] = dq[0][1][t] = dq[1][0][t] = dq[1][1][t] = sx[t] = 0.0f;
                    uint32_t hz2[2] = {0x64006400u, 0x64006400u}; /* (1024 + z) as a half2: U4's zero point */
                    if (WF == GPU_W_U4)
#pragma unroll
                        for (int r = 0; r < 2; r++) {
                            __half2 h = __float2half2_rn(1024.0f + wc.z[u][r]);
                            hz2[r] = *(const uint32_t *)&h;
                        }
#pragma unroll
                    for (int pc = 0; pc < E / 8; pc++) {
                        const int k = kc + 8 * pc;
                        float wf[2][8];
                        decode8<WF, T>(wc.w[u][0], pc, wf[0], hz2[0]);
                        decode8<WF, T>(wc.w[u][1], pc, wf[1], hz2[1]);
#pragma unroll
                        for (int t = 0; t < NT; t++) {
                            float xf[8];
                            if (IN == GV_NORM && !XS) {
                                const float4 *xp = (const float4 *)(a.xr + (int64_t)t * K + k);
                                float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                                float nw[8], xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                                cvt8(__ldg((const uint4 *)((const T *)a.norm_w + k)), nw, T());
#pragma unroll
                                for (int i = 0; i < 8; i++) {
                                    acc[2][t] = fmaf(xv[i], xv[i], acc[2][t]);
                                    xf[i] = nw[i] * xv[i];
                                }
                            } else if (XS) {
                                cvt8(*(const uint4 *)(xs + (int64_t)t * K + k), xf, T());
                            } else {
                                cvt8(__ldg((const uint4 *)((const T *)a.x + (int64_t)t * K + k)), xf, T());
                            }
#pragma unroll
                            for (int r = 0; r < 2; r++)
#pragma unroll
                                for (int i = 0; i < 8; i++) {
                                    if (WF == GPU_W_DENSE) acc[r][t] = fmaf(wf[r][i], xf[i], acc[r][t]);
                                    else dq[r][i & 1][t] = fmaf(wf[r][i], xf[i], dq[r][i & 1][t]);
                                }
                            if (WF == GPU_W_U4_MIN)
#pragma unroll
                                for (int i = 0; i < 8; i++) sx[t] += xf[i];
                        }
                    }
#pragma unroll
                    for (int t = 0; t < NT; t++)
#pragma unroll
                        for (int r = 0; r < 2; r++) {
                            float d = dq[r][0][t] + dq[r][1][t];
                            if (WF == GPU_W_I8 || WF == GPU_W_U4) acc[r][t] = fmaf(wc.s[u][r], d, acc[r][t]);
                            else if (WF == GPU_W_U4_MIN) acc[r][t] = fmaf(wc.z[u][r], sx[t], fmaf(wc.s[u][r], d, acc[r][t]));
                        }
                }
            }
            k0 += step * GEMV_U;
            if (k0 >= K) break;
            int r0, r1;
            pair_rows(p, r0, r1);
            gemv_load<WF>(wc, a.W, r0, r1, k0, step, K);
        }
        if (p + 1 < p_end) { /* the next pair's first loads fly during this pair's reduction and store */
            int r0, r1;
            pair_rows(p + 1, r0, r1);
            gemv_load<WF>(wc, a.W, r0, r1, k_first, step, K);
        }
        constexpr int NR = IN == GV_NORM && !XS ? 3 : 2;
#pragma unroll
        for (int r = 0; r < NR; r++)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float v = acc[r][t];
#pragma unroll
                for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
                acc[r][t] = v;
            }
        if (ks > 1) { /* the group's warps add their parts in kpart order */
            if (lane == 0)
#pragma unroll
                for (int r = 0; r < NR; r++)
#pragma unroll
                    for (int t = 0; t < NT; t++) part[warp][r][t] = acc[r][t];
            group_barrier(1 + group, ks * 32);
            if (kpart == 0 && lane == 0)
#pragma unroll
                for (int r = 0; r < NR; r++)
#pragma unroll
                    for (int t = 0; t < NT; t++) {
                        float v = part[warp][r][t];
                        for (int j = 1; j < ks; j++) v += part[warp + j][r][t];
                        acc[r][t] = v;
                    }
            group_barrier(1 + group, ks * 32); /* part[] is free again */
        }
        if (kpart != 0 || lane != 0) continue;
        if (IN == GV_NORM && !XS)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float inv = 1.0f / sqrtf(acc[2][t] / K + a.eps);
                acc[0][t] *= inv;
                acc[1][t] *= inv;
            }
#pragma unroll
        for (int t = 0; t < NT; t++) gemv_out_pair<T, TO, OUT>(a, p, t, acc[0][t], acc[1][t]);
    }
}

/* Grid and warps per pair: as many blocks as are resident at once (occupancy of this instantiation,
 * queried once; registers are the limit), and the KS of {1, 2, 4, 8} whose rounds (ceil(pairs KS /
 * warps) chunks of K / KS each) take least time, among those that leave each warp at least GEMV_U chunks
 * of a row (all its loads in flight); ties go to the smaller KS. A chunk is 32 lanes x 16 bytes: 256
 * elements dense, 512 int8, 1024 int4. */
template <typename T, typename TO, int NT, int IN, int OUT, int WF>
static cudaError_t gemv_plan(int pairs, int K, size_t smem, int *blocks, int *ks)
{
    constexpr int CW = 32 * wf_traits<WF>::E;
    static int resident = 0;   /* blocks per SM x SMs, per instantiation */
    static size_t at_smem = 0; /* the dynamic shared memory it was queried for */
    if (!resident || smem != at_smem) {
        int dev = 0, n_sm = 0, per_sm = 0;
        cudaError_t e = cudaGetDevice(&dev);
        if (e == cudaSuccess) e = cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev);
        if (e == cudaSuccess && smem > 48 * 1024)
            e = cudaFuncSetAttribute(gemv_kernel<T, TO, NT, IN, OUT, WF>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem);
        if (e == cudaSuccess)
            e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_kernel<T, TO, NT, IN, OUT, WF>,
                                                              GEMV_WARPS * 32, smem);
        if (e != cudaSuccess) return e;
        resident = n_sm * (per_sm > 0 ? per_sm : 1);
        at_smem = smem;
    }
    int best_ks = 1;
    double best = 1e30;
    for (int k = 1; k <= GEMV_WARPS && (k == 1 || K >= CW * GEMV_U * k); k *= 2) { /* every warp fills its U loads */
        int64_t nb = ((int64_t)pairs * k + GEMV_WARPS - 1) / GEMV_WARPS;
        if (nb > resident) nb = resident;
        int64_t groups = nb * (GEMV_WARPS / k);
        double cost = (double)((pairs + groups - 1) / groups) * ((K + CW * k - 1) / (CW * k));
        if (cost < best - 1e-9) best = cost, best_ks = k;
    }
    int64_t nb = ((int64_t)pairs * best_ks + GEMV_WARPS - 1) / GEMV_WARPS;
    *blocks = (int)(nb < resident ? nb : resident);
    *ks = best_ks;
    return cudaSuccess;
}

template <typename T, typename TO, int NT, int IN, int OUT, int WF>
static cudaError_t gemv_launch(gemv_args a, cudaStream_t s)
{
    int pairs = OUT == GV_SWIGLU ? a.N : (a.N + 1) / 2, blocks = 1;
    /* the normalized x of the quantized RMSNorm input (gemv_kernel's xs) */
    const size_t smem = IN == GV_NORM && WF != GPU_W_DENSE && NT == 1 ? (size_t)a.K * sizeof(T) : 0;
    cudaError_t e = gemv_plan<T, TO, NT, IN, OUT, WF>(pairs, a.K, smem, &blocks, &a.ks);
    if (e != cudaSuccess) return e;
    return gpu_launch(gemv_kernel<T, TO, NT, IN, OUT, WF>, dim3(blocks), dim3(GEMV_WARPS * 32), smem, s, a);
}

/* One weight format's launchers (WF fixed; gemv_<format>.cu instantiates one each, so the four compile in
 * parallel): the plain product for T = 1..8 and the fused forms for T = 1, 2. */
template <typename T, typename TO, int WF> static cudaError_t gemv_plain(const gemv_args &a, int T_, cudaStream_t s)
{
    switch (T_) {
    case 1: return gemv_launch<T, TO, 1, GV_X, GV_STORE, WF>(a, s);
    case 2: return gemv_launch<T, TO, 2, GV_X, GV_STORE, WF>(a, s);
    case 3: return gemv_launch<T, TO, 3, GV_X, GV_STORE, WF>(a, s);
    case 4: return gemv_launch<T, TO, 4, GV_X, GV_STORE, WF>(a, s);
    case 5: return gemv_launch<T, TO, 5, GV_X, GV_STORE, WF>(a, s);
    case 6: return gemv_launch<T, TO, 6, GV_X, GV_STORE, WF>(a, s);
    case 7: return gemv_launch<T, TO, 7, GV_X, GV_STORE, WF>(a, s);
    default: return gemv_launch<T, TO, 8, GV_X, GV_STORE, WF>(a, s);
    }
}

template <typename T, int NT, int WF>
static cudaError_t gemv_fused_t(const gemv_args &a, int norm, gpu_gemv_out out, cudaStream_t s)
{
    if (out == GPU_GEMV_ROPE)
        return norm ? gemv_launch<T, T, NT, GV_NORM, GV_ROPE, WF>(a, s) : gemv_launch<T, T, NT, GV_X, GV_ROPE, WF>(a, s);
    if (norm) {
        if (out == GPU_GEMV_SWIGLU) return gemv_launch<T, T, NT, GV_NORM, GV_SWIGLU, WF>(a, s);
        if (out == GPU_GEMV_RESID) return gemv_launch<T, T, NT, GV_NORM, GV_RESID, WF>(a, s);
        return gemv_launch<T, T, NT, GV_NORM, GV_STORE, WF>(a, s);
    }
    if (out == GPU_GEMV_SWIGLU) return gemv_launch<T, T, NT, GV_X, GV_SWIGLU, WF>(a, s);
    if (out == GPU_GEMV_RESID) return gemv_launch<T, T, NT, GV_X, GV_RESID, WF>(a, s);
    return gemv_launch<T, T, NT, GV_X, GV_STORE, WF>(a, s);
}

template <int WF>
cudaError_t gemv_run(const gemv_args &a, gpu_dtype dt, int T, int y_f32, int fused, int norm, gpu_gemv_out out,
                     cudaStream_t s)
{
    if (fused) {
        if (dt == GPU_BF16) return T == 1 ? gemv_fused_t<__nv_bfloat16, 1, WF>(a, norm, out, s)
                                          : gemv_fused_t<__nv_bfloat16, 2, WF>(a, norm, out, s);
        return T == 1 ? gemv_fused_t<__half, 1, WF>(a, norm, out, s) : gemv_fused_t<__half, 2, WF>(a, norm, out, s);
    }
    if (dt == GPU_BF16)
        return y_f32 ? gemv_plain<__nv_bfloat16, float, WF>(a, T, s) : gemv_plain<__nv_bfloat16, __nv_bfloat16, WF>(a, T, s);
    return y_f32 ? gemv_plain<__half, float, WF>(a, T, s) : gemv_plain<__half, __half, WF>(a, T, s);
}
#endif
