/* qmma.cu: y = x . W^T for weight-only quantized W (weights.h: GPU_W_I8, GPU_W_U4, GPU_W_U4_MIN) on tensor
 * cores, T = 1..64 tokens (qmma.h). mma.sync.aligned.m16n8k16, fp32 accumulation: A = 16 rows of W (the M
 * side), B = x^T (16 k x 8 tokens), C = 16 rows x 8 tokens.
 *
 * Exactness. The MMA never sees a scaled weight: A holds the integer codes q - z (U4), q (I8) or q
 * (U4_MIN), |value| <= 127, exact in fp16 and bf16 alike. Each k16 tile lies inside one group, so a
 * group's tiles accumulate into their own fp32 fragment gacc, which is then folded into the output
 * fragment acc += s_row * gacc (U4_MIN: + m_row * sum_x, the group's x sum per token, fp32). The weights
 * are the ref's bit for bit; only the fp32 summation order differs (as the GEMV in gemm.cu).
 *
 * Arrays (row-major):
 *   x      (T, K) in T (fp16 / bf16), 16-byte aligned rows (K % 32 == 0), read through the read-only path
 *          (L1-cached: the warps of a block that share a K chunk read the same x bytes);
 *   codes  (N, K bits / 8) bytes: I8 one int8 per element, U4 / U4_MIN element 2j in the low nibble of
 *          byte j, 2j + 1 in the high nibble; 16-byte aligned rows; read with L1::no_allocate (streamed);
 *   scales (N, G) fp16 raw bits, G = K / group; zeros (N, G) uint8 (U4; NULL: 8); mins (N, G) fp16 (U4_MIN);
 *   y      (T, N) in TO (fp16 / bf16 / fp32);
 *   part   shared, (QM_WARPS, NT8 * 4, 32) fp32: the split-K partial fragments, lane-minor (no conflicts).
 *
 * Fragments (PTX ISA, mma.m16n8k16 with .f16/.bf16 A/B and .f32 C; lane = 4 g + t, g = groupID 0..7,
 * t = threadID_in_group 0..3; a register of two 16-bit values holds the lower-numbered one in its low half):
 *   A (16 x 16, row): a0,a1 (reg 0): row g,     k 2t, 2t+1     a2,a3 (reg 1): row g + 8, k 2t, 2t+1
 *                     a4,a5 (reg 2): row g,     k 2t+8, 2t+9   a6,a7 (reg 3): row g + 8, k 2t+8, 2t+9
 *   B (16 x 8, col):  b0,b1 (reg 0): k 2t, 2t+1, token g      b2,b3 (reg 1): k 2t+8, 2t+9, token g
 *   C (16 x 8):       c0,c1: row g, tokens 2t, 2t+1            c2,c3: row g + 8, tokens 2t, 2t+1
 * So lane (g, t) holds A's rows g and g + 8 and B's token g at the same four k slots {2t, 2t+1, 2t+8,
 * 2t+9}. Any permutation of the 16 physical k of a tile onto the logical k works as long as A and B use
 * the same one; we use that freedom to make a lane's slots contiguous in memory:
 *
 * k mapping. K is walked in chunks of QM_CH = 128 elements = four 32-element "slots" per lane. A slot is
 * 8 consecutive elements e0..e7 of rows g and g + 8 (4 bytes of U4 codes, 8 bytes of I8) and of x's token
 * rows, and feeds two k16 tiles: decoded into pairs P_i = (e_i, e_{i+4}) (the natural nibble pairs of a U4
 * word), tile h = 0, 1 takes A reg 0 / reg 2 = P_{2h} / P_{2h+1} of row g, reg 1 / reg 3 the same of row
 * g + 8, and B reg 0 / reg 1 = the same pairs of x. The four lanes t of a quad hold the four 8-element
 * pieces of a tile's 32 elements, so a tile's 16 k lie in those 32 elements:
 *   - "plain" layout (group a multiple of 128, or the whole row, and a full chunk): lane t loads its 16
 *     bytes (U4) / 32 bytes (I8) of row g at chunk offset 32 t elements, and its slot j is elements
 *     32 t + 8 j .. + 7: the chunk's tiles mix 32-element blocks, fine because the whole chunk is one group;
 *   - "transposed" layout (groups of 32 or 64, q4_0 / q4_1 / q8_0 / int4-g64, and the chunk at the end of
 *     a row with K % 128 != 0): slot j is elements 32 j + 8 t .. + 7, loaded directly as a 4-byte (U4) /
 *     8-byte (I8) piece; slot j's two tiles cover the 32-element block j, which lies in one group (groups
 *     are multiples of 32). The quad's four pieces of a row are 16 / 32 contiguous bytes, so the sectors the
 *     first piece brings into L1 serve the rest. (16-byte loads and a 4 x 4 word transpose across the quad
 *     by shuffles measured slower on the H200.)
 * The group accumulator gacc is folded into acc at every group end and at the end of every chunk (a
 * warp's chunks are not contiguous in k), so it never spans two groups.
 *
 * Work split. A block is QM_WARPS = 8 warps = MW row tiles x KW k-splits (MW KW = 8, KW picked at launch
 * from 1, 2, 4, 8 by the resident-block count, as gemm.cu's GEMV plans its KS); warp (mw, kw) owns MT
 * (qm_cfg) consecutive 16-row tiles, rows 16 MT (MW blockIdx + mw) .. + 16 MT - 1, and the chunks kw, kw +
 * KW, ... of K; each x fragment it loads serves its MT tiles. Each lane keeps QM_U = 2 chunks of codes in
 * flight, reloading a chunk's registers right after it is consumed. At the end the KW warps of a row tile
 * add their fragments in kw order through shared memory (deterministic), and warp kw = 0 stores. The x
 * loads (NT8 16-byte loads per slot) come from L1 / L2; the MW warps at one kw read the same x bytes at
 * about the same time. */
#include "cuda_check.h"
#include "mma_codes.cuh"
#include "qmma.h"
#include "weights.h"

#include <stdint.h>

#define QM_WARPS 8
#define QM_CH 128 /* elements of K per chunk: 4 slots of 8 elements per lane */
#define QM_U 2    /* chunks of codes in flight per lane */

/* ---- one chunk ---------------------------------------------------------------------------------- */

template <int WF> struct qm_fmt { static constexpr int WPS = WF == GPU_W_I8 ? 2 : 1; }; /* code words per slot */

/* A lane's registers for one chunk of its MT row tiles: the codes of rows g and g + 8 of each tile (slot j
 * = words WPS j ..), and the raw 16-bit scales and zero points / mins of the chunk's groups. PLAIN layout
 * (one group per chunk): s and z hold one value each. Otherwise (groups of 32 or 64, the transposed
 * layout) four per row, one per slot: s and (U4_MIN) the mins two fp16 per word, (U4) the zero points one
 * byte each. */
template <int WF, int MT, bool PLAIN> struct qm_chunk {
    static constexpr int SW = PLAIN ? 1 : 2, ZW = PLAIN ? 1 : (WF == GPU_W_U4_MIN ? 2 : 1);
    uint32_t w[MT][2][4 * qm_fmt<WF>::WPS];
    uint32_t s[MT][2][SW], z[MT][2][ZW];
};
template <int WF, int MT, bool PLAIN>
__device__ __forceinline__ uint32_t qm_scale(const qm_chunk<WF, MT, PLAIN> &c, int m, int r, int j)
{
    return PLAIN ? c.s[m][r][0] : (c.s[m][r][j >> 1] >> (16 * (j & 1))) & 0xffffu;
}
template <int WF, int MT, bool PLAIN>
__device__ __forceinline__ uint32_t qm_zero(const qm_chunk<WF, MT, PLAIN> &c, int m, int r, int j)
{
    if (WF == GPU_W_U4_MIN) return PLAIN ? c.z[m][r][0] : (c.z[m][r][(j >> 1) % qm_chunk<WF, MT, PLAIN>::ZW] >> (16 * (j & 1))) & 0xffffu;
    return PLAIN ? c.z[m][r][0] : (c.z[m][r][0] >> (8 * j)) & 0xffu;
}

/* the chunk's geometry: slots in K (4 but at the row's end), layout */
struct qm_geom {
    int k0, nslot;
    bool tr;
};
__device__ __forceinline__ qm_geom qm_geom_of(int c, int K, bool plain)
{
    qm_geom q;
    q.k0 = c * QM_CH;
    int left = (K - q.k0) / 32;
    q.nslot = left < 4 ? left : 4;
    q.tr = q.nslot < 4 || !plain;
    return q;
}
/* first element of slot j of lane t, relative to the chunk */
__device__ __forceinline__ int qm_off(const qm_geom &q, int j, int t) { return q.tr ? 32 * j + 8 * t : 32 * t + 8 * j; }

/* Four consecutive 16-bit entries a[i .. i + 3] (of slots 0..3: groups of 32), packed two per word; one
 * 8-byte load when aligned. n: how many exist (the rest read entry i). */
__device__ __forceinline__ void ld4_u16(const uint16_t *a, int64_t i, int n, uint32_t o[2])
{
    if (n == 4 && (i & 3) == 0) {
        uint2 v = __ldg((const uint2 *)(a + i));
        o[0] = v.x, o[1] = v.y;
        return;
    }
    uint32_t e[4];
#pragma unroll
    for (int j = 0; j < 4; j++) e[j] = __ldg(a + i + (j < n ? j : 0));
    o[0] = e[0] | (e[1] << 16), o[1] = e[2] | (e[3] << 16);
}

template <int WF, int MT, bool PLAIN>
__device__ __forceinline__ void qm_load(qm_chunk<WF, MT, PLAIN> &ch, const gpu_wdesc &W, const int rows[MT][2], int c,
                                        int K, int t)
{
    constexpr int WPS = qm_fmt<WF>::WPS;
    const qm_geom q = qm_geom_of(c, K, PLAIN);
    const int G = K / W.group;
    const int64_t rb = (int64_t)K * WPS / 2; /* row bytes: K (I8) or K / 2 */
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const uint8_t *row = (const uint8_t *)W.w + rows[m][r] * rb;
            if (!q.tr) { /* plain: lane t's 16 WPS bytes at element 32 t */
                const uint8_t *p = row + (int64_t)(q.k0 + 32 * t) * WPS / 2;
                uint4 a = ld_stream16(p);
                ch.w[m][r][0] = a.x, ch.w[m][r][1] = a.y, ch.w[m][r][2] = a.z, ch.w[m][r][3] = a.w;
                if (WPS == 2) {
                    uint4 b = ld_stream16(p + 16);
                    ch.w[m][r][4 % (4 * WPS)] = b.x, ch.w[m][r][5 % (4 * WPS)] = b.y, ch.w[m][r][6 % (4 * WPS)] = b.z,
                    ch.w[m][r][7 % (4 * WPS)] = b.w;
                }
            } else { /* transposed: slot j's piece at element 32 j + 8 t (4 WPS bytes; the quad's pieces of a
                      * row are contiguous, so the sectors the first load brings to L1 serve the others) */
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint8_t *p = row + (int64_t)(q.k0 + 32 * j + 8 * t) * WPS / 2;
                    if (j >= q.nslot) {
#pragma unroll
                        for (int i = 0; i < WPS; i++) ch.w[m][r][WPS * j + i] = 0u;
                    } else if (WPS == 2) {
                        uint2 v = __ldg((const uint2 *)p);
                        ch.w[m][r][WPS * j] = v.x, ch.w[m][r][(WPS * j + 1) % (4 * WPS)] = v.y;
                    } else {
                        ch.w[m][r][WPS * j] = __ldg((const uint32_t *)p);
                    }
                }
            }
            const int64_t sb = (int64_t)rows[m][r] * G;
            if (PLAIN) { /* the chunk lies in one group */
                const int64_t gi = sb + q.k0 / W.group;
                ch.s[m][r][0] = __ldg(W.scales + gi);
                if (WF == GPU_W_U4) ch.z[m][r][0] = W.zeros ? (uint32_t)__ldg(W.zeros + gi) : 8u;
                else if (WF == GPU_W_U4_MIN) ch.z[m][r][0] = __ldg(W.mins + gi);
                else ch.z[m][r][0] = 0u;
            } else if (W.group == 32) { /* slot j: group k0 / 32 + j */
                const int64_t gi = sb + q.k0 / 32;
                ld4_u16(W.scales, gi, q.nslot, ch.s[m][r]);
                if (WF == GPU_W_U4_MIN) ld4_u16(W.mins, gi, q.nslot, ch.z[m][r]);
                else if (WF == GPU_W_U4) {
                    uint32_t z = 0x08080808u;
                    if (W.zeros) {
                        z = 0;
#pragma unroll
                        for (int j = 0; j < 4; j++) z |= (uint32_t)__ldg(W.zeros + gi + (j < q.nslot ? j : 0)) << (8 * j);
                    }
                    ch.z[m][r][0] = z;
                } else ch.z[m][r][0] = 0u;
            } else { /* any other multiple of 32: slot j's group (k0 + 32 j) / group */
                uint32_t e[4], zz = 0;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int64_t gi = sb + (q.k0 + 32 * (j < q.nslot ? j : 0)) / W.group;
                    e[j] = __ldg(W.scales + gi);
                    if (WF == GPU_W_U4) zz |= (W.zeros ? (uint32_t)__ldg(W.zeros + gi) : 8u) << (8 * j);
                    else if (WF == GPU_W_U4_MIN) {
                        uint32_t mn = __ldg(W.mins + gi);
                        if (j == 0) ch.z[m][r][0] = mn;
                        else if (j == 1) ch.z[m][r][0] |= mn << 16;
                        else if (j == 2) ch.z[m][r][qm_chunk<WF, MT, PLAIN>::ZW - 1] = mn;
                        else ch.z[m][r][qm_chunk<WF, MT, PLAIN>::ZW - 1] |= mn << 16;
                    }
                }
                ch.s[m][r][0] = e[0] | (e[1] << 16), ch.s[m][r][qm_chunk<WF, MT, PLAIN>::SW - 1] = e[2] | (e[3] << 16);
                if (WF == GPU_W_U4) ch.z[m][r][0] = zz;
                else if (WF == GPU_W_I8) ch.z[m][r][0] = 0u;
            }
        }
}

template <typename T, int WF, int NT8, int MT, bool PLAIN>
__device__ __forceinline__ void qm_compute(qm_chunk<WF, MT, PLAIN> &ch, float acc[MT][NT8][4], float gacc[MT][NT8][4],
                                           float psx[NT8], const T *x, int T_, int K, int group, int c, int g, int t)
{
    constexpr int WPS = qm_fmt<WF>::WPS;
    const qm_geom q = qm_geom_of(c, K, PLAIN);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        if (j >= q.nslot) break;
        const int k = q.k0 + qm_off(q, j, t);
        /* x: this slot's 8 elements of token 8 nt + g, shared by the MT row tiles */
        uint32_t b[NT8][4];
#pragma unroll
        for (int nt = 0; nt < NT8; nt++) {
            const int tok = 8 * nt + g;
            uint4 xv = make_uint4(0u, 0u, 0u, 0u);
            if (tok < T_) xv = __ldg((const uint4 *)(x + (int64_t)tok * K + k));
            x_pairs(xv, b[nt]);
            if (WF == GPU_W_U4_MIN) psx[nt] += x_sum8(xv, T());
        }
#pragma unroll
        for (int m = 0; m < MT; m++) {
            uint32_t p0[4], p1[4];
            qm_decode<WF, T>(ch.w[m][0][WPS * j], ch.w[m][0][(WPS * j + WPS - 1)], qm_zero(ch, m, 0, j), p0);
            qm_decode<WF, T>(ch.w[m][1][WPS * j], ch.w[m][1][(WPS * j + WPS - 1)], qm_zero(ch, m, 1, j), p1);
            const uint32_t a0[4] = {p0[0], p1[0], p0[1], p1[1]}, a1[4] = {p0[2], p1[2], p0[3], p1[3]};
#pragma unroll
            for (int nt = 0; nt < NT8; nt++) {
                qm_mma<T>(gacc[m][nt], a0, b[nt][0], b[nt][1]);
                qm_mma<T>(gacc[m][nt], a1, b[nt][2], b[nt][3]);
            }
        }
        /* fold at the group's end and at the chunk's end */
        bool last = j == q.nslot - 1 || (!PLAIN && (q.k0 + 32 * j + 32) / group != (q.k0 + 32 * j) / group);
        if (!last) continue;
        float sa[NT8], sb[NT8];
        if (WF == GPU_W_U4_MIN)
#pragma unroll
            for (int nt = 0; nt < NT8; nt++) {
                /* token 8 nt + g's sum over the quad's pieces, then tokens 2t, 2t + 1 (C's columns) from the
                 * lanes holding them (g = 2t, 2t + 1) */
                float v = psx[nt];
                v += __shfl_xor_sync(0xffffffffu, v, 1);
                v += __shfl_xor_sync(0xffffffffu, v, 2);
                sa[nt] = __shfl_sync(0xffffffffu, v, 8 * t), sb[nt] = __shfl_sync(0xffffffffu, v, 8 * t + 4);
                psx[nt] = 0.0f;
            }
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float s0 = h2f(qm_scale(ch, m, 0, j)), s1 = h2f(qm_scale(ch, m, 1, j));
#pragma unroll
            for (int nt = 0; nt < NT8; nt++) {
                acc[m][nt][0] = fmaf(s0, gacc[m][nt][0], acc[m][nt][0]);
                acc[m][nt][1] = fmaf(s0, gacc[m][nt][1], acc[m][nt][1]);
                acc[m][nt][2] = fmaf(s1, gacc[m][nt][2], acc[m][nt][2]);
                acc[m][nt][3] = fmaf(s1, gacc[m][nt][3], acc[m][nt][3]);
                gacc[m][nt][0] = gacc[m][nt][1] = gacc[m][nt][2] = gacc[m][nt][3] = 0.0f;
                if (WF == GPU_W_U4_MIN) {
                    const float m0 = h2f(qm_zero(ch, m, 0, j)), m1 = h2f(qm_zero(ch, m, 1, j));
                    acc[m][nt][0] = fmaf(m0, sa[nt], acc[m][nt][0]);
                    acc[m][nt][1] = fmaf(m0, sb[nt], acc[m][nt][1]);
                    acc[m][nt][2] = fmaf(m1, sa[nt], acc[m][nt][2]);
                    acc[m][nt][3] = fmaf(m1, sb[nt], acc[m][nt][3]);
                }
            }
        }
    }
}

/* ---- kernel ------------------------------------------------------------------------------------- */

/* Row tiles per warp and chunks in flight per lane, by format and token tiles: enough rows that a loaded x
 * fragment serves several tiles, few enough that the fragments and the loads in flight fit the registers
 * (U4: 16 bytes of codes per row and chunk, I8: 32; at most 64 registers of codes in flight). */
template <int WF, int NT8> struct qm_cfg {
    static constexpr int MT = NT8 <= 2 ? 2 : 1;
    static constexpr int U = QM_U;
};
/* blocks per SM the registers are sized for: 2 (16 warps) where that spills nothing (ptxas -v, CUDA 13) */
template <int WF, int NT8, bool PLAIN> struct qm_occ {
    static constexpr int MIN_BLOCKS = NT8 == 1 && (WF != GPU_W_I8 || PLAIN) ? 2 : 1;
};

template <typename T, typename TO, int WF, int NT8, bool PLAIN>
__global__ void __launch_bounds__(QM_WARPS * 32, qm_occ<WF, NT8, PLAIN>::MIN_BLOCKS) qmma_kernel(TO *y, const T *x, gpu_wdesc W, int T_, int N, int K, int kw_n)
{
    constexpr int MT = qm_cfg<WF, NT8>::MT, QU = qm_cfg<WF, NT8>::U;
    extern __shared__ float part[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int mw_n = QM_WARPS / kw_n, mw = warp / kw_n, kw = warp % kw_n;
    const int row0 = (blockIdx.x * mw_n + mw) * 16 * MT + g; /* tile m: rows row0 + 16 m (+ 8) */
    int rows[MT][2];
#pragma unroll
    for (int m = 0; m < MT; m++) { /* past N: loads only */
        const int r = row0 + 16 * m;
        rows[m][0] = r < N ? r : N - 1;
        rows[m][1] = r + 8 < N ? r + 8 : N - 1;
    }
    const int NC = (K + QM_CH - 1) / QM_CH;

    float acc[MT][NT8][4], gacc[MT][NT8][4], psx[NT8];
#pragma unroll
    for (int nt = 0; nt < NT8; nt++) psx[nt] = 0.0f;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int nt = 0; nt < NT8; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[m][nt][i] = gacc[m][nt][i] = 0.0f;
    qm_chunk<WF, MT, PLAIN> ch[QU];
#pragma unroll
    for (int u = 0; u < QU; u++)
        if (kw + u * kw_n < NC) qm_load<WF, MT, PLAIN>(ch[u], W, rows, kw + u * kw_n, K, t);
    pdl_trigger();
    pdl_wait(); /* x was written by the previous kernel; W never is */
    for (int c = kw; c < NC; c += QU * kw_n) {
#pragma unroll
        for (int u = 0; u < QU; u++) {
            const int cc = c + u * kw_n;
            if (cc >= NC) break;
            qm_compute<T, WF, NT8, MT, PLAIN>(ch[u], acc, gacc, psx, x, T_, K, W.group, cc, g, t);
            if (cc + QU * kw_n < NC) qm_load<WF, MT, PLAIN>(ch[u], W, rows, cc + QU * kw_n, K, t);
        }
    }
    if (kw_n > 1) { /* the row tile's warps add their fragments in kw order */
        if (kw != 0)
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int nt = 0; nt < NT8; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) part[(((warp * MT + m) * NT8 + nt) * 4 + i) * 32 + lane] = acc[m][nt][i];
        __syncthreads();
        if (kw != 0) return;
        for (int j = 1; j < kw_n; j++)
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int nt = 0; nt < NT8; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) acc[m][nt][i] += part[((((warp + j) * MT + m) * NT8 + nt) * 4 + i) * 32 + lane];
    }
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int nt = 0; nt < NT8; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = row0 + 16 * m + (i >> 1) * 8, tok = 8 * nt + 2 * t + (i & 1);
                if (r < N && tok < T_) y[(int64_t)tok * N + r] = from_f32<TO>(acc[m][nt][i]);
            }
}

/* ---- launch ------------------------------------------------------------------------------------- */

template <int WF, int NT8> static size_t qmma_smem(int kw_n)
{
    return kw_n > 1 ? (size_t)QM_WARPS * qm_cfg<WF, NT8>::MT * NT8 * 4 * 32 * sizeof(float) : 0;
}

/* KW of {1, 2, 4, 8}: the fewest rounds of chunk steps, ceil(tiles / (resident blocks x MW)) x ceil(chunks /
 * KW), among those that leave each warp QU chunks (its loads in flight); ties to the smaller KW (more row
 * tiles share the x bytes in L1). The resident count is queried once per instantiation, at the largest
 * shared memory. */
template <typename T, typename TO, int WF, int NT8, bool PLAIN>
static cudaError_t qmma_launch(void *y, const void *x, const gpu_wdesc &W, int T_, int N, int K, cudaStream_t s)
{
    constexpr int MT = qm_cfg<WF, NT8>::MT, QU = qm_cfg<WF, NT8>::U;
    static int resident = 0;
    if (!resident) {
        int dev = 0, n_sm = 0, per_sm = 0;
        cudaError_t e = cudaGetDevice(&dev);
        if (e == cudaSuccess) e = cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev);
        if (e == cudaSuccess)
            e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, qmma_kernel<T, TO, WF, NT8, PLAIN>,
                                                              QM_WARPS * 32, qmma_smem<WF, NT8>(QM_WARPS));
        if (e != cudaSuccess) return e;
        resident = n_sm * (per_sm > 0 ? per_sm : 1);
    }
    const int64_t tiles = (N + 16 * MT - 1) / (16 * MT), NC = (K + QM_CH - 1) / QM_CH;
    int kw_n = 1;
    double best = 1e30;
    for (int k = 1; k <= QM_WARPS; k *= 2) {
        if (k > 1 && NC < (int64_t)QU * k) break;
        const int64_t mw = QM_WARPS / k, nb = (tiles + mw - 1) / mw, groups = (nb < resident ? nb : resident) * mw;
        const double cost = (double)((tiles + groups - 1) / groups) * (double)((NC + k - 1) / k);
        if (cost < best - 1e-9) best = cost, kw_n = k;
    }
    const int64_t mw = QM_WARPS / kw_n, blocks = (tiles + mw - 1) / mw;
    return gpu_launch(qmma_kernel<T, TO, WF, NT8, PLAIN>, dim3((unsigned)blocks), dim3(QM_WARPS * 32),
                      qmma_smem<WF, NT8>(kw_n), s, (TO *)y, (const T *)x, W, T_, N, K, kw_n);
}

/* PLAIN: every 128-element chunk inside one group (group a multiple of 128, or the whole row) */
template <typename T, typename TO, int WF, int NT8>
static cudaError_t qmma_layout(void *y, const void *x, const gpu_wdesc &W, int T_, int N, int K, cudaStream_t s)
{
    if (W.group % QM_CH == 0 || W.group == K) return qmma_launch<T, TO, WF, NT8, true>(y, x, W, T_, N, K, s);
    return qmma_launch<T, TO, WF, NT8, false>(y, x, W, T_, N, K, s);
}

template <typename T, typename TO, int NT8>
static cudaError_t qmma_wf(void *y, const void *x, const gpu_wdesc &W, int T_, int N, int K, cudaStream_t s)
{
    switch (W.fmt) {
    case GPU_W_I8: return qmma_layout<T, TO, GPU_W_I8, NT8>(y, x, W, T_, N, K, s);
    case GPU_W_U4: return qmma_layout<T, TO, GPU_W_U4, NT8>(y, x, W, T_, N, K, s);
    default: return qmma_layout<T, TO, GPU_W_U4_MIN, NT8>(y, x, W, T_, N, K, s);
    }
}

/* token tiles: 8, 16, 32 or 64 tokens (a T between two runs the larger one, its extra tokens zero) */
template <typename T, typename TO>
static cudaError_t qmma_t(void *y, const void *x, const gpu_wdesc &W, int T_, int N, int K, cudaStream_t s)
{
    if (T_ <= 8) return qmma_wf<T, TO, 1>(y, x, W, T_, N, K, s);
    if (T_ <= 16) return qmma_wf<T, TO, 2>(y, x, W, T_, N, K, s);
    if (T_ <= 32) return qmma_wf<T, TO, 4>(y, x, W, T_, N, K, s);
    return qmma_wf<T, TO, 8>(y, x, W, T_, N, K, s);
}

extern "C" int gpu_qmma_ok(const void *x, const gpu_wdesc *W, int T, int N, int K, gpu_dtype dt)
{
    if (!W || (W->fmt != GPU_W_I8 && W->fmt != GPU_W_U4 && W->fmt != GPU_W_U4_MIN)) return 0;
    if (T < 1 || T > QMMA_MAX_T || N < 1 || K < 32 || K % 32 || W->group <= 0 || W->group % 32 || K % W->group) return 0;
    if (!x || ((uintptr_t)x & 15) || !W->w || ((uintptr_t)W->w & 15) || !W->scales) return 0;
    if (W->fmt == GPU_W_U4_MIN && !W->mins) return 0;
    return gpu_wdesc_row_bytes(W->fmt, K, dt) % 16 == 0;
}

extern "C" int gpu_qmma(void *y, int y_f32, const void *x, const gpu_wdesc *W, int T, int N, int K, gpu_dtype dt,
                        gpu_stream s)
{
    if (!W) return duet_errorf("gpu_qmma: no weight descriptor");
    if (W->fmt == GPU_W_DENSE) return duet_errorf("gpu_qmma: dense weights (quantized formats only)");
    if (gpu_wdesc_check(W, N, K, dt, "gpu_qmma")) return -1;
    if (!gpu_qmma_ok(x, W, T, N, K, dt))
        return duet_errorf("gpu_qmma: T %d (1..%d), N %d, K %d, group %d (multiples of 32) or an unaligned x do not fit",
                           T, QMMA_MAX_T, N, K, W->group);
    cudaError_t e;
    if (dt == GPU_BF16)
        e = y_f32 ? qmma_t<__nv_bfloat16, float>(y, x, *W, T, N, K, s)
                  : qmma_t<__nv_bfloat16, __nv_bfloat16>(y, x, *W, T, N, K, s);
    else e = y_f32 ? qmma_t<__half, float>(y, x, *W, T, N, K, s) : qmma_t<__half, __half>(y, x, *W, T, N, K, s);
    CUDA_CHECK(e);
    LAUNCH_CHECK();
    return 0;
}
