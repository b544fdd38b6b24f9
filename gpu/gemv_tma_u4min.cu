/* gemv_tma_u4min.cu: the bulk-copy GEMV (gemv_tma.cuh) for GPU_W_U4_MIN weights (one format a file: they compile in parallel). */
#include "gemv_tma.cuh"

template cudaError_t gemv_tma_run<GPU_W_U4_MIN>(const gemv_args &a, gpu_dtype dt, int y_f32, int fused, int norm,
                                      gpu_gemv_out out, cudaStream_t s);
