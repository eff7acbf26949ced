// Reverse-mode gradients: the fused strategy against central finite
// differences (float64), exact tape byte counts, determinism, clean-up after
// backward, and the free-expansion derivative against its closed form.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "ad/gradient.hpp"
#include "physics/tracking.hpp"

using namespace sctape;

namespace {

struct Problem {
    BeamParameters beam;
    TrackSettings tracking;
};

// 2000 particles, 16^3, 3 kicks over two drifts: small enough for many
// finite-difference evaluations, large enough to exercise every substep.
Problem small_problem() {
    Problem p;
    p.beam.n_particles = 2000;
    p.beam.bunch_charge_C = 1e-9;
    p.beam.kinetic_energy_eV = 10e6;
    p.beam.distribution.type = DistributionType::gaussian;
    p.beam.distribution.size_m = {1e-3, 1.2e-3, 0.8e-3};
    p.beam.distribution.momentum_rms = {1e-4, 2e-4, 1e-4};
    p.tracking.lattice = {{0.5, 2}, {0.3, 1}};
    p.tracking.grid.shape = {16, 16, 16};
    p.tracking.threads = 2;
    return p;
}

double objective_after_tracking(const Problem& p, Objective o) {
    Beam<double> beam = make_beam<double>(p.beam);
    track(beam, p.tracking);
    return objective_value(beam, o);
}

double* parameter(Problem& p, const std::string& name) {
    if (name == "bunch_charge_C") return &p.beam.bunch_charge_C;
    if (name == "kinetic_energy_eV") return &p.beam.kinetic_energy_eV;
    if (name == "distribution.sigma_x_m") return &p.beam.distribution.size_m[0];
    if (name == "distribution.sigma_y_m") return &p.beam.distribution.size_m[1];
    if (name == "distribution.sigma_tau_m") return &p.beam.distribution.size_m[2];
    if (name == "distribution.sigma_px") return &p.beam.distribution.momentum_rms[0];
    if (name == "distribution.sigma_py") return &p.beam.distribution.momentum_rms[1];
    if (name == "distribution.sigma_delta") return &p.beam.distribution.momentum_rms[2];
    if (name == "lattice.0.length_m") return &p.tracking.lattice[0].length_m;
    if (name == "lattice.1.length_m") return &p.tracking.lattice[1].length_m;
    FAIL("no parameter " << name);
    return nullptr;
}

// Central difference with one Richardson step: O(h^4) truncation, so a
// relative step of 1e-4 keeps truncation near 1e-16 and rounding near
// 1e-16 / 1e-4 = 1e-12 relative to the objective's scale.
double richardson(const std::function<double(double)>& f, double h) {
    const double d1 = (f(h) - f(-h)) / (2 * h);
    const double d2 = (f(h / 2) - f(-h / 2)) / h;
    return (4 * d2 - d1) / 3;
}

// Agreement to 1e-6 relative, except that gradients whose size is below
// 1e-9 of the objective per unit relative change of the input are compared
// absolutely at that level: there the finite difference is rounding noise.
void check_gradient(const std::string& what, double ad, double fd, double objective, double input_scale) {
    INFO(what << ": reverse mode " << ad << ", finite differences " << fd);
    const double floor = 1e-9 * std::fabs(objective) / std::fabs(input_scale);
    CHECK(std::fabs(ad - fd) <= 1e-6 * std::fabs(fd) + floor);
}

}  // namespace

TEST_CASE("gradients of every input match central finite differences (float64)", "[gradient]") {
    for (auto [strategy, objective] : {std::pair{Strategy::fused, Objective::sigma_x},
                                       {Strategy::fused, Objective::emittance_tau},
                                       {Strategy::checkpoint, Objective::sigma_y},
                                       {Strategy::reversible, Objective::sigma_tau},
                                       {Strategy::checkpoint, Objective::sigma_px},
                                       {Strategy::reversible, Objective::sigma_delta}}) {
        Problem p = small_problem();
        GradientRequest request;
        request.strategy = strategy;
        request.snapshots = 2;
        request.objective = objective;
        request.gradients = gradient_names(p.beam, p.tracking.lattice);
        INFO("strategy " << strategy_name(strategy));
        const GradientResult r = compute_gradient<double>(p.beam, p.tracking, request);
        REQUIRE(r.objective == Approx(objective_after_tracking(p, objective)).epsilon(1e-13));

        for (const std::string& name : request.gradients) {
            const double x0 = *parameter(p, name);
            const double fd = richardson(
                [&](double h) {
                    Problem q = p;
                    *parameter(q, name) = x0 + h;
                    return objective_after_tracking(q, objective);
                },
                1e-4 * x0);
            check_gradient(std::string(objective_name(objective)) + " / " + name, r.gradients.at(name), fd,
                           r.objective, x0);
        }
        // initial coordinates: two particles per column
        const double scale[6] = {1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-4};
        for (int c = 0; c < 6; ++c)
            for (int particle : {3, 777}) {
                const double fd = richardson(
                    [&](double h) {
                        Beam<double> beam = make_beam<double>(p.beam);
                        (*beam.columns()[c])[particle] += h;
                        track(beam, p.tracking);
                        return objective_value(beam, objective);
                    },
                    1e-4 * scale[c]);
                check_gradient(std::string(objective_name(objective)) + " / column " + std::to_string(c) +
                                   " particle " + std::to_string(particle),
                               r.particle_gradient[c][particle], fd, r.objective, scale[c]);
            }
    }
}

// With space_charge.extent.cell_quantum the cells are constant between steps
// of the ladder, and the gradients are those of that piecewise-constant grid.
// The finite differences take a relative step of 1e-6 (rounding then costs
// about 1e-16 / 1e-6 = 1e-10 of the objective): the exact cells move by about
// that much of themselves, and in this run none lies that close to a step
// (with the usual 1e-4 one does, and the difference sees its jump). Were one
// to, the difference would jump and this test fail loudly, not pass wrongly.
TEST_CASE("with a cell quantum, every strategy's gradients match central finite differences", "[gradient]") {
    for (Strategy strategy : {Strategy::fused, Strategy::checkpoint, Strategy::reversible, Strategy::autograd}) {
        Problem p = small_problem();
        p.tracking.grid.cell_quantum = 0.05;
        GradientRequest request;
        request.strategy = strategy;
        request.snapshots = 2;
        request.objective = Objective::sigma_x;
        // kinetic_energy_eV reaches the Green function through gamma: with
        // quantized cells the adjoints' Parseval path gives that term
        request.gradients = {"bunch_charge_C", "kinetic_energy_eV", "distribution.sigma_x_m",
                             "distribution.sigma_tau_m", "lattice.0.length_m"};
        INFO("strategy " << strategy_name(strategy));
        const GradientResult r = compute_gradient<double>(p.beam, p.tracking, request);
        REQUIRE(r.objective == Approx(objective_after_tracking(p, request.objective)).epsilon(1e-13));
        for (const std::string& name : request.gradients) {
            const double x0 = *parameter(p, name);
            const double fd = richardson(
                [&](double h) {
                    Problem q = p;
                    *parameter(q, name) = x0 + h;
                    return objective_after_tracking(q, request.objective);
                },
                1e-6 * x0);
            check_gradient("sigma_x / " + name, r.gradients.at(name), fd, r.objective, x0);
        }
    }
}

// A beam that grows through several rungs of the cell ladder: the adjoints
// meet Green functions held and rebuilt (the Parseval path and the folded
// one, and the cache's invalidation between them), and must give autograd's
// gradients (which track a constant cell per kick) to the 1e-10 of the
// unquantized comparison above.
TEST_CASE("with a cell quantum and a growing beam, every strategy's gradients equal autograd's", "[gradient]") {
    Problem p = small_problem();
    p.beam.bunch_charge_C = 2e-8;  // strong space charge at 10 MeV: the beam grows while tracked
    p.tracking.lattice = {{2.0, 8}};
    p.tracking.grid.cell_quantum = 0.05;
    GradientRequest request;
    request.objective = Objective::sigma_x;
    request.gradients = gradient_names(p.beam, p.tracking.lattice);
    request.strategy = Strategy::autograd;
    const GradientResult reference = compute_gradient<double>(p.beam, p.tracking, request);
    // sigma_x grows by more than two rungs (1.05^2), so some kicks differ in their cells
    REQUIRE(reference.objective > 1.1 * p.beam.distribution.size_m[0]);
    for (Strategy strategy : {Strategy::fused, Strategy::checkpoint, Strategy::reversible}) {
        request.strategy = strategy;
        request.snapshots = 3;
        const GradientResult r = compute_gradient<double>(p.beam, p.tracking, request);
        for (const auto& [name, value] : reference.gradients) {
            INFO(strategy_name(strategy) << " / " << name);
            CHECK(r.gradients.at(name) == Approx(value).epsilon(1e-10));
        }
    }
}

// Per kick the fused tape keeps the kick's input coordinates (x, y, tau, px,
// py, delta) and rho and phi; one more momentum snapshot (the final one) and
// the objective's x column close the run:
//   tape_bytes = K (6 N + 2 N_cells) w + 4 N w     (objective sigma_x)
TEST_CASE("fused tape bytes follow their closed form exactly", "[gradient][tape]") {
    for (int threads : {1, 2})
        for (auto [n, grid] : {std::pair<int, int>{1000, 8}, {3000, 12}}) {
            Problem p = small_problem();
            p.beam.n_particles = n;
            p.tracking.grid.shape = {grid, grid + 2, grid};
            p.tracking.threads = threads;
            const std::int64_t cells = std::int64_t(grid) * (grid + 2) * grid, kicks = 3;
            GradientRequest request;
            const auto r32 = compute_gradient<float>(p.beam, p.tracking, request);
            const auto r64 = compute_gradient<double>(p.beam, p.tracking, request);
            CHECK(r32.memory.kicks == kicks);
            CHECK(r32.memory.tape_bytes == kicks * (6 * n + 2 * cells) * 4 + 4 * n * 4);
            CHECK(r64.memory.tape_bytes == kicks * (6 * n + 2 * cells) * 8 + 4 * n * 8);
            CHECK(r64.memory.tape_bytes_by_scope.at("convolve") == kicks * cells * 8);  // rho
            CHECK(r64.memory.tape_bytes_by_scope.at("gather") == kicks * cells * 8);    // phi
            CHECK(r64.memory.tape_bytes_by_scope.at("green") == 0);
            CHECK(r64.memory.tape_bytes_by_scope.at("field") == 0);
            CHECK(r64.memory.bytes_after_backward == 0);
            CHECK(r32.memory.bytes_after_backward == 0);
        }
}

TEST_CASE("fused gradients and tape bytes are reproducible", "[gradient][tape]") {
    Problem p = small_problem();
    GradientRequest request;
    request.gradients = gradient_names(p.beam, p.tracking.lattice);
    const auto a = compute_gradient<double>(p.beam, p.tracking, request);
    const auto b = compute_gradient<double>(p.beam, p.tracking, request);
    CHECK(a.memory.tape_bytes == b.memory.tape_bytes);
    CHECK(a.memory.tape_bytes_by_scope == b.memory.tape_bytes_by_scope);
    for (const auto& [name, value] : a.gradients) CHECK(b.gradients.at(name) == value);  // bitwise, same threads
    p.tracking.threads = 1;
    const auto c = compute_gradient<double>(p.beam, p.tracking, request);
    CHECK(c.memory.tape_bytes_by_scope == a.memory.tape_bytes_by_scope);
    // other thread count: deposit sums in another order, so agreement to rounding
    for (const auto& [name, value] : a.gradients) CHECK(c.gradients.at(name) == Approx(value).epsilon(1e-10));
}

TEST_CASE("unknown gradient names are rejected before any work", "[gradient]") {
    Problem p = small_problem();
    GradientRequest request;
    request.gradients = {"lattice.7.length_m"};
    CHECK_THROWS_WITH(compute_gradient<double>(p.beam, p.tracking, request),
                      Catch::Contains("unknown gradient name 'lattice.7.length_m'"));
}

// docs/physics.md: at the doubling length of a cold uniform sphere, dR/ds =
// sqrt(2K (1/R0 - 1/R)) = sqrt(N_b r_e / R0) / (beta gamma), and sigma_x =
// R/sqrt(5). The peer code holds this to 10%; we ask for 3%, which the
// 1e5-particle, 32^3 run meets (grid and shot-noise errors are ~0.5%, see the
// free-expansion test in test_physics.cpp).
TEST_CASE("free expansion: sqrt(5) d sigma_x / dL at the doubling length matches the closed form", "[gradient][physics]") {
    const double r0 = 1e-3, charge = 10e-9;
    BeamParameters beam;
    beam.n_particles = 100000;
    beam.bunch_charge_C = charge;
    beam.kinetic_energy_eV = 250e6;
    const Reference ref = Reference::from_kinetic(beam.species.mass_eV, beam.kinetic_energy_eV);
    const double bg = ref.beta_gamma();
    beam.distribution.size_m = {r0, r0, r0 / bg};
    const double nb = charge / kElementaryCharge_C;
    const double kappa = 1.0 + std::sqrt(2.0) / 4.0 * std::log(3.0 + 2.0 * std::sqrt(2.0));
    const double length = bg * kappa * std::sqrt(r0 * r0 * r0 / (nb * kClassicalElectronRadius_m));
    TrackSettings tracking;
    tracking.lattice = {{length, 20}};
    tracking.threads = 2;
    GradientRequest request;
    request.gradients = {"lattice.0.length_m"};
    const GradientResult r = compute_gradient<double>(beam, tracking, request);
    const double expected = std::sqrt(nb * kClassicalElectronRadius_m / r0) / bg;
    const double measured = std::sqrt(5.0) * r.gradients.at("lattice.0.length_m");
    INFO("sqrt(5) dsigma_x/dL = " << measured << ", closed form " << expected);
    CHECK(measured == Approx(expected).epsilon(0.03));
}

// Both strategies differentiate the same float64 arithmetic, so they agree to
// rounding accumulated over 3 kicks: 1e-10 relative (measured: ~3e-11).
TEST_CASE("autograd and fused gradients agree (float64)", "[gradient][autograd]") {
    for (Objective objective : {Objective::sigma_x, Objective::emittance_y, Objective::sigma_py}) {
        Problem p = small_problem();
        GradientRequest request;
        request.objective = objective;
        request.gradients = gradient_names(p.beam, p.tracking.lattice);
        request.strategy = Strategy::fused;
        const auto fused = compute_gradient<double>(p.beam, p.tracking, request);
        request.strategy = Strategy::autograd;
        const auto autograd = compute_gradient<double>(p.beam, p.tracking, request);
        // the objective from the same final beam; measured: equal for sigma_x and emittance_y,
        // sigma_py differs in its last bits (autograd's push rounds px in another order)
        CHECK(autograd.objective == Approx(fused.objective).epsilon(1e-15));
        for (const auto& [name, value] : fused.gradients) {
            INFO(objective_name(objective) << " / " << name);
            CHECK(autograd.gradients.at(name) == Approx(value).epsilon(1e-10));
        }
        for (int c = 0; c < 6; ++c) {
            double rms = 0, worst = 0;
            for (double g : fused.particle_gradient[c]) rms += g * g;
            rms = std::sqrt(rms / double(fused.particle_gradient[c].size()));
            for (std::size_t i = 0; i < fused.particle_gradient[c].size(); ++i)
                worst = std::max(worst, std::fabs(fused.particle_gradient[c][i] - autograd.particle_gradient[c][i]));
            INFO(objective_name(objective) << " / column " << c << ": worst difference " << worst << ", rms " << rms);
            CHECK(worst <= 1e-10 * rms);
        }
        CHECK(autograd.memory.bytes_after_backward == 0);
    }
}

TEST_CASE("autograd tape bytes are deterministic across runs and thread counts", "[gradient][autograd][tape]") {
    Problem p = small_problem();
    p.beam.n_particles = 1000;
    p.tracking.grid.shape = {8, 8, 8};
    GradientRequest request;
    request.strategy = Strategy::autograd;
    const auto a = compute_gradient<float>(p.beam, p.tracking, request);
    const auto b = compute_gradient<float>(p.beam, p.tracking, request);
    p.tracking.threads = 1;
    const auto c = compute_gradient<float>(p.beam, p.tracking, request);
    CHECK(a.memory.tape_bytes == b.memory.tape_bytes);
    CHECK(a.memory.tape_bytes_by_scope == c.memory.tape_bytes_by_scope);
    CHECK(a.memory.bytes_after_backward == 0);
}
