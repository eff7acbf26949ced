// fixed_point.hpp — the per-particle fixed-point (int64) arithmetic of
// reversible tracking (reversible.hpp), as SCTAPE_HD functions: the CPU
// tracker and the CUDA kernels (cuda/gpu_reversible.cu) call exactly these,
// so a state quantized, stepped and unstepped on either follows the same
// integer rules.
//
// State order: (x, y, tau, px, py, pz), positions scaled per column (SI),
// momenta over p0 on the fixed grid kMomentumScale.
//
//   std::int64_t q = sctape::quantize(increment / scale);   // symmetric: Q(-v) = -Q(v)
//   if (!sctape::fixed_point_fits(column + q)) ...          // left the range
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.hpp"

namespace sctape {

enum FixedPointColumn { kFixedX = 0, kFixedY = 1, kFixedTau = 2, kFixedPx = 3, kFixedPy = 4, kFixedPz = 5 };

// Positions resolve 2^-50 of their initial range and can grow 2^12-fold
// before |q| reaches the 2^62 limit.
constexpr int kFixedPositionBits = 50;
constexpr double kFixedMomentumScale = 0x1.0p-60;
constexpr double kFixedLimit = 0x1.0p62;

// Round to nearest, ties to even: symmetric, so the integers a step adds are
// exactly those its inverse subtracts.
SCTAPE_HD std::int64_t quantize(double v) { return static_cast<std::int64_t>(llrint(v)); }

SCTAPE_HD bool fixed_point_fits(std::int64_t q) {
    const std::int64_t limit = std::int64_t(1) << 62;
    return q < limit && q > -limit;
}

// column += sign * Q(step), with the range checked in floating point first:
// llrint of a value beyond int64 and an int64 sum past 2^63 are undefined
// behaviour, so a step that cannot fit is refused before any integer is
// formed. With |column| < 2^62 and |step| < 2^62 the sum cannot overflow.
// Returns false (column unchanged) when the result leaves the range.
SCTAPE_HD bool fixed_point_add(std::int64_t& column, double step, int sign) {
    if (!(fabs(step) < kFixedLimit)) return false;  // also NaN
    const std::int64_t next = column + sign * quantize(step);
    if (!fixed_point_fits(next)) return false;
    column = next;
    return true;
}

// delta = E/(p0 c) - 1/beta0 with (p/p0)^2 = px^2 + py^2 + pz^2, written as
// (|P|^2 - 1)/(E + 1/beta0) (since (1/beta0)^2 - 1/(beta0 gamma0)^2 = 1) so
// no digits cancel; pz - 1 is exact near 1.
SCTAPE_HD double delta_from_momentum(double px, double py, double pz, double inv_beta0, double inv_bg0_sq) {
    const double p2_minus_1 = px * px + py * py + (pz - 1.0) * (pz + 1.0);
    const double e = sqrt(px * px + py * py + pz * pz + inv_bg0_sq);
    return p2_minus_1 / (e + inv_beta0);
}

// pz (over p0) of a particle with Cheetah's (px, py, delta).
SCTAPE_HD double pz_from_delta(double px, double py, double delta, double inv_beta0, double inv_bg0_sq) {
    const double e = inv_beta0 + delta;
    return sqrt(e * e - inv_bg0_sq - px * px - py * py);
}

// What a drift of `length_m` adds to (x, y, tau), in SI, given the quantized
// momenta: Cheetah's linear drift (tau changes by -L delta / (beta0 gamma0)^2).
SCTAPE_HD void drift_increments(std::int64_t qpx, std::int64_t qpy, std::int64_t qpz, double length_m,
                                double inv_beta0, double inv_bg0_sq, double inc[3]) {
    const double px = double(qpx) * kFixedMomentumScale, py = double(qpy) * kFixedMomentumScale;
    const double pz = double(qpz) * kFixedMomentumScale;
    inc[0] = length_m * px;
    inc[1] = length_m * py;
    inc[2] = -length_m * inv_bg0_sq * delta_from_momentum(px, py, pz, inv_beta0, inv_bg0_sq);
}

// Cheetah's (x, px, y, py, tau, delta) of a fixed-point state q (x, y, tau, px,
// py, pz order) with position scales scale_x, scale_y, scale_tau.
template <class T>
SCTAPE_HD void fixed_point_coordinates(const std::int64_t q[6], double scale_x, double scale_y, double scale_tau,
                                       double inv_beta0, double inv_bg0_sq, T out[6]) {
    const double px = double(q[kFixedPx]) * kFixedMomentumScale, py = double(q[kFixedPy]) * kFixedMomentumScale;
    const double pz = double(q[kFixedPz]) * kFixedMomentumScale;
    out[0] = T(double(q[kFixedX]) * scale_x);
    out[1] = T(px);
    out[2] = T(double(q[kFixedY]) * scale_y);
    out[3] = T(py);
    out[4] = T(double(q[kFixedTau]) * scale_tau);
    out[5] = T(delta_from_momentum(px, py, pz, inv_beta0, inv_bg0_sq));
}

}  // namespace sctape
