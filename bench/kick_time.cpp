// kick_time — wall time of one forward space-charge kick and of each of its
// substeps, float32 and float64: on the CPU with one thread and all threads
// (N_part = 1e5, 32^3 and 64^3), or on the GPU with `--backend cuda` (1e5
// with 32^3, 1e6 with 64^3 and 128^3).
//
//   sctape-bench --benchmark_filter=kick_time --benchmark_out=kick_time.json
//   sctape-bench --backend cuda --benchmark_filter=kick_time
//
// Names: kick_time/<dtype>/N_part:<n>/grid:<n>/threads:<t> (CPU) or
// kick_time_gpu/<dtype>/N_part:<n>/grid:<n>; user counters <substep>_ms hold
// the mean time per kick of each substep (CUDA events on the GPU). On the GPU
// also: kick_ms (a whole kick without events), graph_kick_ms (the kick
// replayed as one CUDA graph), adjoint_ms (the kick's adjoint) and
// host_waits_per_kick (0: a kick never waits on the host). On the CPU
// also: kick_ms (their sum); fft_floor_ms, one r2c and one c2r of the whole
// doubled grid with the kick's own FFTW plans (the classic Hockney kick runs
// three); kick_over_fft_floor, their ratio; green_uncached_ms, one IGF and
// spectrum build (the repeated kick here reuses its IGF: same geometry).
#include "kick_time.hpp"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>

#include "core/fft_cpu.hpp"
#include "physics/beam.hpp"
#include "physics/grid_ops.hpp"
#include "physics/space_charge.hpp"
#ifdef SCTAPE_HAVE_CUDA
#include "cuda/device.hpp"
#include "cuda/gpu_tracking.hpp"
#endif

sctape::BeamParameters kick_beam(std::int64_t n_particles) {
    sctape::BeamParameters p;
    p.n_particles = n_particles;
    p.bunch_charge_C = 1e-9;
    const double bg = sctape::Reference::from_kinetic(p.species.mass_eV, p.kinetic_energy_eV).beta_gamma();
    p.distribution.size_m = {1e-3, 1e-3, 1e-3 / bg};
    return p;
}

namespace {

sctape::GridSettings cubic_grid(int n) {
    sctape::GridSettings grid;
    grid.shape = {n, n, n};
    return grid;
}

// Per-substep counters from seconds accumulated before and after the timed loop.
void substep_counters(benchmark::State& state, const std::array<double, sctape::kSubstepCount>& before,
                      const std::array<double, sctape::kSubstepCount>& after, std::int64_t n_part, int n) {
    for (sctape::Substep s : sctape::kAllSubsteps) {
        const int i = static_cast<int>(s);
        state.counters[std::string(sctape::substep_name(s)) + "_ms"] =
            1e3 * (after[i] - before[i]) / static_cast<double>(state.iterations());
    }
    state.counters["N_part"] = static_cast<double>(n_part);
    state.counters["N_cells"] = static_cast<double>(n) * n * n;
}

// The fastest of `repeats` runs of work(), in ms.
template <class Work>
double min_ms(int repeats, Work&& work) {
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        work();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

// One forward r2c and one inverse c2r of the doubled grid, through the plans
// the kick's convolver holds: the floor of a kick that transforms it whole.
template <class T>
double fft_floor_ms(sctape::SpaceChargeKick<T>& kick) {
    const sctape::RealFft3d<T>& fft = kick.convolver().doubled_fft();
    sctape::HostArray<T> real(fft.real_size(), T(1));
    sctape::HostArray<std::complex<T>> spectrum(fft.spectrum_size());
    return min_ms(5, [&] {
        fft.forward(real.data(), spectrum.data());
        fft.inverse(spectrum.data(), real.data());
    });
}

// The IGF and its spectrum built anew (what `green` costs when the geometry changes).
template <class T>
double green_uncached_ms(sctape::SpaceChargeKick<T>& kick, double gamma, int threads) {
    sctape::HostArray<T> green(kick.green_function().size()), spectrum(kick.green_spectrum().size());
    return min_ms(3, [&] {
        sctape::build_green(kick.geometry(), gamma, threads, green.data());
        kick.convolver().green_spectrum(green.data(), spectrum.data());
    });
}

template <class T>
void kick_time(benchmark::State& state) {
    const sctape::BeamParameters p = kick_beam(state.range(0));
    const int n = static_cast<int>(state.range(1));
    sctape::Beam<T> beam = sctape::make_beam<T>(p);
    const int threads = static_cast<int>(state.range(2));
    sctape::SpaceChargeKick<T> kick(cubic_grid(n), threads);
    kick.apply(beam, 1e-3);  // warm-up: first touch of every buffer
    const auto warm = kick.seconds();
    for (auto _ : state) kick.apply(beam, 1e-3);
    substep_counters(state, warm, kick.seconds(), p.n_particles, n);
    double kick_ms = 0;
    for (sctape::Substep s : sctape::kAllSubsteps) kick_ms += state.counters[std::string(sctape::substep_name(s)) + "_ms"];
    const double floor_ms = fft_floor_ms(kick);
    state.counters["kick_ms"] = kick_ms;
    state.counters["fft_floor_ms"] = floor_ms;
    state.counters["kick_over_fft_floor"] = kick_ms / floor_ms;
    state.counters["green_uncached_ms"] = green_uncached_ms(kick, beam.reference.gamma, threads);
}

#ifdef SCTAPE_HAVE_CUDA
// Wall ms per call of work() over `count` calls, the device drained before and after.
template <class T, class Work>
double gpu_ms_per(sctape::GpuTracker<T>& gpu, int count, Work&& work) {
    gpu.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) work();
    gpu.synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / count;
}

// The benchmark's iterations time the kick with substep events (their
// counters); then, without events: kick_ms (the kick as queued by kick()),
// graph_kick_ms (replayed as one CUDA graph), adjoint_ms (its adjoint, as a
// fused backward runs it) and host_waits_per_kick (over the kick_ms loop).
template <class T>
void kick_time_gpu(benchmark::State& state) {
    const sctape::BeamParameters p = kick_beam(state.range(0));
    const int n = static_cast<int>(state.range(1));
    const sctape::Beam<T> beam = sctape::make_beam<T>(p);
    sctape::GpuTracker<T> gpu(beam, true, cubic_grid(n));
    gpu.kick(1e-3);  // warm-up: cuFFT plans, pool
    gpu.synchronize();
    const auto warm = gpu.seconds();
    for (auto _ : state) {
        gpu.kick(1e-3);
        gpu.synchronize();
    }
    substep_counters(state, warm, gpu.seconds(), p.n_particles, n);

    constexpr int kRepeats = 20;
    gpu.set_substep_timing(false);
    const std::int64_t waits = sctape::cuda::host_waits();
    const double kick_ms = gpu_ms_per(gpu, kRepeats, [&] { gpu.kick(1e-3); });
    state.counters["host_waits_per_kick"] = double(sctape::cuda::host_waits() - waits - 4) / kRepeats;  // 2 synchronize()s
    state.counters["kick_ms"] = kick_ms;
    try {  // a failed capture (something in the kick waits or blocks) leaves the counter out
        gpu.capture_kick(1e-3);
        state.counters["graph_kick_ms"] = gpu_ms_per(gpu, kRepeats, [&] { gpu.replay_kick(); });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kick_time_gpu: no CUDA graph of the kick: %s\n", e.what());
    }

    // the adjoint of one kick at this state (a drift of one slice of 1 mm)
    sctape::GpuKickSaved<T> saved;
    for (int c = 0; c < 6; ++c) saved.input[c] = gpu.snapshot(static_cast<sctape::GpuBuffer>(c));
    gpu.kick(1e-3);
    saved.rho = gpu.snapshot(sctape::GpuBuffer::charge_density);
    saved.phi = gpu.snapshot(sctape::GpuBuffer::potential);
    std::array<sctape::HostArray<T>, 6> seed;
    for (auto& column : seed) column.assign(std::size_t(p.n_particles), T(1));
    gpu.set_adjoint(seed);
    const sctape::Lattice lattice = {sctape::Element(1e-3, 1)};
    sctape::ParameterAdjoints params;
    params.start(lattice);
    state.counters["adjoint_ms"] = gpu_ms_per(gpu, 5, [&] { gpu.kick_adjoint(saved, 1e-3, 0, 1, params); });
    gpu.get_adjoint(seed);
}
#endif

}  // namespace

void register_kick_time(sctape::Backend backend) {
#ifdef SCTAPE_HAVE_CUDA
    if (backend == sctape::Backend::cuda) {
        for (auto [name, fn] : {std::pair{"kick_time_gpu/float32", kick_time_gpu<float>},
                                std::pair{"kick_time_gpu/float64", kick_time_gpu<double>}})
            benchmark::RegisterBenchmark(name, fn)
                ->Args({100000, 32})->Args({1000000, 64})->Args({1000000, 128})
                ->ArgNames({"N_part", "grid"})->Unit(benchmark::kMillisecond)->UseRealTime();
        return;
    }
#endif
    (void)backend;
    const int all = omp_get_max_threads();
    for (auto [name, fn] : {std::pair{"kick_time/float32", kick_time<float>}, std::pair{"kick_time/float64", kick_time<double>}}) {
        auto* b = benchmark::RegisterBenchmark(name, fn);
        for (int n : {32, 64}) {
            b->Args({100000, n, 1});
            if (all > 1) b->Args({100000, n, all});
        }
        b->ArgNames({"N_part", "grid", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
    }
}
