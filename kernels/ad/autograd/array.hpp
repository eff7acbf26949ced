// array.hpp — the autograd engine's buffer: n values of T on the host (a
// HostArray, counted by host_memory()) or on the CUDA device (counted by
// cuda::device_memory()). Tensor values, gradients and int64 indices are
// Arrays; an op's inputs and output all live on one device.
//
//   sctape::ag::Array<double> a(1000, sctape::ag::Device::cuda);  // uninitialized
//   a.fill_zero();
//   std::vector<double> v = a.to_vector();                         // copied to the host
#pragma once

#include <complex>
#include <cstdint>
#include <vector>

#include "core/memory.hpp"

namespace sctape {
namespace ag {

enum class Device { host, cuda };
const char* device_name(Device device);

template <class T>
class Array {
public:
    Array() = default;
    // n uninitialized values; on a device without a CUDA build: runtime_error.
    Array(std::int64_t n, Device device);
    // Takes host values.
    explicit Array(HostArray<T> values);
    // A copy of n host values on `device`.
    static Array copy_of(const T* values, std::int64_t n, Device device);
    ~Array();
    Array(const Array&) = delete;
    Array& operator=(const Array&) = delete;
    Array(Array&& other) noexcept;
    Array& operator=(Array&& other) noexcept;

    T* data() { return device_ == Device::host ? host_.data() : device_data_; }
    const T* data() const { return device_ == Device::host ? host_.data() : device_data_; }
    std::int64_t size() const { return size_; }
    std::int64_t bytes() const { return size_ * std::int64_t(sizeof(T)); }
    bool empty() const { return size_ == 0; }
    Device device() const { return device_; }

    void fill_zero();
    // The values on the host (a download for a device array).
    std::vector<T> to_vector() const;
    // Element i on the host.
    T at(std::int64_t i) const;

private:
    void release() noexcept;

    HostArray<T> host_;
    T* device_data_ = nullptr;
    std::int64_t size_ = 0;
    Device device_ = Device::host;
};

extern template class Array<float>;
extern template class Array<double>;
extern template class Array<std::complex<float>>;
extern template class Array<std::complex<double>>;
extern template class Array<std::int64_t>;

}  // namespace ag
}  // namespace sctape
