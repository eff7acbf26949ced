// hd.hpp — SCTAPE_HD marks the small per-particle / per-cell math functions
// that the CPU loops and the CUDA kernels share. Without nvcc it is empty, so
// the CPU build and its tests cover exactly the math the GPU runs.
#pragma once

#if defined(__CUDACC__)
#define SCTAPE_HD __host__ __device__ inline
#else
#define SCTAPE_HD inline
#endif
