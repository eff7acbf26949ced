// exact_sums.hpp — sums over particles in the deterministic mode (with the
// fixed-point deposit, docs/mpi.md): every term made integers once
// (fixed_point.hpp: ExactSum, to_fixed128), the integers summed over threads
// and ranks in any order, the total rounded once. The objective and every
// gradient are then the same bits for any thread count and any split of the
// particles over ranks. Off (plain), the sums are float64 in particle order,
// as they always were.
//
//   ParticleSums<2> s(exact);
//   s.add_particles(n, [&](std::int64_t p, double* sum) { sum[0] += u[p]; sum[1] += u[p] * u[p]; });
//   const std::array<double, 2> total = s.over_all_ranks();
#pragma once

#include <array>
#include <cstdint>

#include "core/communicator.hpp"
#include "physics/fixed_point.hpp"
#include "physics/thread_share.hpp"

namespace sctape {

// Every rank's ExactSums added, on every rank (as integers: any order).
void sum_over_ranks(ExactSum* sums, int count);
// Every rank's 128-bit integers added, on every rank; each total must stay
// below 2^126 in magnitude (grid_sum_bits chooses the scale for that).
void sum_over_ranks(int128* values, std::int64_t count);

// K exact sums over particles [0, n) on `threads` threads: each thread runs
// body(begin, end, add) on its contiguous share of the particles, and body
// calls add(terms) with each particle's K terms. The threads' sums are
// merged (integers: the same total for any thread count, any share and any
// merge order).
template <int K, class Body>
std::array<ExactSum, K> exact_particle_sums(std::int64_t n, int threads, Body&& body) {
    std::array<ExactSum, K> total{};
#pragma omp parallel num_threads(threads)
    {
        std::array<ExactSum, K> mine{};
        const ThreadShare share = thread_share(n);
        body(share.begin, share.end, [&](const double* terms) {
            for (int k = 0; k < K; ++k) mine[k].add(terms[k]);
        });
#pragma omp critical(sctape_exact_particle_sums)
        for (int k = 0; k < K; ++k) total[k].add(mine[k]);
    }
    return total;
}

// K sums over this rank's particles, plain (float64, particle order) or exact.
template <int K>
class ParticleSums {
public:
    explicit ParticleSums(bool exact) : exact_(exact) {}

    // body(p, sums) adds particle p's terms to sums[0..K) (+=), for p in [0, n).
    template <class Body>
    void add_particles(std::int64_t n, Body&& body) {
        if (!exact_) {
            // a local copy, which the compiler keeps in registers: the member
            // could alias the arrays the body writes, and reloading it at every
            // particle made push's adjoint 2.7x slower (the same sums, same order)
            std::array<double, K> sums = plain_;
            for (std::int64_t p = 0; p < n; ++p) body(p, sums.data());
            plain_ = sums;
            return;
        }
        for (std::int64_t p = 0; p < n; ++p) {
            double terms[K] = {};
            body(p, terms);
            // (a term that is always 0, as a drift's position sums, costs a predicted branch)
            for (int k = 0; k < K; ++k)
                if (terms[k] != 0) exact_sums_[k].add(terms[k]);
        }
    }

    // The sums over every rank's particles, on every rank. Call this or
    // rank_share() once, after the particles (both reduce in place).
    std::array<double, K> over_all_ranks() {
        if (!exact_) {
            communicator().sum(plain_.data(), K);
            return plain_;
        }
        sum_over_ranks(exact_sums_.data(), K);
        std::array<double, K> out;
        for (int k = 0; k < K; ++k) out[k] = exact_sums_[k].value();
        return out;
    }

    // This rank's part of a parameter adjoint that ParameterAdjoints::sum_over_ranks
    // completes after backward: plain, this rank's sums; exact, the exact total
    // over every rank, rounded once and kept by rank 0 (the other ranks add 0).
    std::array<double, K> rank_share() {
        if (!exact_) return plain_;
        std::array<double, K> out = over_all_ranks();
        for (double& v : out) v = counted_once(v);
        return out;
    }

private:
    bool exact_;
    std::array<double, K> plain_{};
    std::array<ExactSum, K> exact_sums_{};
};

}  // namespace sctape
