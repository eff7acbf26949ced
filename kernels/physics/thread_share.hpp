// thread_share.hpp — the calling thread's contiguous share of n items, for
// particle loops that work in blocks inside a parallel region instead of an
// `omp for`.
//
//   #pragma omp parallel num_threads(threads)
//   {
//       const sctape::ThreadShare share = sctape::thread_share(n);
//       for (std::int64_t p = share.begin; p < share.end; ++p) ...
//   }
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace sctape {

// Shares as libgomp's schedule(static) makes them (the partition the
// per-particle loops had before they worked in blocks, so per-thread sums keep
// their bits); the team may be smaller than asked.
struct ThreadShare {
    std::int64_t begin, end;
};
inline ThreadShare thread_share(std::int64_t n) {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const std::int64_t chunk = n / team, extra = n % team;
    const std::int64_t begin = t * chunk + std::min<std::int64_t>(t, extra);
    return {begin, begin + chunk + (t < extra ? 1 : 0)};
}

}  // namespace sctape
