#include "physics/reversible_tracking.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/communicator.hpp"
#include "physics/space_charge.hpp"

namespace sctape {
namespace {

const char* kStateName[6] = {"x", "y", "tau", "px", "py", "pz"};

}  // namespace

template <class T>
FixedPointBeam quantize_beam(const Beam<T>& beam) {
    const std::int64_t n = beam.size();
    const Reference& ref = beam.reference;
    const double ib = 1.0 / ref.beta, ibg2 = 1.0 / (ref.beta_gamma() * ref.beta_gamma());
    std::array<HostArray<double>, 6> value;
    for (auto& v : value) v.resize(n);
    for (std::int64_t p = 0; p < n; ++p) {
        value[kFixedX][p] = beam.x[p];
        value[kFixedY][p] = beam.y[p];
        value[kFixedTau][p] = beam.tau[p];
        value[kFixedPx][p] = beam.px[p];
        value[kFixedPy][p] = beam.py[p];
        value[kFixedPz][p] = pz_from_delta(beam.px[p], beam.py[p], beam.delta[p], ib, ibg2);
    }
    // each position column's range over every rank's particles
    double range[3] = {0, 0, 0};
    for (int c = 0; c < 3; ++c)
        for (double v : value[c]) range[c] = std::max(range[c], std::fabs(v));
    communicator().max(range, 3);
    FixedPointBeam fixed;
    for (int c = 0; c < 6; ++c) {
        if (c < 3) {
            check_on_all_ranks(range[c] > 0 && std::isfinite(range[c]),
                               std::string("reversible tracking: ") + kStateName[c] + " has no finite extent");
            fixed.scale[c] = std::ldexp(1.0, std::ilogb(range[c]) + 1 - kFixedPositionBits);
        } else {
            fixed.scale[c] = kFixedMomentumScale;
        }
        fixed.state[c].resize(n);
        bool fits = true;
        for (std::int64_t p = 0; p < n; ++p) {
            const double q = value[c][p] / fixed.scale[c];
            fits = fits && std::fabs(q) < kFixedLimit;
            fixed.state[c][p] = fits ? quantize(q) : 0;
        }
        check_on_all_ranks(fits, std::string("reversible tracking: ") + kStateName[c] + " does not fit in fixed point");
    }
    return fixed;
}

FixedPointMap fixed_point_map_of(const Element& element, double fraction, double beta_gamma) {
    constexpr double kHalfPi = 1.5707963267948966;
    if (element_phase_advance(element, fraction) > kHalfPi)
        throw std::invalid_argument("reversible tracking: an element advances the phase by more than pi/2 in half a "
                                    "slice (the exact fixed-point factorisation needs less); give it more slices");
    const ElementMap m = element_map(element, fraction, beta_gamma);
    const auto minus1 = element_map_diagonal_minus_one(element, fraction, beta_gamma);
    const double ibg2 = 1.0 / (beta_gamma * beta_gamma);
    FixedPointMap out;
    auto push = [&](int kind, int axis, double coefficient) { out.step[out.count++] = FixedShear{kind, axis, coefficient}; };
    // lower-upper-lower: p += q u, u += b p, p += q u with q = (a - 1)/b
    auto three_shears = [&](int momentum_kind, int position_kind, int axis, const MapBlock& b, double a_minus_1) {
        const double q = a_minus_1 / b.b;
        push(momentum_kind, axis, q);
        push(position_kind, axis, b.b);
        push(momentum_kind, axis, q);
    };
    for (int axis = 0; axis < 2; ++axis) {
        const MapBlock& b = m.block[axis];
        if (is_shear(b)) push(kShiftPosition, axis, b.b);
        else three_shears(kShiftMomentum, kShiftPosition, axis, b, minus1[axis][0]);
    }
    const MapBlock& t = m.block[kBlockTau];
    // the drift's tau shear, -L delta / (beta0 gamma0)^2, as the drift-only tracker formed it
    if (is_shear(t)) push(kShiftTau, 0, -(fraction * element.length_m) * ibg2);
    else three_shears(kShiftDelta, kShiftTau, 0, t, minus1[kBlockTau][0]);
    return out;
}

ReversibleSlices::ReversibleSlices(const TrackSettings& tracking, double beta_gamma)
    : tracking_(tracking), elements_(slice_elements(tracking.lattice)) {
    for (std::size_t e = 0; e < tracking.lattice.size(); ++e)
        maps_.push_back(fixed_point_map_of(tracking.lattice[e], slice_map_fraction(tracking, e), beta_gamma));
}

void ReversibleSlices::step(std::size_t slice) {
    strang_slice(
        tracking_, elements_[slice], [&](std::size_t e, double) { quantized_map(maps_[e], +1); },
        [&](std::size_t, double ds) { quantized_kick(ds, +1); });
}

void ReversibleSlices::unstep(std::size_t slice) {
    strang_slice(
        tracking_, elements_[slice], [&](std::size_t e, double) { quantized_map(maps_[e], -1); },
        [&](std::size_t, double ds) { quantized_kick(ds, -1); });
}

void ReversibleSlices::undo_half_map(std::size_t slice) {
    quantized_map(maps_[elements_[slice]], -1);
}

void ReversibleSlices::undo_kick(std::size_t slice) {
    KickMark mark;  // backward re-evaluates the kick to undo it
    quantized_kick(slice_kick_length(tracking_, elements_[slice]), -1);
}

void ReversibleSlices::overflow(const char* column) {
    throw CollectiveError(std::string("reversible tracking: ") + column +
                              " left the fixed-point range (the beam grew by more than 4096x)");
}

template <class T>
ReversibleTracker<T>::ReversibleTracker(const Beam<T>& beam, const TrackSettings& tracking, SpaceChargeKick<T>* kick)
    : ReversibleSlices(tracking, beam.reference.beta_gamma()), fixed_(quantize_beam(beam)) {
    prototype_.species = beam.species;
    prototype_.reference = beam.reference;
    prototype_.bunch_charge_C = beam.bunch_charge_C;
    prototype_.total_particles = beam.global_size();
    if (tracking.space_charge) {
        kick_ = kick;
        if (!kick_) {
            own_kick_ = std::make_unique<SpaceChargeKick<T>>(tracking.grid, std::max(tracking.threads, 1));
            kick_ = own_kick_.get();
        }
        // over ranks, rho's float sums would depend on the split; integer ones
        // make the field, hence every step, the same bits for every rank count
        if (communicator().distributed()) kick_->set_fixed_point_deposit(true);
    }
}

template <class T>
ReversibleTracker<T>::~ReversibleTracker() = default;

// column += sign * Q(increment / scale), Q rounding to nearest (ties to even,
// so Q(-x) = -Q(x)): the same integers are added and subtracted, so a step and
// its inverse cancel exactly.
template <class T>
void ReversibleTracker<T>::add_quantized(int column, const HostArray<double>& increment, int sign) {
    HostArray<std::int64_t>& col = fixed_.state[column];
    const double inv = 1.0 / fixed_.scale[column];
    bool fits = true;
    for (std::size_t p = 0; p < col.size(); ++p) fits = fixed_point_add(col[p], increment[p] * inv, sign) && fits;
    if (!all_ranks(fits)) overflow(kStateName[column]);
}

template <class T>
void ReversibleTracker<T>::quantized_map(const FixedPointMap& map, int sign) {
    const Reference& ref = prototype_.reference;
    const double ib = 1.0 / ref.beta, ibg2 = 1.0 / (ref.beta_gamma() * ref.beta_gamma());
    auto& q = fixed_.state;
    const double scale[3] = {fixed_.scale[kFixedX], fixed_.scale[kFixedY], fixed_.scale[kFixedTau]};
    const std::size_t n = q[0].size();
    int overflow_bits = 0;
    for (std::size_t p = 0; p < n; ++p) {
        std::int64_t particle[6];
        for (int c = 0; c < 6; ++c) particle[c] = q[c][p];
        overflow_bits |= fixed_point_map(map, particle, scale, ib, ibg2, sign);
        for (int c = 0; c < 6; ++c) q[c][p] = particle[c];
    }
    std::int64_t overflowed[6];  // per column, on how many ranks
    for (int c = 0; c < 6; ++c) overflowed[c] = (overflow_bits >> c) & 1;
    communicator().sum(overflowed, 6);
    for (int c = 0; c < 6; ++c)
        if (overflowed[c] > 0) overflow(kStateName[c]);
}

// P += Q(S E(X)): the field depends on the positions only, and every step of
// it (min/max, per-thread deposit grids summed in order, FFTW, stencil,
// gather) is deterministic for a given thread count.
template <class T>
void ReversibleTracker<T>::quantized_kick(double ds_m, int sign) {
    const Reference& ref = prototype_.reference;
    const auto& q = fixed_.state;
    const auto& scale = fixed_.scale;
    const std::int64_t n = static_cast<std::int64_t>(q[0].size());
    // the kick's input, built per call so it is not held during the adjoints
    Beam<T> positions = prototype_;
    for (auto* c : positions.columns()) c->assign(n, T(0));
    for (std::int64_t p = 0; p < n; ++p) {
        positions.x[p] = T(q[kFixedX][p] * scale[kFixedX]);
        positions.y[p] = T(q[kFixedY][p] * scale[kFixedY]);
        positions.tau[p] = T(q[kFixedTau][p] * scale[kFixedTau]);
    }
    kick_->s_to_t(positions);
    kick_->deposit(positions);
    kick_->green(positions);
    kick_->convolve();
    kick_->field();
    kick_->gather(positions);
    const double s = prototype_.species.charge_e * ds_m / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV);
    HostArray<double> inc(n);
    for (int a = 0; a < 3; ++a) {
        const HostArray<T>& e = kick_->field_at_particles()[a];
        for (std::int64_t p = 0; p < n; ++p) inc[p] = s * double(e[p]);
        add_quantized(kFixedPx + a, inc, sign);
    }
}

template <class T>
Beam<T> ReversibleTracker<T>::beam() const {
    Beam<T> b = prototype_;
    const Reference& ref = prototype_.reference;
    const double ib = 1.0 / ref.beta, ibg2 = 1.0 / (ref.beta_gamma() * ref.beta_gamma());
    const auto& q = fixed_.state;
    const auto& scale = fixed_.scale;
    const std::size_t n = q[0].size();
    const std::array<HostArray<T>*, 6> columns = b.columns();
    for (auto* c : columns) c->resize(n);
    for (std::size_t p = 0; p < n; ++p) {
        const std::int64_t qp[6] = {q[0][p], q[1][p], q[2][p], q[3][p], q[4][p], q[5][p]};
        T out[6];
        fixed_point_coordinates(qp, scale[kFixedX], scale[kFixedY], scale[kFixedTau], ib, ibg2, out);
        for (int c = 0; c < 6; ++c) (*columns[c])[p] = out[c];
    }
    return b;
}

template FixedPointBeam quantize_beam<float>(const Beam<float>&);
template FixedPointBeam quantize_beam<double>(const Beam<double>&);
template class ReversibleTracker<float>;
template class ReversibleTracker<double>;

}  // namespace sctape
