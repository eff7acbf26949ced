#include <cuda_runtime.h>

#include "device.hpp"

namespace sctape::cuda {

int probe_devices(std::string& description) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        description = std::string("CUDA runtime: ") + cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error
        return 0;
    }
    if (count == 0) {
        description = "CUDA runtime: no device";
        return 0;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        description = "CUDA runtime: device 0 unreadable";
        return 0;
    }
    description = prop.name;
    return count;
}

}  // namespace sctape::cuda
