// device_runner.cu — the device half of the autograd engine (runner.hpp):
// one grid-stride kernel runs any op body of op_bodies.hpp, fixed-shape
// block sums reduce the gradient terms of broadcast operands, a two-pass
// arg-extremum serves min / max, and cuFFT plans implement ag::Fft3. All of
// it is ordered on CUDA's legacy default stream; every buffer comes from the
// tracked device allocator. Each body the engine uses is instantiated at the
// bottom of this file.
#include <cuda_runtime.h>
#include <cufft.h>

#include <complex>
#include <cstdint>
#include <memory>

#include "ad/autograd/fft3.hpp"
#include "ad/autograd/op_bodies.hpp"
#include "ad/autograd/runner.hpp"
#include "cuda/cufft_plans.cuh"
#include "cuda/device_alloc.cuh"
#include "cuda/launch.cuh"

namespace sctape {
namespace ag {
namespace device {
namespace {

const cudaStream_t kStream = nullptr;  // the legacy default stream

template <class Body>
__global__ void for_each_kernel(std::int64_t n, Body body) {
    SCTAPE_GRID_LOOP(i, n) body(i);
}

template <class Term>
__global__ void partial_sums_kernel(std::int64_t n, Term term, double* partials) {
    double local[1] = {0};
    SCTAPE_GRID_LOOP(i, n) local[0] += static_cast<double>(term(i));
    cuda::block_sums<1>(local, partials);
}

// One block: target[0] (+)= T(sum of the partials) / divisor.
template <class T>
__global__ void finish_sum_kernel(const double* partials, int blocks, T* target, T divisor, bool accumulate) {
    double local[1] = {0};
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) local[0] += partials[b];
    __shared__ double total[1];
    cuda::block_sums<1>(local, total);
    if (threadIdx.x == 0) {
        const T v = static_cast<T>(total[0]) / divisor;
        target[0] = accumulate ? target[0] + v : v;
    }
}

// Block-level arg-extremum of the candidates (v, i) each thread holds.
template <class T>
__device__ void block_best(bool minimum, T& v, std::int64_t& i) {
    __shared__ T sv[cuda::kThreads];
    __shared__ std::int64_t si[cuda::kThreads];
    const int t = int(threadIdx.x);
    sv[t] = v;
    si[t] = i;
    __syncthreads();
    for (int w = cuda::kThreads / 2; w > 0; w >>= 1) {
        if (t < w && better_candidate(minimum, sv[t + w], si[t + w], sv[t], si[t])) {
            sv[t] = sv[t + w];
            si[t] = si[t + w];
        }
        __syncthreads();
    }
    v = sv[0];
    i = si[0];
}

template <class T>
__global__ void partial_best_kernel(const T* a, std::int64_t n, bool minimum, T* values, std::int64_t* indices) {
    T v = T(0);
    std::int64_t best = -1;
    SCTAPE_GRID_LOOP(i, n) if (better_candidate(minimum, a[i], i, v, best)) {
        v = a[i];
        best = i;
    }
    block_best(minimum, v, best);
    if (threadIdx.x == 0) {
        values[blockIdx.x] = v;
        indices[blockIdx.x] = best;
    }
}

template <class T>
__global__ void finish_best_kernel(const T* values, const std::int64_t* indices, int blocks, bool minimum, T* value,
                                   std::int64_t* index) {
    T v = T(0);
    std::int64_t best = -1;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x)
        if (better_candidate(minimum, values[b], indices[b], v, best)) {
            v = values[b];
            best = indices[b];
        }
    block_best(minimum, v, best);
    if (threadIdx.x == 0) {
        value[0] = v;
        index[0] = best;
    }
}

// cuFFT behind ag::Fft3: the process-wide cached plans with a work area of
// this object's own from the tracked allocator.
template <class T>
class DeviceFft final : public Fft3<T> {
public:
    explicit DeviceFft(const Shape3& shape)
        : Fft3<T>(shape, Device::cuda),
          plans_(cuda::cached_plans(shape, sizeof(T) == sizeof(double))),
          work_(plans_.work_bytes, kStream) {}

    // cuFFT's out-of-place r2c leaves its input as it was (PyTorch relies on
    // it too: it clones the input of c2r only).
    void forward(const T* real, std::complex<T>* spectrum) const override {
        cuda::exec_fft<T>(true, plans_.r2c, const_cast<T*>(real), reinterpret_cast<T*>(spectrum), kStream,
                          work_.data());
    }
    void inverse(std::complex<T>* spectrum, T* real) const override {
        cuda::exec_fft<T>(false, plans_.c2r, reinterpret_cast<T*>(spectrum), real, kStream, work_.data());
    }

private:
    cuda::PlanPair plans_;
    mutable cuda::DeviceArray<char> work_;
};

}  // namespace

void* allocate(std::size_t bytes) { return cuda::device_allocate(bytes, kStream); }
void release(void* p, std::size_t bytes) noexcept { cuda::device_free(p, bytes, kStream); }

void upload(void* device_dst, const void* host_src, std::size_t bytes) {
    cuda::check(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice), "autograd: copy to the device");
}

void download(void* host_dst, const void* device_src, std::size_t bytes) {
    cuda::check(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost), "autograd: copy to the host");
}

void zero(void* p, std::size_t bytes) { cuda::check(cudaMemsetAsync(p, 0, bytes, kStream), "autograd: zero"); }

template <class Body>
void for_each(std::int64_t n, const Body& body) {
    cuda::launch(kStream, n, "autograd op", for_each_kernel<Body>, n, body);
}

template <class Term>
void sum_into(std::int64_t n, const Term& term, typename Term::value_type* target, typename Term::value_type divisor,
              bool accumulate) {
    using T = typename Term::value_type;
    const int blocks = int(cuda::sum_blocks(n));
    cuda::DeviceArray<double> partials(std::size_t(blocks), kStream);
    cuda::launch_sums(kStream, n, "autograd sum", partial_sums_kernel<Term>, n, term, partials.data());
    finish_sum_kernel<T><<<1, cuda::kThreads, 0, kStream>>>(partials.data(), blocks, target, divisor, accumulate);
    cuda::check_launch("autograd sum");
}

template <class T>
void extremum(const T* a, std::int64_t n, bool minimum, T* value, std::int64_t* index) {
    const int blocks = int(cuda::sum_blocks(n));
    cuda::DeviceArray<T> values(std::size_t(blocks), kStream);
    cuda::DeviceArray<std::int64_t> indices(std::size_t(blocks), kStream);
    cuda::launch_sums(kStream, n, "autograd min/max", partial_best_kernel<T>, a, n, minimum, values.data(),
                      indices.data());
    finish_best_kernel<T><<<1, cuda::kThreads, 0, kStream>>>(values.data(), indices.data(), blocks, minimum, value,
                                                             index);
    cuda::check_launch("autograd min/max");
}

template <class T>
std::shared_ptr<const Fft3<T>> make_fft(const Shape3& shape) {
    return std::make_shared<const DeviceFft<T>>(shape);
}

// ---- instantiations: every body, term and reduction the engine runs

#define SCTAPE_AG_BODY(...) template void for_each<__VA_ARGS__>(std::int64_t, const __VA_ARGS__&);
#define SCTAPE_AG_TERM(...)                                                                       \
    SCTAPE_AG_BODY(AddTerm<__VA_ARGS__>)                                                          \
    template void sum_into<__VA_ARGS__>(std::int64_t, const __VA_ARGS__&, __VA_ARGS__::value_type*, \
                                        __VA_ARGS__::value_type, bool);
#define SCTAPE_AG_REAL(T)                                                                     \
    SCTAPE_AG_BODY(Fill<T>)                                                                   \
    SCTAPE_AG_BODY(Convert<T, T>)                                                             \
    SCTAPE_AG_BODY(Convert<std::int64_t, T>)                                                  \
    SCTAPE_AG_BODY(Convert<T, std::int64_t>)                                                  \
    SCTAPE_AG_BODY(Binary<T>)                                                                 \
    SCTAPE_AG_BODY(Unary<T>)                                                                  \
    SCTAPE_AG_TERM(Scaled<T>)                                                                 \
    SCTAPE_AG_TERM(Product<T>)                                                                \
    SCTAPE_AG_TERM(Quotient<T>)                                                               \
    SCTAPE_AG_TERM(QuotientDivisor<T>)                                                        \
    SCTAPE_AG_TERM(UnaryGrad<T>)                                                              \
    template void sum_into<Value<T>>(std::int64_t, const Value<T>&, T*, T, bool);             \
    SCTAPE_AG_BODY(AddShare<T>)                                                               \
    SCTAPE_AG_BODY(AddAt<T>)                                                                  \
    SCTAPE_AG_BODY(SumInner<T>)                                                               \
    SCTAPE_AG_BODY(SpreadInner<T>)                                                            \
    SCTAPE_AG_BODY(Gather<T>)                                                                 \
    SCTAPE_AG_BODY(ScatterAdd<T>)                                                             \
    SCTAPE_AG_BODY(SelectInner<T>)                                                            \
    SCTAPE_AG_BODY(SelectInnerAdjoint<T>)                                                     \
    SCTAPE_AG_BODY(StackInner<T>)                                                             \
    SCTAPE_AG_BODY(Column<T>)                                                                 \
    SCTAPE_AG_BODY(CopyBox<T>)                                                                \
    SCTAPE_AG_BODY(Mirror<T>)                                                                 \
    SCTAPE_AG_BODY(MirrorAdjoint<T>)                                                          \
    SCTAPE_AG_BODY(ShiftOdd<T>)                                                               \
    SCTAPE_AG_BODY(ShiftOddAdjoint<T>)                                                        \
    SCTAPE_AG_BODY(Stencil<T>)                                                                \
    SCTAPE_AG_BODY(StencilAdjoint<T>)                                                         \
    SCTAPE_AG_BODY(HermitianHalf<T>)                                                          \
    SCTAPE_AG_BODY(HalfSpectrumWeights<T>)                                                    \
    SCTAPE_AG_BODY(ComplexProduct<T>)                                                         \
    template void extremum<T>(const T*, std::int64_t, bool, T*, std::int64_t*);               \
    template std::shared_ptr<const Fft3<T>> make_fft<T>(const Shape3&);
SCTAPE_AG_REAL(float)
SCTAPE_AG_REAL(double)
SCTAPE_AG_BODY(Convert<float, double>)
SCTAPE_AG_BODY(Convert<double, float>)
SCTAPE_AG_BODY(ClampIndex)
SCTAPE_AG_BODY(CornerNodes)
SCTAPE_AG_BODY(HalfCellLattice)
#undef SCTAPE_AG_REAL
#undef SCTAPE_AG_TERM
#undef SCTAPE_AG_BODY

}  // namespace device
}  // namespace ag
}  // namespace sctape
