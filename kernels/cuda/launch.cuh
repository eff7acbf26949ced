// launch.cuh — how every kernel of the CUDA backend is launched: grid-stride
// loops of kThreads-thread blocks, and fixed-shape block sums for the
// adjoints' scalar reductions (fixed shape and tree order, so a sum is the
// same bits run to run).
//
//   launch(stream, n, "map", map_kernel<T>, x, ..., n, map);
//   __global__ void k(..., double* partials) {
//       double local[2] = {0, 0};
//       SCTAPE_GRID_LOOP(p, n) { local[0] += ...; }
//       block_sums<2>(local, partials);          // partials[k * gridDim.x + blockIdx.x]
//   }
//   launch_sums(stream, n, "map adjoint", k, partials, ...)   // sum_blocks(n) blocks
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/device_alloc.cuh"

namespace sctape::cuda {

constexpr int kThreads = 256;        // threads per block of every kernel
constexpr int kMaxBlocks = 1 << 16;  // grid-stride loops beyond that (block_limit() in tests)
constexpr int kExtentBlocks = 1024;  // partial sums per axis (fixed: reproducible reductions)
constexpr int kSumBlocks = 512;      // blocks of a scalar-sum kernel (fixed: reproducible)
constexpr int kMaxSums = 12;         // scalars one sum kernel may reduce (a map adjoint's 12)

inline unsigned blocks_for(std::int64_t n) {
    return unsigned(std::max<std::int64_t>(1, std::min<std::int64_t>((n + kThreads - 1) / kThreads, block_limit())));
}

// Blocks of a sum kernel over n elements: never more than kSumBlocks.
inline unsigned sum_blocks(std::int64_t n) { return std::min<unsigned>(blocks_for(n), kSumBlocks); }

// Runs kernel(args...) over n elements on `stream` (nothing when n == 0).
template <class... Params, class... Args>
void launch(cudaStream_t stream, std::int64_t n, const char* name, void (*kernel)(Params...), Args... args) {
    if (n <= 0) return;
    kernel<<<blocks_for(n), kThreads, 0, stream>>>(args...);
    check_launch(name);
}

// Runs a sum kernel over n elements with sum_blocks(n) blocks (n == 0 too:
// the partials must be written).
template <class... Params, class... Args>
void launch_sums(cudaStream_t stream, std::int64_t n, const char* name, void (*kernel)(Params...), Args... args) {
    kernel<<<sum_blocks(n), kThreads, 0, stream>>>(args...);
    check_launch(name);
}

#define SCTAPE_GRID_LOOP(i, n)                                                          \
    for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
         i += std::int64_t(gridDim.x) * blockDim.x)

// Tree-sums each of the K thread-local values over the block; thread 0
// writes sum k to partials[k * gridDim.x + blockIdx.x].
template <int K>
__device__ void block_sums(const double (&local)[K], double* partials) {
    __shared__ double s[kThreads];
    for (int k = 0; k < K; ++k) {
        s[threadIdx.x] = local[k];
        __syncthreads();
        for (int w = kThreads / 2; w > 0; w >>= 1) {
            if (int(threadIdx.x) < w) s[threadIdx.x] += s[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) partials[std::int64_t(k) * gridDim.x + blockIdx.x] = s[0];
        __syncthreads();
    }
}

}  // namespace sctape::cuda
