// test_gpu.cpp — the CUDA backend (built with SCTAPE_CUDA only).
//
// [gpu]            need a usable GPU: the device kick and tracking against the
//                  CPU, the deterministic deposit, the device allocator, errors,
//                  and reverse mode (fused, checkpoint and reversible gradients
//                  against the CPU, tape bytes identical, allocator growth =
//                  tape bytes, reversible's undo bit for bit).
//                  ctest runs them as one entry, `gpu_tests`, with
//                  --gpu-or-skip: without a GPU the binary exits 77 and ctest
//                  reports the entry as skipped (never as passed). Run without
//                  that flag on a machine with no GPU, each [gpu] test fails.
// The per-element bodies these kernels run are tested without a GPU, in
// every build, by test_kernel_bodies.cpp.
//
// Tolerances (max over particles of |difference| / rms of the CPU kick):
//  - float64 GPU vs CPU, 1e-12: the two differ by summation order (atomic
//    deposit, FFT library), FMA contraction and 1–3 ulp of the device's
//    asinh/atan in the IGF. Perturbing every IGF corner value by 3 ulp moves
//    the 32^3 kick by 6e-14 of its rms (measured), so 1e-12 has a 15x margin
//    and still catches any indexing or formula error (those are O(1)).
//  - float32 GPU vs CPU, 2e-4: float32 vs float64 on the CPU differ by up to
//    8e-6 of the rms (32^3, 1e5 particles; measured), and the CPU's own
//    1-vs-4-thread deposit order by the same amount; 2e-4 is 25x that.
//  - GPU gradients vs CPU gradients (same strategy): float64 1e-9
//    relative (atomic summation order in the deposit, the gather adjoint's
//    grid scatter and the block sums; measured differences are O(1e-13)
//    on the forward kick, and a gradient sums ~1e6 such terms); float32 5e-4
//    relative (float32 vs float64 on the CPU differ by up to 1.7e-5 on the
//    gradients and 5.6e-6 of the largest coordinate adjoint for this run,
//    measured; the GPU's float32 summation-order noise is of that size, and
//    5e-4 is 30x it).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/communicator.hpp"
#include "physics/beam.hpp"
#include "physics/constants.hpp"
#include "cuda/device.hpp"
#include "cuda/gpu_reversible.hpp"
#include "cuda/gpu_tracking.hpp"
#include "ad/gradient.hpp"
#include "physics/grid_ops.hpp"
#include "physics/space_charge.hpp"
#include "physics/tracking.hpp"
#include "support/beams.hpp"
#include "support/strategy_matrix.hpp"

using namespace sctape;
using namespace sctape::test;

namespace {


bool gpu_usable(std::string* why = nullptr) {
    static const GpuProbe probe = probe_gpu();
    if (why) *why = probe.description;
    return probe.usable;
}

// Every [gpu] test starts with this: without a GPU it fails (never passes silently).
#define REQUIRE_GPU()                                                             \
    do {                                                                          \
        std::string why_;                                                         \
        const bool usable_ = gpu_usable(&why_);                                   \
        INFO("no usable GPU: " << why_ << " (ctest runs this with --gpu-or-skip)"); \
        REQUIRE(usable_);                                                         \
    } while (0)

}  // namespace

// ================================================================ GPU

TEST_CASE("GPU kick matches the CPU kick in float64", "[gpu]") {
    REQUIRE_GPU();
    for (auto type : {DistributionType::uniform_ellipsoid, DistributionType::gaussian}) {
        for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma}) {
            INFO("distribution " << int(type) << ", extent mode " << int(mode));
            const Beam<double> start = make_beam<double>(sphere(100000, type));
            const GridSettings settings = grid32(mode);
            Beam<double> cpu = start, gpu = start;
            SpaceChargeKick<double> kick(settings, 4);
            kick.apply(cpu, 0.1);
            GpuTracker<double> tracker(gpu, true, settings);
            tracker.kick(0.1);
            tracker.download(gpu);
            const GridGeometry& gc = kick.geometry();
            const GridGeometry& gg = tracker.geometry();
            CHECK(gg.n == gc.n);
            for (int a = 0; a < 3; ++a) {
                CHECK(gg.origin_m[a] == Approx(gc.origin_m[a]).epsilon(1e-14).margin(1e-300));
                CHECK(gg.cell_m[a] == Approx(gc.cell_m[a]).epsilon(1e-14));
            }
            const std::vector<double> rho = tracker.charge_density();
            const HostArray<double>& rho_cpu = kick.charge_density();
            double d = 0, m = 0, total = 0;
            for (std::size_t c = 0; c < rho.size(); ++c) {
                d = std::max(d, std::abs(rho[c] - rho_cpu[c]));
                m = std::max(m, std::abs(rho_cpu[c]));
                total += rho[c];
            }
            CHECK(d <= 1e-13 * m);
            // total deposited charge = Q
            CHECK(std::abs(total * gg.cell_volume_m3()) == Approx(start.bunch_charge_C).epsilon(1e-12));
            check_agreement(start, cpu, gpu, 1e-12, 1e-14);
        }
    }
}

TEST_CASE("GPU kick matches the CPU kick in float32", "[gpu]") {
    REQUIRE_GPU();
    const Beam<float> start = make_beam<float>(sphere(100000));
    Beam<float> cpu = start, gpu = start;
    SpaceChargeKick<float> kick(grid32(), 4);
    kick.apply(cpu, 0.1);
    GpuTracker<float> tracker(gpu, true, grid32());
    tracker.kick(0.1);
    tracker.download(gpu);
    check_agreement(start, cpu, gpu, 2e-4, 1e-6);
}

TEST_CASE("GPU tracking over a few kicks matches the CPU tracking", "[gpu]") {
    REQUIRE_GPU();
    TrackSettings s;
    s.lattice = {{0.3, 3}, {0.2, 2}};
    s.grid = grid32();
    s.threads = 4;
    SECTION("float64") {
        const Beam<double> start = make_beam<double>(sphere(50000));
        Beam<double> cpu = start, gpu = start;
        const TrackReport rc = track(cpu, s);
        const TrackReport rg = track_on_gpu(gpu, s, {});
        CHECK(rg.kicks == rc.kicks);
        CHECK(rg.kicks == 5);
        for (double t : rg.substep_seconds) CHECK(t > 0);
        CHECK(rg.drift_seconds > 0);
        check_agreement(start, cpu, gpu, 1e-12, 1e-13);
    }
    SECTION("float32") {
        const Beam<float> start = make_beam<float>(sphere(50000));
        Beam<float> cpu = start, gpu = start;
        track(cpu, s);
        track_on_gpu(gpu, s, {});
        check_agreement(start, cpu, gpu, 1e-3, 1e-5);
    }
    SECTION("drifts only") {
        s.space_charge = false;
        const Beam<double> start = [] {
            Beam<double> b = make_beam<double>(sphere(10000, DistributionType::gaussian));
            for (std::int64_t p = 0; p < b.size(); ++p) b.px[p] = 1e-4 * b.x[p] / 1e-3, b.delta[p] = 1e-3 * b.y[p] / 1e-3;
            return b;
        }();
        Beam<double> cpu = start, gpu = start;
        track(cpu, s);
        const TrackReport rg = track_on_gpu(gpu, s, {});
        CHECK(rg.kicks == 0);
        for (std::int64_t p = 0; p < start.size(); ++p) {
            CHECK(gpu.x[p] == Approx(cpu.x[p]).epsilon(1e-14));
            CHECK(gpu.tau[p] == Approx(cpu.tau[p]).epsilon(1e-14).margin(1e-25));
        }
    }
}

TEST_CASE("deterministic deposit is bitwise reproducible run to run", "[gpu]") {
    REQUIRE_GPU();
    TrackSettings s;
    s.lattice = {{0.4, 4}};
    s.grid = grid32();
    GpuOptions det;
    det.deterministic_deposit = true;
    const Beam<double> start = make_beam<double>(sphere(200000));
    Beam<double> a = start, b = start, cpu = start;
    track_on_gpu(a, s, {}, det);
    track_on_gpu(b, s, {}, det);
    for (int c = 0; c < 6; ++c) {
        const auto& ca = *a.columns()[c];
        const auto& cb = *b.columns()[c];
        CHECK(std::memcmp(ca.data(), cb.data(), ca.size() * sizeof(double)) == 0);
    }
    // and still the CPU's answer (weights rounded to 2^-44)
    s.threads = 4;
    track(cpu, s);
    check_agreement(start, cpu, a, 1e-11, 1e-13);
    // float32 too
    const Beam<float> startf = make_beam<float>(sphere(200000));
    Beam<float> fa = startf, fb = startf;
    track_on_gpu(fa, s, {}, det);
    track_on_gpu(fb, s, {}, det);
    for (int c = 0; c < 6; ++c)
        CHECK(std::memcmp(fa.columns()[c]->data(), fb.columns()[c]->data(), fa.x.size() * sizeof(float)) == 0);
}

TEST_CASE("device allocator: current bytes return to the start after kicks", "[gpu]") {
    REQUIRE_GPU();
    auto& mem = cuda::device_memory();
    const std::int64_t start = mem.current_bytes();
    const Beam<double> beam0 = make_beam<double>(sphere(50000));
    {
        Beam<double> beam = beam0;
        GpuTracker<double> tracker(beam, true, grid32());
        const std::int64_t built = mem.current_bytes();
        // coordinates + kick buffers + grids + FFT work area
        CHECK(built - start >= std::int64_t(6 * 50000 * sizeof(double) + 8 * 32768 * 8));
        mem.reset_peak();
        const std::int64_t allocations = mem.allocations();
        tracker.kick(0.1);
        tracker.kick(0.1);
        tracker.synchronize();
        // a kick allocates nothing (the IGF's float64 scratch lives in the pad buffer)
        CHECK(mem.allocations() == allocations);
        CHECK(mem.current_bytes() == built);
        CHECK(mem.peak_bytes() == built);
        const cuda::DeviceMemoryCheck check = cuda::check_device_memory();
        INFO(check.summary);
        CHECK(check.available);
        CHECK(check.consistent);
        CHECK(check.tracked_bytes == built);
    }
    CHECK(mem.current_bytes() == start);
    Beam<float> beam = make_beam<float>(sphere(20000));
    TrackSettings s;
    s.lattice = {{0.2, 2}};
    track_on_gpu(beam, s, {});
    CHECK(mem.current_bytes() == start);
    // the timeline carries the substep scopes
    mem.set_timeline(true);
    mem.clear_timeline();
    track_on_gpu(beam, s, {});
    mem.set_timeline(false);
    bool green_seen = false;
    for (const MemoryEvent& e : mem.timeline()) green_seen = green_seen || std::string(e.scope) == "green";
    CHECK(green_seen);
    mem.clear_timeline();
}

TEST_CASE("out of GPU memory is a runtime_error naming the request and the free memory", "[gpu][oom]") {
    REQUIRE_GPU();
    const std::int64_t start = cuda::device_memory().current_bytes();
    Beam<float> beam = make_beam<float>(sphere(1000));
    GridSettings huge;
    huge.shape = {4096, 4096, 4096};  // 256 GiB per float grid
    try {
        GpuTracker<float> tracker(beam, true, huge);
        FAIL("a 4096^3 grid fitted on the GPU");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK(what.find("out of GPU memory") != std::string::npos);
        CHECK(what.find("requested") != std::string::npos);
        CHECK(what.find("free") != std::string::npos);
    }
    CHECK(cuda::device_memory().current_bytes() == start);
    // the device still works afterwards
    TrackSettings s;
    s.lattice = {{0.1, 1}};
    track_on_gpu(beam, s, {});
}

TEST_CASE("GPU errors carry the CPU kick's messages", "[gpu]") {
    REQUIRE_GPU();
    auto messages = [](Beam<double> beam, const GridSettings& settings) {
        std::string cpu_msg, gpu_msg;
        try {
            Beam<double> b = beam;
            SpaceChargeKick<double> kick(settings, 2);
            kick.apply(b, 0.1);
        } catch (const std::runtime_error& e) {
            cpu_msg = e.what();
        }
        try {
            GpuTracker<double> tracker(beam, true, settings);
            tracker.kick(0.1);  // queued: the error is raised when the host looks
            tracker.synchronize();
        } catch (const std::runtime_error& e) {
            gpu_msg = e.what();
        }
        return std::make_pair(cpu_msg, gpu_msg);
    };
    const Beam<double> good = make_beam<double>(sphere(5000));
    {
        GridSettings s = grid32(ExtentMode::sigma);
        s.sigma_factor = {0.5, 0.5, 0.5};
        auto [c, g] = messages(good, s);
        CHECK_THAT(c, Catch::Contains("particles outside the grid"));
        CHECK(g == c);
    }
    {
        Beam<double> bad = good;
        bad.y[17] = std::numeric_limits<double>::quiet_NaN();
        auto [c, g] = messages(bad, grid32());
        CHECK_THAT(c, Catch::Contains("non-finite particle coordinate along y"));
        CHECK(g == c);
    }
    {
        Beam<double> bad = good;
        bad.px[3] = 2.0;  // transverse momentum above the total momentum
        auto [c, g] = messages(bad, grid32());
        CHECK_THAT(c, Catch::Contains("non-finite longitudinal momentum"));
        CHECK(g == c);
    }
    {
        GridSettings s = grid32();
        s.shape = {32, 1, 32};
        auto [c, g] = messages(good, s);
        CHECK_THAT(c, Catch::Contains("at least 2 nodes along y"));
        CHECK(g == c);
    }
}

TEST_CASE("auto backend picks the GPU", "[gpu]") {
    REQUIRE_GPU();
    std::string why;
    CHECK(resolve_backend(Backend::automatic, why) == Backend::cuda);
    CHECK_THAT(why, Catch::Contains("GPU"));
    CHECK(resolve_backend(Backend::cuda, why) == Backend::cuda);
    CHECK(resolve_backend(Backend::cpu, why) == Backend::cpu);
}

// ================================================================ main

// `--gpu-or-skip`: exit 77 (ctest SKIP_RETURN_CODE) when no GPU is usable.
int main(int argc, char** argv) {
    std::vector<char*> args;
    bool gpu_or_skip = false;
    for (int i = 0; i < argc; ++i) {
        if (i > 0 && std::strcmp(argv[i], "--gpu-or-skip") == 0) gpu_or_skip = true;
        else args.push_back(argv[i]);
    }
    if (gpu_or_skip) {
        std::string why;
        if (!gpu_usable(&why)) {
            std::printf("no usable GPU (%s): the [gpu] tests were NOT run (exit 77 = skipped)\n", why.c_str());
            return 77;
        }
        std::printf("GPU: %s\n", why.c_str());
    }
    return Catch::Session().run(int(args.size()), args.data());
}

// ================================================================ reverse mode on the GPU

namespace {

TrackSettings gradient_lattice(ExtentMode mode) {
    TrackSettings t;
    t.lattice = {{0.3, 3}, {0.2, 2}};  // two elements: per-element length gradients
    t.grid = grid32(mode);
    t.grid.shape = {16, 16, 16};
    return t;
}

// Every gradient and every initial-coordinate adjoint of the GPU run against
// the CPU's run of the same strategy, relative to the largest of its kind,
// and the two tapes buffer for buffer.
template <class T>
void gradients_agree(Strategy strategy, const TrackSettings& tracking, double tol) {
    const BeamParameters beam = sphere(20000, DistributionType::gaussian);
    GradientRequest req;
    req.strategy = strategy;
    req.snapshots = strategy == Strategy::checkpoint ? 2 : 0;
    req.objective = Objective::emittance_x;
    req.gradients = gradient_names(beam, tracking.lattice);
    const GradientResult cpu = compute_gradient<T>(beam, tracking, req);
    req.backend = Backend::cuda;
    const GradientResult gpu = compute_gradient<T>(beam, tracking, req);
    CHECK(std::abs(gpu.objective - cpu.objective) <= tol * std::abs(cpu.objective));
    for (const auto& [name, value] : cpu.gradients) {
        INFO(name << ": cpu " << value << ", gpu " << gpu.gradients.at(name));
        CHECK(std::abs(gpu.gradients.at(name) - value) <= tol * std::abs(value) + 1e-300);
    }
    for (int c = 0; c < 6; ++c) {
        INFO("column " << c);
        CHECK(relative_to_max(gpu.particle_gradient[c], cpu.particle_gradient[c]) <= tol);
    }
    CHECK(gpu.memory.bytes_after_backward == 0);
    // the same buffers on both tapes
    CHECK(gpu.memory.tape_bytes == cpu.memory.tape_bytes);
    CHECK(gpu.memory.tape_entries == cpu.memory.tape_entries);
    CHECK(gpu.memory.tape_bytes_by_scope == cpu.memory.tape_bytes_by_scope);
    CHECK(gpu.memory.last_slice_tape_bytes == cpu.memory.last_slice_tape_bytes);
    CHECK(gpu.memory.max_states_held == cpu.memory.max_states_held);
    CHECK(gpu.memory.max_recomputations == cpu.memory.max_recomputations);
}

template <class T>
void gradients_agree(Strategy strategy, ExtentMode mode, double tol) {
    gradients_agree<T>(strategy, gradient_lattice(mode), tol);
}

// A focusing and a defocusing quadrupole (the second used twice: one shared
// parameter), a drift and constant focusing: every element map and its
// parameter adjoints (lengths, strengths) on the device.
TrackSettings element_lattice() {
    TrackSettings t = gradient_lattice(ExtentMode::minmax);
    Element qf(0.2, 2, ElementKind::quadrupole), qd(0.2, 2, ElementKind::quadrupole);
    qf.k1_per_m2 = 3.0;
    qf.source = "lattice.0";
    qd.k1_per_m2 = -3.0;
    qd.source = "lattice.1";
    Element d(0.3, 1);
    d.source = "lattice.2";
    Element cf(0.3, 2, ElementKind::constant_focusing);
    cf.kx_per_m = 1.5;
    cf.ky_per_m = -0.5;
    cf.kt_per_m = 0.05;
    cf.source = "lattice.3";
    t.lattice = {qf, qd, d, qd, cf};
    return t;
}

}  // namespace

// Tolerance 1e-9 relative: the device's atomic summation order (this file's header).
TEST_CASE("GPU gradients through quadrupoles and constant focusing match the CPU, every strategy", "[gpu]") {
    REQUIRE_GPU();
    for (Strategy s : {Strategy::fused, Strategy::checkpoint, Strategy::reversible, Strategy::autograd}) {
        INFO("strategy " << strategy_name(s));
        gradients_agree<double>(s, element_lattice(), 1e-9);
    }
}

TEST_CASE("GPU fused gradients match the CPU in float64", "[gpu]") {
    REQUIRE_GPU();
    gradients_agree<double>(Strategy::fused, ExtentMode::minmax, 1e-9);
    gradients_agree<double>(Strategy::fused, ExtentMode::sigma, 1e-9);
}

TEST_CASE("GPU fused gradients match the CPU in float32", "[gpu]") {
    REQUIRE_GPU();
    gradients_agree<float>(Strategy::fused, ExtentMode::minmax, 5e-4);
}

TEST_CASE("GPU checkpoint gradients match the CPU", "[gpu]") {
    REQUIRE_GPU();
    gradients_agree<double>(Strategy::checkpoint, ExtentMode::minmax, 1e-9);
}

// Reversible on the GPU against reversible on the CPU: both differentiate at
// states quantized to 2^-50 of the range; the fields differ by summation
// order (as for fused), so the tolerances are fused's.
TEST_CASE("GPU reversible gradients match the CPU", "[gpu]") {
    REQUIRE_GPU();
    gradients_agree<double>(Strategy::reversible, ExtentMode::minmax, 1e-9);
    gradients_agree<double>(Strategy::reversible, ExtentMode::sigma, 1e-9);
    gradients_agree<float>(Strategy::reversible, ExtentMode::minmax, 5e-4);
}

// autograd on the GPU against autograd on the CPU: the same op chain saving
// the same buffers; scatter_add's atomics, the mirror / stencil adjoints'
// atomics and the device's tree sums change only the summation order, so the
// tolerances are fused's.
TEST_CASE("GPU autograd gradients match the CPU", "[gpu]") {
    REQUIRE_GPU();
    gradients_agree<double>(Strategy::autograd, ExtentMode::minmax, 1e-9);
    gradients_agree<double>(Strategy::autograd, ExtentMode::sigma, 1e-9);
    gradients_agree<float>(Strategy::autograd, ExtentMode::minmax, 5e-4);
}

// The CPU's strategy matrix (support/strategy_matrix.hpp), every case on the
// device: gradients against fused on the CPU, exact tape bytes, device
// memory returned.
TEST_CASE("strategy matrix on the GPU: gradients, tape bytes, memory returned", "[gpu]") {
    REQUIRE_GPU();
    const MatrixCase c = GENERATE(MatrixCase{Strategy::fused, 0, Backend::cuda},
                                  MatrixCase{Strategy::checkpoint, 0, Backend::cuda},
                                  MatrixCase{Strategy::checkpoint, 3, Backend::cuda},
                                  MatrixCase{Strategy::reversible, 0, Backend::cuda},
                                  MatrixCase{Strategy::autograd, 0, Backend::cuda});
    check_matrix_case<double>(c);
    check_matrix_case<float>(c);
}

// The undo recomputes each kick's field from the same positions; with the
// deterministic deposit every step of it gives the same bits, so 200 kicks
// stepped back land on every forward state exactly (the CPU test does 1000).
TEST_CASE("GPU reversible tracking rebuilds every state bit for bit", "[gpu]") {
    REQUIRE_GPU();
    const BeamParameters bp = sphere(5000, DistributionType::gaussian);
    TrackSettings tracking;
    tracking.lattice = {{2.0, 200}};
    tracking.grid = grid32(ExtentMode::minmax);
    tracking.grid.shape = {16, 16, 16};
    const Beam<double> beam = make_beam<double>(bp);
    GpuOptions options;
    options.deterministic_deposit = true;
    GpuTracker<double> gpu(beam, true, tracking.grid, options);
    GpuReversible<double> rev(beam, tracking, gpu);
    std::vector<std::array<HostArray<std::int64_t>, 6>> forward;
    for (std::size_t i = 0; i < rev.slices(); ++i) {
        forward.push_back(rev.state());
        rev.step(i);
    }
    CHECK(rev.state()[kFixedPx] != forward[0][kFixedPx]);  // the kicks moved the momenta
    int mismatches = 0;
    for (std::size_t i = rev.slices(); i-- > 0;) {
        rev.unstep(i);
        for (int c = 0; c < 6; ++c) mismatches += rev.state()[c] != forward[i][c];
    }
    CHECK(rev.slices() == 200);
    CHECK(mismatches == 0);

    GpuTracker<double> not_deterministic(beam, true, tracking.grid);
    CHECK_THROWS_WITH(GpuReversible<double>(beam, tracking, not_deterministic),
                      Catch::Contains("deterministic deposit"));
}

TEST_CASE("GPU tape: bytes as on the CPU, allocator growth outside `beam` equals the tape", "[gpu]") {
    REQUIRE_GPU();
    const BeamParameters beam = sphere(10000);
    TrackSettings tracking = gradient_lattice(ExtentMode::minmax);
    GradientRequest req;
    req.backend = Backend::cuda;
    const GradientResult r = compute_gradient<float>(beam, tracking, req);
    const std::int64_t n = beam.n_particles, c = 16 * 16 * 16, w = 4;
    // fused: K (6N + 2C) w + 4 N w for sigma_x (README, "The tape")
    CHECK(r.memory.tape_bytes == r.memory.kicks * (6 * n + 2 * c) * w + 4 * n * w);
    std::int64_t grown = 0;
    for (const auto& [scope, bytes] : r.memory.allocator_delta_by_scope)
        if (scope != "beam") grown += bytes;
    CHECK(grown == r.memory.tape_bytes);  // the documented overhead outside `beam` is zero
    CHECK(r.memory.allocator_delta_by_scope.at("beam") >= 6 * n * w);  // coordinates + kick workspace
    CHECK(r.memory.last_slice_tape_bytes == (6 * n + 2 * c) * w);
    CHECK(r.memory.peak_bytes >= r.memory.tape_bytes + r.memory.allocator_delta_by_scope.at("beam"));
    CHECK(r.memory.bytes_after_backward == 0);

    // reversible: the final int64 state plus the objective's two columns, whatever K
    req.strategy = Strategy::reversible;
    const GradientResult rev = compute_gradient<float>(beam, tracking, req);
    CHECK(rev.memory.tape_bytes_by_scope.at("reversible") == 6 * n * 8);
    CHECK(rev.memory.tape_bytes == 6 * n * 8 + 2 * n * w);
    std::int64_t rev_grown = 0;
    for (const auto& [scope, bytes] : rev.memory.allocator_delta_by_scope)
        if (scope != "beam") rev_grown += bytes;
    CHECK(rev_grown == rev.memory.tape_bytes);
    CHECK(rev.memory.last_slice_tape_bytes == 0);
    CHECK(rev.memory.bytes_after_backward == 0);
}

// A forward pass that throws (particles outside a 1-sigma grid, at the first
// kick) must free every device buffer its tape held, for each strategy.
TEST_CASE("GPU gradient that fails mid-run frees its device memory", "[gpu]") {
    REQUIRE_GPU();
    TrackSettings tracking = gradient_lattice(ExtentMode::sigma);
    tracking.grid.sigma_factor = {1.0, 1.0, 1.0};
    const std::int64_t before = cuda::device_memory().current_bytes();
    for (Strategy s : {Strategy::fused, Strategy::checkpoint, Strategy::reversible, Strategy::autograd}) {
        GradientRequest req;
        req.backend = Backend::cuda;
        req.strategy = s;
        INFO(strategy_name(s));
        CHECK_THROWS_WITH(compute_gradient<double>(sphere(1000), tracking, req), Catch::Contains("outside"));
        CHECK(cuda::device_memory().current_bytes() == before);
    }
}


// ================================================================ GPU-only bugs (issue 16)
//
// What the CPU cannot catch: index arithmetic on non-cubic and odd grids,
// grid-stride loops that take several passes, the size of a real run, every
// strategy on a non-cubic grid, and the kick's device-side grid (no host
// wait, no allocation, a CUDA graph of it, the IGF reused and rebuilt).
// Tolerances are this file's header's.

namespace {

// cuda::set_block_limit for one scope: grid-stride loops take several passes.
struct BlockLimit {
    explicit BlockLimit(int blocks) { cuda::set_block_limit(blocks); }
    ~BlockLimit() { cuda::set_block_limit(0); }
    BlockLimit(const BlockLimit&) = delete;
    BlockLimit& operator=(const BlockLimit&) = delete;
};

template <class T>
void kick_agrees(std::int64_t n_particles, const GridSettings& settings, double tol_momentum, double tol_position) {
    const Beam<T> start = make_beam<T>(sphere(n_particles, DistributionType::gaussian));
    Beam<T> cpu = start, gpu = start;
    SpaceChargeKick<T> kick(settings, 8);
    kick.apply(cpu, 0.1);
    GpuTracker<T> tracker(gpu, true, settings);
    tracker.kick(0.1);
    tracker.download(gpu);
    const GridGeometry gg = tracker.geometry();
    for (int a = 0; a < 3; ++a) CHECK(gg.cell_m[a] == Approx(kick.geometry().cell_m[a]).epsilon(1e-14));
    check_agreement(start, cpu, gpu, tol_momentum, tol_position);
}

TrackSettings non_cubic_lattice(ExtentMode mode) {
    TrackSettings t = gradient_lattice(mode);
    t.grid.shape = {12, 17, 20};
    return t;
}

}  // namespace

TEST_CASE("GPU kick on non-cubic and odd grids matches the CPU", "[gpu]") {
    REQUIRE_GPU();
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma})
        for (std::array<int, 3> shape : {std::array<int, 3>{24, 32, 40}, std::array<int, 3>{17, 23, 31}}) {
            INFO("grid " << shape[0] << "x" << shape[1] << "x" << shape[2] << ", mode " << int(mode));
            GridSettings s = grid32(mode);
            s.shape = shape;
            kick_agrees<double>(100000, s, 1e-12, 1e-14);
            kick_agrees<float>(100000, s, 2e-4, 1e-6);
            // quantized cells (the device's log and exp may move the cell by an ulp: far inside 1e-12)
            s.cell_quantum = 0.05;
            kick_agrees<double>(100000, s, 1e-12, 1e-14);
        }
}

TEST_CASE("GPU kick and gradients with several grid-stride passes match the CPU", "[gpu]") {
    REQUIRE_GPU();
    const BlockLimit limit(3);  // 3 x 256 threads: 1e5 particles take 131 passes, 24x32x40 nodes 41
    GridSettings s = grid32();
    s.shape = {24, 32, 40};
    kick_agrees<double>(100000, s, 1e-12, 1e-14);
    gradients_agree<double>(Strategy::fused, non_cubic_lattice(ExtentMode::minmax), 1e-9);
    gradients_agree<double>(Strategy::fused, non_cubic_lattice(ExtentMode::sigma), 1e-9);
}

TEST_CASE("GPU kick at 1e6 particles on 64^3 matches the CPU", "[gpu]") {
    REQUIRE_GPU();
    GridSettings s = grid32();
    s.shape = {64, 64, 64};
    kick_agrees<double>(1000000, s, 1e-12, 1e-14);
    kick_agrees<float>(1000000, s, 2e-4, 1e-6);
}

TEST_CASE("every strategy's GPU gradients and tape bytes match the CPU on a non-cubic grid", "[gpu]") {
    REQUIRE_GPU();
    for (Strategy s : {Strategy::fused, Strategy::checkpoint, Strategy::reversible, Strategy::autograd}) {
        INFO("strategy " << strategy_name(s));
        gradients_agree<double>(s, non_cubic_lattice(ExtentMode::minmax), 1e-9);
        gradients_agree<double>(s, non_cubic_lattice(ExtentMode::sigma), 1e-9);
        gradients_agree<float>(s, non_cubic_lattice(ExtentMode::minmax), 5e-4);
    }
}

// A kick queues its kernels and returns: no host wait, no allocation, and it
// captures whole into a CUDA graph. With the deterministic deposit (integer
// atomics) and the same cuFFT plan, the graph's kick is the stream's kick
// bit for bit.
TEST_CASE("a GPU kick makes no host wait and no allocation, and its CUDA graph is the same kick", "[gpu]") {
    REQUIRE_GPU();
    GridSettings s = grid32();
    s.shape = {24, 32, 40};
    GpuOptions det;
    det.deterministic_deposit = true;
    const Beam<double> start = make_beam<double>(sphere(50000, DistributionType::gaussian));
    Beam<double> streamed = start, graphed = start;
    GpuTracker<double> a(streamed, true, s, det), b(graphed, true, s, det);
    a.set_substep_timing(false);
    a.kick(0.1);  // warm-up: cuFFT plans
    a.synchronize();
    auto& mem = cuda::device_memory();
    const std::int64_t waits = cuda::host_waits(), allocations = mem.allocations();
    for (int k = 0; k < 3; ++k) a.kick(0.1);
    CHECK(cuda::host_waits() == waits);
    CHECK(mem.allocations() == allocations);
    a.download(streamed);

    b.kick(0.1);
    b.capture_kick(0.1);
    CHECK(mem.allocations() == allocations);
    for (int k = 0; k < 3; ++k) b.replay_kick();
    b.download(graphed);
    for (int c = 0; c < 6; ++c) {
        INFO("column " << c);
        CHECK(std::memcmp(streamed.columns()[c]->data(), graphed.columns()[c]->data(),
                          start.x.size() * sizeof(double)) == 0);
    }
    // and the graph still answers the CPU (4 kicks)
    Beam<double> cpu = start;
    SpaceChargeKick<double> kick(s, 8);
    for (int k = 0; k < 4; ++k) kick.apply(cpu, 0.1);
    check_agreement(start, cpu, graphed, 1e-11, 1e-14);
}

// The adjoint of a kick queues its kernels too; its scalar sums wait on the
// device until get_adjoint reads them (one wait for the whole backward).
TEST_CASE("a GPU kick adjoint makes no host wait and no allocation", "[gpu]") {
    REQUIRE_GPU();
    GridSettings s = grid32(ExtentMode::minmax);
    s.shape = {12, 17, 20};
    const Beam<double> beam = make_beam<double>(sphere(20000, DistributionType::gaussian));
    GpuTracker<double> gpu(beam, true, s);
    gpu.set_substep_timing(false);
    GpuKickSaved<double> saved;
    for (int c = 0; c < 6; ++c) saved.input[c] = gpu.snapshot(static_cast<GpuBuffer>(c));
    gpu.kick(0.1);
    saved.rho = gpu.snapshot(GpuBuffer::charge_density);
    saved.phi = gpu.snapshot(GpuBuffer::potential);
    std::array<HostArray<double>, 6> seed;
    for (auto& column : seed) column.assign(std::size_t(beam.size()), 1.0);
    gpu.set_adjoint(seed);
    const Lattice lattice = {Element(0.1, 1)};
    ParameterAdjoints params;
    params.start(lattice);
    auto& mem = cuda::device_memory();
    const std::int64_t waits = cuda::host_waits(), allocations = mem.allocations();
    gpu.kick_adjoint(saved, 0.1, 0, 1, params);
    gpu.kick_adjoint(saved, 0.1, 0, 1, params);
    CHECK(cuda::host_waits() == waits);
    CHECK(mem.allocations() == allocations);
    CHECK(params.bunch_charge_C == 0);  // not read back yet
    gpu.get_adjoint(seed);
    CHECK(params.bunch_charge_C != 0);
    CHECK(cuda::host_waits() - waits <= 3);  // the ledger, then the adjoint columns and the status
}

// The IGF is reused while the cell sizes and gamma repeat (a kick does not
// move the particles) and rebuilt after an adjoint overwrote it.
TEST_CASE("GPU kicks reuse the IGF while the grid repeats and rebuild it after an adjoint", "[gpu]") {
    REQUIRE_GPU();
    GridSettings s = grid32(ExtentMode::minmax);
    s.shape = {24, 32, 40};
    const Beam<double> start = make_beam<double>(sphere(50000, DistributionType::gaussian));
    Beam<double> cpu = start, gpu_beam = start;
    SpaceChargeKick<double> kick(s, 8);
    GpuTracker<double> gpu(gpu_beam, true, s);
    for (int k = 0; k < 2; ++k) {
        kick.apply(cpu, 0.1);
        gpu.kick(0.1);
    }
    GpuKickSaved<double> saved;
    for (int c = 0; c < 6; ++c) saved.input[c] = gpu.snapshot(static_cast<GpuBuffer>(c));
    saved.rho = gpu.snapshot(GpuBuffer::charge_density);
    saved.phi = gpu.snapshot(GpuBuffer::potential);
    std::array<HostArray<double>, 6> seed;
    for (auto& column : seed) column.assign(std::size_t(start.size()), 1.0);
    gpu.set_adjoint(seed);
    ParameterAdjoints params;
    params.start(Lattice{Element(0.1, 1)});
    gpu.kick_adjoint(saved, 0.1, 0, 1, params);
    kick.apply(cpu, 0.1);
    gpu.kick(0.1);
    gpu.download(gpu_beam);
    check_agreement(start, cpu, gpu_beam, 1e-11, 1e-14);
}

TEST_CASE("GPU kick errors are raised when the host next looks", "[gpu]") {
    REQUIRE_GPU();
    Beam<double> bad = make_beam<double>(sphere(5000));
    bad.x[5] = std::numeric_limits<double>::infinity();
    GpuTracker<double> gpu(bad, true, grid32());
    CHECK_NOTHROW(gpu.kick(0.1));
    CHECK_NOTHROW(gpu.kick(0.1));  // queued behind the first error, harmless
    CHECK_THROWS_WITH(gpu.download(bad), Catch::Contains("non-finite particle coordinate along x"));
    CHECK_THROWS_WITH(gpu.synchronize(), Catch::Contains("non-finite particle coordinate along x"));
}

// ================================================================ over MPI ranks, in one process

namespace {

// Two ranks holding the same particles, in one process: this is rank 0 of 2
// and the other rank's share equals its own, so every sum doubles and min and
// max keep the values. Both engines reduce through it alike, so the GPU
// engine's reductions over ranks (device buffers staged through pinned host
// memory: not CUDA-aware) are checked against the CPU engine's, which
// tests/check_mpi_ranks.py checks over real ranks. The real two-rank GPU run
// is scripts/gpu-checks.sh's mpi_cuda stage.
class MirroredRanks final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 2; }
    bool distributed() const override { return true; }
    void sum(double* v, std::int64_t n) override { twice(v, n); }
    void sum(float* v, std::int64_t n) override { twice(v, n); }
    void sum(std::int64_t* v, std::int64_t n) override { twice(v, n); }
    void min(double*, std::int64_t) override {}
    void max(double*, std::int64_t) override {}
    std::vector<double> gather(const double* v, std::int64_t n) override {
        std::vector<double> out(v, v + n);
        out.insert(out.end(), v, v + n);
        return out;
    }
    [[noreturn]] void abort(int code) override { std::exit(code); }

private:
    template <class U>
    static void twice(U* v, std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) v[i] += v[i];
    }
};

// Installs MirroredRanks while it lives (the serial communicator again after, failures included).
struct MirroredRanksInstalled {
    MirroredRanksInstalled() { install_communicator(std::make_unique<MirroredRanks>()); }
    ~MirroredRanksInstalled() { install_communicator(nullptr); }
};

}  // namespace

// Tolerance 1e-9 relative: the device's atomic summation order (this file's header).
TEST_CASE("GPU gradients over (mirrored) ranks match the CPU's over the same ranks, every strategy", "[gpu][ranks]") {
    REQUIRE_GPU();
    MirroredRanksInstalled ranks;
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma})
        for (Strategy s : {Strategy::fused, Strategy::checkpoint, Strategy::reversible}) {
            INFO("strategy " << strategy_name(s) << (mode == ExtentMode::sigma ? ", sigma extents" : ", minmax extents"));
            gradients_agree<double>(s, mode, 1e-9);
        }
}

TEST_CASE("GPU kick errors over ranks reach every rank as a CollectiveError", "[gpu][ranks]") {
    REQUIRE_GPU();
    MirroredRanksInstalled ranks;
    Beam<double> bad = make_beam<double>(sphere(5000));
    bad.x[5] = std::numeric_limits<double>::infinity();
    GpuTracker<double> gpu(bad, true, grid32());
    CHECK_NOTHROW(gpu.kick(0.1));
    CHECK_THROWS_AS(gpu.synchronize(), CollectiveError);
    CHECK_THROWS_WITH(gpu.synchronize(), Catch::Contains("non-finite particle coordinate along x"));
    CHECK_THROWS_WITH(gpu.capture_kick(0.1), Catch::Contains("cannot be captured in a CUDA graph"));
}
