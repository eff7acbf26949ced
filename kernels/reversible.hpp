// reversible.hpp — the `reversible` strategy: nothing is stored per kick.
// Tracking runs on fixed-point (int64) coordinates (x, y, tau, px, py, pz)
// where each drift adds Q(f(P)) to X and each kick adds Q(ds * F(X)) to P, Q
// a symmetric rounding to the fixed-point grid. Subtracting the same
// integers undoes a step bit for bit (Levesque-Verlet; pmwd's reverse-time
// integration made exact), so backward rebuilds each slice's input state by
// stepping in reverse and then runs that slice's fused adjoint.
//
//   sctape::ReversibleTracker<double> t(beam, tracking);
//   t.step(0);  t.unstep(0);           // state() is bitwise what it was
//   auto r = sctape::reversible_gradient<double>(beam_params, tracking, request);
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "gradient.hpp"
#include "space_charge.hpp"

namespace sctape {

template <class T>
class ReversibleTracker {
public:
    // Quantizes the beam: positions on a grid 2^-50 of their initial range
    // (room to grow 2^12-fold), momenta (over p0) on 2^-60. The field comes
    // from `kick` when given (shared work arrays), else from a kick of its own.
    ReversibleTracker(const Beam<T>& beam, const TrackSettings& tracking, SpaceChargeKick<T>* kick = nullptr);
    ~ReversibleTracker();

    void step(std::size_t slice);    // drift ds/2, kick ds, drift ds/2 of that slice's element
    void unstep(std::size_t slice);  // its exact inverse
    // The inverse in parts, for adjoints that need the states in between:
    // undo_half_drift, then undo_kick (which leaves that kick's rho, phi and
    // geometry in kick()), then undo_half_drift. Without space charge
    // undo_half_drift undoes the whole drift.
    void undo_half_drift(std::size_t slice);
    void undo_kick(std::size_t slice);
    SpaceChargeKick<T>* kick() const { return kick_; }
    std::size_t slices() const { return elements_.size(); }

    // (x, y, tau, px, py, pz) as integers, and their scales in SI / over p0.
    const std::array<HostArray<std::int64_t>, 6>& state() const { return state_; }
    // The beam in Cheetah's coordinates (delta from the momentum).
    Beam<T> beam() const;

private:
    void drift(double length, int sign);
    void kick(double ds, int sign);
    void add_quantized(int column, const HostArray<double>& increment, int sign);

    Beam<T> prototype_;  // species, reference, charge
    TrackSettings tracking_;
    std::vector<std::size_t> elements_;
    std::array<HostArray<std::int64_t>, 6> state_;
    std::array<double, 6> scale_{};
    std::unique_ptr<SpaceChargeKick<T>> own_kick_;
    SpaceChargeKick<T>* kick_ = nullptr;  // null without space charge
};

template <class T>
GradientResult reversible_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                                   const GradientRequest& request);

}  // namespace sctape
