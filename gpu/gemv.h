/* gemv.h: the weight-streaming GEMV of gemm.cu, shared between gemm.cu (which picks it) and the
 * gemv_<format>.cu files (which instantiate it, one weight format each: see gemv.cuh for the kernel). */
#ifndef DUET_GPU_GEMV_H
#define DUET_GPU_GEMV_H
#include "gemm.h"
#include "kv_cache.h"
#include "weights.h"

#include <cuda_runtime.h>

#define GEMV_MAX_T 8 /* the most tokens the GEMV takes */

enum { GV_X = 0, GV_NORM = 1 };
enum { GV_STORE = 0, GV_SWIGLU = 1, GV_RESID = 2, GV_ROPE = 3 };

struct gemv_args {
    void *y;             /* GV_STORE/GV_SWIGLU output, or the fp32 residual for GV_RESID */
    const void *x;       /* GV_X input (NT, K) */
    const float *xr;     /* GV_NORM input (NT, K) fp32 */
    const void *norm_w;  /* GV_NORM weight (K) */
    float eps;
    gpu_wdesc W;         /* the weights (weights.h) */
    int N, K;
    int ks;              /* warps per row pair: 1, 2, 4 or 8 */
    gpu_kv_view kv;      /* GV_ROPE: this layer's cache, */
    const int *pos, *seq; /* (NT) positions and slots of the tokens, */
    float theta;
    int H;               /* and the number of query heads */
};

/* y = x . W^T for a.W in format WF (its fmt): T = 1..GEMV_MAX_T tokens (plain, y in dt or fp32 when y_f32) or
 * T = 1, 2 (fused: `out`, with the RMSNorm input when norm). Defined in gemv.cuh, instantiated per format. */
template <int WF>
cudaError_t gemv_run(const gemv_args &a, gpu_dtype dt, int T, int y_f32, int fused, int norm, gpu_gemv_out out,
                     cudaStream_t s);
#endif
