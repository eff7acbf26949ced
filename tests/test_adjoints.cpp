// Dot-product (adjoint) tests of the grid operations in grid_ops.hpp: for a
// linearization J of each operation, <J^T ybar, xdot> must equal
// <ybar, J xdot>, with J xdot from central differences in float64.
// Tolerance 1e-6 relative: the central-difference truncation error at step
// 1e-6 of the input scale is O(1e-12) relative and rounding O(1e-10); 1e-6
// leaves room and still catches any wrong term (those are O(1) errors).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>

#include "physics/adjoint_bodies.hpp"
#include "physics/grid_ops.hpp"
#include "physics/space_charge.hpp"

using namespace sctape;

namespace {

std::vector<double> random_vector(std::size_t n, unsigned seed, double lo = -1, double hi = 1) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<double> v(n);
    for (double& x : v) x = u(rng);
    return v;
}

double dot(const double* a, const double* b, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

GridGeometry small_grid() {
    GridGeometry g;
    g.n = {6, 5, 7};
    g.origin_m = {-1.0, -0.8, -1.2};
    g.cell_m = {0.4, 0.45, 0.38};
    return g;
}

// d/d(eps) of <ybar, f(eps)> by central differences.
double directional(const std::function<double(double)>& f, double h) { return (f(h) - f(-h)) / (2 * h); }

}  // namespace

TEST_CASE("deposit and gather adjoints match directional derivatives", "[adjoint]") {
    const GridGeometry g = small_grid();
    const std::int64_t n = 50, cells = g.cells();
    // positions strictly inside the grid, away from cell boundaries by construction of random reals
    std::array<std::vector<double>, 3> pos;
    for (int a = 0; a < 3; ++a)
        pos[a] = random_vector(n, 10 + a, g.origin_m[a] + 0.1, g.origin_m[a] + (g.n[a] - 1) * g.cell_m[a] - 0.1);
    const auto pos_dot = std::array<std::vector<double>, 3>{random_vector(n, 20), random_vector(n, 21), random_vector(n, 22)};
    const std::array<double, 3> o_dot = {0.3, -0.2, 0.1}, h_dot = {0.05, -0.07, 0.02};
    const double scale = 1.7;
    HostArray<double> scratch;

    auto perturbed = [&](double eps, GridGeometry& gg, std::array<std::vector<double>, 3>& pp) {
        gg = g;
        pp = pos;
        for (int a = 0; a < 3; ++a) {
            gg.origin_m[a] += eps * o_dot[a];
            gg.cell_m[a] += eps * h_dot[a];
            for (std::int64_t p = 0; p < n; ++p) pp[a][p] += eps * pos_dot[a][p];
        }
    };

    SECTION("deposit") {
        const auto rho_bar = random_vector(cells, 30);
        auto f = [&](double eps) {
            GridGeometry gg;
            std::array<std::vector<double>, 3> pp;
            perturbed(eps, gg, pp);
            const double* pr[3] = {pp[0].data(), pp[1].data(), pp[2].data()};
            std::vector<double> rho(cells);
            deposit_cic(gg, pr, n, scale, 1, scratch, rho.data());
            return dot(rho_bar.data(), rho.data(), cells);
        };
        const double* pr[3] = {pos[0].data(), pos[1].data(), pos[2].data()};
        std::array<std::vector<double>, 3> pos_adj{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
        double* pa[3] = {pos_adj[0].data(), pos_adj[1].data(), pos_adj[2].data()};
        GeometryAdjoint geo;
        deposit_cic_adjoint(g, pr, n, scale, rho_bar.data(), 1, pa, geo);
        double lhs = 0;
        for (int a = 0; a < 3; ++a) lhs += dot(pos_adj[a].data(), pos_dot[a].data(), n) + geo.origin_m[a] * o_dot[a] + geo.cell_m[a] * h_dot[a];
        CHECK(lhs == Approx(directional(f, 1e-6)).epsilon(1e-6));
    }
    SECTION("gather") {
        std::array<std::vector<double>, 3> e_grid{random_vector(cells, 40), random_vector(cells, 41), random_vector(cells, 42)};
        std::array<std::vector<double>, 3> e_bar{random_vector(n, 43), random_vector(n, 44), random_vector(n, 45)};
        std::array<std::vector<double>, 3> e_grid_dot{random_vector(cells, 46), random_vector(cells, 47), random_vector(cells, 48)};
        auto f = [&](double eps) {
            GridGeometry gg;
            std::array<std::vector<double>, 3> pp;
            perturbed(eps, gg, pp);
            std::array<std::vector<double>, 3> eg = e_grid, ep{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
            for (int a = 0; a < 3; ++a)
                for (std::int64_t c = 0; c < cells; ++c) eg[a][c] += eps * e_grid_dot[a][c];
            const double* pr[3] = {pp[0].data(), pp[1].data(), pp[2].data()};
            const double* egp[3] = {eg[0].data(), eg[1].data(), eg[2].data()};
            double* epp[3] = {ep[0].data(), ep[1].data(), ep[2].data()};
            gather_cic(gg, pr, n, egp, epp, 1);
            double s = 0;
            for (int a = 0; a < 3; ++a) s += dot(e_bar[a].data(), ep[a].data(), n);
            return s;
        };
        const double* pr[3] = {pos[0].data(), pos[1].data(), pos[2].data()};
        const double* egp[3] = {e_grid[0].data(), e_grid[1].data(), e_grid[2].data()};
        const double* eb[3] = {e_bar[0].data(), e_bar[1].data(), e_bar[2].data()};
        std::array<std::vector<double>, 3> pos_adj{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
        std::array<std::vector<double>, 3> eg_adj{std::vector<double>(cells), std::vector<double>(cells), std::vector<double>(cells)};
        double* pa[3] = {pos_adj[0].data(), pos_adj[1].data(), pos_adj[2].data()};
        double* ega[3] = {eg_adj[0].data(), eg_adj[1].data(), eg_adj[2].data()};
        GeometryAdjoint geo;
        gather_cic_adjoint(g, pr, n, egp, eb, 2, scratch, ega, pa, geo);
        double lhs = 0;
        for (int a = 0; a < 3; ++a)
            lhs += dot(pos_adj[a].data(), pos_dot[a].data(), n) + dot(eg_adj[a].data(), e_grid_dot[a].data(), cells) +
                   geo.origin_m[a] * o_dot[a] + geo.cell_m[a] * h_dot[a];
        CHECK(lhs == Approx(directional(f, 1e-6)).epsilon(1e-6));
    }
}

TEST_CASE("field, convolution and IGF adjoints match directional derivatives", "[adjoint]") {
    const GridGeometry g = small_grid();
    const std::int64_t cells = g.cells();
    const std::array<double, 3> h_dot = {0.05, -0.07, 0.02};
    auto with_cells = [&](double eps) {
        GridGeometry gg = g;
        for (int a = 0; a < 3; ++a) gg.cell_m[a] += eps * h_dot[a];
        return gg;
    };
    SECTION("field") {
        const auto phi = random_vector(cells, 50), phi_dot = random_vector(cells, 51);
        std::array<std::vector<double>, 3> e_bar{random_vector(cells, 52), random_vector(cells, 53), random_vector(cells, 54)};
        auto field_dot = [&](const GridGeometry& gg, const std::vector<double>& ph, std::array<std::vector<double>, 3>& e) {
            for (auto& v : e) v.assign(cells, 0);
            double* ep[3] = {e[0].data(), e[1].data(), e[2].data()};
            field_from_potential(gg, ph.data(), ep, 1);
            double s = 0;
            for (int a = 0; a < 3; ++a) s += dot(e_bar[a].data(), e[a].data(), cells);
            return s;
        };
        auto f = [&](double eps) {
            std::vector<double> ph = phi;
            for (std::int64_t c = 0; c < cells; ++c) ph[c] += eps * phi_dot[c];
            std::array<std::vector<double>, 3> e;
            return field_dot(with_cells(eps), ph, e);
        };
        std::array<std::vector<double>, 3> e;
        field_dot(g, phi, e);
        const double* ep[3] = {e[0].data(), e[1].data(), e[2].data()};
        const double* eb[3] = {e_bar[0].data(), e_bar[1].data(), e_bar[2].data()};
        std::vector<double> phi_adj(cells);
        GeometryAdjoint geo;
        field_from_potential_adjoint(g, ep, eb, 1, phi_adj.data(), geo);
        double lhs = dot(phi_adj.data(), phi_dot.data(), cells);
        for (int a = 0; a < 3; ++a) lhs += geo.cell_m[a] * h_dot[a];
        CHECK(lhs == Approx(directional(f, 1e-6)).epsilon(1e-6));
    }
    SECTION("convolution") {
        HockneyConvolver<double> conv(g.n, 1);
        const std::int64_t m = conv.doubled_size();
        const auto rho = random_vector(cells, 60), rho_dot = random_vector(cells, 61);
        const auto green = random_vector(m, 62), green_dot = random_vector(m, 63);
        const auto phi_bar = random_vector(cells, 64);
        auto f = [&](double eps) {
            std::vector<double> r = rho, gr = green, phi(cells);
            for (std::int64_t c = 0; c < cells; ++c) r[c] += eps * rho_dot[c];
            for (std::int64_t c = 0; c < m; ++c) gr[c] += eps * green_dot[c];
            conv.convolve(r.data(), gr.data(), phi.data());
            return dot(phi_bar.data(), phi.data(), cells);
        };
        std::vector<double> rho_adj(cells), green_adj(m);
        conv.convolve_adjoint(rho.data(), green.data(), phi_bar.data(), rho_adj.data(), green_adj.data());
        const double lhs = dot(rho_adj.data(), rho_dot.data(), cells) + dot(green_adj.data(), green_dot.data(), m);
        CHECK(lhs == Approx(directional(f, 1e-6)).epsilon(1e-6));
    }
    SECTION("even convolution: the green's adjoint folded through the DCT-I") {
        // The folded path must equal the general one (the doubled adjoint,
        // then green_fold_adjoint) to rounding: both are float64 sums of
        // O(cells) terms of size O(1), so 1e-12 of the largest value.
        for (const std::array<int, 3> shape : {std::array<int, 3>{6, 5, 7}, std::array<int, 3>{1, 4, 3}}) {
            GridGeometry gs = g;
            gs.n = shape;
            const std::int64_t nc = gs.cells();
            HockneyConvolver<double> conv(gs.n, 1);
            const std::int64_t m = conv.doubled_size();
            std::vector<double> green(m), spectrum(conv.green_spectrum_size());
            build_green(gs, 2.0, 1, green.data());
            conv.green_spectrum(green.data(), spectrum.data());
            const auto rho = random_vector(nc, 65), phi_bar = random_vector(nc, 66);
            std::vector<double> rho_adj(nc), green_adj(m), rho_adj_even(nc), folded(nc);
            conv.convolve_adjoint(rho.data(), green.data(), phi_bar.data(), rho_adj.data(), green_adj.data());
            conv.convolve_adjoint_even(rho.data(), spectrum.data(), phi_bar.data(), rho_adj_even.data(), folded.data());
            double largest = 0, worst = 0, rho_largest = 0, rho_worst = 0;
            for (std::int64_t c = 0; c < nc; ++c) {
                const double expected = bodies::green_fold_adjoint(green_adj.data(), c, gs.n[0], gs.n[1], gs.n[2], 1.0);
                largest = std::max(largest, std::abs(expected));
                worst = std::max(worst, std::abs(folded[c] - expected));
                rho_largest = std::max(rho_largest, std::abs(rho_adj[c]));
                rho_worst = std::max(rho_worst, std::abs(rho_adj_even[c] - rho_adj[c]));
            }
            CHECK(worst <= 1e-12 * largest);
            CHECK(rho_worst <= 1e-12 * rho_largest);
            GeometryAdjoint from_doubled, from_folded;
            const double gamma_doubled = build_green_adjoint(gs, 2.0, green_adj.data(), 1, from_doubled);
            const double gamma_folded = build_green_adjoint_folded(gs, 2.0, folded.data(), 1, nullptr, from_folded);
            // with the gradient build_green gives beside the values: the same bits
            CornerGradient gradient;
            std::vector<double> green_again(m);
            build_green(gs, 2.0, 1, green_again.data(), &gradient);
            CHECK(green_again == green);
            GeometryAdjoint from_gradient;
            CHECK(build_green_adjoint_folded(gs, 2.0, folded.data(), 1, &gradient, from_gradient) == gamma_folded);
            CHECK(from_gradient.cell_m == from_folded.cell_m);
            CHECK(gamma_folded == Approx(gamma_doubled).epsilon(1e-10));
            for (int a = 0; a < 3; ++a) CHECK(from_folded.cell_m[a] == Approx(from_doubled.cell_m[a]).epsilon(1e-10));
            // and through the spectrum of dG/d(theta_z) (Parseval), as the
            // kick's cache does it: the same sums in another order, 1e-10 as above
            HostArray<double> octant;
            build_green_z_cell_derivative(gs, 2.0, 1, octant);
            std::vector<double> z_derivative(conv.green_spectrum_size());
            conv.octant_spectrum(octant.data(), z_derivative.data());
            std::vector<double> rho_adj_cells(nc);
            const double theta_z_adj = conv.convolve_adjoint_even_to_z_cell(
                rho.data(), spectrum.data(), phi_bar.data(), rho_adj_cells.data(), z_derivative.data());
            const double theta_adj[3] = {0, 0, theta_z_adj};
            GeometryAdjoint from_cells;
            const double gamma_cells = add_green_cells_adjoint(gs, 2.0, theta_adj, from_cells);
            CHECK(gamma_cells == Approx(gamma_doubled).epsilon(1e-10));
            CHECK(from_cells.cell_m[2] == Approx(from_doubled.cell_m[2]).epsilon(1e-10));
            CHECK(rho_adj_cells == rho_adj_even);
        }
    }
    SECTION("IGF") {
        const double gamma = 3.0, gamma_dot = 0.4;
        HockneyConvolver<double> conv(g.n, 1);
        const std::int64_t m = conv.doubled_size();
        const auto green_bar = random_vector(m, 70);
        auto f = [&](double eps) {
            std::vector<double> gr(m);
            build_green(with_cells(eps), gamma + eps * gamma_dot, 1, gr.data());
            return dot(green_bar.data(), gr.data(), m);
        };
        GeometryAdjoint geo;
        const double gamma_adj = build_green_adjoint(g, gamma, green_bar.data(), 1, geo);
        double lhs = gamma_adj * gamma_dot;
        for (int a = 0; a < 3; ++a) lhs += geo.cell_m[a] * h_dot[a];
        CHECK(lhs == Approx(directional(f, 1e-6)).epsilon(1e-6));
    }
}

TEST_CASE("grid geometry adjoint matches directional derivatives", "[adjoint]") {
    const std::int64_t n = 40;
    std::array<std::vector<double>, 3> pos{random_vector(n, 80), random_vector(n, 81), random_vector(n, 82)};
    std::array<std::vector<double>, 3> pos_dot{random_vector(n, 83), random_vector(n, 84), random_vector(n, 85)};
    GeometryAdjoint bar;
    bar.origin_m = {0.3, -0.5, 0.7};
    bar.cell_m = {1.1, 0.4, -0.9};
    for (ExtentMode mode : {ExtentMode::minmax, ExtentMode::sigma}) {
        GridSettings s;
        s.shape = {6, 5, 7};
        s.mode = mode;
        s.padding = 0.1;
        s.sigma_factor = {4, 4, 4};
        auto f = [&](double eps) {
            auto pp = pos;
            for (int a = 0; a < 3; ++a)
                for (std::int64_t p = 0; p < n; ++p) pp[a][p] += eps * pos_dot[a][p];
            const double* pr[3] = {pp[0].data(), pp[1].data(), pp[2].data()};
            GridGeometry g = grid_covering(s, pr, n);
            double v = 0;
            for (int a = 0; a < 3; ++a) v += bar.origin_m[a] * g.origin_m[a] + bar.cell_m[a] * g.cell_m[a];
            return v;
        };
        const double* pr[3] = {pos[0].data(), pos[1].data(), pos[2].data()};
        std::array<std::vector<double>, 3> adj{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
        double* pa[3] = {adj[0].data(), adj[1].data(), adj[2].data()};
        grid_covering_adjoint(s, pr, n, bar, pa);
        double lhs = 0;
        for (int a = 0; a < 3; ++a) lhs += dot(adj[a].data(), pos_dot[a].data(), n);
        CHECK(lhs == Approx(directional(f, 1e-6)).epsilon(1e-6));
    }
}
