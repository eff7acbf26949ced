// gpu_gradient.hpp — reverse-mode gradients with the tracking on a CUDA
// device (host code; no CUDA types). Strategies `fused`, `checkpoint` and
// `reversible` run every substep forward and backward on the GPU through
// GpuTracker (reversible's int64 state and steps: gpu_reversible.hpp, with
// deterministic deposit forced on so each undo recomputes the same field): the tape
// is the same Tape as on the CPU, its entries hold device buffers
// (DeviceColumn), and it keeps exactly the buffers the CPU's tape keeps, so
// tape bytes per scope are identical on both backends. Memory figures in the
// report come from cuda::device_memory() (device bytes), not the host
// allocator. `autograd` runs the generic op-by-op engine (autograd.hpp) with
// every tensor on the device: the same ops save the same buffers, so its tape
// bytes too equal the CPU's.
//
//   sctape::GradientRequest req;                  // strategy fused
//   sctape::GradientResult r = sctape::gradient_on_gpu<float>(beam, tracking, req);
//   r.memory.tape_bytes;                          // == compute_gradient<float>(...).memory.tape_bytes
//
// Allocator accounting (device): the `beam` scope's growth is the tracker:
// the six coordinate columns plus the kick's workspace (gpu_tracking.hpp);
// every other scope grows by exactly the tape bytes it saves (snapshot copies
// are the only allocations that outlive a slice; reversible's int64 state is
// its only allocation that outlives a step), so the forward pass's ΔM
// outside `beam` equals tape_bytes. The backward workspace (six adjoint
// columns, z/pz adjoints, four grid adjoints; for reversible also the
// rebuilt states' transient copies) appears in peak_bytes.
#pragma once

#include "ad/gradient.hpp"

namespace sctape {

template <class T>
GradientResult gradient_on_gpu(const BeamParameters& beam, const TrackSettings& tracking,
                               const GradientRequest& request);

}  // namespace sctape
