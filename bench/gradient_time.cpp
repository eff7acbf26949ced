// gradient_time — what a gradient costs against the plain forward tracking it
// differentiates, on the CPU with one thread: a 1 m drift in 10 Strang slices
// (10 kicks), 10^5 particles on 32^3, float64, objective sigma_x, for each
// strategy, with exact cells and with `cell_quantum` 0.05 (the Green function
// reused while the cells repeat). SCTAPE_BENCH_QUICK=1: 2000 particles on 8^3,
// for tests.
//
//   sctape-bench --benchmark_filter=gradient_time --benchmark_out=gradient_time.json
//
// Names: gradient_time/<strategy>/N_part:<n>/grid:<n>/cell_quantum_permille:<q>.
// The plain tracking and the gradient run alternate, 5 times each, and each
// counter is the fastest of the 5, so that both sides of a ratio come from the
// same stretch of a shared machine. Counters (ms): plain_forward_ms (beam made
// and tracked, no tape), forward_ms and backward_ms of the gradient, and
// backward_<scope>_ms per tape scope; the ratios gradient_over_plain ((forward
// + backward) / plain forward) and gradient_over_own_forward; kicks and repeats.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>

#include "ad/gradient.hpp"
#include "kick_time.hpp"
#include "physics/tracking.hpp"

namespace {

constexpr int kRepeats = 5;

struct Case {
    sctape::BeamParameters beam;
    sctape::TrackSettings tracking;
};

Case drift_case(std::int64_t n_particles, int grid, double cell_quantum) {
    Case c;
    c.beam = kick_beam(n_particles);
    c.tracking.lattice = {sctape::Element(1.0, 10)};
    c.tracking.grid.shape = {grid, grid, grid};
    c.tracking.grid.cell_quantum = cell_quantum;
    c.tracking.threads = 1;
    return c;
}

double plain_forward_ms(const Case& c) {
    const auto t0 = std::chrono::steady_clock::now();
    sctape::Beam<double> beam = sctape::make_beam<double>(c.beam);
    sctape::track(beam, c.tracking);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void gradient_time(benchmark::State& state, sctape::Strategy strategy) {
    const Case c = drift_case(state.range(0), int(state.range(1)), 1e-3 * double(state.range(2)));
    sctape::GradientRequest request;
    request.strategy = strategy;
    request.gradients = {"bunch_charge_C"};
    const double inf = std::numeric_limits<double>::infinity();
    double plain = inf, forward = inf, backward = inf;
    std::map<std::string, double> by_scope;
    plain_forward_ms(c);  // warm-up: the heap's first growth, FFTW's first plans of this shape
    for (auto _ : state) {
        for (int r = 0; r < kRepeats; ++r) {
            plain = std::min(plain, plain_forward_ms(c));
            const sctape::GradientResult g = sctape::compute_gradient<double>(c.beam, c.tracking, request);
            forward = std::min(forward, 1e3 * g.forward_seconds);
            backward = std::min(backward, 1e3 * g.backward_seconds);
            for (const auto& [scope, s] : g.backward_seconds_by_scope)
                by_scope[scope] = std::min(by_scope.count(scope) ? by_scope[scope] : inf, 1e3 * s);
        }
    }
    state.counters["plain_forward_ms"] = plain;
    state.counters["forward_ms"] = forward;
    state.counters["backward_ms"] = backward;
    for (const auto& [scope, ms] : by_scope) state.counters["backward_" + scope + "_ms"] = ms;
    state.counters["gradient_over_plain"] = (forward + backward) / plain;
    state.counters["gradient_over_own_forward"] = (forward + backward) / forward;
    state.counters["kicks"] = 10;
    state.counters["repeats"] = kRepeats;
}

}  // namespace

void register_gradient_time() {
    const char* quick = std::getenv("SCTAPE_BENCH_QUICK");
    const bool small = quick && std::strcmp(quick, "1") == 0;
    const std::int64_t n_particles = small ? 2000 : 100000;
    const int grid = small ? 8 : 32;
    for (auto [name, strategy] : {std::pair{"gradient_time/fused", sctape::Strategy::fused},
                                  std::pair{"gradient_time/checkpoint", sctape::Strategy::checkpoint},
                                  std::pair{"gradient_time/reversible", sctape::Strategy::reversible}})
        benchmark::RegisterBenchmark(name, gradient_time, strategy)
            ->Args({n_particles, grid, 0})
            ->Args({n_particles, grid, 50})
            ->ArgNames({"N_part", "grid", "cell_quantum_permille"})
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
}
