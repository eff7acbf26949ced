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
//
// The end of the file holds the integer sums of the deterministic mode (host
// only, docs/mpi.md): ExactSum, the exact sum of any doubles, and the 128-bit
// fixed point of a grid of sums (grid_sum_bits, to_fixed128, from_fixed128).
//
//   sctape::ExactSum s;  for (double v : terms) s.add(v);  double total = s.value();
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

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

// ---- integer sums for the deterministic mode (host only)
//
// Float sums depend on their order, and the order on the thread count and the
// split over ranks. Integer sums do not: each term becomes integers once, the
// integers are summed in any order (threads, then ranks: Communicator::sum of
// int64), and the total is rounded to a double once.

__extension__ typedef __int128 int128;

// The exact sum of any number of finite doubles, each added without rounding:
// a fixed-point number spanning every double, 2^-1074 to above 2^1024, in 67
// signed 64-bit limbs of 32 bits each (limb i weighs 2^(32 i - 1074)). A term
// adds its 53-bit significand, shifted, to three limbs; limbs hold up to 2^30
// terms' carries before normalize() moves them up. value() rounds the total to
// nearest, ties to even: the one rounding of the whole sum (a total below
// 2^-1022, subnormal, may be rounded twice). NaN and infinities are counted
// apart and give what a float sum would: NaN, or the infinity's sign.
class ExactSum {
public:
    static constexpr int kLimbs = 67;
    static constexpr int kWords = kLimbs + 3;  // as to_words() packs it

    void add(double v) {
        std::uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        const unsigned biased = unsigned(bits >> 52) & 0x7ffu;
        if (biased == 0x7ffu) {
            count_special(v);
            return;
        }
        // the significand's lowest bit weighs 2^(offset - 1074); subnormals have no hidden bit
        const std::uint64_t normal = biased != 0;
        const std::uint64_t significand = (bits & ((std::uint64_t(1) << 52) - 1)) | (normal << 52);
        const unsigned offset = biased - unsigned(normal);
        const unsigned shift = offset & 31;
        // the significand shifted into three 32-bit pieces, negated without a
        // branch (the signs of the terms are random: a branch would mispredict)
        const std::uint64_t rest = significand >> (32 - shift);  // (significand << shift) >> 32
        const std::int64_t negate = -std::int64_t(bits >> 63);   // 0 or -1
        std::int64_t* limb = limb_ + (offset >> 5);
        limb[0] += (std::int64_t((significand << shift) & 0xffffffffu) ^ negate) - negate;
        limb[1] += (std::int64_t(rest & 0xffffffffu) ^ negate) - negate;
        limb[2] += (std::int64_t(rest >> 32) ^ negate) - negate;
        if (++pending_ == kNormalizeEvery) normalize();
    }

    void add(const ExactSum& other) {
        ExactSum o = other;
        o.normalize();
        normalize();
        for (int i = 0; i < kLimbs; ++i) limb_[i] += o.limb_[i];
        for (int k = 0; k < 3; ++k) special_[k] += o.special_[k];
        pending_ = 2;
    }

    // The total rounded to the nearest double (ties to even).
    double value() const {
        if (special_[kNan] > 0 || (special_[kPlusInf] > 0 && special_[kMinusInf] > 0)) return std::nan("");
        if (special_[kPlusInf] > 0) return HUGE_VAL;
        if (special_[kMinusInf] > 0) return -HUGE_VAL;
        ExactSum m = *this;
        m.normalize();
        const bool negative = m.limb_[kLimbs - 1] < 0;  // every lower limb is in [0, 2^32)
        if (negative) {
            for (std::int64_t& l : m.limb_) l = -l;
            m.normalize();
        }
        if (m.limb_[kLimbs - 1] != 0) return negative ? -HUGE_VAL : HUGE_VAL;  // above 2^1038
        int top = kLimbs - 2;
        while (top >= 0 && m.limb_[top] == 0) --top;
        if (top < 0) return 0.0;
        // the top three limbs (at least 65 significant bits when there are
        // three), and whether anything below them is set
        const int low = top >= 2 ? top - 2 : 0;
        unsigned __int128 window = 0;
        for (int i = top; i >= low; --i) window = (window << 32) | std::uint64_t(m.limb_[i]);
        bool sticky = false;
        for (int i = 0; i < low; ++i) sticky = sticky || m.limb_[i] != 0;
        const int width = (window >> 64) ? 128 - __builtin_clzll(std::uint64_t(window >> 64))
                                         : 64 - __builtin_clzll(std::uint64_t(window));
        const int drop = width > 64 ? width - 64 : 0;
        sticky = sticky || (drop > 0 && (window & ((((unsigned __int128)1) << drop) - 1)) != 0);
        // 64 bits with a sticky lowest bit round as the whole number would (the
        // rounding position is 11 bits above it)
        std::uint64_t head = std::uint64_t(window >> drop);
        if (sticky) head |= 1;
        const double magnitude = std::ldexp(double(head), 32 * low - 1074 + drop);
        return negative ? -magnitude : magnitude;
    }

    // As kWords integers whose sum over ranks (any order) is the sum of the
    // ranks' ExactSums: the limbs normalized (each below 2^32), then the counts
    // of NaN, +inf and -inf.
    void to_words(std::int64_t* words) const {
        ExactSum m = *this;
        m.normalize();
        std::memcpy(words, m.limb_, sizeof m.limb_);
        for (int k = 0; k < 3; ++k) words[kLimbs + k] = m.special_[k];
    }
    static ExactSum from_words(const std::int64_t* words) {
        ExactSum s;
        std::memcpy(s.limb_, words, sizeof s.limb_);
        for (int k = 0; k < 3; ++k) s.special_[k] = words[kLimbs + k];
        s.normalize();
        return s;
    }

private:
    static constexpr std::int64_t kNormalizeEvery = std::int64_t(1) << 30;
    enum { kNan = 0, kPlusInf = 1, kMinusInf = 2 };

    void count_special(double v) {
        if (std::isnan(v)) ++special_[kNan];
        else ++special_[v > 0 ? kPlusInf : kMinusInf];
    }
    // Carries move up until every limb but the top one is in [0, 2^32).
    void normalize() {
        for (int i = 0; i + 1 < kLimbs; ++i) {
            const std::int64_t carry = limb_[i] >> 32;  // floor division, negative limbs included
            limb_[i] -= carry * (std::int64_t(1) << 32);
            limb_[i + 1] += carry;
        }
        pending_ = 0;
    }

    std::int64_t limb_[kLimbs] = {};
    std::int64_t special_[3] = {0, 0, 0};
    std::int64_t pending_ = 0;
};

// A grid of sums in 128-bit fixed point: each term t is stored as
// round(t 2^bits), the integers are summed, a node's total is read as
// from_fixed128(sum, bits). With at most `terms` terms per node, each of
// magnitude at most `max_term`, bits = 125 - ceil(log2 terms) - (ilogb(max_term) + 1)
// keeps every partial sum below 2^126 in magnitude (no overflow in any order),
// and each term's rounding is at most 2^-(bits+1), so a node's total is off the
// exact sum of its terms by at most terms 2^-(bits+1) <= terms^2 max_term 2^-124
// (1e5 terms: 5e-28 max_term), before its one rounding to a double.
inline int grid_sum_bits(double max_term, std::int64_t terms) {
    int log2_terms = 0;
    while (log2_terms < 62 && (std::int64_t(1) << log2_terms) < terms) ++log2_terms;
    return 125 - log2_terms - (std::ilogb(max_term) + 1);
}

// round(x) (to nearest, ties to even) for a value x already scaled by
// 2^bits, |x| below 2^126; bit operations only (no library call), as the
// gather adjoint forms 24 of these per particle.
inline int128 fixed128_of_scaled(double x) {
    if (std::fabs(x) < 0x1.0p51) {
        // adding 1.5 2^52 rounds to an integer in the default rounding mode
        return int128(std::int64_t((x + 0x1.8p52) - 0x1.8p52));
    }
    std::uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    const std::int64_t significand = std::int64_t((bits & ((std::uint64_t(1) << 52) - 1)) | (std::uint64_t(1) << 52));
    const int exponent = int((bits >> 52) & 0x7ff) - 1075;  // x = significand 2^exponent, exponent >= -1
    int128 magnitude;
    if (exponent >= 0) {
        magnitude = int128((unsigned __int128)significand << exponent);  // below 2^126: fits
    } else {  // [2^51, 2^52): a half at most, rounded to even
        const std::int64_t half_units = significand, whole = half_units >> 1;
        magnitude = whole + ((half_units & 1) ? (whole & 1) : 0);
    }
    return (bits >> 63) ? -magnitude : magnitude;
}

// v times 2^bits in two exact steps (each factor a double for any bits in
// [-2044, 2046]); the product is exact unless it falls below 2^-1022.
inline double scale_by_power_of_two(double v, int bits) {
    return v * std::ldexp(1.0, bits / 2) * std::ldexp(1.0, bits - bits / 2);
}

// round(v 2^bits) (ties to even) for |v| 2^bits below 2^126.
inline int128 to_fixed128(double v, int bits) { return fixed128_of_scaled(scale_by_power_of_two(v, bits)); }

// A fixed-point total as the nearest double (times 2^-bits, exact in the normal range).
inline double from_fixed128(int128 q, int bits) { return std::ldexp(double(q), -bits); }

}  // namespace sctape
