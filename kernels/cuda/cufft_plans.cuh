// cufft_plans.cuh — cuFFT for the CUDA backend (only .cu files include this):
// r2c / c2r plan pairs cached per doubled-grid shape and precision for the
// life of the process, made without work areas (each user supplies its own
// from the tracked allocator), and one way to run them.
//
//   cuda::PlanPair plans = cuda::cached_plans({128, 128, 128}, /*double_precision=*/false);
//   cuda::DeviceArray<char> work(plans.work_bytes, stream);
//   cuda::exec_fft<float>(/*forward=*/true, plans.r2c, real, spectrum, stream, work.data());
#pragma once

#include <cuda_runtime.h>
#include <cufft.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "cuda/device_alloc.cuh"

namespace sctape::cuda {

inline const char* cufft_error(cufftResult r) {
    switch (r) {
        case CUFFT_SUCCESS: return "success";
        case CUFFT_INVALID_PLAN: return "invalid plan";
        case CUFFT_ALLOC_FAILED: return "allocation failed (out of GPU memory)";
        case CUFFT_INVALID_VALUE: return "invalid value";
        case CUFFT_INTERNAL_ERROR: return "internal error";
        case CUFFT_EXEC_FAILED: return "execution failed";
        case CUFFT_SETUP_FAILED: return "setup failed";
        case CUFFT_INVALID_SIZE: return "invalid size";
        default: return "error";
    }
}

inline void check_fft(cufftResult r, const char* what) {
    if (r == CUFFT_SUCCESS) return;
    cudaGetLastError();
    throw std::runtime_error(std::string("cuFFT error in ") + what + ": " + cufft_error(r) + " (code " +
                             std::to_string(int(r)) + ")");
}

// r2c and c2r plans for one doubled-grid shape and precision, made without
// work areas (each tracker supplies its own, from the tracked allocator).
struct PlanPair {
    cufftHandle r2c = 0, c2r = 0;
    std::size_t work_bytes = 0;
};

inline std::mutex& fft_mutex() {
    static std::mutex m;
    return m;
}

using PlanKey = std::tuple<int, int, int, int, bool>;  // device, doubled shape, double precision

inline std::map<PlanKey, PlanPair>& plan_cache() {
    static auto* cache = new std::map<PlanKey, PlanPair>();  // never destroyed: see release_plans
    return *cache;
}

// Registered with atexit after the CUDA runtime is up, so it runs before the
// runtime's own teardown: destroys the cached plans (their internal buffers
// would otherwise show as leaks under compute-sanitizer).
inline void release_plans() {
    std::lock_guard<std::mutex> lock(fft_mutex());
    for (auto& [key, plans] : plan_cache()) {
        cufftDestroy(plans.r2c);
        cufftDestroy(plans.c2r);
    }
    plan_cache().clear();
}

// Plans cached per shape and precision for the life of the process.
inline PlanPair cached_plans(const std::array<int, 3>& shape, bool double_precision) {
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    const PlanKey key{device, shape[0], shape[1], shape[2], double_precision};
    std::lock_guard<std::mutex> lock(fft_mutex());
    auto& cache = plan_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    static std::once_flag registered;
    std::call_once(registered, [] { std::atexit(release_plans); });
    PlanPair p;
    std::size_t work[2] = {0, 0};
    const cufftType types[2] = {double_precision ? CUFFT_D2Z : CUFFT_R2C, double_precision ? CUFFT_Z2D : CUFFT_C2R};
    cufftHandle* handles[2] = {&p.r2c, &p.c2r};
    for (int t = 0; t < 2; ++t) {
        check_fft(cufftCreate(handles[t]), "cufftCreate");
        cufftResult r = cufftSetAutoAllocation(*handles[t], 0);
        if (r == CUFFT_SUCCESS) r = cufftMakePlan3d(*handles[t], shape[0], shape[1], shape[2], types[t], &work[t]);
        if (r != CUFFT_SUCCESS) {
            cufftDestroy(*handles[t]);
            if (t == 1) cufftDestroy(p.r2c);
            check_fft(r, "cufftMakePlan3d");
        }
    }
    p.work_bytes = std::max(work[0], work[1]);
    cache.emplace(key, p);
    return p;
}

template <class T>
struct FftExec;

template <>
struct FftExec<float> {
    static cufftResult forward(cufftHandle p, float* in, float* out) {
        return cufftExecR2C(p, reinterpret_cast<cufftReal*>(in), reinterpret_cast<cufftComplex*>(out));
    }
    static cufftResult inverse(cufftHandle p, float* in, float* out) {
        return cufftExecC2R(p, reinterpret_cast<cufftComplex*>(in), reinterpret_cast<cufftReal*>(out));
    }
};

template <>
struct FftExec<double> {
    static cufftResult forward(cufftHandle p, double* in, double* out) {
        return cufftExecD2Z(p, reinterpret_cast<cufftDoubleReal*>(in), reinterpret_cast<cufftDoubleComplex*>(out));
    }
    static cufftResult inverse(cufftHandle p, double* in, double* out) {
        return cufftExecZ2D(p, reinterpret_cast<cufftDoubleComplex*>(in), reinterpret_cast<cufftDoubleReal*>(out));
    }
};

// Runs one cached plan on `stream` with the caller's work area (the plans are
// shared, so stream and work area are set under the lock, every time).
template <class T>
void exec_fft(bool forward, cufftHandle plan, T* in, T* out, cudaStream_t stream, void* work) {
    std::lock_guard<std::mutex> lock(fft_mutex());
    check_fft(cufftSetStream(plan, stream), "cufftSetStream");
    check_fft(cufftSetWorkArea(plan, work), "cufftSetWorkArea");
    check_fft(forward ? FftExec<T>::forward(plan, in, out) : FftExec<T>::inverse(plan, in, out),
              forward ? "forward FFT" : "inverse FFT");
}

}  // namespace sctape::cuda
