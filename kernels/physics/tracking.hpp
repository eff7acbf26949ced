// tracking.hpp — Strang-split tracking through a lattice of drifts with
// space-charge kicks: per slice of length ds, drift ds/2, kick ds, drift ds/2.
//
//   sctape::Lattice lattice = {{/*length_m=*/1.0, /*slices=*/10}};
//   sctape::TrackSettings s{lattice, /*space_charge=*/true, sctape::GridSettings{}, /*threads=*/2};
//   sctape::TrackReport r = sctape::track(beam, s);
//   r.kicks;  r.substep_seconds[...];
#pragma once

#include <array>
#include <functional>
#include <vector>

#include "physics/beam.hpp"
#include "physics/space_charge.hpp"

namespace sctape {

struct Drift {
    double length_m = 0;
    int slices = 1;
};
using Lattice = std::vector<Drift>;

// The lattice element of every slice, in tracking order.
std::vector<std::size_t> slice_elements(const Lattice& lattice);

struct TrackSettings {
    Lattice lattice;
    bool space_charge = true;
    GridSettings grid;
    int threads = 1;
};

struct TrackReport {
    int kicks = 0;
    std::array<double, kSubstepCount> substep_seconds{};
    double drift_seconds = 0;
    double total_seconds = 0;
};

// Linear drift (Cheetah's): x += L px, y += L py, tau -= L delta / (beta0 gamma0)^2.
template <class T>
void drift(Beam<T>& beam, double length_m, int threads);

// Called after each slice with (slices done, slices in total).
using Progress = std::function<void(int, int)>;

template <class T>
TrackReport track(Beam<T>& beam, const TrackSettings& settings, const Progress& progress = {});

}  // namespace sctape
