// device_alloc.cuh — CUDA-side helpers of the backend (only .cu files include
// this): error checks that throw, the tracked device allocator and an RAII
// device array on a stream.
//
//   sctape::cuda::check(cudaMemcpy(...), "copy the beam");   // throws std::runtime_error
//   sctape::cuda::DeviceArray<float> rho(n_cells, stream);     // counted by device_memory()
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "cuda/device.hpp"

namespace sctape::cuda {

// Throws std::runtime_error("CUDA error in <what>: <message>") unless err == cudaSuccess.
void check(cudaError_t err, const char* what);
// The same for the last kernel launch.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Every host wait of the backend goes through these (counted by host_waits()).
void wait(cudaStream_t stream, const char* what);  // cudaStreamSynchronize
void wait(cudaEvent_t event, const char* what);    // cudaEventSynchronize

// set_block_limit's value (kMaxBlocks when unset).
int block_limit();

// Tracked allocation on `stream` (stream-ordered when the device has memory
// pools). Zero bytes give nullptr. Out of memory: std::runtime_error naming
// the request and the free memory.
void* device_allocate(std::size_t bytes, cudaStream_t stream);
// Never throws (used by destructors); errors are reported once on stderr.
void device_free(void* p, std::size_t bytes, cudaStream_t stream) noexcept;

template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    DeviceArray(std::size_t n, cudaStream_t stream) { allocate(n, stream); }
    ~DeviceArray() { release(); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), stream_(o.stream_) {}
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            stream_ = o.stream_;
        }
        return *this;
    }

    // Discards the contents; a no-op when the size is unchanged.
    void allocate(std::size_t n, cudaStream_t stream) {
        if (n == size_ && data_) return;
        release();
        stream_ = stream;
        data_ = static_cast<T*>(device_allocate(n * sizeof(T), stream));
        size_ = n;
    }
    void release() noexcept {
        if (data_) device_free(data_, size_ * sizeof(T), stream_);
        data_ = nullptr;
        size_ = 0;
    }

    T* data() { return data_; }
    const T* data() const { return data_; }
    std::size_t size() const { return size_; }
    std::size_t bytes() const { return size_ * sizeof(T); }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
    cudaStream_t stream_ = nullptr;
};

}  // namespace sctape::cuda
