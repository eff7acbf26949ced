// gpu_tracking.hpp — the space-charge kick and the Strang-split tracking on a
// CUDA device (no CUDA types here: host-only code includes it freely). The
// kick runs the eight substeps of docs/physics.md with the math of kick_math.hpp,
// each kernel in kernels/cuda/gpu_tracking.cu. Nothing crosses to the host
// in a kick: the grid geometry is computed and used on the device
// (physics/geometry_bodies.hpp), the IGF (float64) is rebuilt only when its
// cell sizes or gamma change (the CPU's rule), and a kick makes no host wait
// and no allocation, so it can be captured whole in a CUDA graph
// (capture_kick). Errors (the CPU kick's messages) are raised when the host
// next looks: synchronize(), download() and every copy to the host. Device
// buffers are counted by cuda::device_memory().
//
//   sctape::TrackReport r = sctape::track_on_gpu(beam, settings, progress);  // beam copied back
//
//   sctape::GpuTracker<double> gpu(beam, /*space_charge=*/true, grid);     // beam copied to the device
//   gpu.map(element_map(drift, 0.5, bg)); gpu.kick(0.1); gpu.map(element_map(drift, 0.5, bg));
//   gpu.download(beam);                                                     // waits; raises a kick's error
//   std::vector<double> rho = gpu.charge_density();                        // last kick's grid, C/m^3
//
// Reverse mode (ad/gpu_engine.hpp drives it): snapshot() copies a column or
// the kick's rho / phi into a DeviceColumn a tape entry can hold;
// map_adjoint() and kick_adjoint() run the adjoints on the device against
// the adjoint columns set by set_adjoint(), with the same saved data as the
// CPU's fused tape (kick inputs, rho, phi); the grid, the IGF, z, pz and the
// fields are recomputed on the device. The adjoints make no host wait either:
// their scalar sums stay on the device until get_adjoint() reads them back
// (one wait per backward) and adds them to the ParameterAdjoints passed in.
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

#include "physics/beam.hpp"
#include "physics/parameter_adjoints.hpp"
#include "physics/space_charge.hpp"
#include "physics/tracking.hpp"

namespace sctape {

struct GpuOptions {
    bool deterministic_deposit = false;
    static GpuOptions from_environment();
};

// A device buffer held by shared ownership (tape entries, checkpoint states),
// without CUDA types. The last owner frees it on the tracker's stream, so no
// DeviceColumn may outlive the GpuTracker that made it.
template <class T>
struct DeviceColumn {
    std::shared_ptr<const void> owner;
    const T* data = nullptr;
    std::int64_t size = 0;
    std::int64_t bytes() const { return size * std::int64_t(sizeof(T)); }
    explicit operator bool() const { return bool(owner); }
};

// What one kick's adjoint needs from its forward pass (the buffers the CPU's
// fused tape keeps): its input coordinates, rho and phi. The grid geometry is
// recomputed from the input, bit for bit.
template <class T>
struct GpuKickSaved {
    std::array<DeviceColumn<T>, 6> input;  // x, px, y, py, tau, delta
    DeviceColumn<T> rho, phi;
};

// Which field of the tracker snapshot() copies.
enum class GpuBuffer { x, px, y, py, tau, delta, charge_density, potential };

template <class T>
class GpuTracker {
public:
    // Copies the coordinates to the device; with space_charge, allocates the
    // kick's buffers for this grid (throws on a grid under 2 nodes per axis).
    GpuTracker(const Beam<T>& beam, bool space_charge, const GridSettings& grid, const GpuOptions& options = {});
    ~GpuTracker();
    GpuTracker(const GpuTracker&) = delete;
    GpuTracker& operator=(const GpuTracker&) = delete;

    // A linear element map (physics/elements.hpp), on the device.
    void map(const ElementMap& map);
    // One space-charge kick over ds_m: the eight substeps, queued on the
    // device with no host wait and no allocation (with substep timing on, the
    // previous kick's events are read first).
    void kick(double ds_m);
    // Waits for the device and throws std::runtime_error with the CPU kick's
    // message for the first failed kick so far (non-finite momenta or
    // coordinates, zero extent, particles outside a sigma grid).
    void synchronize() const;
    // Copies the coordinates back into `beam` (same number of particles); synchronize()s.
    void download(Beam<T>& beam) const;
    // CUDA events around each substep and element map, for seconds() (on by default).
    void set_substep_timing(bool on);
    // kick(ds_m) captured into a CUDA graph (throws if anything in the kick
    // waits on the host or blocks), then replayed: the same kick, one launch.
    void capture_kick(double ds_m);
    void replay_kick();

    // State left by the last kick, copied to the host (for tests and tools).
    GridGeometry geometry() const;
    std::vector<T> charge_density() const;                 // C/m^3
    std::vector<T> potential() const;                      // V
    std::array<std::vector<T>, 3> field_on_grid() const;   // -grad phi, V/m
    std::array<std::vector<T>, 3> momentum_kick() const;   // over p0

    // ---- reverse mode
    // A copy of a coordinate column, or of the last kick's rho / phi.
    DeviceColumn<T> snapshot(GpuBuffer which) const;
    // A device column's values on the host.
    void to_host(const DeviceColumn<T>& column, HostArray<T>& out) const;
    // Overwrites the coordinates with a saved state (checkpoint's restore).
    void set_state(const std::array<DeviceColumn<T>, 6>& columns);
    // The six adjoint columns: upload (allocating them on first use), download.
    void set_adjoint(const std::array<HostArray<T>, 6>& adjoint);
    void get_adjoint(std::array<HostArray<T>, 6>& adjoint) const;
    // Adjoint of the map over `fraction` of `lattice[element]`, given its
    // input columns (x, px, y, py, tau, delta; a drift's positions may be
    // empty: it reads the momenta only); scalars into `params`.
    void map_adjoint(const std::array<DeviceColumn<T>, 6>& input, const Lattice& lattice, std::size_t element,
                     double fraction, ParameterAdjoints& params);
    // Applies the inverse of a map to the coordinates (the reversible
    // strategy rebuilds a map's input from its output).
    void unmap(const ElementMap& map);
    // Adjoint of kick(ds_m) of a slice of `element` (of `slices` slices): the
    // eight substep adjoints, last first, each in an NVTX range and memory
    // scope named after its substep. Leaves kick state (rho, phi, fields) overwritten.
    void kick_adjoint(const GpuKickSaved<T>& saved, double ds_m, std::size_t element, int slices,
                      ParameterAdjoints& params);

    // ---- reversible tracking (gpu_reversible.hpp drives it)
    // The six coordinate columns on the device (x, px, y, py, tau, delta),
    // for kernels on stream(); valid for the tracker's life.
    std::array<T*, 6> coordinates();
    // Substeps s_to_t ... gather of a kick at the current coordinates, without
    // push and t_to_s: rho, phi and the geometry are left as kick() leaves
    // them, and the field at the particles (V/m) is returned as three device
    // columns. The coordinates are not changed.
    std::array<const T*, 3> field_at_particles();
    // The CUDA stream (a cudaStream_t) all of the tracker's work is ordered on.
    void* stream() const;
    const GpuOptions& options() const;

    // Device seconds per substep (CUDA events) since construction, and in the element maps.
    const std::array<double, kSubstepCount>& seconds() const;
    double drift_seconds() const;

private:
    template <class U>
    friend struct GpuAdjoint;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Per-axis extents (grid_covering's reductions) of three device columns,
// computed on CUDA's legacy default stream (the autograd engine's), for
// geometry_from_extents.
template <class T>
void device_axis_extents(const T* x, const T* y, const T* z, std::int64_t n, AxisExtent extent[3]);

// track() on the device: uploads the beam, runs the Strang-split lattice
// (map ds/2, kick ds, map ds/2 per slice) and copies the beam back.
template <class T>
TrackReport track_on_gpu(Beam<T>& beam, const TrackSettings& settings, const Progress& progress);
template <class T>
TrackReport track_on_gpu(Beam<T>& beam, const TrackSettings& settings, const Progress& progress,
                         const GpuOptions& options);

}  // namespace sctape
