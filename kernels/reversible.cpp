#include "reversible.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "fused_internal.hpp"
#include "space_charge.hpp"

namespace sctape {
namespace {

enum StateColumn { kX = 0, kY = 1, kTau = 2, kPx = 3, kPy = 4, kPz = 5 };
const char* kStateName[6] = {"x", "y", "tau", "px", "py", "pz"};

// Positions resolve 2^-50 of their initial range and can grow 2^12-fold
// before |q| reaches the 2^62 limit.
constexpr int kPositionBits = 50;
constexpr double kMomentumScale = 0x1.0p-60;
constexpr double kLimit = 0x1.0p62;

// delta = E/(p0 c) - 1/beta0 with (p/p0)^2 = px^2 + py^2 + pz^2, written as
// (|P|^2 - 1)/(E + 1/beta0) (since (1/beta0)^2 - 1/(beta0 gamma0)^2 = 1) so
// no digits cancel; pz - 1 is exact near 1.
double delta_from_momentum(double px, double py, double pz, double inv_beta0, double inv_bg0_sq) {
    const double p2_minus_1 = px * px + py * py + (pz - 1.0) * (pz + 1.0);
    const double e = std::sqrt(px * px + py * py + pz * pz + inv_bg0_sq);
    return p2_minus_1 / (e + inv_beta0);
}

}  // namespace

template <class T>
ReversibleTracker<T>::ReversibleTracker(const Beam<T>& beam, const TrackSettings& tracking, SpaceChargeKick<T>* kick)
    : tracking_(tracking), elements_(slice_elements(tracking.lattice)) {
    prototype_.species = beam.species;
    prototype_.reference = beam.reference;
    prototype_.bunch_charge_C = beam.bunch_charge_C;
    const std::int64_t n = beam.size();
    const Reference& ref = beam.reference;
    const double ib = 1.0 / ref.beta, ibg2 = 1.0 / (ref.beta_gamma() * ref.beta_gamma());
    std::array<HostArray<double>, 6> value;
    for (auto& v : value) v.resize(n);
    for (std::int64_t p = 0; p < n; ++p) {
        const double e = ib + double(beam.delta[p]);
        value[kX][p] = beam.x[p];
        value[kY][p] = beam.y[p];
        value[kTau][p] = beam.tau[p];
        value[kPx][p] = beam.px[p];
        value[kPy][p] = beam.py[p];
        value[kPz][p] = std::sqrt(e * e - ibg2 - value[kPx][p] * value[kPx][p] - value[kPy][p] * value[kPy][p]);
    }
    for (int c = 0; c < 6; ++c) {
        if (c < 3) {
            double range = 0;
            for (double v : value[c]) range = std::max(range, std::fabs(v));
            if (!(range > 0) || !std::isfinite(range))
                throw std::runtime_error(std::string("reversible tracking: ") + kStateName[c] + " has no finite extent");
            scale_[c] = std::ldexp(1.0, std::ilogb(range) + 1 - kPositionBits);
        } else {
            scale_[c] = kMomentumScale;
        }
        state_[c].resize(n);
        for (std::int64_t p = 0; p < n; ++p) {
            const double q = value[c][p] / scale_[c];
            if (!(std::fabs(q) < kLimit))
                throw std::overflow_error(std::string("reversible tracking: ") + kStateName[c] + " does not fit in fixed point");
            state_[c][p] = std::llrint(q);
        }
    }
    if (tracking.space_charge) {
        kick_ = kick;
        if (!kick_) {
            own_kick_ = std::make_unique<SpaceChargeKick<T>>(tracking.grid, std::max(tracking.threads, 1));
            kick_ = own_kick_.get();
        }
    }
}

template <class T>
ReversibleTracker<T>::~ReversibleTracker() = default;

// column += sign * Q(increment / scale), Q rounding to nearest (ties to even,
// so Q(-x) = -Q(x)): the same integers are added and subtracted, so a step and
// its inverse cancel exactly.
template <class T>
void ReversibleTracker<T>::add_quantized(int column, const HostArray<double>& increment, int sign) {
    HostArray<std::int64_t>& col = state_[column];
    const double inv = 1.0 / scale_[column];
    bool fits = true;
    for (std::size_t p = 0; p < col.size(); ++p) {
        const std::int64_t q = std::llrint(increment[p] * inv);  // round half to even: symmetric
        col[p] += sign * q;
        fits = fits && std::llabs(col[p]) < (std::int64_t(1) << 62);
    }
    if (!fits)
        throw std::overflow_error(std::string("reversible tracking: ") + kStateName[column] +
                                  " left the fixed-point range (the beam grew by more than 4096x)");
}

template <class T>
void ReversibleTracker<T>::drift(double length, int sign) {
    const Reference& ref = prototype_.reference;
    const double ib = 1.0 / ref.beta, ibg2 = 1.0 / (ref.beta_gamma() * ref.beta_gamma());
    const std::size_t n = state_[0].size();
    std::array<HostArray<double>, 3> inc;
    for (auto& v : inc) v.resize(n);
    for (std::size_t p = 0; p < n; ++p) {
        const double px = state_[kPx][p] * kMomentumScale, py = state_[kPy][p] * kMomentumScale;
        const double pz = state_[kPz][p] * kMomentumScale;
        inc[0][p] = length * px;
        inc[1][p] = length * py;
        inc[2][p] = -length * ibg2 * delta_from_momentum(px, py, pz, ib, ibg2);
    }
    for (int a = 0; a < 3; ++a) add_quantized(kX + a, inc[a], sign);
}

// P += Q(S E(X)): the field depends on the positions only, and every step of
// it (min/max, per-thread deposit grids summed in order, FFTW, stencil,
// gather) is deterministic for a given thread count.
template <class T>
void ReversibleTracker<T>::kick(double ds, int sign) {
    const Reference& ref = prototype_.reference;
    const std::int64_t n = static_cast<std::int64_t>(state_[0].size());
    // the kick's input, built per call so it is not held during the adjoints
    Beam<T> positions = prototype_;
    for (auto* c : positions.columns()) c->assign(n, T(0));
    for (std::int64_t p = 0; p < n; ++p) {
        positions.x[p] = T(state_[kX][p] * scale_[kX]);
        positions.y[p] = T(state_[kY][p] * scale_[kY]);
        positions.tau[p] = T(state_[kTau][p] * scale_[kTau]);
    }
    kick_->s_to_t(positions);
    kick_->deposit(positions);
    kick_->green(positions);
    kick_->convolve();
    kick_->field();
    kick_->gather(positions);
    const double s = prototype_.species.charge_e * ds / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV);
    HostArray<double> inc(n);
    for (int a = 0; a < 3; ++a) {
        const HostArray<T>& e = kick_->field_at_particles()[a];
        for (std::int64_t p = 0; p < n; ++p) inc[p] = s * double(e[p]);
        add_quantized(kPx + a, inc, sign);
    }
}

template <class T>
void ReversibleTracker<T>::step(std::size_t slice) {
    const Drift& d = tracking_.lattice[elements_[slice]];
    const double ds = d.length_m / d.slices;
    if (!kick_) return drift(ds, +1);
    drift(0.5 * ds, +1);
    kick(ds, +1);
    drift(0.5 * ds, +1);
}

template <class T>
void ReversibleTracker<T>::unstep(std::size_t slice) {
    undo_half_drift(slice);
    if (!kick_) return;
    undo_kick(slice);
    undo_half_drift(slice);
}

template <class T>
void ReversibleTracker<T>::undo_half_drift(std::size_t slice) {
    const Drift& d = tracking_.lattice[elements_[slice]];
    drift((kick_ ? 0.5 : 1.0) * d.length_m / d.slices, -1);
}

template <class T>
void ReversibleTracker<T>::undo_kick(std::size_t slice) {
    const Drift& d = tracking_.lattice[elements_[slice]];
    kick(d.length_m / d.slices, -1);
}

template <class T>
Beam<T> ReversibleTracker<T>::beam() const {
    Beam<T> b = prototype_;
    const Reference& ref = prototype_.reference;
    const double ib = 1.0 / ref.beta, ibg2 = 1.0 / (ref.beta_gamma() * ref.beta_gamma());
    const std::size_t n = state_[0].size();
    for (auto* c : b.columns()) c->resize(n);
    for (std::size_t p = 0; p < n; ++p) {
        const double px = state_[kPx][p] * kMomentumScale, py = state_[kPy][p] * kMomentumScale;
        const double pz = state_[kPz][p] * kMomentumScale;
        b.x[p] = T(state_[kX][p] * scale_[kX]);
        b.y[p] = T(state_[kY][p] * scale_[kY]);
        b.tau[p] = T(state_[kTau][p] * scale_[kTau]);
        b.px[p] = T(px);
        b.py[p] = T(py);
        b.delta[p] = T(delta_from_momentum(px, py, pz, ib, ibg2));
    }
    return b;
}

namespace {

template <class T>
fused::Column<T> column(HostArray<T>& values) {
    return std::make_shared<const HostArray<T>>(std::move(values));
}

// Walks the slices backwards: each inverse step rebuilds the states the
// slice's adjoint needs (the momenta after the kick for the second drift, the
// kick's input coordinates, rho and phi for the kick, the momenta before it
// for the first drift), so nothing is recomputed beyond the inverse itself.
template <class T>
void reverse_and_adjoin(fused::Context<T>& ctx, ReversibleTracker<T>& tracker) {
    const std::vector<std::size_t> elements = slice_elements(ctx.tracking.lattice);
    for (std::size_t i = tracker.slices(); i-- > 0;) {
        const std::size_t e = elements[i];
        const double half = (tracker.kick() ? 0.5 : 1.0) / ctx.tracking.lattice[e].slices;
        {
            const Beam<T> after = tracker.beam();
            fused::drift_adjoint(ctx, after.px, after.py, after.delta, e, half);
        }
        tracker.undo_half_drift(i);
        if (!tracker.kick()) continue;
        tracker.undo_kick(i);
        Beam<T> input = tracker.beam();
        const std::array<fused::Column<T>, 6> in = {column(input.x),   column(input.px),  column(input.y),
                                                    column(input.py),  column(input.tau), column(input.delta)};
        fused::kick_adjoint(ctx, in, *tracker.kick(), e);
        fused::drift_adjoint(ctx, *in[1], *in[3], *in[5], e, half);
        tracker.undo_half_drift(i);
    }
}

}  // namespace

template <class T>
GradientResult reversible_gradient(const BeamParameters& bp, const TrackSettings& tracking,
                                   const GradientRequest& request) {
    using namespace fused;
    return run_hand_written<T>(
        bp, tracking, request,
        [&](Tape& tape, MemoryReport& report, const std::shared_ptr<Context<T>>& ctx, Beam<T>& beam,
            Snapshots<T>& snaps) {
            std::shared_ptr<ReversibleTracker<T>> tracker;
            SliceMarks marks;
            measured(tape, report, "reversible", [&] {
                tracker = std::make_shared<ReversibleTracker<T>>(beam, tracking, ctx->kick.get());
                marks.mark(tape, report);
                for (std::size_t i = 0; i < tracker->slices(); ++i) {
                    tracker->step(i);
                    if (tracking.space_charge) ++report.kicks;
                    marks.mark(tape, report);
                }
                marks.finish(report);
                beam = tracker->beam();
                snaps.clear();
                // the final fixed-point state is all the tape keeps
                const std::int64_t bytes = 6 * ctx->n * std::int64_t(sizeof(std::int64_t));
                tape.record({SavedBuffer{tracker, bytes}}, [ctx, tracker] { reverse_and_adjoin(*ctx, *tracker); });
            });
            report.max_states_held = 1;
        });
}

template class ReversibleTracker<float>;
template class ReversibleTracker<double>;
template GradientResult reversible_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult reversible_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
