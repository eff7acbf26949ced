// gpu_tracking.hpp — the space-charge kick and the Strang-split tracking on a
// CUDA device (no CUDA types here: host-only code includes it freely). The
// kick runs the eight substeps of DESIGN.md with the math of kick_math.hpp,
// each kernel in kernels/cuda/gpu_tracking.cu; the grid geometry, the IGF
// (float64), the cuFFT Hockney convolution and the field stay on the device,
// and only the per-axis extents (to build the grid and raise the CPU's
// errors) cross to the host each kick. Device buffers are counted by
// cuda::device_memory().
//
//   sctape::TrackReport r = sctape::track_on_gpu(beam, settings, progress);  // beam copied back
//
//   sctape::GpuTracker<double> gpu(beam, /*space_charge=*/true, grid);     // beam copied to the device
//   gpu.drift(0.05); gpu.kick(0.1); gpu.drift(0.05);
//   gpu.download(beam);
//   std::vector<double> rho = gpu.charge_density();                        // last kick's grid, C/m^3
//
// Deposit modes: float atomics (default, fastest, summation order varies run
// to run) or fixed-point int64 atomics (`deterministic_deposit`, bitwise
// reproducible run to run; every weight rounded to 2^-(62 - ceil(log2 N))).
// The environment variable SCTAPE_DETERMINISTIC_DEPOSIT=1 turns it on for
// GpuOptions::from_environment() (what `sctape track` uses).
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "beam.hpp"
#include "space_charge.hpp"
#include "tracking.hpp"

namespace sctape {

struct GpuOptions {
    bool deterministic_deposit = false;
    static GpuOptions from_environment();
};

template <class T>
class GpuTracker {
public:
    // Copies the coordinates to the device; with space_charge, allocates the
    // kick's buffers for this grid (throws on a grid under 2 nodes per axis).
    GpuTracker(const Beam<T>& beam, bool space_charge, const GridSettings& grid, const GpuOptions& options = {});
    ~GpuTracker();
    GpuTracker(const GpuTracker&) = delete;
    GpuTracker& operator=(const GpuTracker&) = delete;

    // Cheetah's linear drift (tracking.hpp), on the device.
    void drift(double length_m);
    // One space-charge kick over ds_m: the eight substeps. Throws
    // std::runtime_error with the CPU kick's messages (non-finite momenta or
    // coordinates, zero extent, particles outside a sigma grid).
    void kick(double ds_m);
    // Copies the coordinates back into `beam` (same number of particles).
    void download(Beam<T>& beam) const;

    // State left by the last kick, copied to the host (for tests and tools).
    const GridGeometry& geometry() const;
    std::vector<T> charge_density() const;                 // C/m^3
    std::vector<T> potential() const;                      // V
    std::array<std::vector<T>, 3> field_on_grid() const;   // -grad phi, V/m
    std::array<std::vector<T>, 3> momentum_kick() const;   // over p0

    // Device seconds per substep (CUDA events) since construction, and in drifts.
    const std::array<double, kSubstepCount>& seconds() const;
    double drift_seconds() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// track() on the device: uploads the beam, runs the Strang-split lattice
// (drift ds/2, kick ds, drift ds/2 per slice) and copies the beam back.
template <class T>
TrackReport track_on_gpu(Beam<T>& beam, const TrackSettings& settings, const Progress& progress);
template <class T>
TrackReport track_on_gpu(Beam<T>& beam, const TrackSettings& settings, const Progress& progress,
                         const GpuOptions& options);

}  // namespace sctape
