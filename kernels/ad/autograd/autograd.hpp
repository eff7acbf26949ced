// autograd.hpp — the `autograd` strategy: the whole differentiable tracking
// (element maps, the eight substeps of every kick, the objective) written as a
// chain of the generic ops of autograd/tensor.hpp, so the tape holds what a
// generic op-by-op autograd (PyTorch) would hold. It is the baseline that
// reproduces the paper's memory law; FFTs save nothing, the IGF is built from
// elementwise float64 ops on cell arrays and dominates the per-cell bytes.
// With request.backend == Backend::cuda every tensor lives on the GPU (the
// CUDA build; compute_gradient routes here on either backend) and the memory figures are the
// device allocator's; the tape holds the same bytes as on the CPU.
//
//   sctape::GradientRequest req;
//   req.strategy = sctape::Strategy::autograd;
//   req.gradients = {"bunch_charge_C", "lattice.0.length_m"};
//   sctape::GradientResult r = sctape::autograd_gradient<float>(beam, tracking, req);
//   r.memory.tape_bytes_by_scope["green"];   // bytes the IGF left on the tape
#pragma once

#include "ad/gradient.hpp"

namespace sctape {

template <class T>
GradientResult autograd_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                                 const GradientRequest& request);

extern template GradientResult autograd_gradient<float>(const BeamParameters&, const TrackSettings&,
                                                        const GradientRequest&);
extern template GradientResult autograd_gradient<double>(const BeamParameters&, const TrackSettings&,
                                                         const GradientRequest&);

}  // namespace sctape
