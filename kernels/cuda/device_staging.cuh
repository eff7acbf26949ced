// device_staging.cuh — core/communicator.hpp's DeviceStaging on a CUDA stream
// (only .cu files include this): a reduction over MPI ranks that the MPI
// library cannot run on device memory copies it through one pinned host
// buffer, grown on demand and kept for the tracker's life. The buffer is host
// memory: outside cuda::device_memory() and outside the memory law.
//
//   cuda::StreamStaging staging(stream);
//   communicator().sum_device(rho, cells, staging);   // waits for `stream` first
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "core/communicator.hpp"
#include "cuda/device_alloc.cuh"

namespace sctape::cuda {

class StreamStaging final : public DeviceStaging {
public:
    explicit StreamStaging(cudaStream_t stream) : stream_(stream) {}
    ~StreamStaging() override {
        if (host_) cudaFreeHost(host_);
    }
    StreamStaging(const StreamStaging&) = delete;
    StreamStaging& operator=(const StreamStaging&) = delete;

    void finish_writes() override { wait(stream_, "finish the device writes before a reduction over ranks"); }
    void* host_buffer(std::size_t bytes) override {
        if (bytes <= capacity_) return host_;
        if (host_) cudaFreeHost(host_);
        host_ = nullptr;
        capacity_ = 0;
        check(cudaMallocHost(&host_, bytes), "allocate the pinned buffer of a reduction over ranks");
        capacity_ = bytes;
        return host_;
    }
    void to_host(void* host, const void* device, std::size_t bytes) override {
        check(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_), "stage a reduction over ranks");
        wait(stream_, "stage a reduction over ranks");
    }
    void to_device(void* device, const void* host, std::size_t bytes) override {
        check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_), "stage a reduction over ranks");
        wait(stream_, "stage a reduction over ranks");  // the host buffer is reused by the next reduction
    }

private:
    cudaStream_t stream_;
    void* host_ = nullptr;
    std::size_t capacity_ = 0;
};

}  // namespace sctape::cuda
