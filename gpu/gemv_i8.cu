/* gemv_i8.cu: the GEMV of gemm.cu for GPU_W_I8 weights (one format a file: they compile in parallel). */
#include "gemv.cuh"

template cudaError_t gemv_run<GPU_W_I8>(const gemv_args &a, gpu_dtype dt, int T, int y_f32, int fused, int norm,
                                   gpu_gemv_out out, cudaStream_t s);
