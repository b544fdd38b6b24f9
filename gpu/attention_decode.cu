/* attention_decode.cu: attention of one query row per (token, head) against the paged KV cache
 * (see attention.h). A block of 4 warps takes one (token, head, split); each warp walks 32-key tiles:
 * lane j scores key j (q in shared memory, fp32), the warp updates its running max / sum (online
 * softmax), then accumulates P.V with lanes over the head dimension. Warps merge in shared memory;
 * with more than one split, partial (max, sum, unnormalized out) go to a workspace and a second
 * kernel merges them. Splits are used when the batch has too few (token, head) rows to fill the GPU. */
#include "attention.h"
#include "cuda_check.h"

#define WARPS 4
#define MIN_SPLIT_KEYS 256
#define MAX_SPLITS 64

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
    const int h = blockIdx.x, t = t_off + blockIdx.y, sp = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n = pos[t] + 1;
    const int chunk = (((n + n_split - 1) / n_split) + 31) & ~31;
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
            int blk = tab[p / GPU_KV_BLOCK];
            const T *kr = kc + (((int64_t)blk * Hk + kh) * GPU_KV_BLOCK + p % GPU_KV_BLOCK) * d;
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
            int blk = tab[pp / GPU_KV_BLOCK];
            const T *vr = vc + (((int64_t)blk * Hk + kh) * GPU_KV_BLOCK + pp % GPU_KV_BLOCK) * d;
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

template <typename T>
__global__ void attn_merge_kernel(T *out, const float *ws_o, const float *ws_ml, int n_split, int d, int t_off)
{
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

extern "C" size_t gpu_attention_ws_floats(int T, int H, int d, int n_sm)
{
    return ((size_t)2 * n_sm + (size_t)T * H) * (size_t)(d + 2);
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

template <typename T> static int run(const gpu_attn_params *p, gpu_stream s, int t_off, int n_tok)
{
    const gpu_kv_view *kv = &p->kv;
    int d = kv->d;
    if (d > GPU_ATTN_MAX_D || d <= 0) return duet_errorf("gpu attention: head_dim %d unsupported (at most %d)", d, GPU_ATTN_MAX_D);
    if (n_tok <= 0) return 0;
    int n_split = choose_splits(p, n_tok);
    float *ws_o = p->ws, *ws_ml = p->ws + (size_t)n_tok * p->H * n_split * d;
    dim3 grid(p->H, n_tok, n_split);
    attn_decode_kernel<T><<<grid, WARPS * 32, 0, s>>>((T *)p->out, (const T *)p->q, p->ldq, (const T *)kv->k,
                                                       (const T *)kv->v, kv->block_table, kv->max_blocks, p->pos,
                                                       p->seq, p->H, kv->Hk, d, 1.0f / sqrtf((float)d), n_split, ws_o,
                                                       ws_ml, t_off);
    LAUNCH_CHECK();
    if (n_split > 1) {
        attn_merge_kernel<T>
            <<<dim3(p->H, n_tok), d < 32 ? 32 : d, 0, s>>>((T *)p->out, ws_o, ws_ml, n_split, d, t_off);
        LAUNCH_CHECK();
    }
    return 0;
}

extern "C" int gpu_attention_decode(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s)
{
    return dt == GPU_BF16 ? run<__nv_bfloat16>(p, s, 0, p->T) : run<__half>(p, s, 0, p->T);
}

extern "C" int gpu_attention_decode_range(const gpu_attn_params *p, gpu_dtype dt, gpu_stream s, int t0, int n)
{
    return dt == GPU_BF16 ? run<__nv_bfloat16>(p, s, t0, n) : run<__half>(p, s, t0, n);
}
