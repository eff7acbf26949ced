// paper_reference.hpp — the closed forms and reference integrals sctape is
// validated against (memory-scaling paper, App. B), shared by the physics
// tests (tests/test_physics.cpp) and sctape-validate (paper_validation.cpp),
// so that the figures and the tests compare with the same numbers.
//
// Layering: this depends on sctape_physics only (beam, constants); nothing in
// kernels/ depends on it.
#pragma once

#include <array>
#include <cstdint>

#include "physics/beam.hpp"

namespace sctape::reference {

// --- Gaussian bunch (paper App. B.1, Eqs. 7-8) -----------------------------

// Lab-frame electric field (V/m) at lab position r of a Gaussian bunch of
// total (signed) charge q with lab rms sizes sigma (x, y, z), moving with
// Lorentz factor gamma along z, by quadrature of the rest-frame integral.
std::array<double, 3> gaussian_lab_field(double q, const std::array<double, 3>& sigma, double gamma,
                                         const std::array<double, 3>& r);

// The paper's Eqs. 7-8: the lab-frame Lorentz force F = q_t (E + v x B) on a
// test charge q_t moving with the bunch, per unit q_t (V/m): Fx = Ex/gamma^2,
// Fy = Ey/gamma^2 (the magnetic field cancels all but 1/gamma^2), Fz = Ez.
std::array<double, 3> gaussian_lorentz_force_per_charge(double q, const std::array<double, 3>& sigma, double gamma,
                                                        const std::array<double, 3>& r);

// Quiet start: electrons with Lorentz factor gamma and bunch charge
// charge_C (a magnitude, as in Beam), Gaussian with lab rms sizes sigma (x, y, z; sigma_tau = sigma_z / beta),
// from a Halton sequence (bases 2, 3, 5) through the inverse normal CDF. Its
// density fluctuations at grid scale are far below the shot noise of random
// sampling (~1/N instead of 1/sqrt(N)), so a comparison measures the field
// solver, not the sample.
Beam<double> quiet_gaussian_beam(std::int64_t n, double gamma, const std::array<double, 3>& sigma, double charge_C);

double radical_inverse(std::uint64_t i, std::uint64_t base);
double inverse_normal_cdf(double p);

// --- Cold uniform sphere, free expansion (paper App. B.2, Eq. 9) -----------

// Perveance K = N_b r_e / (beta^2 gamma^2), metres, of a bunch of |charge| bunch_charge_C.
double perveance(double bunch_charge_C, const Reference& ref);

// The closed form of R'' = K/R^2, R(0) = R0, R'(0) = 0:
// s(u) = sqrt(R0^3/(2K)) [sqrt(u(u-1)) + arccosh(sqrt(u))], u = R/R0,
// and its inverse u(s) (bisection; s(u) increases monotonically for u >= 1).
double expansion_length(double u, double r0, double k);
double expansion_ratio(double s, double r0, double k);

// The paper's Eq. 9 integrated numerically: classical RK4 on (R, R') from
// R(0) = r0, R'(0) = 0, in `steps` equal steps from 0 to s_end. The error
// estimate is Richardson's: the same integration with half the step, and
// |y_h - y_h/2| / 15 (fourth order); the values returned are the finer ones.
struct EnvelopePoint {
    double s_m = 0, r_m = 0, dr_ds = 0;
    double r_error_m = 0, dr_ds_error = 0;  // Richardson estimates of the RK4 error
};
EnvelopePoint integrate_envelope(double r0, double k, double s_end, int steps);

}  // namespace sctape::reference
