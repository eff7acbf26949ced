// kick_memory — what reverse mode keeps per space-charge kick, per strategy
// and dtype: tape bytes per substep, allocator growth, peak, and the forward
// and backward times, for a sweep over N_part, the grid and N_kicks.
//
//   sctape-bench --benchmark_filter=kick_memory/fused/float32 --benchmark_out=sweep.json
//
// Names: kick_memory/<strategy>/<dtype>/N_part:<n>/grid:<nx>x<ny>x<nz>/N_kicks:<k>,
// strategies fused, autograd, checkpoint, reversible and binomial (checkpoint
// with 4 snapshots; N_kicks sweep only).
// Counters, per kick (the growth of the lattice's last slice, so the steady
// cost of one more kick) unless named *_total: tape_bytes, tape_<scope>_bytes,
// alloc_delta_bytes, alloc_<scope>_bytes (scopes: the eight substeps, drift,
// checkpoint, reversible), tape_bytes_total, peak_bytes_total, forward_ms,
// backward_ms, max_states_held, max_recomputations, forward_working_set_bytes,
// N_part, N_cells, N_kicks. The benchmark MemoryManager reports the tracking allocator.
//
// With `--backend cuda` the sweep runs the strategies the CUDA backend has
// (fused, checkpoint, binomial, reversible) on the GPU and every byte counter is device
// memory (cuda::device_memory()); the sweep adds N_part = 1e6 with 64^3 and
// 128^3 grids (float32) for the forward and forward+backward times per kick.
#include <benchmark/benchmark.h>

#include <array>
#include <string>

#include <fftw3.h>
#include <omp.h>

#include <cstdlib>

#include "core/backend.hpp"
#include "ad/gradient.hpp"
#include "config.hpp"
#include "kick_time.hpp"
#ifdef SCTAPE_HAVE_CUDA
#include "cuda/device.hpp"
#include "cuda/gpu_tracking.hpp"
#endif

namespace {

using sctape::Strategy;

struct Case {
    std::int64_t n_part;
    std::array<int, 3> grid;
    int kicks;
};

// A strategy as swept: "binomial" is checkpoint with a snapshot budget.
// `time_factor` is its time relative to fused for one case, for balancing
// shards only (rounded from the committed CPU sweep, results/sweep_cpu.json).
struct Variant {
    const char* label;
    Strategy strategy;
    int snapshots;
    double time_factor;
};

sctape::Backend g_backend = sctape::Backend::cpu;  // set by plan_kick_memory

// The allocator whose bytes the sweep reports: host, or device on the GPU.
sctape::MemoryTracker& memory() {
#ifdef SCTAPE_HAVE_CUDA
    if (g_backend == sctape::Backend::cuda) return sctape::cuda::device_memory();
#endif
    return sctape::host_memory();
}

// Peak bytes of a plain forward pass over one slice: the working set that the
// reverse-mode strategies are compared with.
template <class T>
std::int64_t forward_working_set(const sctape::BeamParameters& beam, sctape::TrackSettings tracking) {
    tracking.lattice = {{tracking.lattice[0].length_m / tracking.lattice[0].slices, 1}};
    auto& mem = memory();
#ifdef SCTAPE_HAVE_CUDA
    if (g_backend == sctape::Backend::cuda) {  // the tracker's device buffers; the host beam is not counted
        sctape::Beam<T> b = sctape::make_beam<T>(beam);
        const std::int64_t start = mem.current_bytes();
        mem.reset_peak();
        sctape::track_on_gpu(b, tracking, {});
        return mem.peak_bytes() - start;
    }
#endif
    const std::int64_t start = mem.current_bytes();
    mem.reset_peak();
    {
        sctape::Beam<T> b = sctape::make_beam<T>(beam);
        sctape::track(b, tracking);
    }
    return mem.peak_bytes() - start;
}

// The long-lattice runs: examples/fodo_cell.json's matched waterbag beam
// (10 pC, 10 MeV electrons) through its FODO cell (half focusing quadrupole,
// drift, defocusing quadrupole, drift, half focusing quadrupole; 1.0 m,
// 10 kicks), repeated N_kicks / 10 times: a ring.
const sctape::RunConfig& fodo_cell() {
    static const sctape::RunConfig config = sctape::load_config(SCTAPE_FODO_CELL);
    return config;
}

sctape::Lattice fodo_ring(int kicks) {
    const sctape::Lattice& cell = fodo_cell().tracking.lattice;
    sctape::Lattice ring;
    for (int i = 0; i < kicks / 10; ++i) ring.insert(ring.end(), cell.begin(), cell.end());
    return ring;
}

sctape::BeamParameters ring_beam(std::int64_t n_particles) {
    sctape::BeamParameters p = fodo_cell().beam;
    p.n_particles = n_particles;
    return p;
}

bool g_ring = false;  // SCTAPE_BENCH_LONG=1: the runs track through fodo_ring

template <class T>
void kick_memory(benchmark::State& state, Variant variant, Case c) {
    const sctape::BeamParameters beam = g_ring ? ring_beam(c.n_part) : kick_beam(c.n_part);
    sctape::TrackSettings tracking;
    tracking.lattice = g_ring ? fodo_ring(c.kicks) : sctape::Lattice{{0.01 * c.kicks, c.kicks}};
    tracking.grid.shape = c.grid;
    tracking.threads = 1;
    sctape::GradientRequest request;
    request.strategy = variant.strategy;
    request.snapshots = variant.snapshots;
    request.backend = g_backend;
    sctape::GradientResult r;
    for (auto _ : state) r = sctape::compute_gradient<T>(beam, tracking, request);
    const auto& m = r.memory;
    // per kick: what the last slice added, the steady cost of one more kick
    auto value = [](const std::map<std::string, std::int64_t>& by_scope, const std::string& scope) {
        const auto it = by_scope.find(scope);
        return it == by_scope.end() ? 0.0 : double(it->second);
    };
    std::vector<std::string> scopes = {"drift", "checkpoint", "reversible"};
    for (sctape::Substep s : sctape::kAllSubsteps) scopes.push_back(sctape::substep_name(s));
    for (const std::string& scope : scopes) {
        state.counters["tape_" + scope + "_bytes"] = value(m.last_slice_tape_bytes_by_scope, scope);
        state.counters["alloc_" + scope + "_bytes"] = value(m.last_slice_allocator_delta_by_scope, scope);
    }
    state.counters["tape_bytes"] = double(m.last_slice_tape_bytes);
    state.counters["alloc_delta_bytes"] = double(m.last_slice_allocator_delta);
    state.counters["tape_bytes_total"] = double(m.tape_bytes);
    state.counters["peak_bytes_total"] = double(m.peak_bytes);
    state.counters["forward_ms"] = 1e3 * r.forward_seconds;
    state.counters["backward_ms"] = 1e3 * r.backward_seconds;
    state.counters["N_part"] = double(c.n_part);
    state.counters["N_cells"] = double(c.grid[0]) * c.grid[1] * c.grid[2];
    state.counters["N_kicks"] = m.kicks;
    state.counters["max_states_held"] = m.max_states_held;
    state.counters["max_recomputations"] = m.max_recomputations;
    state.counters["forward_working_set_bytes"] = double(forward_working_set<T>(beam, tracking));
}

// Reports the tracking allocator to Google Benchmark's memory columns.
class TrackingMemoryManager : public benchmark::MemoryManager {
public:
    void Start() override {
        auto& mem = memory();
        start_current_ = mem.current_bytes();
        start_allocs_ = mem.allocations();
        start_allocated_ = mem.allocated_bytes();
        mem.reset_peak();
    }
    void Stop(Result* result) override {
        auto& mem = memory();
        result->num_allocs = mem.allocations() - start_allocs_;
        result->max_bytes_used = mem.peak_bytes() - start_current_;
        result->total_allocated_bytes = mem.allocated_bytes() - start_allocated_;
        result->net_heap_growth = mem.current_bytes() - start_current_;
    }

private:
    std::int64_t start_current_ = 0, start_allocs_ = 0, start_allocated_ = 0;
};

std::string case_name(const char* strategy, const char* dtype, const Case& c) {
    return std::string("kick_memory/") + strategy + "/" + dtype + "/N_part:" + std::to_string(c.n_part) +
           "/grid:" + std::to_string(c.grid[0]) + "x" + std::to_string(c.grid[1]) + "x" + std::to_string(c.grid[2]) +
           "/N_kicks:" + std::to_string(c.kicks);
}

// The default sweep (docs/scaling-suite.md); SCTAPE_BENCH_QUICK=1 a
// CI subset; SCTAPE_BENCH_LONG=1 replaces it by 10, 100 and 1000-kick lattices.
std::vector<Case> sweep(bool quick) {
    std::vector<Case> cases;
    const std::vector<std::int64_t> parts = quick ? std::vector<std::int64_t>{1000, 10000}
                                                  : std::vector<std::int64_t>{1000, 10000, 100000, 1000000};
    const std::vector<int> grids = quick ? std::vector<int>{8, 16} : std::vector<int>{8, 16, 32, 64};
    // two kicks: the second one's growth is the steady per-kick cost
    for (auto n : parts)
        for (int g : grids) cases.push_back({n, {g, g, g}, 2});
    cases.push_back({quick ? 10000 : 100000, {16, 16, 64}, 2});
    cases.push_back({quick ? 10000 : 100000, {32, 16, 8}, 2});
    // N_kicks = 2 of this case is already in the grid sweep above
    for (int k : quick ? std::vector<int>{1, 4} : std::vector<int>{1, 4, 8, 16})
        cases.push_back({quick ? 10000 : 100000, {16, 16, 16}, k});
    return cases;
}

template <class T>
KickMemoryRun planned_run(const char* dtype, const Variant& v, const Case& c) {
    const std::string name = case_name(v.label, dtype, c);
    const double cells = double(c.grid[0]) * c.grid[1] * c.grid[2];
    // time ~ N_kicks (N_part + N_cells), a cell costing about what a particle
    // does (fitted on the committed CPU sweep: 1.0-2.0x); float64 about 1.5x
    const double dtype_factor = sizeof(T) == 8 ? 1.5 : 1.0;
    const double work = double(c.kicks) * (double(c.n_part) + cells) * v.time_factor * dtype_factor;
    auto register_run = [name, v, c] {
        benchmark::RegisterBenchmark(name.c_str(), kick_memory<T>, v, c)->Iterations(1)->Unit(benchmark::kMillisecond);
    };
    return {name + "/iterations:1", work, register_run};  // Google Benchmark appends the iterations
}

// Adds the float32 and float64 runs of a variant and case to `runs`, as asked.
void plan_case(std::vector<KickMemoryRun>& runs, const Variant& v, const Case& c, bool float32, bool float64) {
    if (float32) runs.push_back(planned_run<float>("float32", v, c));
    if (float64) runs.push_back(planned_run<double>("float64", v, c));
}

bool env_is(const char* name, const char* value) {
    const char* v = std::getenv(name);
    return v && std::string(v) == value;
}

const Variant kFused{"fused", Strategy::fused, 0, 1.0}, kAutograd{"autograd", Strategy::autograd, 0, 2.0},
    kCheckpoint{"checkpoint", Strategy::checkpoint, 0, 1.25}, kReversible{"reversible", Strategy::reversible, 0, 1.5};

}  // namespace

std::vector<KickMemoryRun> plan_kick_memory(sctape::Backend backend) {
    std::vector<KickMemoryRun> runs;
    g_backend = backend;
    const bool gpu = backend == sctape::Backend::cuda;
    if (env_is("SCTAPE_BENCH_LONG", "1")) {
        // a matched FODO ring (1e5 particles, 32^3, float64): memory and time vs N_kicks.
        // At 10^4 kicks fused and checkpoint would keep 53 and 48 GB (sctape plan), more
        // than a 24 GB machine has; autograd fits at 10 kicks (1.3 GB), not at 100 (12 GB).
        g_ring = true;
        for (int kicks : {10, 100, 1000, 10000}) {
            const Case c{100000, {32, 32, 32}, kicks};
            const Variant binomial{"binomial", Strategy::checkpoint, 10, 1.5};
            for (const Variant& v : {kFused, kCheckpoint})
                if (kicks <= 1000) plan_case(runs, v, c, false, true);
            for (const Variant& v : {kReversible, binomial}) plan_case(runs, v, c, false, true);
            if (kicks == 10) plan_case(runs, kAutograd, c, false, true);
        }
    } else {
        const bool quick = env_is("SCTAPE_BENCH_QUICK", "1");
        std::vector<Case> cases = sweep(quick);
        if (gpu && !quick)  // the timing points: 1e6 particles, 64^3 and 128^3, float32
            for (int g : {64, 128}) cases.push_back({1000000, {g, g, g}, 2});
        for (const Case& c : cases) {
            const bool timing_point = c.n_part == 1000000 && c.grid[0] == 128;
            for (const Variant& v : {kFused, kAutograd, kCheckpoint, kReversible})
                plan_case(runs, v, c, true, !timing_point);
            if (c.grid == std::array<int, 3>{16, 16, 16} && c.n_part == (quick ? 10000 : 100000))
                plan_case(runs, Variant{"binomial", Strategy::checkpoint, 4, 1.5}, c, true, true);
        }
    }
    static TrackingMemoryManager manager;
    benchmark::RegisterMemoryManager(&manager);
    benchmark::AddCustomContext("sctape_version", SCTAPE_VERSION);
    benchmark::AddCustomContext("backend", sctape::backend_name(backend));
    const sctape::GpuProbe probe = sctape::probe_gpu();
    benchmark::AddCustomContext("device", gpu ? "gpu: " + probe.description
                                              : "cpu: " + std::to_string(omp_get_num_procs()) + " cores");
    benchmark::AddCustomContext("gpu_probe", probe.description);
    benchmark::AddCustomContext("memory_space", gpu ? "device (cuda::device_memory)" : "host (host_memory)");
    benchmark::AddCustomContext("threads", "1");
    benchmark::AddCustomContext("lattice", g_ring ? "FODO ring: N_kicks/10 cells of examples/fodo_cell.json (10 kicks), "
                                                    "its matched waterbag beam (10 pC, 10 MeV electrons)"
                                                  : "a drift of 0.01 m per kick");
    benchmark::AddCustomContext("fftw_version", fftw_version);
    benchmark::AddCustomContext("compiler", __VERSION__);
    benchmark::AddCustomContext("dtypes", "float32 and float64 (in each run's name)");
    benchmark::AddCustomContext("units", "bytes for *_bytes*, milliseconds for *_ms, per kick unless *_total");
    return runs;
}
