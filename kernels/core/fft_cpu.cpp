#include "core/fft_cpu.hpp"

#include <fftw3.h>

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

}  // namespace sctape
