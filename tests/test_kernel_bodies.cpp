// test_kernel_bodies.cpp — the per-element bodies the CUDA kernels run
// (physics/kick_bodies.hpp, physics/adjoint_bodies.hpp), executed in plain
// sequential loops with the CPU FFT, must reproduce SpaceChargeKick and the
// CPU adjoints. This checks the GPU path's index arithmetic in every build,
// with or without nvcc; the [gpu] tests (test_gpu.cpp) check the kernels.
// The emulated kick reads its grid from the device's frame (kick_frame,
// physics/geometry_bodies.hpp), on non-cubic and odd grids.
//
// Tolerances:
//  - emulation vs CPU: the deposit, IGF and geometry are bitwise equal (same
//    operations in the same order); the FFT product is within 1e-14 of max|phi|.
//  - emulated adjoint bodies vs the CPU adjoints (grid_ops.cpp, one thread):
//    the same operations in the same order, so per-particle and per-node
//    adjoints agree to 1e-12 (float64) / 1e-5 (float32) of their max, the
//    geometry sums to the same relative tolerance.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/fft_cpu.hpp"
#include "physics/adjoint_bodies.hpp"
#include "physics/geometry_bodies.hpp"
#include "physics/constants.hpp"
#include "physics/grid_ops.hpp"
#include "physics/kick_bodies.hpp"
#include "physics/space_charge.hpp"
#include "support/beams.hpp"

using namespace sctape;
using namespace sctape::test;

namespace {

constexpr double kCoulombConst = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);

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
    using namespace sctape::bodies;
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
    // the device's frame (frame_kernel): extents, then kick_frame; every
    // later body reads its grid from the frame, as the kernels do
    ExtentAcc ext[3] = {empty_extent(), empty_extent(), empty_extent()};
    const T* u[3] = {beam.x.data(), beam.y.data(), z.data()};
    for (int a = 0; a < 3; ++a)
        for (std::int64_t p = 0; p < n; ++p) extent_add(ext[a], double(u[a][p]));
    KickFrame<T> frame{};
    int error_axis = 0;
    if (kick_frame(extent_rule(settings), ext, n, beam.macro_charge_C(), ref.gamma, frame, error_axis) != kKickOk)
        throw std::runtime_error("emulated kick: the device would flag this grid");
    GridGeometry g;
    g.n = settings.shape;
    for (int a = 0; a < 3; ++a) g.origin_m[a] = frame.origin[a], g.cell_m[a] = frame.cell[a];
    out.geometry = g;
    const CicGrid<T> cg = frame.cic;
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
    const std::int64_t cells = g.cells();
    const T scale = frame.deposit_scale;
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
    const double hx = frame.green_h[0], hy = frame.green_h[1], hz = frame.green_h[2];
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
        const T inv_2h = frame.inv_2h[ax], inv_h = frame.inv_h[ax];
        for (std::int64_t c = 0; c < cells; ++c)
            out.e_grid[ax][c] = field_component(out.phi.data(), c, stride[ax], g.n[ax], inv_h, inv_2h);
    }
    // gather, push, t_to_s
    const T push = T(beam.species.charge_e * ds / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV));
    for (std::int64_t p = 0; p < n; ++p) {
        const CicPoint<T> c = cic_point(cg, beam.x[p], beam.y[p], z[p]);
        const T* e_grid[3] = {out.e_grid[0].data(), out.e_grid[1].data(), out.e_grid[2].data()};
        T e[3];
        cic_gather3(cg, c, e_grid, e);
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
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma})
    for (std::array<int, 3> shape : {std::array<int, 3>{24, 20, 28}, std::array<int, 3>{17, 23, 31}}) {
        INFO((mode == ExtentMode::minmax ? "minmax" : "sigma") << " grid " << shape[0] << "x" << shape[1] << "x"
                                                                << shape[2]);
        GridSettings settings = grid32(mode);
        settings.shape = shape;  // unequal axes catch swapped strides; odd ones, even-only index arithmetic
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

template <class T>
std::vector<T> random_values(std::size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<T> v(n);
    for (auto& x : v) x = T(u(rng));
    return v;
}

// The adjoint kernels' bodies (physics/adjoint_bodies.hpp) in plain loops, each
// against the CPU adjoint it replaces, at the state of one CPU kick.
template <class T>
void adjoint_emulation_matches_cpu(double tol) {
    using namespace sctape::bodies;
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
                const T ea_p[3] = {e_adj[0][p], e_adj[1][p], e_adj[2][p]};
                for (int a = 0; a < 3; ++a)
                    for (int m = 0; m < 8; ++m) emu_grid[a][q.point.base + cic_offset(cg, m)] += q.point.w[m] * ea_p[a];
                double s_adj[3] = {0, 0, 0};
                gather_adjoint_particle(cg, q, e_grid, ea_p, s_adj);
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
    CHECK(bodies::fixed_point_bits(1) == 62);
    CHECK(bodies::fixed_point_bits(2) == 61);
    CHECK(bodies::fixed_point_bits(1000000) == 42);  // ceil(log2 1e6) = 20
    CHECK(bodies::fixed_point_bits(std::int64_t(1) << 40) == 22);
    for (std::int64_t n : {std::int64_t(3), std::int64_t(1000), std::int64_t(123456789)}) {
        const int bits = bodies::fixed_point_bits(n);
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
