// fft3.hpp — 3D real-to-complex FFT plans for the autograd engine, on the
// host (FFTW, fft_cpu.hpp) or the CUDA device (cuFFT), unnormalized, with
// FFTW's half-spectrum layout (last axis m2/2 + 1).
//
//   auto fft = sctape::ag::make_fft<double>({8, 8, 8}, sctape::ag::Device::host, threads);
//   fft->forward(real, spectrum);   // keeps `real`
//   fft->inverse(spectrum, real);   // overwrites `spectrum`
#pragma once

#include <array>
#include <complex>
#include <cstdint>
#include <memory>

#include "ad/autograd/array.hpp"

namespace sctape {
namespace ag {

using Shape3 = std::array<int, 3>;

template <class T>
class Fft3 {
public:
    virtual ~Fft3() = default;
    Device device() const { return device_; }
    const Shape3& shape() const { return shape_; }
    std::int64_t real_size() const { return std::int64_t(shape_[0]) * shape_[1] * shape_[2]; }
    std::int64_t spectrum_size() const { return std::int64_t(shape_[0]) * shape_[1] * (shape_[2] / 2 + 1); }

    // r2c; `real` is left as it was.
    virtual void forward(const T* real, std::complex<T>* spectrum) const = 0;
    // c2r, unnormalized; `spectrum` is overwritten.
    virtual void inverse(std::complex<T>* spectrum, T* real) const = 0;

protected:
    Fft3(const Shape3& shape, Device device) : shape_(shape), device_(device) {}

private:
    Shape3 shape_;
    Device device_;
};

// Plans for `shape` on `device` (`threads`: FFTW threads on the host).
template <class T>
std::shared_ptr<const Fft3<T>> make_fft(const Shape3& shape, Device device, int threads);

namespace device {
// The cuFFT plans (defined by the CUDA build).
template <class T>
std::shared_ptr<const Fft3<T>> make_fft(const Shape3& shape);
}  // namespace device

}  // namespace ag
}  // namespace sctape
