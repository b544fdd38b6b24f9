/* gemv_tma.cuh: the one-token quantized GEMV fed by bulk copies (gemv_tma.h), included by gemv_tma.cu and
 * the gemv_tma_<format>.cu files (one weight format each). Built, tested (tests/test_gpu_quant) and
 * selectable ($DUET_QGEMV_KERNEL=tma); not the default: on the H200 it measured equal to 12% slower than
 * the register GEMV (gpu/NOTES.md, 2026-12-04), so it is the base of the next attempt, not a replacement.
 *
 * The idea. The register GEMV (gemv.cuh) spends about four instructions per 4-bit weight and keeps only the
 * loads its registers hold in flight. Here the weights travel by TMA bulk copies (whole row pieces, no
 * registers) and the multiply-adds run on the tensor cores (one mma.sync m16n8k16 takes 256 weights).
 *
 * Work. One block an SM (grid = min(tiles, SMs)), TG_WARPS consumer warps and one producer warp. A tile is
 * the row pairs 8 i .. 8 i + 7 (gemv.cuh's pair_rows: (2p, 2p + 1), SwiGLU's (p, N + p), RoPE's rotated
 * pairs) = 16 rows: shared-memory row j < 8 holds pair j's first row, row j + 8 its second, which is what
 * the MMA's A fragment puts in rows g and g + 8 of lane (g, t) (qmma.cu's header): C's c0 / c2 of lane
 * (g, 0) are then pair g's two products. Block b owns a contiguous range of tiles; K is cut into NS stages
 * of KC elements (16 row pieces, at most TG_STAGE_BYTES; KC a multiple of 128 when NS > 1, so a 32-element
 * block never crosses a group), streamed through a ring of 2..TG_SLOTS slots: the producer waits for a
 * slot's `empty` barrier (every consumer warp arrives), announces the bytes on its `full` barrier and issues
 * 16 cp.async.bulk copies; consumer warp w takes the w-th contiguous share of a stage's 32-element blocks.
 *
 * Arrays:
 *   W codes (rows, K BITS / 8) bytes, 16-byte aligned rows (weights.h; I8 one byte a code, U4 / U4_MIN two
 *           codes a byte, low nibble first); scales (rows, G) fp16 bits, zeros (rows, G) uint8 (U4; NULL:
 *           8), mins (rows, G) fp16 (U4_MIN), G = K / group, group 32, 64, 128 or K;
 *   x (K) in T (GV_X) or xr (K) fp32 with norm_w (K) in T (GV_NORM: rmsnorm(xr) * norm_w, rounded to T as
 *   gpu_add_rmsnorm rounds), copied once a block into xs;
 *   shared: ring (slots, 16, stride) bytes, stride = the piece rounded up to 128 plus 4 x the lane's piece
 *   (4 bytes U4, 8 I8): lane (g, t) reads its 4 / 8 bytes of rows g and g + 8 at 32 j + 8 t elements, 32
 *   lanes on 32 banks; sc / z / mn the block's scales, zero points (U4: qm_hz(z), or z as fp32 on the
 *   subnormal path), mins, in (tile, group, row) order so that the 8 lanes g read 8 consecutive entries
 *   (row-major they were an 8-way bank conflict, the kernel's first bottleneck); xs (K) in T with each
 *   8-element piece stored as the B fragment's pairs (e_i, e_{i+4}) (one 16-byte load a block; every lane
 *   loads it: the B columns 1..7 repeat the token, their products are never read); sx (K / 32) fp32 the
 *   blocks' sums of x (U4_MIN, and U4 on the subnormal path).
 * Exactness as in qmma.cu: the MMA multiplies exact integer codes by x in T with fp32 accumulation, one
 * 32-element block (two k16 tiles, inside one group) from zero at a time, and the block's result is scaled
 * into the lane's accumulator at once (acc += s (c . x) [+ m sum x]). fp16 with 4-bit codes takes a
 * shorter decode: the code's bits as the fp16 subnormal q 2^-24 (one AND a pair), the zero point as
 * - z (sum x) 2^-24, the tile's sums times 2^24 at the end (every step exact: a power of two). The weights
 * are the ref's bit for bit; only the fp32 summation order differs. Deterministic: fixed shares, and the
 * TG_WARPS parts of a pair added in warp order. */
#ifndef DUET_GPU_GEMV_TMA_CUH
#define DUET_GPU_GEMV_TMA_CUH
#include "gemv.cuh"
#include "gemv_tma.h"
#include "mma_codes.cuh"

#include <type_traits>

#define TG_WARPS 16                /* consumer warps a block; one more warp issues the copies */
#define TG_SLOTS 4                 /* ring slots at most (2 at least: as many as the shared memory holds) */
#define TG_STAGE_BYTES (32 * 1024) /* at most this many bytes of codes a stage (16 row pieces) */
#define TG_SMEM_MAX (200 * 1024)   /* the most dynamic shared memory it asks for */

/* A launch's geometry (host: tg_geom_of; the kernel reads it). */
struct tg_geom {
    int kc, ns;        /* elements a stage (a multiple of 128 unless one stage takes the row), stages a tile */
    int slots;         /* ring slots, 2..TG_SLOTS */
    int stride;        /* bytes from one row piece of a slot to the next */
    int G;             /* groups a row */
    int blocks, tiles; /* grid (one block an SM at most) and 16-row tiles */
    int tpb;           /* the most tiles a block owns */
    int off_sc, off_z, off_xs, off_sx; /* shared-memory offsets of sc, z (or mn), xs, sx; the ring is at 0 */
    int smem;          /* dynamic shared memory, bytes */
};

static inline int tg_bits(int fmt) { return fmt == GPU_W_I8 ? 8 : 4; }

/* n_sm: the GPU's multiprocessors */
static inline tg_geom tg_geom_of(const gemv_args &a, gpu_dtype dt, int norm, int out_swiglu, int n_sm)
{
    tg_geom q;
    const int bits = tg_bits(a.W.fmt), K = a.K;
    const int kc_max = TG_STAGE_BYTES / 16 * 8 / bits; /* 4096 (U4), 2048 (I8) */
    q.ns = (K + kc_max - 1) / kc_max;
    q.kc = q.ns == 1 ? K : ((K + q.ns - 1) / q.ns + 127) / 128 * 128;
    if (q.ns > 1) q.ns = (K + q.kc - 1) / q.kc;
    const int piece = q.kc * bits / 8;
    q.stride = (piece + 127) / 128 * 128 + 4 * (bits == 8 ? 8 : 4);
    q.G = a.W.group > 0 ? K / a.W.group : 1;
    const int pairs = out_swiglu ? a.N : (a.N + 1) / 2;
    q.tiles = (pairs + 7) / 8;
    q.blocks = q.tiles < n_sm ? q.tiles : n_sm;
    q.tpb = (q.tiles + q.blocks - 1) / q.blocks;
    const int64_t rows = (int64_t)q.tpb * 16 * q.G;
    /* z: U4 the subtrahends qm_hz(z) or, fp16, z as fp32 (4 bytes a group), U4_MIN the mins (fp16); sx: the
     * blocks' sums of x (U4_MIN, and U4 in fp16: the kernel's subnormal path) */
    const int64_t zb = a.W.fmt == GPU_W_U4_MIN ? rows * 2 : (a.W.fmt == GPU_W_U4 ? rows * 4 : 0);
    const int64_t xb = (int64_t)K * gpu_dtype_size(dt);
    const int64_t sxb = a.W.fmt == GPU_W_U4_MIN || (a.W.fmt == GPU_W_U4 && dt == GPU_F16) ? (int64_t)K / 32 * 4 : 0;
    const int64_t rest = rows * 2 + 16 + zb + 16 + xb + sxb; /* scales, z / mn, xs, sx */
    const int64_t fit = (TG_SMEM_MAX - rest) / (16 * q.stride);
    q.slots = fit > TG_SLOTS ? TG_SLOTS : (fit < 2 ? 2 : (int)fit);
    q.off_sc = q.slots * 16 * q.stride;
    const int64_t off_z = (q.off_sc + rows * 2 + 15) / 16 * 16, off_xs = (off_z + zb + 15) / 16 * 16;
    const int64_t off_sx = off_xs + xb, smem = off_sx + sxb;
    q.off_z = (int)(off_z < INT32_MAX ? off_z : 0), q.off_xs = (int)(off_xs < INT32_MAX ? off_xs : 0);
    q.off_sx = (int)(off_sx < INT32_MAX ? off_sx : 0);
    q.smem = smem < INT32_MAX ? (int)smem : INT32_MAX;
    return q;
}

/* ---- Hopper barriers and bulk copies (PTX ISA 8.0) ------------------------------------------------ */

__device__ __forceinline__ uint32_t tg_smem(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void tg_bar_init(uint64_t *b, uint32_t count)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(tg_smem(b)), "r"(count) : "memory");
#endif
}
/* this thread's arrival, announcing `bytes` of bulk copies that complete on the barrier */
__device__ __forceinline__ void tg_bar_expect(uint64_t *b, uint32_t bytes)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(tg_smem(b)), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void tg_bar_wait(uint64_t *b, uint32_t parity)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uint32_t done = 0;
    do {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}\n"
                     : "=r"(done)
                     : "r"(tg_smem(b)), "r"(parity)
                     : "memory");
    } while (!done);
#endif
}
/* bytes (a multiple of 16) from global src to shared dst (both 16-byte aligned), completing on b */
__device__ __forceinline__ void tg_bulk(void *dst, const void *src, uint32_t bytes, uint64_t *b)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     tg_smem(dst)),
                 "l"(src), "r"(bytes), "r"(tg_smem(b))
                 : "memory");
#endif
}

/* ---- kernel --------------------------------------------------------------------------------------- */

/* rows of pair p, as gemv_kernel's pair_rows */
template <int OUT> __device__ __forceinline__ void tg_pair_rows(const gemv_args &a, int p, int &r0, int &r1)
{
    const int d = a.kv.d, half = d / 2, qk_pairs = (a.H + a.kv.Hk) * half;
    if (OUT == GV_SWIGLU) r0 = p, r1 = a.N + p;
    else if (OUT == GV_ROPE && p < qk_pairs) r0 = (p / half) * d + p % half, r1 = r0 + half;
    else if (OUT == GV_ROPE) r0 = 2 * p, r1 = r0 + 1;
    else r0 = 2 * p, r1 = min(2 * p + 1, a.N - 1);
}

template <typename T, typename TO, int IN, int OUT, int WF>
__global__ void __launch_bounds__((TG_WARPS + 1) * 32, 1) gemv_tma_kernel(gemv_args a, tg_geom q)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    constexpr int BITS = WF == GPU_W_I8 ? 8 : 4, NC = TG_WARPS * 32; /* consumer threads */
    /* fp16 with 4-bit codes: a code q goes into the MMA as the fp16 subnormal q 2^-24 (its bits are q: one AND
     * a pair, no subtraction), every product then carries 2^-24 exactly (fp32 holds them: |q x| 2^-24 >=
     * 2^-48), the zero point comes in as - z (sum x) 2^-24 a block (U4; U4_MIN's min as m (sum x) 2^-24),
     * and the tile's sums are scaled by 2^24 at the end (exact). bf16 has no such subnormals in range. */
    constexpr bool SUBN = BITS == 4 && std::is_same<T, __half>::value;
    extern __shared__ __align__(128) unsigned char tg_sm[];
    __shared__ __align__(8) uint64_t full[TG_SLOTS], empty[TG_SLOTS];
    __shared__ float part[2][TG_WARPS][16]; /* a tile's per-warp products, by tile parity */
    __shared__ float inv_s;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int K = a.K, G = q.G, group = a.W.group > 0 ? a.W.group : K;
    const int n_pairs = OUT == GV_SWIGLU ? a.N : (a.N + 1) / 2;
    const int tb = (int)((int64_t)blockIdx.x * q.tiles / q.blocks), te = (int)((int64_t)(blockIdx.x + 1) * q.tiles / q.blocks);
    const int n_stages = (te - tb) * q.ns;
    const int64_t row_bytes = (int64_t)K * BITS / 8;
    auto row_of = [&](int tile, int i) { /* tile's shared-memory row i: a row of W (pairs past the end: the last) */
        int r0, r1;
        tg_pair_rows<OUT>(a, min(tile * 8 + (i & 7), n_pairs - 1), r0, r1);
        return i < 8 ? r0 : r1;
    };
    unsigned char *ring = tg_sm;
    if (threadIdx.x == 0) {
        for (int i = 0; i < q.slots; i++) tg_bar_init(&full[i], 1), tg_bar_init(&empty[i], TG_WARPS);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (warp == TG_WARPS) { /* the producer: stage u = tile (tb + u / ns), K piece u % ns, into slot u % SLOTS */
        for (int u = 0; u < n_stages; u++) {
            const int slot = u % q.slots, tile = tb + u / q.ns, k0 = (u % q.ns) * q.kc, len = min(q.kc, K - k0);
            if (u >= q.slots) tg_bar_wait(&empty[slot], (uint32_t)((u / q.slots - 1) & 1));
            const uint32_t piece = (uint32_t)(len * BITS / 8);
            if (lane == 0) tg_bar_expect(&full[slot], 16 * piece);
            __syncwarp();
            if (lane < 16)
                tg_bulk(ring + ((size_t)slot * 16 + lane) * q.stride,
                        (const char *)a.W.w + row_of(tile, lane) * row_bytes + (int64_t)k0 * BITS / 8, piece, &full[slot]);
            __syncwarp();
        }
        pdl_trigger();
        return;
    }
    /* consumers: the block's scales, zero points (as U4's subtrahends) / mins, (tile, group, row) order, so the
     * 8 lanes g of a load read 8 consecutive entries (no bank conflicts). W is never written by a kernel:
     * before pdl_wait. */
    uint16_t *sc = (uint16_t *)(tg_sm + q.off_sc), *mn = (uint16_t *)(tg_sm + q.off_z);
    uint32_t *hz = (uint32_t *)(tg_sm + q.off_z);
    { /* a warp a row at a time, 4 rows' loads in flight (no division in the loop, no chain of load latencies) */
        const int R = (te - tb) * 16;
        for (int r0 = warp; r0 < R; r0 += 4 * TG_WARPS) {
            int64_t src[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int r = min(r0 + j * TG_WARPS, R - 1);
                src[j] = (int64_t)row_of(tb + r / 16, r % 16) * G;
            }
            for (int gi = lane; gi < G; gi += 32) {
                uint16_t sv[4], mv[4];
                uint32_t zv[4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    sv[j] = __ldg(a.W.scales + src[j] + gi);
                    if (WF == GPU_W_U4) zv[j] = a.W.zeros ? __ldg(a.W.zeros + src[j] + gi) : 8u;
                    if (WF == GPU_W_U4_MIN) mv[j] = __ldg(a.W.mins + src[j] + gi);
                }
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int r = r0 + j * TG_WARPS;
                    if (r >= R) break;
                    const int i = ((r / 16) * G + gi) * 16 + r % 16; /* (tile, group, row): see below */
                    sc[i] = sv[j];
                    if (WF == GPU_W_U4 && SUBN) ((float *)hz)[i] = (float)zv[j];
                    else if (WF == GPU_W_U4) hz[i] = qm_hz<T>(zv[j]);
                    if (WF == GPU_W_U4_MIN) mn[i] = mv[j];
                }
            }
        }
    }
    pdl_trigger();
    pdl_wait();
    /* xs (K) in T, each 8-element piece stored as the pairs (e_i, e_{i+4}) of the MMA's B fragment (x_pairs):
     * one 16-byte load a slot; GV_NORM: rmsnorm(xr) * norm_w rounded to T (fixed order: threads, shuffles,
     * warps), GV_X: x. sx (K / 32) fp32 (U4_MIN, U4 on the subnormal path): each 32-element block's sum of
     * those T values (times 2^-24 on the subnormal path). */
    uint4 *xs = (uint4 *)(tg_sm + q.off_xs);
    float *sx = (float *)(tg_sm + q.off_sx);
    if (IN == GV_NORM) {
        float ss = 0.0f;
        for (int k = threadIdx.x; k < K; k += NC) ss = fmaf(a.xr[k], a.xr[k], ss);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        if (lane == 0) part[0][warp][0] = ss;
        group_barrier(1, NC);
        if (threadIdx.x == 0) {
            float tot = 0.0f;
            for (int w = 0; w < TG_WARPS; w++) tot += part[0][w][0];
            inv_s = 1.0f / sqrtf(tot / K + a.eps);
        }
        group_barrier(1, NC);
    }
    for (int pc = threadIdx.x; pc < K / 8; pc += NC) {
        uint4 v;
        if (IN == GV_NORM) {
            T e[8];
#pragma unroll
            for (int i = 0; i < 8; i++)
                e[i] = from_f32<T>(to_f32(((const T *)a.norm_w)[8 * pc + i]) * (a.xr[8 * pc + i] * inv_s));
            v = *(const uint4 *)e;
        } else {
            v = __ldg((const uint4 *)((const T *)a.x + 8 * pc));
        }
        uint32_t b[4];
        x_pairs(v, b);
        xs[pc] = make_uint4(b[0], b[1], b[2], b[3]);
    }
    if (WF == GPU_W_U4_MIN || (WF == GPU_W_U4 && SUBN)) {
        group_barrier(1, NC);
        for (int j = threadIdx.x; j < K / 32; j += NC) {
            float v = 0.0f;
#pragma unroll
            for (int pc = 0; pc < 4; pc++) v += x_sum8(xs[4 * j + pc], T()); /* the pairs' order: the same sum set */
            sx[j] = SUBN ? v * 0x1p-24f : v;
        }
    }
    group_barrier(1, NC); /* scales, xs and sx ready; part[] free */

    /* Per lane: acc0 / acc1 = C's c0 (row g) / c2 (row g + 8) of token 0. Each 32-element block (a slot) lies in
     * one group: its two k16 tiles go through the MMA from zero and the result is scaled into acc at once
     * (acc += s (c . x) [+ m sum x]), so the loop has no branch and the slots of a warp's share overlap. The
     * group of block j is j >> lg (lg = log2 of the group's blocks; per channel: 31, group 0). */
    const int lg = G == 1 ? 31 : (group == 32 ? 0 : (group == 64 ? 1 : 2));
    float acc0 = 0.0f, acc1 = 0.0f;
    for (int u = 0; u < n_stages; u++) {
        const int slot = u % q.slots, st = u % q.ns, tl = u / q.ns;
        tg_bar_wait(&full[slot], (uint32_t)((u / q.slots) & 1));
        const int k0 = st * q.kc, nb = min(q.kc, K - k0) / 32;
        const int bb = warp * nb / TG_WARPS, be = (warp + 1) * nb / TG_WARPS;
        const unsigned char *p0r = ring + ((size_t)slot * 16 + g) * q.stride + (32 * bb + 8 * t) * BITS / 8;
        const unsigned char *p1r = p0r + 8 * (size_t)q.stride;
        const uint4 *xp = xs + (k0 + 32 * bb) / 8 + t;
        const int si0 = tl * G * 16 + g, si1 = si0 + 8; /* + 16 x the group */
        const int blk0 = k0 / 32;
        /* one 32-element block: every lane loads x (the B fragment's columns 1..7 then repeat column 0, whose
         * products are the only ones read: no branch) */
        auto block = [&](int b) {
            uint32_t lo0, hi0, lo1, hi1;
            const int ob = (b - bb) * 4 * BITS; /* 32 codes of BITS bits */
            if (BITS == 4) {
                lo0 = hi0 = *(const uint32_t *)(p0r + ob);
                lo1 = hi1 = *(const uint32_t *)(p1r + ob);
            } else {
                const uint2 v0 = *(const uint2 *)(p0r + ob), v1 = *(const uint2 *)(p1r + ob);
                lo0 = v0.x, hi0 = v0.y, lo1 = v1.x, hi1 = v1.y;
            }
            const int gi = ((blk0 + b) >> lg) * 16;
            const uint4 xv = xp[(b - bb) * 4];
            uint32_t c0[4], c1[4];
            if (SUBN) {
                qm_u4_subnormal(lo0, c0);
                qm_u4_subnormal(lo1, c1);
            } else {
                qm_decode_hz<WF, T>(lo0, hi0, WF == GPU_W_U4 ? hz[si0 + gi] : 0u, c0);
                qm_decode_hz<WF, T>(lo1, hi1, WF == GPU_W_U4 ? hz[si1 + gi] : 0u, c1);
            }
            const uint32_t A0[4] = {c0[0], c1[0], c0[1], c1[1]}, A1[4] = {c0[2], c1[2], c0[3], c1[3]};
            float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            qm_mma<T>(d, A0, xv.x, xv.y);
            qm_mma<T>(d, A1, xv.z, xv.w);
            if (WF == GPU_W_U4 && SUBN) { /* s (d - z sum x), all in units of 2^-24 */
                const float sxb = sx[blk0 + b];
                d[0] = fmaf(-((const float *)hz)[si0 + gi], sxb, d[0]);
                d[2] = fmaf(-((const float *)hz)[si1 + gi], sxb, d[2]);
            }
            acc0 = fmaf(h2f(sc[si0 + gi]), d[0], acc0);
            acc1 = fmaf(h2f(sc[si1 + gi]), d[2], acc1);
            if (WF == GPU_W_U4_MIN) {
                const float sxb = sx[blk0 + b];
                acc0 = fmaf(h2f(mn[si0 + gi]), sxb, acc0);
                acc1 = fmaf(h2f(mn[si1 + gi]), sxb, acc1);
            }
        };
        int b = bb;
        for (; b + 4 <= be; b += 4) { /* four blocks straight-line: their loads and MMAs overlap */
            block(b);
            block(b + 1);
            block(b + 2);
            block(b + 3);
        }
        for (; b < be; b++) block(b);
        __syncwarp();
        if (lane == 0) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(tg_smem(&empty[slot])) : "memory");
        if (st + 1 == q.ns) { /* the tile's last stage: its pairs out (warps added in order) */
            const int par = tl & 1;
            if (SUBN) acc0 *= 0x1p24f, acc1 *= 0x1p24f;
            if (t == 0) part[par][warp][g] = acc0, part[par][warp][g + 8] = acc1;
            acc0 = acc1 = 0.0f;
            group_barrier(1, NC); /* part[par] full; the reads of tile tl - 2's part[par] are done */
            const int p = (tb + tl) * 8 + (int)threadIdx.x;
            if (threadIdx.x < 8 && p < n_pairs) {
                float v0 = 0.0f, v1 = 0.0f;
                for (int w = 0; w < TG_WARPS; w++) v0 += part[par][w][threadIdx.x], v1 += part[par][w][threadIdx.x + 8];
                gemv_out_pair<T, TO, OUT>(a, p, 0, v0, v1);
            }
        }
    }
#endif
}

static inline int tg_n_sm()
{
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            n = 1;
        (void)cudaGetLastError();
    }
    return n;
}

template <typename T, typename TO, int IN, int OUT, int WF>
static cudaError_t tg_launch(const gemv_args &a, gpu_dtype dt, cudaStream_t s)
{
    const tg_geom q = tg_geom_of(a, dt, IN == GV_NORM, OUT == GV_SWIGLU, tg_n_sm());
    static int smem_set = 48 * 1024; /* the kernel's dynamic shared-memory limit so far */
    if (q.smem > smem_set) {
        cudaError_t e = cudaFuncSetAttribute(gemv_tma_kernel<T, TO, IN, OUT, WF>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, TG_SMEM_MAX);
        if (e != cudaSuccess) return e;
        smem_set = TG_SMEM_MAX;
    }
    return gpu_launch(gemv_tma_kernel<T, TO, IN, OUT, WF>, dim3(q.blocks), dim3((TG_WARPS + 1) * 32), (size_t)q.smem, s,
                      a, q);
}

template <typename T, int WF>
static cudaError_t tg_fused(const gemv_args &a, gpu_dtype dt, int norm, gpu_gemv_out out, cudaStream_t s)
{
    if (out == GPU_GEMV_ROPE)
        return norm ? tg_launch<T, T, GV_NORM, GV_ROPE, WF>(a, dt, s) : tg_launch<T, T, GV_X, GV_ROPE, WF>(a, dt, s);
    if (norm) {
        if (out == GPU_GEMV_SWIGLU) return tg_launch<T, T, GV_NORM, GV_SWIGLU, WF>(a, dt, s);
        if (out == GPU_GEMV_RESID) return tg_launch<T, T, GV_NORM, GV_RESID, WF>(a, dt, s);
        return tg_launch<T, T, GV_NORM, GV_STORE, WF>(a, dt, s);
    }
    if (out == GPU_GEMV_SWIGLU) return tg_launch<T, T, GV_X, GV_SWIGLU, WF>(a, dt, s);
    if (out == GPU_GEMV_RESID) return tg_launch<T, T, GV_X, GV_RESID, WF>(a, dt, s);
    return tg_launch<T, T, GV_X, GV_STORE, WF>(a, dt, s);
}

template <int WF>
cudaError_t gemv_tma_run(const gemv_args &a, gpu_dtype dt, int y_f32, int fused, int norm, gpu_gemv_out out,
                         cudaStream_t s)
{
    if (fused) return dt == GPU_BF16 ? tg_fused<__nv_bfloat16, WF>(a, dt, norm, out, s) : tg_fused<__half, WF>(a, dt, norm, out, s);
    if (dt == GPU_BF16)
        return y_f32 ? tg_launch<__nv_bfloat16, float, GV_X, GV_STORE, WF>(a, dt, s)
                     : tg_launch<__nv_bfloat16, __nv_bfloat16, GV_X, GV_STORE, WF>(a, dt, s);
    return y_f32 ? tg_launch<__half, float, GV_X, GV_STORE, WF>(a, dt, s) : tg_launch<__half, __half, GV_X, GV_STORE, WF>(a, dt, s);
}
#endif
