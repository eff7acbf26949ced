// strategy_matrix.hpp — one parametrisation run on every strategy, dtype and
// backend: the gradients of every input against fused on the CPU in the same
// dtype, the tape bytes against their closed forms (docs/tape-accounting.md),
// and the allocator back at its start after backward. test_strategies.cpp
// runs it on the CPU, test_gpu.cpp on the GPU.
//
// The case: 2000 Gaussian particles, 10 MeV electrons, two elements (4 and 3
// slices: K = 7 kicks), a non-cubic 16x12x20 grid, objective sigma_x.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "ad/checkpoint.hpp"
#include "ad/gradient.hpp"

namespace sctape::test {

struct MatrixCase {
    Strategy strategy;
    int snapshots;  // checkpoint only
    Backend backend;
};

inline BeamParameters matrix_beam() {
    BeamParameters b;
    b.n_particles = 2000;
    b.bunch_charge_C = 1e-9;
    b.kinetic_energy_eV = 10e6;
    b.distribution.type = DistributionType::gaussian;
    b.distribution.size_m = {1e-3, 1.2e-3, 0.8e-3};
    b.distribution.momentum_rms = {1e-4, 2e-4, 1e-4};
    return b;
}

inline TrackSettings matrix_tracking() {
    TrackSettings t;
    t.lattice = {{0.5, 4}, {0.3, 3}};
    t.grid.shape = {16, 12, 20};
    t.threads = 2;
    return t;
}

// Relative tolerance of a strategy's gradients against fused on the CPU
// (measured on this case, largest over all inputs, in brackets):
//  - checkpoint on the CPU recomputes exactly what fused records: bitwise (0);
//  - reversible differentiates at states quantized to 2^-50 of their range
//    (2^-60 for momenta): 1e-12 in float64 (5.6e-14); in float32 the fields
//    recomputed at the quantized states differ in their last bits: 5e-5 (5.2e-6);
//  - autograd runs the same float64 arithmetic op by op: 1e-10 (2.1e-14); in
//    float32 its op order differs: 5e-5 (3.2e-6);
//  - on the GPU, atomic summation order adds 1e-9 (float64) and 5e-4
//    (float32) relative (test_gpu.cpp's header derives both).
inline double matrix_tolerance(const MatrixCase& c, bool float32) {
    double tol = 0;
    if (c.strategy == Strategy::reversible) tol = float32 ? 5e-5 : 1e-12;
    if (c.strategy == Strategy::autograd) tol = float32 ? 5e-5 : 1e-10;
    if (c.backend == Backend::cuda) tol += float32 ? 5e-4 : 1e-9;
    return tol;
}

template <class T>
void check_matrix_case(const MatrixCase& c) {
    const BeamParameters beam = matrix_beam();
    const TrackSettings tracking = matrix_tracking();
    const std::int64_t n = beam.n_particles, cells = 16 * 12 * 20, kicks = 7, w = sizeof(T);
    GradientRequest request;
    request.gradients = gradient_names(beam, tracking.lattice);
    const GradientResult reference = compute_gradient<T>(beam, tracking, request);
    request.strategy = c.strategy;
    request.snapshots = c.snapshots;
    request.backend = c.backend;
    const GradientResult r = compute_gradient<T>(beam, tracking, request);
    INFO(strategy_name(c.strategy) << " snapshots " << c.snapshots << ", " << (w == 4 ? "float32" : "float64")
                                   << ", " << backend_name(c.backend));

    const double tol = matrix_tolerance(c, w == 4);
    CHECK(r.objective == Approx(reference.objective).epsilon(tol));
    for (const auto& [name, value] : reference.gradients) {
        INFO("relative difference " << (r.gradients.at(name) - value) / value);
        INFO(name << ": fused " << value << ", this " << r.gradients.at(name));
        if (tol == 0) CHECK(r.gradients.at(name) == value);
        else CHECK(r.gradients.at(name) == Approx(value).epsilon(tol));
    }

    // tape bytes: objective sigma_x keeps x and px (2 N w); fused also keeps
    // the final momenta snapshot its last drift saved (2 N w more)
    CHECK(r.memory.kicks == kicks);
    switch (c.strategy) {
        case Strategy::fused: CHECK(r.memory.tape_bytes == kicks * (6 * n + 2 * cells) * w + 4 * n * w); break;
        case Strategy::checkpoint: {
            const auto states = static_cast<std::int64_t>(checkpoint_spine(kicks, c.snapshots).size());
            CHECK(r.memory.tape_bytes == states * 6 * n * w + 2 * n * w);
            break;
        }
        case Strategy::reversible: CHECK(r.memory.tape_bytes == 6 * n * 8 + 2 * n * w); break;
        case Strategy::autograd: CHECK(r.memory.tape_bytes > reference.memory.tape_bytes); break;
    }
    CHECK(r.memory.bytes_after_backward == 0);
}

}  // namespace sctape::test
