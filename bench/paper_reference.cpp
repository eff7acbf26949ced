// paper_reference.cpp — see paper_reference.hpp.
#include "paper_reference.hpp"

#include <algorithm>
#include <cmath>

#include "physics/constants.hpp"

namespace sctape::reference {

namespace {
constexpr double kCoulomb = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);  // 1/(4 pi eps0)
}

// Rest frame (z' = gamma z, sigma_z' = gamma sigma_z):
//   E'_i = q/(4 pi eps0) (1/sqrt(2 pi)) x_i
//          * Int_0^inf exp(-sum_j x_j^2 / (2(s_j^2+l))) / ((s_i^2+l) sqrt(prod_j (s_j^2+l))) dl,
// lab: Ex = gamma E'x, Ey = gamma E'y, Ez = E'z. (The paper's Eqs. 7-8 are
// the same integral with l = 1/lambda^2.)
// The integral is done with l = exp(t) (the integrand spans the decades from
// sigma_x^2 to sigma_z'^2) by composite Simpson with step 0.01 in t over
// [ln(min s^2) - 30, ln(max(s^2, r^2)) + 30]: below, the integrand falls like
// e^t, above like e^(-t/2) or faster, so the cut tails are < e^-15 relative;
// the Simpson error for a function varying on scale ~1 in t is ~h^4 ~ 1e-8.
std::array<double, 3> gaussian_lab_field(double q, const std::array<double, 3>& sigma, double gamma,
                                         const std::array<double, 3>& r) {
    const double s2[3] = {sigma[0] * sigma[0], sigma[1] * sigma[1], gamma * gamma * sigma[2] * sigma[2]};
    const double xr[3] = {r[0], r[1], gamma * r[2]};
    const double r2 = xr[0] * xr[0] + xr[1] * xr[1] + xr[2] * xr[2];
    const double t0 = std::log(std::min({s2[0], s2[1], s2[2]})) - 30.0;
    const double t1 = std::log(std::max({s2[0], s2[1], s2[2], r2})) + 30.0;
    int n = int(std::ceil((t1 - t0) / 0.01));
    n += n % 2;
    const double h = (t1 - t0) / n;
    double sum[3] = {0, 0, 0};
    for (int m = 0; m <= n; ++m) {
        const double l = std::exp(t0 + m * h);
        const double a[3] = {s2[0] + l, s2[1] + l, s2[2] + l};
        const double common =
            l * std::exp(-0.5 * (xr[0] * xr[0] / a[0] + xr[1] * xr[1] / a[1] + xr[2] * xr[2] / a[2])) /
            std::sqrt(a[0] * a[1] * a[2]);
        const double w = (m == 0 || m == n) ? 1.0 : (m % 2 ? 4.0 : 2.0);
        for (int i = 0; i < 3; ++i) sum[i] += w * common / a[i];
    }
    std::array<double, 3> e;
    for (int i = 0; i < 3; ++i) e[i] = q * kCoulomb / std::sqrt(2.0 * kPi) * xr[i] * sum[i] * h / 3.0;
    e[0] *= gamma;
    e[1] *= gamma;
    return e;
}

std::array<double, 3> gaussian_lorentz_force_per_charge(double q, const std::array<double, 3>& sigma, double gamma,
                                                        const std::array<double, 3>& r) {
    std::array<double, 3> f = gaussian_lab_field(q, sigma, gamma, r);
    f[0] /= gamma * gamma;
    f[1] /= gamma * gamma;
    return f;
}

double radical_inverse(std::uint64_t i, std::uint64_t base) {
    double f = 1.0, r = 0.0;
    while (i > 0) {
        f /= double(base);
        r += f * double(i % base);
        i /= base;
    }
    return r;
}

// Acklam's rational approximation (1e-9) and one Halley step on erfc, which
// brings it to rounding level.
double inverse_normal_cdf(double p) {
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01,  -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    double x;
    if (p < 0.02425 || p > 1 - 0.02425) {
        const double q = std::sqrt(-2 * std::log(p < 0.5 ? p : 1 - p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        if (p > 0.5) x = -x;
    } else {
        const double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
    const double u = e * std::sqrt(2 * kPi) * std::exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

Beam<double> quiet_gaussian_beam(std::int64_t n, double gamma, const std::array<double, 3>& sigma, double charge_C) {
    Beam<double> beam;
    beam.species = Species::electron();
    beam.reference = Reference::from_kinetic(beam.species.mass_eV, (gamma - 1.0) * beam.species.mass_eV);
    beam.bunch_charge_C = charge_C;
    for (auto* c : beam.columns()) c->assign(std::size_t(n), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
        beam.x[i] = sigma[0] * inverse_normal_cdf(radical_inverse(i + 1, 2));
        beam.y[i] = sigma[1] * inverse_normal_cdf(radical_inverse(i + 1, 3));
        beam.tau[i] = sigma[2] / beam.reference.beta * inverse_normal_cdf(radical_inverse(i + 1, 5));
    }
    return beam;
}

double perveance(double bunch_charge_C, const Reference& ref) {
    const double n_b = std::abs(bunch_charge_C) / kElementaryCharge_C;
    return n_b * kClassicalElectronRadius_m / (ref.beta_gamma() * ref.beta_gamma());
}

double expansion_length(double u, double r0, double k) {
    return std::sqrt(r0 * r0 * r0 / (2.0 * k)) * (std::sqrt(u * (u - 1.0)) + std::acosh(std::sqrt(u)));
}

double expansion_ratio(double s, double r0, double k) {
    double lo = 1.0, hi = 2.0;
    while (expansion_length(hi, r0, k) < s) hi *= 2.0;
    for (int it = 0; it < 200 && hi - lo > 1e-15 * hi; ++it) {
        double mid = 0.5 * (lo + hi);
        (expansion_length(mid, r0, k) < s ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

namespace {

struct State {
    double r, dr;
};

// Classical RK4 for R'' = K/R^2 over [0, s_end] in `steps` equal steps.
State rk4_envelope(double r0, double k, double s_end, int steps) {
    auto accel = [k](double r) { return k / (r * r); };
    const double h = s_end / steps;
    State y{r0, 0.0};
    for (int i = 0; i < steps; ++i) {
        const double k1r = y.dr, k1v = accel(y.r);
        const double k2r = y.dr + 0.5 * h * k1v, k2v = accel(y.r + 0.5 * h * k1r);
        const double k3r = y.dr + 0.5 * h * k2v, k3v = accel(y.r + 0.5 * h * k2r);
        const double k4r = y.dr + h * k3v, k4v = accel(y.r + h * k3r);
        y.r += h / 6.0 * (k1r + 2 * k2r + 2 * k3r + k4r);
        y.dr += h / 6.0 * (k1v + 2 * k2v + 2 * k3v + k4v);
    }
    return y;
}

}  // namespace

EnvelopePoint integrate_envelope(double r0, double k, double s_end, int steps) {
    const State coarse = rk4_envelope(r0, k, s_end, steps);
    const State fine = rk4_envelope(r0, k, s_end, 2 * steps);
    EnvelopePoint p;
    p.s_m = s_end;
    p.r_m = fine.r;
    p.dr_ds = fine.dr;
    p.r_error_m = std::abs(coarse.r - fine.r) / 15.0;
    p.dr_ds_error = std::abs(coarse.dr - fine.dr) / 15.0;
    return p;
}

}  // namespace sctape::reference
