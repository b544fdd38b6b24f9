/* sampling.cu: greedy argmax, one block per row; ties go to the lowest id (NaN never wins). */
#include "cuda_check.h"
#include "sampling.h"

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
