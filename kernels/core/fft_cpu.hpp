// fft_cpu.hpp — 3D real-to-complex FFTs on the CPU through FFTW (threads),
// one plan pair per shape, for float and double.
//
//   sctape::RealFft3d<float> fft({64, 64, 64}, threads);
//   fft.forward(real, spectrum);    // spectrum: 64*64*(64/2+1) complex
//   fft.inverse(spectrum, real);    // unnormalized; overwrites spectrum
#pragma once

#include <array>
#include <complex>
#include <cstdint>
#include <memory>

namespace sctape {

template <class T>
class RealFft3d {
public:
    RealFft3d(std::array<int, 3> shape, int threads);
    ~RealFft3d();
    RealFft3d(const RealFft3d&) = delete;
    RealFft3d& operator=(const RealFft3d&) = delete;

    void forward(T* real, std::complex<T>* spectrum) const;
    void inverse(std::complex<T>* spectrum, T* real) const;

    std::int64_t real_size() const { return std::int64_t(shape_[0]) * shape_[1] * shape_[2]; }
    std::int64_t spectrum_size() const { return std::int64_t(shape_[0]) * shape_[1] * (shape_[2] / 2 + 1); }
    const std::array<int, 3>& shape() const { return shape_; }

private:
    std::array<int, 3> shape_;
    struct Plans;
    std::unique_ptr<Plans> plans_;
};

}  // namespace sctape
