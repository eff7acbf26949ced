// tracking.hpp — Strang-split tracking through a lattice of elements
// (physics/elements.hpp) with space-charge kicks: per slice of length ds, the
// element's map over ds/2, kick ds, map over ds/2.
//
//   sctape::Lattice lattice = {{/*length_m=*/1.0, /*slices=*/10}};
//   sctape::TrackSettings s{lattice, /*space_charge=*/true, sctape::GridSettings{}, /*threads=*/2};
//   sctape::TrackReport r = sctape::track(beam, s);
//   r.kicks;  r.substep_seconds[...];
#pragma once

#include <array>
#include <functional>
#include <vector>

#include "core/memory.hpp"
#include "physics/beam.hpp"
#include "physics/elements.hpp"
#include "physics/space_charge.hpp"

namespace sctape {

// The lattice element of every slice, in tracking order.
std::vector<std::size_t> slice_elements(const Lattice& lattice);

struct TrackSettings {
    Lattice lattice;
    bool space_charge = true;
    GridSettings grid;
    int threads = 1;
};

// The fraction of its element that one map of a slice covers: half a slice
// with space charge (map, kick, map), the whole slice without.
inline double slice_map_fraction(const TrackSettings& tracking, std::size_t element) {
    return (tracking.space_charge ? 0.5 : 1.0) / tracking.lattice[element].slices;
}
// The length ds a slice's kick integrates over (L / slices).
inline double slice_kick_length(const TrackSettings& tracking, std::size_t element) {
    const Element& d = tracking.lattice[element];
    return d.length_m / d.slices;
}

// The Strang slice, written once for every tracker, strategy and backend:
// map(e, f), kick(e, ds), map(e, f) with f = slice_map_fraction, ds =
// slice_kick_length; without space charge, map(e, f) alone. map(e, f)
// advances through fraction f of element e (element_map(e, f)). The slice is
// symmetric: its inverse is the same walk with inverse steps
// (ReversibleSlices::unstep). The kick is marked on the memory timeline here,
// so every tracker and strategy reports its kicks the same way.
template <class Map, class Kick>
void strang_slice(const TrackSettings& tracking, std::size_t element, Map&& map, Kick&& kick) {
    const double f = slice_map_fraction(tracking, element);
    map(element, f);
    if (!tracking.space_charge) return;
    {
        KickMark mark;
        kick(element, slice_kick_length(tracking, element));
    }
    map(element, f);
}

struct TrackReport {
    int kicks = 0;
    std::array<double, kSubstepCount> substep_seconds{};
    double drift_seconds = 0;  // in the element maps (the schema's name)
    double total_seconds = 0;
};

// Applies a linear element map (element_map) to every particle.
template <class T>
void apply_element_map(Beam<T>& beam, const ElementMap& map, int threads);

// Called after each slice with (slices done, slices in total).
using Progress = std::function<void(int, int)>;

template <class T>
TrackReport track(Beam<T>& beam, const TrackSettings& settings, const Progress& progress = {});

}  // namespace sctape
