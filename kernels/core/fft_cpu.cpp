#include "core/fft_cpu.hpp"

#include <fftw3.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "core/memory.hpp"

namespace sctape {
namespace {

// FFTW's planner is not thread-safe; plans are made under this lock.
std::mutex& planner_mutex() {
    static std::mutex m;
    return m;
}

void init_fftw_threads() {
    static std::once_flag once;
    // FFTW's thread pool can fail to start (e.g. under a ulimit -v of a batch
    // node); planning with threads after that would hang or crash, so it is an error.
    std::call_once(once, [] {
        if (fftw_init_threads() == 0 || fftwf_init_threads() == 0)
            throw std::runtime_error("FFTW could not start its threads (fftw_init_threads failed): "
                                     "lower threads or raise the process's memory limit");
    });
}

}  // namespace

template <>
struct RealFft3d<double>::Plans {
    fftw_plan forward = nullptr, inverse = nullptr;
};
template <>
struct RealFft3d<float>::Plans {
    fftwf_plan forward = nullptr, inverse = nullptr;
};

// Plans are made on scratch buffers with FFTW_ESTIMATE (which leaves them
// untouched) and executed on the caller's 64-byte aligned arrays.
template <>
RealFft3d<double>::RealFft3d(std::array<int, 3> shape, int threads)
    : shape_(shape), plans_(new Plans) {
    init_fftw_threads();
    HostArray<double> real(real_size());
    HostArray<std::complex<double>> spec(spectrum_size());
    auto* c = reinterpret_cast<fftw_complex*>(spec.data());
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftw_plan_with_nthreads(threads);
    plans_->forward = fftw_plan_dft_r2c_3d(shape[0], shape[1], shape[2], real.data(), c, FFTW_ESTIMATE);
    plans_->inverse = fftw_plan_dft_c2r_3d(shape[0], shape[1], shape[2], c, real.data(), FFTW_ESTIMATE);
}

template <>
RealFft3d<float>::RealFft3d(std::array<int, 3> shape, int threads)
    : shape_(shape), plans_(new Plans) {
    init_fftw_threads();
    HostArray<float> real(real_size());
    HostArray<std::complex<float>> spec(spectrum_size());
    auto* c = reinterpret_cast<fftwf_complex*>(spec.data());
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftwf_plan_with_nthreads(threads);
    plans_->forward = fftwf_plan_dft_r2c_3d(shape[0], shape[1], shape[2], real.data(), c, FFTW_ESTIMATE);
    plans_->inverse = fftwf_plan_dft_c2r_3d(shape[0], shape[1], shape[2], c, real.data(), FFTW_ESTIMATE);
}

template <>
RealFft3d<double>::~RealFft3d() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftw_destroy_plan(plans_->forward);
    fftw_destroy_plan(plans_->inverse);
}

template <>
RealFft3d<float>::~RealFft3d() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftwf_destroy_plan(plans_->forward);
    fftwf_destroy_plan(plans_->inverse);
}

template <>
void RealFft3d<double>::forward(double* real, std::complex<double>* spectrum) const {
    fftw_execute_dft_r2c(plans_->forward, real, reinterpret_cast<fftw_complex*>(spectrum));
}
template <>
void RealFft3d<double>::inverse(std::complex<double>* spectrum, double* real) const {
    fftw_execute_dft_c2r(plans_->inverse, reinterpret_cast<fftw_complex*>(spectrum), real);
}
template <>
void RealFft3d<float>::forward(float* real, std::complex<float>* spectrum) const {
    fftwf_execute_dft_r2c(plans_->forward, real, reinterpret_cast<fftwf_complex*>(spectrum));
}
template <>
void RealFft3d<float>::inverse(std::complex<float>* spectrum, float* real) const {
    fftwf_execute_dft_c2r(plans_->inverse, reinterpret_cast<fftwf_complex*>(spectrum), real);
}

namespace {

// FFTW's double and float APIs under one name, for the classes below.
template <class T>
struct Fftw;
template <>
struct Fftw<double> {
    using Plan = fftw_plan;
    using Complex = fftw_complex;
    static void plan_threads(int t) { fftw_plan_with_nthreads(t); }
    static Plan r2c(const fftw_iodim& d, int hr, const fftw_iodim* h, double* in, Complex* out) {
        return fftw_plan_guru_dft_r2c(1, &d, hr, h, in, out, FFTW_ESTIMATE);
    }
    static Plan c2r(const fftw_iodim& d, int hr, const fftw_iodim* h, Complex* in, double* out) {
        return fftw_plan_guru_dft_c2r(1, &d, hr, h, in, out, FFTW_ESTIMATE);
    }
    static Plan c2c(const fftw_iodim& d, int hr, const fftw_iodim* h, Complex* io, int sign) {
        return fftw_plan_guru_dft(1, &d, hr, h, io, io, sign, FFTW_ESTIMATE);
    }
    static Plan dct1(const std::array<int, 3>& m, double* io) {
        return fftw_plan_r2r_3d(m[0], m[1], m[2], io, io, FFTW_REDFT00, FFTW_REDFT00, FFTW_REDFT00, FFTW_ESTIMATE);
    }
    static void run_r2c(Plan p, double* in, Complex* out) { fftw_execute_dft_r2c(p, in, out); }
    static void run_c2r(Plan p, Complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
    static void run_c2c(Plan p, Complex* io) { fftw_execute_dft(p, io, io); }
    static void run_r2r(Plan p, double* io) { fftw_execute_r2r(p, io, io); }
    static void destroy(Plan p) { fftw_destroy_plan(p); }
};
template <>
struct Fftw<float> {
    using Plan = fftwf_plan;
    using Complex = fftwf_complex;
    static void plan_threads(int t) { fftwf_plan_with_nthreads(t); }
    static Plan r2c(const fftwf_iodim& d, int hr, const fftwf_iodim* h, float* in, Complex* out) {
        return fftwf_plan_guru_dft_r2c(1, &d, hr, h, in, out, FFTW_ESTIMATE);
    }
    static Plan c2r(const fftwf_iodim& d, int hr, const fftwf_iodim* h, Complex* in, float* out) {
        return fftwf_plan_guru_dft_c2r(1, &d, hr, h, in, out, FFTW_ESTIMATE);
    }
    static Plan c2c(const fftwf_iodim& d, int hr, const fftwf_iodim* h, Complex* io, int sign) {
        return fftwf_plan_guru_dft(1, &d, hr, h, io, io, sign, FFTW_ESTIMATE);
    }
    static Plan dct1(const std::array<int, 3>& m, float* io) {
        return fftwf_plan_r2r_3d(m[0], m[1], m[2], io, io, FFTW_REDFT00, FFTW_REDFT00, FFTW_REDFT00, FFTW_ESTIMATE);
    }
    static void run_r2c(Plan p, float* in, Complex* out) { fftwf_execute_dft_r2c(p, in, out); }
    static void run_c2r(Plan p, Complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
    static void run_c2c(Plan p, Complex* io) { fftwf_execute_dft(p, io, io); }
    static void run_r2r(Plan p, float* io) { fftwf_execute_r2r(p, io, io); }
    static void destroy(Plan p) { fftwf_destroy_plan(p); }
};

template <class T>
typename Fftw<T>::Complex* as_fftw(std::complex<T>* c) {
    return reinterpret_cast<typename Fftw<T>::Complex*>(c);
}

}  // namespace

template <class T>
struct PaddedFft3d<T>::Plans {
    typename Fftw<T>::Plan z_forward, y_forward, x_forward, x_inverse, y_inverse, z_inverse;
};

// Plans are made with FFTW_ESTIMATE on scratch arrays and run on the caller's
// (64-byte aligned, like the scratch, as FFTW's new-array execute requires).
template <class T>
PaddedFft3d<T>::PaddedFft3d(std::array<int, 3> n, int threads)
    : n_(n), threads_(threads), plans_(new Plans) {
    using F = Fftw<T>;
    init_fftw_threads();
    const int nx = n[0], ny = n[1], nz = n[2], my = 2 * ny, mz = 2 * nz, kz = nz + 1;
    const int plane = my * kz;  // complex values per x plane of the spectrum
    rows_.assign(std::size_t(nx) * ny * mz, T(0));
    HostArray<std::complex<T>> scratch(spectrum_size());
    auto* c = as_fftw(scratch.data());
    // z: the rows (i < nx, j < ny), real of length mz <-> kz complex
    const fftw_iodim z{mz, 1, 1};
    const fftw_iodim z_rows_r2c[2] = {{nx, ny * mz, plane}, {ny, mz, kz}};
    const fftw_iodim z_rows_c2r[2] = {{nx, plane, ny * mz}, {ny, kz, mz}};
    // y: planes i < nx, every kz
    const fftw_iodim y{my, kz, kz};
    const fftw_iodim y_columns[2] = {{nx, plane, plane}, {kz, 1, 1}};
    // x: every (ky, kz) column
    const fftw_iodim x{2 * nx, plane, plane};
    const fftw_iodim x_columns[1] = {{plane, 1, 1}};
    std::lock_guard<std::mutex> lock(planner_mutex());
    F::plan_threads(threads);
    plans_->z_forward = F::r2c(z, 2, z_rows_r2c, rows_.data(), c);
    plans_->y_forward = F::c2c(y, 2, y_columns, c, FFTW_FORWARD);
    plans_->x_forward = F::c2c(x, 1, x_columns, c, FFTW_FORWARD);
    plans_->x_inverse = F::c2c(x, 1, x_columns, c, FFTW_BACKWARD);
    plans_->y_inverse = F::c2c(y, 2, y_columns, c, FFTW_BACKWARD);
    plans_->z_inverse = F::c2r(z, 2, z_rows_c2r, c, rows_.data());
}

template <class T>
PaddedFft3d<T>::~PaddedFft3d() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    for (auto p : {plans_->z_forward, plans_->y_forward, plans_->x_forward, plans_->x_inverse, plans_->y_inverse,
                   plans_->z_inverse})
        Fftw<T>::destroy(p);
}

// The x pass reads the whole spectrum: what the z and y passes do not write
// (rows j >= ny of planes i < nx, and planes i >= nx) must be zero.
template <class T>
void PaddedFft3d<T>::zero_empty_part(std::complex<T>* spectrum) const {
    const std::int64_t kz = n_[2] + 1, plane = std::int64_t(2 * n_[1]) * kz, filled = std::int64_t(n_[1]) * kz;
    const int nx = n_[0];
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i < 2 * nx; ++i) {
        std::complex<T>* p = spectrum + i * plane;
        std::fill(i < nx ? p + filled : p, p + plane, std::complex<T>(0));
    }
}

template <class T>
void PaddedFft3d<T>::forward(const T* cells, std::complex<T>* spectrum) {
    using F = Fftw<T>;
    const int nz = n_[2];
    const std::int64_t rows = std::int64_t(n_[0]) * n_[1];
    // rows_ also receives the inverse's output: its upper halves are re-zeroed
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
        T* row = rows_.data() + r * 2 * nz;
        std::copy_n(cells + r * nz, nz, row);
        std::fill(row + nz, row + 2 * nz, T(0));
    }
    zero_empty_part(spectrum);
    F::run_r2c(plans_->z_forward, rows_.data(), as_fftw(spectrum));
    F::run_c2c(plans_->y_forward, as_fftw(spectrum));
    F::run_c2c(plans_->x_forward, as_fftw(spectrum));
}

template <class T>
void PaddedFft3d<T>::inverse(std::complex<T>* spectrum, T* cells, bool accumulate) {
    using F = Fftw<T>;
    F::run_c2c(plans_->x_inverse, as_fftw(spectrum));
    F::run_c2c(plans_->y_inverse, as_fftw(spectrum));
    F::run_c2r(plans_->z_inverse, as_fftw(spectrum), rows_.data());
    const int nz = n_[2];
    const std::int64_t rows = std::int64_t(n_[0]) * n_[1];
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
        const T* row = rows_.data() + r * 2 * nz;
        T* out = cells + r * nz;
        for (int k = 0; k < nz; ++k) out[k] = (accumulate ? out[k] : T(0)) + row[k];
    }
}

template <class T>
struct EvenDft3d<T>::Plans {
    typename Fftw<T>::Plan dct1;
};

template <class T>
EvenDft3d<T>::EvenDft3d(std::array<int, 3> n, int threads) : n_(n), plans_(new Plans) {
    init_fftw_threads();
    HostArray<T> scratch(size());
    std::lock_guard<std::mutex> lock(planner_mutex());
    Fftw<T>::plan_threads(threads);
    plans_->dct1 = Fftw<T>::dct1({n[0] + 1, n[1] + 1, n[2] + 1}, scratch.data());
}

template <class T>
EvenDft3d<T>::~EvenDft3d() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    Fftw<T>::destroy(plans_->dct1);
}

template <class T>
void EvenDft3d<T>::transform(T* octant) const {
    Fftw<T>::run_r2r(plans_->dct1, octant);
}

template class PaddedFft3d<float>;
template class PaddedFft3d<double>;
template class EvenDft3d<float>;
template class EvenDft3d<double>;

}  // namespace sctape
