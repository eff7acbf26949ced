// runner.hpp — where the autograd engine's per-element bodies (op_bodies.hpp)
// run: a plain loop on the host, a grid-stride kernel on the CUDA device
// (ad/autograd/device_runner.cu, which instantiates every body). All
// device work of the engine is ordered on one stream, CUDA's legacy default
// stream, so ops need no synchronization between them; host reads of device
// values (item(), the grid checks) synchronize by copying.
//
//   ag::for_each(device, n, ag::Fill<double>{out, 1.0});        // out[i] = 1
//   ag::sum_into(device, n, ag::Value<double>{a}, out, 1.0, false);  // out[0] = sum a
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "ad/autograd/array.hpp"
#include "ad/autograd/op_bodies.hpp"

namespace sctape {
namespace ag {

// The device half, defined by the CUDA build (without it: runtime_error).
namespace device {
void* allocate(std::size_t bytes);  // counted by cuda::device_memory()
void release(void* p, std::size_t bytes) noexcept;
void upload(void* device_dst, const void* host_src, std::size_t bytes);
void download(void* host_dst, const void* device_src, std::size_t bytes);
void zero(void* p, std::size_t bytes);
template <class Body>
void for_each(std::int64_t n, const Body& body);
template <class Term>
void sum_into(std::int64_t n, const Term& term, typename Term::value_type* target,
              typename Term::value_type divisor, bool accumulate);
template <class T>
void extremum(const T* a, std::int64_t n, bool minimum, T* value, std::int64_t* index);
}  // namespace device

[[noreturn]] void no_cuda_build();

// body(i) for every i < n.
template <class Body>
void for_each(Device d, std::int64_t n, const Body& body) {
    if (d == Device::host) {
        for (std::int64_t i = 0; i < n; ++i) body(i);
        return;
    }
#ifdef SCTAPE_HAVE_CUDA
    device::for_each(n, body);
#else
    no_cuda_build();
#endif
}

// target[0] = T(sum_i term(i)) / divisor, or target[0] += that when
// `accumulate`; the sum is accumulated in double (in index order on the host,
// in a fixed tree order on the device, so both are reproducible run to run).
template <class Term>
void sum_into(Device d, std::int64_t n, const Term& term, typename Term::value_type* target,
              typename Term::value_type divisor, bool accumulate) {
    using T = typename Term::value_type;
    if (d == Device::host) {
        double acc = 0;
        for (std::int64_t i = 0; i < n; ++i) acc += static_cast<double>(term(i));
        const T v = static_cast<T>(acc) / divisor;
        target[0] = accumulate ? target[0] + v : v;
        return;
    }
#ifdef SCTAPE_HAVE_CUDA
    device::sum_into(n, term, target, divisor, accumulate);
#else
    no_cuda_build();
#endif
}

// value[0] = a[index[0]], the smallest (minimum) or largest element of a,
// the first one on ties.
template <class T>
void extremum(Device d, const T* a, std::int64_t n, bool minimum, T* value, std::int64_t* index) {
    if (d == Device::host) {
        std::int64_t best = 0;
        for (std::int64_t i = 1; i < n; ++i)
            if (better_candidate(minimum, a[i], i, a[best], best)) best = i;
        value[0] = a[best];
        index[0] = best;
        return;
    }
#ifdef SCTAPE_HAVE_CUDA
    device::extremum(a, n, minimum, value, index);
#else
    no_cuda_build();
#endif
}

}  // namespace ag
}  // namespace sctape
