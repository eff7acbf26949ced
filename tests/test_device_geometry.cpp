// test_device_geometry.cpp — [gpu-emulation]: the device-side grid of the
// CUDA kick (physics/geometry_bodies.hpp), run on the CPU against the CPU
// path. The kernels that use these bodies are one-thread or tree-reduction
// loops around them (kernels/cuda/gpu_tracking.cu, backward_kernels.cuh);
// here the same bodies run in the device's order.
//
// Tolerances: the frame, the IGF key, the finished sums, the geometry
// adjoint and grid_covering's adjoint terms are the host's former arithmetic
// in the same order (mul_rn keeps the device from fusing products), so they
// are compared bit for bit. The extents' min and max are exact in any order
// (bitwise); their sums differ from the CPU's sequential sums only by the
// tree's order: 1e-13 relative (sums of 1e5 terms of one sign and size; the
// measured difference is a few 1e-16).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "physics/geometry_bodies.hpp"
#include "physics/grid_ops.hpp"
#include "physics/parameter_adjoints.hpp"
#include "physics/space_charge.hpp"
#include "support/beams.hpp"

using namespace sctape;
using namespace sctape::bodies;
using namespace sctape::test;

namespace {

constexpr int kThreads = 256;  // cuda::kThreads

// The device's tree over one block's thread values (block_reduce).
ExtentAcc tree(std::vector<ExtentAcc> s) {
    for (int w = kThreads / 2; w > 0; w >>= 1)
        for (int t = 0; t < w; ++t) extent_combine(s[t], s[t + w]);
    return s[0];
}

// extent_partials then extent_final for one axis with `blocks` blocks: each
// thread strides over the particles, each block reduces by tree, the final
// block strides over the partials and reduces by tree.
ExtentAcc device_extent(const std::vector<double>& u, int blocks) {
    const std::int64_t n = std::int64_t(u.size()), stride = std::int64_t(blocks) * kThreads;
    std::vector<ExtentAcc> partials;
    for (int b = 0; b < blocks; ++b) {
        std::vector<ExtentAcc> s(kThreads, empty_extent());
        for (int t = 0; t < kThreads; ++t)
            for (std::int64_t p = std::int64_t(b) * kThreads + t; p < n; p += stride) extent_add(s[t], u[p]);
        partials.push_back(tree(s));
    }
    std::vector<ExtentAcc> s(kThreads, empty_extent());
    for (int t = 0; t < kThreads; ++t)
        for (int b = t; b < blocks; b += kThreads) extent_combine(s[t], partials[b]);
    return tree(s);
}

ExtentAcc from_host(const AxisExtent& e) {
    return {e.lo, e.hi, e.sum, e.sum2, static_cast<unsigned long long>(e.non_finite)};
}

bool same_bits_as(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class T>
bool same_bits_t(T a, T b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// The three coordinate columns the kick's grid covers (x, y, z = -beta0 tau).
std::array<std::vector<double>, 3> positions(const Beam<double>& beam) {
    std::array<std::vector<double>, 3> u;
    for (std::int64_t p = 0; p < beam.size(); ++p) {
        u[0].push_back(beam.x[p]);
        u[1].push_back(beam.y[p]);
        u[2].push_back(-beam.reference.beta * beam.tau[p]);
    }
    return u;
}

}  // namespace

TEST_CASE("device extents reduction: min and max bitwise, sums to the CPU's within 1e-13", "[gpu-emulation]") {
    Beam<double> beam = make_beam<double>(sphere(100000, DistributionType::gaussian));
    beam.y[777] = std::numeric_limits<double>::quiet_NaN();
    beam.tau[4242] = std::numeric_limits<double>::infinity();
    const auto u = positions(beam);
    // 1024 blocks (the default: 100000 particles in one pass), 7 and 1 (several grid-stride passes)
    for (int blocks : {1024, 7, 1}) {
        INFO(blocks << " blocks");
        for (int a = 0; a < 3; ++a) {
            AxisExtent cpu;
            for (double v : u[a]) cpu.add(v);
            const ExtentAcc dev = device_extent(u[a], blocks);
            CHECK(same_bits_as(dev.lo, cpu.lo));
            CHECK(same_bits_as(dev.hi, cpu.hi));
            CHECK(dev.non_finite == static_cast<unsigned long long>(cpu.non_finite));
            CHECK(dev.sum == Approx(cpu.sum).epsilon(1e-13).margin(1e-13 * std::abs(cpu.hi - cpu.lo)));
            CHECK(dev.sum2 == Approx(cpu.sum2).epsilon(1e-13));
        }
    }
    CHECK(device_extent(u[1], 3).non_finite == 1);
    CHECK(device_extent(u[2], 3).non_finite == 1);
}

// The frame a kick's kernels read, from the CPU's extents, against the CPU
// kick's own geometry and conversions, on non-cubic and odd grids.
template <class T>
void frame_matches_cpu() {
    const Beam<T> beam = make_beam<T>(sphere(30000, DistributionType::gaussian));
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma})
    for (double quantum : {0.0, 0.05})
        for (std::array<int, 3> shape : {std::array<int, 3>{24, 32, 40}, std::array<int, 3>{17, 23, 31},
                                         std::array<int, 3>{2, 3, 64}}) {
            INFO("mode " << int(mode) << ", cell quantum " << quantum << ", grid " << shape[0] << "x" << shape[1]
                         << "x" << shape[2]);
            GridSettings settings = grid32(mode);
            settings.shape = shape;
            settings.cell_quantum = quantum;
            Beam<T> cpu = beam;
            SpaceChargeKick<T> kick(settings, 1);
            kick.apply(cpu, 0.1);
            const GridGeometry& g = kick.geometry();
            // the CPU kick's extents over x, y and its z
            const T* pos[3] = {beam.x.data(), beam.y.data(), kick.z().data()};
            ExtentAcc ext[3];
            for (int a = 0; a < 3; ++a) {
                AxisExtent e;
                for (std::int64_t p = 0; p < beam.size(); ++p) e.add(pos[a][p]);
                ext[a] = from_host(e);
            }
            KickFrame<T> f{};
            int axis = -1;
            const double macro = beam.macro_charge_C();
            CHECK(kick_frame(extent_rule(settings), ext, beam.size(), macro, beam.reference.gamma, f, axis) ==
                  kKickOk);
            const CicGrid<T> cic = cic_grid<T>(g);
            for (int a = 0; a < 3; ++a) {
                CHECK(same_bits_as(f.origin[a], g.origin_m[a]));
                CHECK(same_bits_as(f.cell[a], g.cell_m[a]));
                CHECK(f.cic.n[a] == cic.n[a]);
                CHECK(same_bits_t(f.cic.origin[a], cic.origin[a]));
                CHECK(same_bits_t(f.cic.inv_h[a], cic.inv_h[a]));
                CHECK(same_bits_t(f.inv_h[a], T(1.0 / g.cell_m[a])));   // SpaceChargeKick::field (grid_ops)
                CHECK(same_bits_t(f.inv_2h[a], T(0.5 / g.cell_m[a])));
            }
            CHECK(same_bits_t(f.deposit_scale, T(macro / g.cell_volume_m3())));  // SpaceChargeKick::deposit
            CHECK(same_bits_as(f.green_h[0], g.cell_m[0]));
            CHECK(same_bits_as(f.green_h[1], g.cell_m[1]));
            CHECK(same_bits_as(f.green_h[2], beam.reference.gamma * g.cell_m[2]));  // build_green's hz
        }
}

TEST_CASE("device kick frame equals the CPU kick's geometry and conversions bit for bit", "[gpu-emulation]") {
    SECTION("float64") { frame_matches_cpu<double>(); }
    SECTION("float32") { frame_matches_cpu<float>(); }
}

TEST_CASE("device kick frame flags the CPU's errors, on the CPU's axis", "[gpu-emulation]") {
    const std::vector<double> ok = {-1.0, 0.5, 2.0, 0.1};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    GridSettings minmax = grid32(), sigma = grid32(ExtentMode::sigma);
    sigma.sigma_factor = {6.0, 0.5, 6.0};
    using V = std::vector<double>;
    struct Case {
        const char* name;
        GridSettings s;
        std::array<V, 3> pos;
        int error, axis;
        const char* message;
    };
    const std::vector<Case> cases = {
        {"non-finite y", minmax, {ok, V{0, nan, 1, 2}, ok}, kKickNonFiniteCoordinate, 1, "non-finite particle coordinate along y"},
        {"zero extent z", minmax, {ok, ok, V{3, 3, 3, 3}}, kKickZeroExtent, 2, "zero extent along z"},
        {"outside a sigma grid along y", sigma, {ok, ok, ok}, kKickOutsideGrid, 1, "particles outside the grid along y"},
        {"x first", minmax, {V{1, 1, 1, 1}, V{0, nan, 1, 2}, ok}, kKickZeroExtent, 0, "zero extent along x"},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        ExtentAcc ext[3];
        AxisExtent host[3];
        for (int a = 0; a < 3; ++a) {
            for (double v : c.pos[a]) host[a].add(v);
            ext[a] = from_host(host[a]);
        }
        KickFrame<double> f{};
        int axis = -1;
        CHECK(kick_frame(extent_rule(c.s), ext, 4, 1e-12, 2.0, f, axis) == c.error);
        CHECK(axis == c.axis);
        // a unit grid, so the kernels that still run index in bounds
        for (int a = 0; a < 3; ++a) CHECK(f.cell[a] == 1.0);
        CHECK_THROWS_WITH(geometry_from_extents(c.s, host, 4), Catch::Contains(c.message));
    }
}

TEST_CASE("device IGF reuse follows the CPU's rule: same cell sizes and gamma, bit for bit", "[gpu-emulation]") {
    GreenCache cache{};
    const double cell[3] = {1e-4, 2e-4, 3e-6};
    CHECK(green_needs_build(cache, cell, 490.0));   // nothing built yet
    CHECK_FALSE(green_needs_build(cache, cell, 490.0));
    const double other[3] = {1e-4, std::nextafter(2e-4, 1.0), 3e-6};
    CHECK(green_needs_build(cache, other, 490.0));  // one ulp of one cell size
    CHECK_FALSE(green_needs_build(cache, other, 490.0));
    CHECK(green_needs_build(cache, other, 491.0));  // gamma
    cache.valid = 0;                                 // an adjoint overwrote the IGF
    CHECK(green_needs_build(cache, other, 491.0));
}

TEST_CASE("device backward scalars: the host's former arithmetic, bit for bit", "[gpu-emulation]") {
    // finish_sum: block order, as the host summed the copied partials
    std::vector<double> partials;
    for (int i = 0; i < 3 * 37; ++i) partials.push_back(std::sin(0.37 * i) * std::pow(10.0, i % 7));
    for (int k = 0; k < 3; ++k) {
        double host = 0;
        for (int b = 0; b < 37; ++b) host += partials[std::size_t(k) * 37 + b];
        CHECK(same_bits_as(finish_sum(partials.data(), 37, k), host));
    }

    // the geometry adjoint through one kick's adjoint, as GpuAdjoint::kick did on the host
    const double gather[6] = {0.3, -1.7, 2.9, 1e-3, -4e2, 7.5};
    const double field[3] = {1.25, -0.5, 3.75};
    const double h[3] = {0.11, 0.22, 0.33};
    const double deposit[7] = {0.9, 1.1, -2.3, 0.4, 6.6, -0.07, 1e4};
    const double gamma = 490.2, cell[3] = {1.3e-4, 2.1e-4, 5.3e-6}, scale = 3.1e-3, charge = 1e-9;
    GeometryAdjoint host;
    ParameterAdjoints host_params;
    for (int a = 0; a < 3; ++a) host.origin_m[a] += gather[a], host.cell_m[a] += gather[3 + a];
    for (int a = 0; a < 3; ++a) host.cell_m[a] += field[a];
    host.cell_m[0] += h[0];
    host.cell_m[1] += h[1];
    host.cell_m[2] += gamma * h[2];
    host_params.reference.gamma += cell[2] * h[2];
    for (int a = 0; a < 3; ++a) host.origin_m[a] += deposit[1 + a], host.cell_m[a] += deposit[4 + a];
    const double v_host = deposit[0] * scale;
    host_params.bunch_charge_C += v_host / charge;
    for (int a = 0; a < 3; ++a) host.cell_m[a] -= v_host / cell[a];

    GeometryAdjointAcc dev{};
    add_geometry_sums(dev, gather, 0, 3);
    for (int a = 0; a < 3; ++a) dev.cell[a] += field[a];  // add_cell_sum_kernel
    const double gamma_term = add_green_adjoint(dev, h, gamma, cell[2]);
    add_geometry_sums(dev, deposit, 1, 4);
    const double v = add_deposit_scale_adjoint(dev, deposit[0], scale, cell);
    for (int a = 0; a < 3; ++a) {
        CHECK(same_bits_as(dev.origin[a], host.origin_m[a]));
        CHECK(same_bits_as(dev.cell[a], host.cell_m[a]));
    }
    ParameterAdjoints params;
    params.reference.gamma += gamma_term;
    params.bunch_charge_C += v / charge;
    CHECK(same_bits_as(params.reference.gamma, host_params.reference.gamma));
    CHECK(same_bits_as(params.bunch_charge_C, host_params.bunch_charge_C));

    // grid_covering's adjoint terms
    AxisExtent e;
    for (double u : {-1.5e-3, 0.2e-3, 0.9e-3, 2.4e-3, -0.4e-3}) e.add(u);
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma})
    for (double quantum : {0.0, 0.05}) {
        GridSettings s = grid32(mode);
        s.shape = {24, 17, 40};
        s.cell_quantum = quantum;
        const ExtentRule rule = extent_rule(s);
        for (int a = 0; a < 3; ++a) {
            const CoveringAdjoint c = covering_adjoint(rule, a, from_host(e), 5, dev);
            // grid_covering_adjoint's (grid_ops.cpp) statistics' adjoints
            const double o_adj = dev.origin[a], h_adj = dev.cell[a];
            const ExtentJacobian jac = extent_jacobian(s, a);
            const double stat_adj[2] = {o_adj * jac.origin[0] + h_adj * jac.cell[0],
                                        o_adj * jac.origin[1] + h_adj * jac.cell[1]};
            if (mode == ExtentMode::minmax) {
                CHECK(same_bits_as(c.lo_adj, stat_adj[0]));
                CHECK(same_bits_as(c.hi_adj, stat_adj[1]));
                CHECK(c.lo == e.lo);
                CHECK(c.hi == e.hi);
            } else {
                const double mean = e.sum / 5;
                const double rms = std::sqrt(std::max(e.sum2 / 5 - mean * mean, 0.0));
                CHECK(same_bits_as(c.mean, mean));
                CHECK(same_bits_as(c.rms, rms));
                CHECK(same_bits_as(c.mean_adj, stat_adj[0]));
                CHECK(same_bits_as(c.rms_adj, stat_adj[1]));
            }
        }
    }
}
