// fft_cpu.hpp — 3D real-to-complex FFTs on the CPU through FFTW (threads),
// one plan pair per shape, for float and double.
//
//   sctape::RealFft3d<float> fft({64, 64, 64}, threads);
//   fft.forward(real, spectrum);    // spectrum: 64*64*(64/2+1) complex
//   fft.inverse(spectrum, real);    // unnormalized; overwrites spectrum
//
// PaddedFft3d is the same r2c/c2r pair for Hockney's doubled grid when only
// its low octant holds data (forward) or is wanted (inverse); EvenDft3d is the
// real DFT of a grid that is even along each axis (the DCT-I of one octant).
#pragma once

#include <array>
#include <complex>
#include <cstdint>
#include <memory>

#include "core/memory.hpp"

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

// r2c of pad(cells), an n0 x n1 x n2 grid in the low corner of a 2n0 x 2n1 x
// 2n2 zero grid, and the c2r that keeps only that corner. Three 1D passes that
// skip what is zero or unwanted: forward z on the n0*n1 rows that hold data,
// y on the n0 planes that do, then x on every column; inverse the mirror. The
// spectrum has the layout of RealFft3d's for the doubled shape.
template <class T>
class PaddedFft3d {
public:
    PaddedFft3d(std::array<int, 3> n, int threads);
    ~PaddedFft3d();
    PaddedFft3d(const PaddedFft3d&) = delete;
    PaddedFft3d& operator=(const PaddedFft3d&) = delete;

    void forward(const T* cells, std::complex<T>* spectrum);
    // cells (=, or += when accumulate) = crop(c2r(spectrum)), unnormalized; overwrites spectrum
    void inverse(std::complex<T>* spectrum, T* cells, bool accumulate);

    std::int64_t spectrum_size() const { return std::int64_t(2 * n_[0]) * (2 * n_[1]) * (n_[2] + 1); }

private:
    void zero_empty_part(std::complex<T>* spectrum) const;

    std::array<int, 3> n_;
    int threads_;
    HostArray<T> rows_;  // n0*n1 rows of length 2 n2: the z pass's real side
    struct Plans;
    std::unique_ptr<Plans> plans_;
};

// The DFT of a real grid of period 2n that is even along each axis
// (v[2n - i] = v[i]) is real and even too; it is the DCT-I (FFTW_REDFT00) of
// the (n0+1) x (n1+1) x (n2+1) values v[0..n], in place, unnormalized.
template <class T>
class EvenDft3d {
public:
    EvenDft3d(std::array<int, 3> n, int threads);
    ~EvenDft3d();
    EvenDft3d(const EvenDft3d&) = delete;
    EvenDft3d& operator=(const EvenDft3d&) = delete;

    void transform(T* octant) const;
    std::int64_t size() const { return std::int64_t(n_[0] + 1) * (n_[1] + 1) * (n_[2] + 1); }

private:
    std::array<int, 3> n_;
    struct Plans;
    std::unique_ptr<Plans> plans_;
};

}  // namespace sctape
