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
// [gpu-emulation]  need no GPU: the per-element bodies of the CUDA kernels
//                  (cuda/kick_kernels.hpp, cuda/adjoint_kernels.hpp) run in
//                  plain loops, with the CPU FFT, and must reproduce
//                  SpaceChargeKick and the CPU adjoints; this checks the GPU
//                  path's index arithmetic everywhere.
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
//  - emulation vs CPU: the deposit, IGF and geometry are bitwise equal (same
//    operations in the same order); the FFT product is within 1e-14 of max|phi|.
//  - emulated adjoint bodies vs the CPU adjoints (grid_ops.cpp, one thread):
//    the same operations in the same order, so per-particle and per-node
//    adjoints agree to 1e-12 (float64) / 1e-5 (float32) of their max, the
//    geometry sums to the same relative tolerance.
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
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.hpp"
#include "beam.hpp"
#include "constants.hpp"
#include "cuda/adjoint_kernels.hpp"
#include "cuda/device.hpp"
#include "cuda/gpu_reversible.hpp"
#include "cuda/gpu_tracking.hpp"
#include "cuda/kick_kernels.hpp"
#include "fft_cpu.hpp"
#include "gradient.hpp"
#include "grid_ops.hpp"
#include "space_charge.hpp"
#include "tracking.hpp"

using namespace sctape;

namespace {

constexpr double kCoulombConst = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);

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

Reference ref250() { return Reference::from_kinetic(kElectronMass_eV, 250e6); }

BeamParameters sphere(std::int64_t n, DistributionType type = DistributionType::uniform_ellipsoid) {
    BeamParameters p;
    p.n_particles = n;
    p.bunch_charge_C = 10e-9;
    p.kinetic_energy_eV = 250e6;
    p.seed = 7;
    p.distribution.type = type;
    const double r = type == DistributionType::gaussian ? 0.4e-3 : 1e-3;
    p.distribution.size_m = {r, 0.8 * r, r / ref250().beta_gamma()};
    return p;
}

GridSettings grid32(ExtentMode mode = ExtentMode::minmax) {
    GridSettings g;
    g.shape = {32, 32, 32};
    g.mode = mode;
    return g;
}

double rms_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / double(v.size()));
}

template <class T>
std::vector<double> change(const HostArray<T>& after, const HostArray<T>& before) {
    std::vector<double> d(after.size());
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = double(after[i]) - double(before[i]);
    return d;
}

// max |a - b| / rms(reference change)
double relative_max_difference(const std::vector<double>& a, const std::vector<double>& b, double scale) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m / scale;
}

// Compares the momentum changes of two kicked copies of `start`, relative to
// the rms of the first copy's changes; positions relative to their rms.
template <class T>
void check_agreement(const Beam<T>& start, const Beam<T>& cpu, const Beam<T>& gpu, double tol_momentum,
                     double tol_position) {
    const char* names[3] = {"px", "py", "delta"};
    const HostArray<T>* s[3] = {&start.px, &start.py, &start.delta};
    const HostArray<T>* c[3] = {&cpu.px, &cpu.py, &cpu.delta};
    const HostArray<T>* g[3] = {&gpu.px, &gpu.py, &gpu.delta};
    for (int a = 0; a < 3; ++a) {
        const auto dc = change(*c[a], *s[a]), dg = change(*g[a], *s[a]);
        const double scale = rms_of(dc);
        REQUIRE(scale > 0);
        const double rel = relative_max_difference(dc, dg, scale);
        std::printf("  %-6s max|other - cpu| / rms(cpu kick) = %.3g (tolerance %.1g)\n", names[a], rel, tol_momentum);
        CHECK(rel <= tol_momentum);
    }
    const HostArray<T>* cp[3] = {&cpu.x, &cpu.y, &cpu.tau};
    const HostArray<T>* gp[3] = {&gpu.x, &gpu.y, &gpu.tau};
    for (int a = 0; a < 3; ++a) {
        std::vector<double> vc(cp[a]->begin(), cp[a]->end()), vg(gp[a]->begin(), gp[a]->end());
        const double rel = relative_max_difference(vc, vg, rms_of(vc));
        CHECK(rel <= tol_position);
    }
}

// ------------------------------------------------------------ emulation

template <class T>
struct Emulated {
    GridGeometry geometry;
    std::vector<T> rho, phi;
    std::vector<T> green;
    std::array<std::vector<T>, 3> e_grid;
};

// The GPU kick with each kernel's body run in a plain sequential loop (the
// deposit's atomics become +=, in particle order), cuFFT replaced by FFTW.
template <class T>
Emulated<T> emulate_kick(Beam<T>& beam, const GridSettings& settings, double ds, bool fixed_point) {
    using namespace sctape::cuda;
    Emulated<T> out;
    const std::int64_t n = beam.size();
    const Reference& ref = beam.reference;
    const double bg = ref.beta_gamma();
    const T beta0 = T(ref.beta), inv_beta0 = T(1.0 / ref.beta), inv_bg2 = T(1.0 / (bg * bg));
    std::vector<T> z(n), pz(n);
    for (std::int64_t p = 0; p < n; ++p) {
        s_to_t_particle(beam.px[p], beam.py[p], beam.tau[p], beam.delta[p], beta0, inv_beta0, inv_bg2, z[p], pz[p]);
        if (!std::isfinite(pz[p])) throw std::runtime_error(kNonFinitePzMessage);
    }
    AxisExtent ext[3];
    const T* u[3] = {beam.x.data(), beam.y.data(), z.data()};
    for (int a = 0; a < 3; ++a)
        for (std::int64_t p = 0; p < n; ++p) ext[a].add(u[a][p]);
    const GridGeometry g = geometry_from_extents(settings, ext, n);
    out.geometry = g;
    const CicGrid<T> cg = cic_grid<T>(g);
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
    const std::int64_t cells = g.cells();
    const T scale = T(beam.macro_charge_C() / g.cell_volume_m3());
    out.rho.assign(cells, T(0));
    if (fixed_point) {
        const int bits = fixed_point_bits(n);
        const double one = std::ldexp(1.0, bits), inv_one = std::ldexp(1.0, -bits);
        std::vector<unsigned long long> acc(cells, 0);
        for (std::int64_t p = 0; p < n; ++p) {
            const CicPoint<T> c = cic_point(cg, beam.x[p], beam.y[p], z[p]);
            for (int m = 0; m < 8; ++m)
                acc[c.base + cic_offset(cg, m)] += static_cast<unsigned long long>(to_fixed_point(c.w[m], one));
        }
        for (std::int64_t c = 0; c < cells; ++c) out.rho[c] = T(double(static_cast<long long>(acc[c])) * inv_one) * scale;
    } else {
        std::vector<T> acc(cells, T(0));
        for (std::int64_t p = 0; p < n; ++p) {
            const CicPoint<T> c = cic_point(cg, beam.x[p], beam.y[p], z[p]);
            for (int m = 0; m < 8; ++m) acc[c.base + cic_offset(cg, m)] += c.w[m];
        }
        for (std::int64_t c = 0; c < cells; ++c) out.rho[c] = acc[c] * scale;
    }
    // green
    std::vector<double> a(cells), b(cells);
    const double hx = g.cell_m[0], hy = g.cell_m[1], hz = ref.gamma * g.cell_m[2];
    for (std::int64_t c = 0; c < cells; ++c) a[c] = green_corner(c, ny, nz, hx, hy, hz);
    const std::int64_t stride[3] = {std::int64_t(ny) * nz, nz, 1};
    for (int ax = 0; ax < 3; ++ax) {
        for (std::int64_t c = 0; c < cells; ++c) b[c] = corner_difference(a.data(), c, stride[ax], g.n[ax]);
        std::swap(a, b);
    }
    const std::int64_t doubled = 8 * cells;
    out.green.resize(doubled);
    for (std::int64_t d = 0; d < doubled; ++d) out.green[d] = T(green_mirror(a.data(), d, nx, ny, nz, kCoulombConst));
    // convolve
    RealFft3d<T> fft({2 * nx, 2 * ny, 2 * nz}, 1);
    std::vector<T> work(doubled), work2(doubled);
    std::vector<std::complex<T>> spec_a(fft.spectrum_size()), spec_b(fft.spectrum_size());
    for (std::int64_t d = 0; d < doubled; ++d) work[d] = pad_value(out.rho.data(), d, nx, ny, nz);
    fft.forward(work.data(), spec_a.data());
    work2 = out.green;
    fft.forward(work2.data(), spec_b.data());
    T* sa = reinterpret_cast<T*>(spec_a.data());
    const T* sb = reinterpret_cast<const T*>(spec_b.data());
    const T norm = T(1.0 / double(doubled));
    for (std::int64_t c = 0; c < fft.spectrum_size(); ++c) spectrum_product(sa[2 * c], sa[2 * c + 1], sb[2 * c], sb[2 * c + 1], norm);
    fft.inverse(spec_a.data(), work.data());
    out.phi.resize(cells);
    for (std::int64_t c = 0; c < cells; ++c) out.phi[c] = work[crop_index(c, ny, nz)];
    // field
    for (int ax = 0; ax < 3; ++ax) {
        out.e_grid[ax].resize(cells);
        const T inv_2h = T(0.5 / g.cell_m[ax]), inv_h = T(1.0 / g.cell_m[ax]);
        for (std::int64_t c = 0; c < cells; ++c)
            out.e_grid[ax][c] = field_component(out.phi.data(), c, stride[ax], g.n[ax], inv_h, inv_2h);
    }
    // gather, push, t_to_s
    const T push = T(beam.species.charge_e * ds / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV));
    for (std::int64_t p = 0; p < n; ++p) {
        const CicPoint<T> c = cic_point(cg, beam.x[p], beam.y[p], z[p]);
        T e[3];
        for (int ax = 0; ax < 3; ++ax) e[ax] = cic_gather(cg, c, out.e_grid[ax].data());
        const T px_old = beam.px[p], py_old = beam.py[p], pz_old = pz[p];
        const T px = px_old + push * e[0], py = py_old + push * e[1], pzn = pz_old + push * e[2];
        beam.delta[p] = t_to_s_delta(beam.delta[p], px_old, py_old, pz_old, px, py, pzn, inv_beta0, inv_bg2);
        beam.px[p] = px;
        beam.py[p] = py;
    }
    return out;
}

template <class T>
double max_abs(const std::vector<T>& v) {
    double m = 0;
    for (T x : v) m = std::max(m, std::abs(double(x)));
    return m;
}

template <class T>
void emulation_matches_cpu(double tol_momentum) {
    const Beam<T> start = make_beam<T>(sphere(20000));
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma}) {
        INFO((mode == ExtentMode::minmax ? "minmax" : "sigma") << " grid");
        GridSettings settings = grid32(mode);
        settings.shape = {24, 20, 28};  // unequal axes catch swapped strides
        Beam<T> cpu = start, emu = start;
        SpaceChargeKick<T> kick(settings, 1);
        kick.apply(cpu, 0.1);
        const Emulated<T> e = emulate_kick(emu, settings, 0.1, false);
        const GridGeometry& g = kick.geometry();
        // same reductions in the same order: the geometry is bitwise equal
        CHECK(e.geometry.n == g.n);
        CHECK(e.geometry.origin_m == g.origin_m);
        CHECK(e.geometry.cell_m == g.cell_m);
        // deposit in particle order = the one-thread CPU deposit
        const HostArray<T>& rho = kick.charge_density();
        REQUIRE(std::int64_t(e.rho.size()) == g.cells());
        std::int64_t rho_diff = 0;
        for (std::int64_t c = 0; c < g.cells(); ++c) rho_diff += e.rho[c] != rho[c];
        CHECK(rho_diff == 0);
        // the IGF: corner lattice, differences, mirror
        HostArray<T> green(e.green.size());
        build_green(g, start.reference.gamma, 1, green.data());
        std::int64_t green_diff = 0;
        for (std::size_t d = 0; d < green.size(); ++d) green_diff += e.green[d] != green[d];
        CHECK(green_diff == 0);
        // convolution (same FFT, own spectrum product) and field
        const HostArray<T>& phi = kick.potential();
        double phi_diff = 0;
        for (std::int64_t c = 0; c < g.cells(); ++c) phi_diff = std::max(phi_diff, std::abs(double(e.phi[c]) - phi[c]));
        CHECK(phi_diff <= 1e-14 * max_abs(e.phi) * (sizeof(T) == 4 ? 1e8 : 1.0));
        for (int a = 0; a < 3; ++a) {
            const HostArray<T>& ec = kick.field_on_grid()[a];
            double d = 0;
            for (std::int64_t c = 0; c < g.cells(); ++c) d = std::max(d, std::abs(double(e.e_grid[a][c]) - ec[c]));
            CHECK(d <= (sizeof(T) == 4 ? 1e-5 : 1e-12) * max_abs(e.e_grid[a]));
        }
        check_agreement(start, cpu, emu, tol_momentum, sizeof(T) == 4 ? 1e-6 : 1e-14);
    }
}

// Largest |a - b| over the largest |b| (0 when both vanish).
template <class A, class B>
double relative_to_max(const A& a, const B& b) {
    double d = 0, m = 0;
    for (std::size_t i = 0; i < std::size_t(b.size()); ++i) {
        d = std::max(d, std::abs(double(a[i]) - double(b[i])));
        m = std::max(m, std::abs(double(b[i])));
    }
    return m > 0 ? d / m : d;
}

template <class T>
std::vector<T> random_values(std::size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<T> v(n);
    for (auto& x : v) x = T(u(rng));
    return v;
}

// The adjoint kernels' bodies (cuda/adjoint_kernels.hpp) in plain loops, each
// against the CPU adjoint it replaces, at the state of one CPU kick.
template <class T>
void adjoint_emulation_matches_cpu(double tol) {
    using namespace sctape::cuda;
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma}) {
        INFO((mode == ExtentMode::minmax ? "minmax" : "sigma") << " grid");
        GridSettings settings = grid32(mode);
        settings.shape = {12, 10, 14};  // unequal axes catch swapped strides
        Beam<T> beam = make_beam<T>(sphere(5000));
        const Beam<T> start = beam;
        SpaceChargeKick<T> kick(settings, 1);
        kick.apply(beam, 0.1);
        const GridGeometry& g = kick.geometry();
        const std::int64_t n = start.size(), cells = g.cells();
        const Reference& ref = start.reference;
        const double bg = ref.beta_gamma();
        std::vector<T> z(n), pz(n);
        for (std::int64_t p = 0; p < n; ++p)
            s_to_t_particle(start.px[p], start.py[p], start.tau[p], start.delta[p], T(ref.beta), T(1 / ref.beta),
                            T(1 / (bg * bg)), z[p], pz[p]);
        const T* pos[3] = {start.x.data(), start.y.data(), z.data()};
        const CicGrid<T> cg = cic_grid<T>(g);
        const std::int64_t stride[3] = {std::int64_t(g.n[1]) * g.n[2], g.n[2], 1};

        SECTION("deposit") {
            const std::vector<T> rho_adj = random_values<T>(cells, 1);
            const T scale = T(3.5);
            std::array<std::vector<T>, 3> cpu, emu;
            for (int a = 0; a < 3; ++a) cpu[a].assign(n, T(0)), emu[a].assign(n, T(0));
            T* cpu_adj[3] = {cpu[0].data(), cpu[1].data(), cpu[2].data()};
            GeometryAdjoint cpu_geo, emu_geo;
            const double cpu_scale = deposit_cic_adjoint(g, pos, n, scale, rho_adj.data(), 1, cpu_adj, cpu_geo);
            double emu_scale = 0;
            for (std::int64_t p = 0; p < n; ++p) {
                const CicPointAdjoint<T> q = cic_point_adjoint(cg, pos[0][p], pos[1][p], pos[2][p]);
                double s_adj[3];
                emu_scale += deposit_adjoint_particle(cg, q, rho_adj.data(), scale, s_adj);
                T u_adj[3];
                grid_coordinate_adjoint(cg, q, s_adj, u_adj, emu_geo.origin_m.data(), emu_geo.cell_m.data());
                for (int a = 0; a < 3; ++a) emu[a][p] += u_adj[a];
            }
            CHECK(std::abs(emu_scale - cpu_scale) <= tol * std::abs(cpu_scale));
            for (int a = 0; a < 3; ++a) {
                CHECK(relative_to_max(emu[a], cpu[a]) <= tol);
                CHECK(std::abs(emu_geo.origin_m[a] - cpu_geo.origin_m[a]) <= tol * std::abs(cpu_geo.origin_m[a]));
                CHECK(std::abs(emu_geo.cell_m[a] - cpu_geo.cell_m[a]) <= tol * std::abs(cpu_geo.cell_m[a]));
            }
        }
        SECTION("gather") {
            std::array<std::vector<T>, 3> e_adj, cpu_grid, emu_grid, cpu_pos, emu_pos;
            for (int a = 0; a < 3; ++a) {
                e_adj[a] = random_values<T>(n, 10 + a);
                cpu_grid[a].assign(cells, T(0)), emu_grid[a].assign(cells, T(0));
                cpu_pos[a].assign(n, T(0)), emu_pos[a].assign(n, T(0));
            }
            const auto& eg = kick.field_on_grid();
            const T* e_grid[3] = {eg[0].data(), eg[1].data(), eg[2].data()};
            const T* ea[3] = {e_adj[0].data(), e_adj[1].data(), e_adj[2].data()};
            T* cg_out[3] = {cpu_grid[0].data(), cpu_grid[1].data(), cpu_grid[2].data()};
            T* cp_out[3] = {cpu_pos[0].data(), cpu_pos[1].data(), cpu_pos[2].data()};
            HostArray<T> scratch;
            GeometryAdjoint cpu_geo, emu_geo;
            gather_cic_adjoint(g, pos, n, e_grid, ea, 1, scratch, cg_out, cp_out, cpu_geo);
            for (std::int64_t p = 0; p < n; ++p) {
                const CicPointAdjoint<T> q = cic_point_adjoint(cg, pos[0][p], pos[1][p], pos[2][p]);
                double s_adj[3] = {0, 0, 0};
                for (int a = 0; a < 3; ++a) {
                    for (int m = 0; m < 8; ++m) emu_grid[a][q.point.base + cic_offset(cg, m)] += q.point.w[m] * e_adj[a][p];
                    gather_adjoint_particle(cg, q, e_grid[a], e_adj[a][p], s_adj);
                }
                T u_adj[3];
                grid_coordinate_adjoint(cg, q, s_adj, u_adj, emu_geo.origin_m.data(), emu_geo.cell_m.data());
                for (int a = 0; a < 3; ++a) emu_pos[a][p] += u_adj[a];
            }
            for (int a = 0; a < 3; ++a) {
                CHECK(relative_to_max(emu_grid[a], cpu_grid[a]) <= tol);
                CHECK(relative_to_max(emu_pos[a], cpu_pos[a]) <= tol);
                CHECK(std::abs(emu_geo.origin_m[a] - cpu_geo.origin_m[a]) <= tol * std::abs(cpu_geo.origin_m[a]));
                CHECK(std::abs(emu_geo.cell_m[a] - cpu_geo.cell_m[a]) <= tol * std::abs(cpu_geo.cell_m[a]));
            }
        }
        SECTION("field") {
            std::array<std::vector<T>, 3> e_adj;
            for (int a = 0; a < 3; ++a) e_adj[a] = random_values<T>(cells, 20 + a);
            const auto& eg = kick.field_on_grid();
            const T* e[3] = {eg[0].data(), eg[1].data(), eg[2].data()};
            const T* ea[3] = {e_adj[0].data(), e_adj[1].data(), e_adj[2].data()};
            std::vector<T> cpu(cells, T(0)), emu(cells, T(0));
            GeometryAdjoint cpu_geo;
            field_from_potential_adjoint(g, e, ea, 1, cpu.data(), cpu_geo);
            for (int a = 0; a < 3; ++a) {
                double h_adj = 0;
                for (std::int64_t c = 0; c < cells; ++c) {
                    double h_term;
                    emu[c] += field_adjoint_node(e[a], ea[a], c, stride[a], g.n[a], T(1.0 / g.cell_m[a]),
                                                 T(0.5 / g.cell_m[a]), g.cell_m[a], h_term);
                    h_adj += h_term;
                }
                CHECK(std::abs(h_adj - cpu_geo.cell_m[a]) <= tol * std::abs(cpu_geo.cell_m[a]));
            }
            CHECK(relative_to_max(emu, cpu) <= tol);
        }
        SECTION("convolve and green") {
            const std::int64_t doubled = 8 * cells;
            const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
            const std::vector<T> phi_adj = random_values<T>(cells, 30);
            const HostArray<T>& rho = kick.charge_density();
            const HostArray<T>& green = kick.green_function();
            std::vector<T> cpu_rho_adj(cells, T(0)), cpu_green_adj(doubled);
            HockneyConvolver<T> conv(g.n, 1);
            conv.convolve_adjoint(rho.data(), green.data(), phi_adj.data(), cpu_rho_adj.data(), cpu_green_adj.data());
            // the GPU's sequence (GpuAdjoint::convolve) with the CPU FFT
            RealFft3d<T> fft({2 * nx, 2 * ny, 2 * nz}, 1);
            std::vector<T> work(doubled), green_copy(green.begin(), green.end()), emu_green_adj(doubled);
            std::vector<std::complex<T>> spec_a(fft.spectrum_size()), spec_b(fft.spectrum_size());
            const T norm = T(1.0 / double(doubled));
            auto correlate = [&] {
                const T* sa = reinterpret_cast<const T*>(spec_a.data());
                T* sb = reinterpret_cast<T*>(spec_b.data());
                for (std::int64_t c = 0; c < fft.spectrum_size(); ++c)
                    correlation_product(sa[2 * c], sa[2 * c + 1], sb[2 * c], sb[2 * c + 1], norm, sb[2 * c], sb[2 * c + 1]);
            };
            for (std::int64_t d = 0; d < doubled; ++d) work[d] = pad_value(phi_adj.data(), d, nx, ny, nz);
            fft.forward(work.data(), spec_a.data());
            fft.forward(green_copy.data(), spec_b.data());
            correlate();
            fft.inverse(spec_b.data(), work.data());
            std::vector<T> emu_rho_adj(cells);
            for (std::int64_t c = 0; c < cells; ++c) emu_rho_adj[c] = work[crop_index(c, ny, nz)];
            for (std::int64_t d = 0; d < doubled; ++d) work[d] = pad_value(rho.data(), d, nx, ny, nz);
            fft.forward(work.data(), spec_b.data());
            correlate();
            fft.inverse(spec_b.data(), emu_green_adj.data());
            CHECK(relative_to_max(emu_rho_adj, cpu_rho_adj) <= tol);
            CHECK(relative_to_max(emu_green_adj, cpu_green_adj) <= tol);

            // green: fold, transposed differences z, y, x, cell sums
            GeometryAdjoint cpu_geo;
            const double cpu_gamma = build_green_adjoint(g, ref.gamma, cpu_green_adj.data(), 1, cpu_geo);
            std::vector<double> a(cells), b(cells);
            for (std::int64_t c = 0; c < cells; ++c)
                a[c] = green_fold_adjoint(cpu_green_adj.data(), c, nx, ny, nz, kCoulombConst);
            for (int ax = 2; ax >= 0; --ax) {
                for (std::int64_t c = 0; c < cells; ++c) b[c] = corner_difference_transpose(a.data(), c, stride[ax], g.n[ax]);
                std::swap(a, b);
            }
            double h_adj[3] = {0, 0, 0};
            for (std::int64_t c = 0; c < cells; ++c) {
                double h[3];
                green_cell_adjoint_node(a.data(), c, ny, nz, g.cell_m[0], g.cell_m[1], ref.gamma * g.cell_m[2], h);
                for (int ax = 0; ax < 3; ++ax) h_adj[ax] += h[ax];
            }
            CHECK(std::abs(h_adj[0] - cpu_geo.cell_m[0]) <= 1e-12 * std::abs(cpu_geo.cell_m[0]));
            CHECK(std::abs(h_adj[1] - cpu_geo.cell_m[1]) <= 1e-12 * std::abs(cpu_geo.cell_m[1]));
            CHECK(std::abs(ref.gamma * h_adj[2] - cpu_geo.cell_m[2]) <= 1e-12 * std::abs(cpu_geo.cell_m[2]));
            CHECK(std::abs(g.cell_m[2] * h_adj[2] - cpu_gamma) <= 1e-12 * std::abs(cpu_gamma));
        }
        SECTION("grid covering (sigma mode)") {
            if (mode == ExtentMode::sigma) {
                GeometryAdjoint geo;
                geo.origin_m = {0.3, -0.2, 0.7};
                geo.cell_m = {1.1, 0.4, -0.9};
                std::array<std::vector<T>, 3> cpu, emu;
                for (int a = 0; a < 3; ++a) cpu[a].assign(n, T(0)), emu[a].assign(n, T(0));
                T* cpu_adj[3] = {cpu[0].data(), cpu[1].data(), cpu[2].data()};
                grid_covering_adjoint(settings, pos, n, geo, cpu_adj);
                for (int a = 0; a < 3; ++a) {
                    AxisExtent ext;
                    for (std::int64_t p = 0; p < n; ++p) ext.add(pos[a][p]);
                    const double mean = ext.sum / n, rms = std::sqrt(std::max(ext.sum2 / n - mean * mean, 0.0));
                    const double k = settings.sigma_factor[a];
                    for (std::int64_t p = 0; p < n; ++p)
                        emu[a][p] += T(sigma_grid_adjoint(pos[a][p], mean, rms, n, geo.origin_m[a],
                                                          -k * geo.origin_m[a] + 2 * k * geo.cell_m[a] / (g.n[a] - 1)));
                    CHECK(relative_to_max(emu[a], cpu[a]) <= tol);
                }
            }
        }
    }
}

}  // namespace

// ================================================================ no GPU needed

TEST_CASE("emulated GPU kernel bodies reproduce the CPU kick (float64)", "[gpu-emulation]") {
    emulation_matches_cpu<double>(1e-12);
}

TEST_CASE("emulated GPU kernel bodies reproduce the CPU kick (float32)", "[gpu-emulation]") {
    emulation_matches_cpu<float>(2e-4);
}

TEST_CASE("emulated GPU adjoint bodies reproduce the CPU adjoints (float64)", "[gpu-emulation]") {
    adjoint_emulation_matches_cpu<double>(1e-12);
}

TEST_CASE("emulated GPU adjoint bodies reproduce the CPU adjoints (float32)", "[gpu-emulation]") {
    adjoint_emulation_matches_cpu<float>(1e-5);
}

TEST_CASE("emulated fixed-point deposit equals the float deposit to its resolution", "[gpu-emulation]") {
    const Beam<double> start = make_beam<double>(sphere(20000));
    Beam<double> a = start, b = start;
    const auto ea = emulate_kick(a, grid32(), 0.1, false);
    const auto eb = emulate_kick(b, grid32(), 0.1, true);
    // weights rounded to 2^-(62 - 15) = 7e-15, at most 8 * 20000 per cell
    double d = 0;
    for (std::size_t c = 0; c < ea.rho.size(); ++c) d = std::max(d, std::abs(ea.rho[c] - eb.rho[c]));
    CHECK(d <= 1e-12 * max_abs(ea.rho));
    check_agreement(start, a, b, 1e-11, 1e-14);
    // total charge is conserved exactly up to the rounding of each weight
    double qa = 0, qb = 0;
    for (std::size_t c = 0; c < ea.rho.size(); ++c) qa += ea.rho[c], qb += eb.rho[c];
    CHECK(qb == Approx(qa).epsilon(1e-12));
}

TEST_CASE("fixed-point bits keep the deposit sum below 2^62", "[gpu-emulation]") {
    CHECK(cuda::fixed_point_bits(1) == 62);
    CHECK(cuda::fixed_point_bits(2) == 61);
    CHECK(cuda::fixed_point_bits(1000000) == 42);  // ceil(log2 1e6) = 20
    CHECK(cuda::fixed_point_bits(std::int64_t(1) << 40) == 22);
    for (std::int64_t n : {std::int64_t(3), std::int64_t(1000), std::int64_t(123456789)}) {
        const int bits = cuda::fixed_point_bits(n);
        CHECK(std::ldexp(double(n), bits) <= std::ldexp(1.0, 62));
    }
}

TEST_CASE("geometry from device extents raises the CPU's errors with the same messages", "[gpu-emulation]") {
    auto cpu_error = [](const GridSettings& s, std::array<std::vector<double>, 3> pos) -> std::string {
        const double* p[3] = {pos[0].data(), pos[1].data(), pos[2].data()};
        try {
            grid_covering(s, p, std::int64_t(pos[0].size()));
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    };
    auto gpu_error = [](const GridSettings& s, std::array<std::vector<double>, 3> pos) -> std::string {
        AxisExtent ext[3];
        for (int a = 0; a < 3; ++a)
            for (double v : pos[a]) ext[a].add(v);
        try {
            geometry_from_extents(s, ext, std::int64_t(pos[0].size()));
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    };
    const std::vector<double> ok = {-1.0, 0.5, 2.0, 0.1};
    GridSettings minmax = grid32(), sigma = grid32(ExtentMode::sigma);
    sigma.sigma_factor = {0.5, 0.5, 0.5};
    struct Case {
        const char* name;
        GridSettings s;
        std::array<std::vector<double>, 3> pos;
    };
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    using V = std::vector<double>;
    using P = std::array<V, 3>;
    const std::vector<Case> cases = {
        {"non-finite y", minmax, P{ok, V{0, nan, 1, 2}, ok}},
        {"infinite z", minmax, P{ok, ok, V{0, 1, inf, 2}}},
        {"zero extent x", minmax, P{V{1, 1, 1, 1}, ok, ok}},
        {"outside a sigma grid", sigma, P{ok, ok, ok}},
        {"no particles", minmax, P{V{}, V{}, V{}}},
        {"fine", minmax, P{ok, ok, ok}},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        const std::string expected = cpu_error(c.s, c.pos);
        CHECK(gpu_error(c.s, c.pos) == expected);
        if (std::string(c.name) != "fine") CHECK_FALSE(expected.empty());
    }
}

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
        tracker.kick(0.1);
        const std::int64_t after_one = mem.current_bytes();
        CHECK(after_one == built);  // the green substep's float64 scratch is freed
        CHECK(mem.peak_bytes() >= built + 2 * 32768 * std::int64_t(sizeof(double)));
        tracker.kick(0.1);
        CHECK(mem.current_bytes() == built);
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
            tracker.kick(0.1);
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
void gradients_agree(Strategy strategy, ExtentMode mode, double tol) {
    const BeamParameters beam = sphere(20000, DistributionType::gaussian);
    const TrackSettings tracking = gradient_lattice(mode);
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

}  // namespace

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

