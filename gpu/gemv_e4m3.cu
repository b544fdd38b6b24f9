/* gemv_e4m3.cu: the GEMV for GPU_W_E4M3 weights, FP8 W8A8's decode products (w8a8.cu: gpu_f8_gemv_f32). */
#include "gemv.cuh"

template cudaError_t gemv_run<GPU_W_E4M3>(const gemv_args &a, gpu_dtype dt, int T, int y_f32, int fused, int norm,
                                     gpu_gemv_out out, cudaStream_t s);
