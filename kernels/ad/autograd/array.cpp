#include "ad/autograd/array.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "ad/autograd/runner.hpp"

namespace sctape {
namespace ag {

const char* device_name(Device device) { return device == Device::host ? "host" : "cuda"; }

template <class T>
Array<T>::Array(std::int64_t n, Device device) : size_(n), device_(device) {
    if (n < 0) throw std::invalid_argument("ag::Array: negative size");
    if (device == Device::host) {
        host_.resize(static_cast<std::size_t>(n));
        return;
    }
    device_data_ = static_cast<T*>(device::allocate(static_cast<std::size_t>(bytes())));
}

template <class T>
Array<T>::Array(HostArray<T> values)
    : host_(std::move(values)), size_(static_cast<std::int64_t>(host_.size())), device_(Device::host) {}

template <class T>
Array<T> Array<T>::copy_of(const T* values, std::int64_t n, Device device) {
    Array<T> a(n, device);
    if (device == Device::host) std::copy(values, values + n, a.host_.begin());
    else device::upload(a.device_data_, values, static_cast<std::size_t>(a.bytes()));
    return a;
}

template <class T>
Array<T>::~Array() {
    release();
}

template <class T>
void Array<T>::release() noexcept {
    if (device_data_) device::release(device_data_, static_cast<std::size_t>(bytes()));
    device_data_ = nullptr;
    HostArray<T>().swap(host_);
    size_ = 0;
}

template <class T>
Array<T>::Array(Array&& other) noexcept
    : host_(std::move(other.host_)),
      device_data_(std::exchange(other.device_data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      device_(other.device_) {}

template <class T>
Array<T>& Array<T>::operator=(Array&& other) noexcept {
    if (this != &other) {
        release();
        host_ = std::move(other.host_);
        device_data_ = std::exchange(other.device_data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        device_ = other.device_;
    }
    return *this;
}

template <class T>
void Array<T>::fill_zero() {
    if (device_ == Device::host) std::fill(host_.begin(), host_.end(), T(0));
    else device::zero(device_data_, static_cast<std::size_t>(bytes()));
}

template <class T>
std::vector<T> Array<T>::to_vector() const {
    if (device_ == Device::host) return std::vector<T>(host_.begin(), host_.end());
    std::vector<T> v(static_cast<std::size_t>(size_));
    device::download(v.data(), device_data_, static_cast<std::size_t>(bytes()));
    return v;
}

template <class T>
T Array<T>::at(std::int64_t i) const {
    if (i < 0 || i >= size_) throw std::out_of_range("ag::Array::at");
    if (device_ == Device::host) return host_[static_cast<std::size_t>(i)];
    T v;
    device::download(&v, device_data_ + i, sizeof(T));
    return v;
}

template class Array<float>;
template class Array<double>;
template class Array<std::complex<float>>;
template class Array<std::complex<double>>;
template class Array<std::int64_t>;

}  // namespace ag
}  // namespace sctape
