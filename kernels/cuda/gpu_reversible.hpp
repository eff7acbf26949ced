// gpu_reversible.hpp — reversible tracking (reversible.hpp) on a CUDA
// device: the fixed-point (int64) state lives on the device next to a
// GpuTracker, whose kick supplies the field. The integer rules are those of
// fixed_point.hpp, so a step and its undo cancel bit for bit on the GPU as on
// the CPU; that needs a field that is bitwise reproducible for the same
// positions, hence a tracker with deterministic (fixed-point) deposit
// (min/max and sums are fixed-shape tree reductions, cuFFT and the stencils
// are deterministic). No CUDA types here.
//
//   sctape::GpuOptions opt;  opt.deterministic_deposit = true;
//   sctape::GpuTracker<float> gpu(beam, true, tracking.grid, opt);
//   sctape::GpuReversible<float> rev(beam, tracking, gpu);   // quantizes `beam`, uploads 6N int64
//   rev.step(0);  rev.unstep(0);                              // state() is bitwise what it was
//   rev.to_tracker();                                         // gpu's coordinates = the state
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "cuda/gpu_tracking.hpp"
#include "physics/reversible_tracking.hpp"

namespace sctape {

template <class T>
class GpuReversible : public ReversibleSlices {
public:
    // Quantizes `beam` (quantize_beam, on the host) and copies the state to
    // the device, allocated on the tracker's stream in the caller's memory
    // scope. With space charge, `gpu` must use deterministic deposit (else
    // std::invalid_argument). Must not outlive `gpu`.
    GpuReversible(const Beam<T>& beam, const TrackSettings& tracking, GpuTracker<T>& gpu);
    ~GpuReversible() override;

    // Writes Cheetah's coordinates of the state into the tracker's coordinates.
    void to_tracker();
    // The state on the host (x, y, tau, px, py, pz), for tests.
    std::array<HostArray<std::int64_t>, 6> state() const;
    // Device bytes of the state: 6 N int64.
    std::int64_t state_bytes() const;

private:
    void quantized_map(const FixedPointMap& map, int sign) override;
    void quantized_kick(double ds_m, int sign) override;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sctape
