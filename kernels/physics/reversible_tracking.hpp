// reversible_tracking.hpp — tracking on fixed-point (int64) coordinates
// (x, y, tau, px, py, pz) where each drift adds Q(f(P)) to X and each kick
// adds Q(ds * F(X)) to P, Q a symmetric rounding to the fixed-point grid.
// Subtracting the same integers undoes a step bit for bit (Levesque-Verlet;
// pmwd's reverse-time integration made exact). The `reversible` strategy
// (ad/reversible.hpp) reverses it; the CUDA backend runs the same integer
// steps on the device (cuda/gpu_reversible.hpp).
//
//   sctape::ReversibleTracker<double> t(beam, tracking);
//   t.step(0);  t.unstep(0);           // state() is bitwise what it was
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "physics/fixed_point.hpp"
#include "physics/space_charge.hpp"
#include "physics/tracking.hpp"

namespace sctape {

// A beam as fixed-point integers (x, y, tau, px, py, pz; fixed_point.hpp)
// with each column's scale: positions on a grid 2^-50 of their initial range
// (room to grow 2^12-fold), momenta (over p0) on 2^-60; the ranges are
// those of every rank's particles. Throws CollectiveError (every rank
// together) for a position column without finite extent or a value that
// does not fit.
struct FixedPointBeam {
    std::array<HostArray<std::int64_t>, 6> state;
    std::array<double, 6> scale{};
};
template <class T>
FixedPointBeam quantize_beam(const Beam<T>& beam);

// The shears of the map over `fraction` of an element (fixed_point.hpp).
// Throws std::invalid_argument when a focusing plane advances its phase by
// more than pi/2 in one map (the factorisation's condition; more slices).
FixedPointMap fixed_point_map_of(const Element& element, double fraction, double beta_gamma);

// The slice structure of reversible tracking, shared by the CPU tracker below
// and the GPU's (cuda/gpu_reversible.hpp): a slice is map ds/2, kick ds,
// map ds/2 (a map over ds without space charge); the backend supplies the
// quantized map and kick, each with a sign (+1 forward, -1 undo).
class ReversibleSlices {
public:
    ReversibleSlices(const TrackSettings& tracking, double beta_gamma);
    virtual ~ReversibleSlices() = default;

    void step(std::size_t slice);    // map ds/2, kick ds, map ds/2 of that slice's element
    void unstep(std::size_t slice);  // its exact inverse
    // The inverse in parts, for adjoints that need the states in between:
    // undo_half_map, then undo_kick (which leaves that kick's rho, phi and
    // geometry in the backend's kick), then undo_half_map. Without space
    // charge undo_half_map undoes the whole slice's map.
    void undo_half_map(std::size_t slice);
    void undo_kick(std::size_t slice);
    std::size_t slices() const { return elements_.size(); }
    bool space_charge() const { return tracking_.space_charge; }

protected:
    // The map's shears (sign -1: undone in reverse order); momentum += sign * Q(ds_m * F(position)).
    virtual void quantized_map(const FixedPointMap& map, int sign) = 0;
    virtual void quantized_kick(double ds_m, int sign) = 0;
    // Throws CollectiveError (a std::runtime_error; every rank agreed on it)
    // naming the column that left the fixed-point range.
    [[noreturn]] static void overflow(const char* column);

    TrackSettings tracking_;
    std::vector<std::size_t> elements_;
    std::vector<FixedPointMap> maps_;  // per element, over slice_map_fraction
};

template <class T>
class ReversibleTracker : public ReversibleSlices {
public:
    // Quantizes the beam (quantize_beam). The field comes from `kick` when
    // given (shared work arrays), else from a kick of its own.
    ReversibleTracker(const Beam<T>& beam, const TrackSettings& tracking, SpaceChargeKick<T>* kick = nullptr);
    ~ReversibleTracker() override;

    SpaceChargeKick<T>* kick() const { return kick_; }
    // (x, y, tau, px, py, pz) as integers (scales: quantize_beam).
    const std::array<HostArray<std::int64_t>, 6>& state() const { return fixed_.state; }
    std::int64_t state_bytes() const { return 6 * std::int64_t(fixed_.state[0].size()) * std::int64_t(sizeof(std::int64_t)); }
    // The beam in Cheetah's coordinates (delta from the momentum).
    Beam<T> beam() const;

private:
    void quantized_map(const FixedPointMap& map, int sign) override;
    void quantized_kick(double ds_m, int sign) override;
    void add_quantized(int column, const HostArray<double>& increment, int sign);

    Beam<T> prototype_;  // species, reference, charge
    FixedPointBeam fixed_;
    std::unique_ptr<SpaceChargeKick<T>> own_kick_;
    SpaceChargeKick<T>* kick_ = nullptr;  // null without space charge
};

}  // namespace sctape
