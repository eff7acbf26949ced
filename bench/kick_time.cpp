// kick_time — wall time of one forward space-charge kick and of each of its
// substeps, float32 and float64, one thread and all threads.
//
//   sctape-bench --benchmark_filter=kick_time --benchmark_out=kick_time.json
//
// Benchmarks are named kick_time/<dtype>/N_part:<n>/grid:<n>/threads:<t>;
// user counters <substep>_ms hold the mean time per kick of each substep.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>

#include "beam.hpp"
#include "space_charge.hpp"

namespace {

template <class T>
void kick_time(benchmark::State& state) {
    sctape::BeamParameters p;
    p.n_particles = state.range(0);
    p.bunch_charge_C = 1e-9;
    const double bg = sctape::Reference::from_kinetic(p.species.mass_eV, p.kinetic_energy_eV).beta_gamma();
    p.distribution.size_m = {1e-3, 1e-3, 1e-3 / bg};
    sctape::GridSettings grid;
    const int n = static_cast<int>(state.range(1));
    grid.shape = {n, n, n};
    const int threads = static_cast<int>(state.range(2));
    sctape::Beam<T> beam = sctape::make_beam<T>(p);
    sctape::SpaceChargeKick<T> kick(grid, threads);
    kick.apply(beam, 1e-3);  // warm-up: first-touch of every buffer
    const auto warm = kick.seconds();
    for (auto _ : state) kick.apply(beam, 1e-3);
    for (sctape::Substep s : sctape::kAllSubsteps) {
        const int i = static_cast<int>(s);
        state.counters[std::string(sctape::substep_name(s)) + "_ms"] =
            1e3 * (kick.seconds()[i] - warm[i]) / static_cast<double>(state.iterations());
    }
    state.counters["N_part"] = static_cast<double>(p.n_particles);
    state.counters["N_cells"] = static_cast<double>(n) * n * n;
}

void kick_args(benchmark::internal::Benchmark* b) {
    const int all = omp_get_max_threads();
    for (int threads : {1, all}) {
        b->Args({100000, 32, threads});
        if (all == 1) break;
    }
    b->ArgNames({"N_part", "grid", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK_TEMPLATE(kick_time, float)->Name("kick_time/float32")->Apply(kick_args);
BENCHMARK_TEMPLATE(kick_time, double)->Name("kick_time/float64")->Apply(kick_args);

}  // namespace

BENCHMARK_MAIN();
