/* weights.h: how gpu/ holds a weight matrix W (N rows, K columns; nn.Linear's out x in, row-major):
 * one traits table of the storage formats every matrix product reads, and the descriptor they take.
 *
 *   format        codes (N, K bits / 8 bytes, row-major)     per group of `group` elements of a row  value
 *   GPU_W_DENSE   W itself in the activation dtype (fp16/bf16) -                                      w
 *   GPU_W_I8      int8 q                                     scale s (fp16)                          s q
 *   GPU_W_U4      uint4 q, two per byte (element 2j in the   s (fp16), zero point z (uint8; NULL: 8)  s (q - z)
 *                 low nibble of byte j, 2j + 1 in the high)
 *   GPU_W_U4_MIN  uint4 q, as GPU_W_U4                       s, m (fp16)                             s q + m
 *
 * scales / zeros / mins are (N, K / group) row-major. These are common/quant.h's planar layout, so the
 * modes map without touching a code: int8 and q8_0 are I8 (group K and 32), int4, int4-g128/g64 and q4_0
 * are U4 (q4_0 and int4 with z = 8), q4_1 is U4_MIN. Concatenated matrices (q|k|v, gate|up) are their
 * rows stacked, codes and scales alike. The products apply the scale after the code product in fp32
 * (s sum (q - z) x with q - z exact in fp16, s sum q x + m sum x): the weights are exactly the ref's, only the fp32
 * summation order differs. */
#ifndef DUET_GPU_WEIGHTS_H
#define DUET_GPU_WEIGHTS_H

#include "gpu.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GPU_W_DENSE = 0, GPU_W_I8 = 1, GPU_W_U4 = 2, GPU_W_U4_MIN = 3, GPU_W_N_FORMATS } gpu_wfmt;

typedef struct gpu_wfmt_info {
    const char *name;   /* "dense", "i8", "u4", "u4-min" */
    int bits;           /* bits per element of the codes (dense: 0, the dtype decides) */
    int has_zeros;      /* a per-group zero point array may be present */
    int has_mins;       /* a per-group fp16 min array is required */
    int lane_elems;     /* elements in one 16-byte load of a row (dense: 8); group must be a multiple */
} gpu_wfmt_info;

const gpu_wfmt_info *gpu_wfmt_get(gpu_wfmt f);

typedef struct gpu_wdesc {
    gpu_wfmt fmt;
    int group;               /* elements per scale along a row (quantized formats) */
    const void *w;           /* dense (N, K) in dt, or the codes */
    const uint16_t *scales;  /* (N, K / group) fp16 */
    const uint8_t *zeros;    /* GPU_W_U4: (N, K / group), or NULL for the zero point 8 */
    const uint16_t *mins;    /* GPU_W_U4_MIN: (N, K / group) fp16 */
} gpu_wdesc;

static inline gpu_wdesc gpu_wdesc_dense(const void *w)
{
    gpu_wdesc d = {GPU_W_DENSE, 0, w, NULL, NULL, NULL};
    return d;
}

/* Bytes of the codes of one row of K elements (dense: K * dtype size). */
size_t gpu_wdesc_row_bytes(gpu_wfmt f, int64_t K, gpu_dtype dt);
/* Checks that an (N, K) matrix fits the descriptor's format for the products: the group divides K and
 * is a multiple of the format's lane_elems, the arrays the format needs are set, 16-byte aligned rows.
 * -1 + duet_error() naming `what` otherwise. */
int gpu_wdesc_check(const gpu_wdesc *W, int64_t N, int64_t K, gpu_dtype dt, const char *what);

/* The layout of one weight-table entry (a matrix, or rows of matrices stacked: q|k|v, gate|up) in
 * device memory: codes, then scales, zeros, mins, each 256-byte aligned. */
typedef struct gpu_wplan {
    gpu_wfmt fmt;
    int group;      /* quantized: elements per scale */
    int zeros;      /* GPU_W_U4: 1 when a zero-point array is stored (int4-g*), 0 for the fixed 8 */
    int64_t N, K;
} gpu_wplan;
size_t gpu_wplan_bytes(const gpu_wplan *p, gpu_dtype dt);
/* The descriptor of an entry placed at dev (gpu_wplan_bytes bytes). */
void gpu_wplan_place(const gpu_wplan *p, void *dev, gpu_dtype dt, gpu_wdesc *d);
/* The format of a quant.h mode (int8 / q8_0: I8; int4, int4-g*, q4_0: U4; q4_1: U4_MIN) and its group
 * for rows of K; DENSE for DUET_Q_NONE. */
struct st_tensor;
gpu_wplan gpu_wplan_of_mode(int qmode, int64_t N, int64_t K);
/* The plan of n stacked tensors (each (rows_i, K)): their common quantized mode's format when every part
 * is stored in the same mode (duet_qmode_of) and it fits the kernels (gpu_wdesc_check), else dense:
 * converted to dt on upload. */
gpu_wplan gpu_wplan_of(const struct st_tensor *const *parts, int n, gpu_dtype dt);
/* Fills host (gpu_wplan_bytes bytes, the device layout) from the parts: dense ones converted to dt
 * (tmp: room for the largest part in fp32), quantized ones re-laid out to planar bit for bit
 * (duet_qweight_from_tensor) and their rows stacked. */
int gpu_wplan_stage(const gpu_wplan *p, const struct st_tensor *const *parts, int n, gpu_dtype dt, void *host,
                    float *tmp);
/* Random contents for `duet bench` (nothing uploaded): dense values uniform with std; quantized codes
 * uniform random bytes, scales near std / (the codes' std), zero points 8, mins -8 s. */
int gpu_wplan_fill_random(const gpu_wplan *p, void *dev, gpu_dtype dt, uint64_t seed, uint64_t stream, float mean,
                          float std, gpu_stream s);

/* dst (N, K) in dt = the dequantized W, each weight rounded to dt once (the prefill path's input to
 * cuBLAS; unlike the GEMV, these weights are the ref's rounded to dt). Dense W is copied. */
int gpu_dequant(void *dst, const gpu_wdesc *W, int N, int K, gpu_dtype dt, gpu_stream s);

#ifdef __cplusplus
}
#endif
#endif
