// reversible.hpp — the `reversible` strategy: nothing is stored per kick.
// The forward pass runs ReversibleTracker (physics/reversible_tracking.hpp),
// whose integer steps undo bit for bit, so backward rebuilds each slice's
// input state by stepping in reverse and then runs that slice's fused
// adjoint. The tape keeps only the final fixed-point state.
//
//   auto r = sctape::reversible_gradient<double>(beam_params, tracking, request);
#pragma once

#include "ad/gradient.hpp"

namespace sctape {

template <class T>
GradientResult reversible_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                                   const GradientRequest& request);

}  // namespace sctape
