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

// ---- element maps as exact integer shears
//
// A 2x2 block [[a, b], [c, d]] of det 1 is the product of three shears,
// lower-upper-lower (applied right to left):
//   p += Q(q u), u += Q(b p), p += Q(q u),  q = (a - 1)/b = (d - 1)/b,
// (a = d for every sctape block). Each shear reads only the other column, so
// subtracting the same integers undoes it exactly. A drift block (c = 0) is
// the single shear u += Q(b p). The ordering stays well conditioned where the
// maps live: as c -> 0 (weak quadrupoles, short slices) q -> 0 and the
// factorisation tends to the drift, with a - 1 computed without cancellation
// (elements.hpp); it needs b != 0, i.e. a phase advance under pi per map
// (ReversibleSlices refuses more than pi/2, where |q| <= sqrt(k)).
//
// The state holds pz, not delta (the kick is a shear on pz), so a shear that
// changes px or py also moves pz to keep delta, and a shear of delta moves pz
// to give it: both increments are functions of the other columns, estimated
// at delta = 0 (pz^2 = 1 - px^2 - py^2), which makes delta's change exact to
// O(delta) relative (docs/physics.md states the measured deviation).
enum FixedShearKind {
    kShiftPosition = 0,  // position[axis] += Q(coefficient * p[axis]), axis 0 (x) or 1 (y)
    kShiftTau = 1,       // tau += Q(coefficient * delta(px, py, pz))
    kShiftMomentum = 2,  // p[axis] += Q(coefficient * position[axis]), pz keeps delta
    kShiftDelta = 3,     // delta += coefficient * tau, through pz
};
struct FixedShear {
    int kind = kShiftPosition;
    int axis = 0;
    double coefficient = 0;
};
// At most three shears per block.
struct FixedPointMap {
    int count = 0;
    FixedShear step[9];
};

// The pz change that keeps delta when px^2 + py^2 goes from p2_before to
// p2_after (at delta = 0: pz = sqrt(1 - p^2)), as a difference of squares.
SCTAPE_HD double pz_keeping_delta(double p2_before, double p2_after) {
    return (p2_before - p2_after) / (sqrt(1.0 - p2_before) + sqrt(1.0 - p2_after));
}

// The pz change that adds d_delta to delta (at delta = 0, E = 1/beta0):
// pz^2 grows by (E + d)^2 - E^2 = d (2 E + d).
SCTAPE_HD double pz_for_delta_change(double d_delta, double p2, double inv_beta0) {
    const double grow = d_delta * (2.0 * inv_beta0 + d_delta);
    return grow / (sqrt(1.0 - p2 + grow) + sqrt(1.0 - p2));
}

// Applies shear `s` with `sign` (+1 forward, -1 its inverse) to one
// particle's state q (x, y, tau, px, py, pz) with position scales `scale`.
// Returns the bits (1 << column) of the columns that left the range.
SCTAPE_HD int fixed_point_shear(const FixedShear& s, std::int64_t q[6], const double scale[3], double inv_beta0,
                                double inv_bg0_sq, int sign) {
    int overflow = 0;
    const double px = double(q[kFixedPx]) * kFixedMomentumScale, py = double(q[kFixedPy]) * kFixedMomentumScale;
    switch (s.kind) {
        case kShiftPosition: {
            const double p = s.axis == 0 ? px : py;
            if (!fixed_point_add(q[kFixedX + s.axis], s.coefficient * p * (1.0 / scale[s.axis]), sign))
                overflow |= 1 << (kFixedX + s.axis);
            break;
        }
        case kShiftTau: {
            const double pz = double(q[kFixedPz]) * kFixedMomentumScale;
            const double inc = s.coefficient * delta_from_momentum(px, py, pz, inv_beta0, inv_bg0_sq);
            if (!fixed_point_add(q[kFixedTau], inc * (1.0 / scale[2]), sign)) overflow |= 1 << kFixedTau;
            break;
        }
        case kShiftMomentum: {
            const int col = kFixedPx + s.axis;
            const double step = s.coefficient * double(q[kFixedX + s.axis]) * scale[s.axis] * (1.0 / kFixedMomentumScale);
            if (!(fabs(step) < kFixedLimit)) return 1 << col;
            const std::int64_t iq = quantize(step);
            // the momentum before and after the forward shear, the same integers both ways
            const std::int64_t after = sign > 0 ? q[col] + iq : q[col];
            const std::int64_t before = after - iq;
            const double other = s.axis == 0 ? py : px;
            const double p_before = double(before) * kFixedMomentumScale, p_after = double(after) * kFixedMomentumScale;
            const double dpz = pz_keeping_delta(p_before * p_before + other * other, p_after * p_after + other * other);
            if (!fixed_point_add(q[col], double(iq), sign)) overflow |= 1 << col;
            if (!fixed_point_add(q[kFixedPz], dpz * (1.0 / kFixedMomentumScale), sign)) overflow |= 1 << kFixedPz;
            break;
        }
        case kShiftDelta: {
            const double tau = double(q[kFixedTau]) * scale[2];
            const double dpz = pz_for_delta_change(s.coefficient * tau, px * px + py * py, inv_beta0);
            if (!fixed_point_add(q[kFixedPz], dpz * (1.0 / kFixedMomentumScale), sign)) overflow |= 1 << kFixedPz;
            break;
        }
    }
    return overflow;
}

// The map forward (sign +1: steps in order) or its exact inverse (sign -1:
// steps in reverse order, each undone).
SCTAPE_HD int fixed_point_map(const FixedPointMap& m, std::int64_t q[6], const double scale[3], double inv_beta0,
                              double inv_bg0_sq, int sign) {
    int overflow = 0;
    for (int i = 0; i < m.count; ++i) {
        const FixedShear& s = m.step[sign > 0 ? i : m.count - 1 - i];
        overflow |= fixed_point_shear(s, q, scale, inv_beta0, inv_bg0_sq, sign);
    }
    return overflow;
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
