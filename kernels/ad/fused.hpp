// fused.hpp — the `fused` strategy: one tape entry per substep, each with a
// hand-written adjoint that saves only what it cannot cheaply recompute.
//
// Per kick the tape keeps the kick's input coordinates (x, y, tau, px, py,
// delta: 6 words per particle, shared with the drifts by buffer) and the
// charge density and potential (2 words per cell). Everything else (z, pz,
// the IGF, the field on the grid and at the particles) is recomputed in
// backward from those.
//
//   sctape::GradientResult r = sctape::fused_gradient<double>(beam, tracking, request);
#pragma once

#include "ad/gradient.hpp"

namespace sctape {

template <class T>
GradientResult fused_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                              const GradientRequest& request);

}  // namespace sctape
