// gpu_engine.hpp — the engine (engine.hpp) of the CUDA backend: the position
// is a GpuTracker's device coordinates, states and saved buffers are
// DeviceColumns, and each adjoint runs on the device. Memory is the device
// allocator's (cuda::device_memory()). No CUDA types here.
//
//   auto r = sctape::gpu_gradient<double>(beam, tracking, request);  // fused, checkpoint or reversible
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "ad/engine.hpp"
#include "cuda/gpu_reversible.hpp"
#include "cuda/gpu_tracking.hpp"

namespace sctape {

// What every backward closure of one run shares; the tracker is the position.
template <class T>
struct GpuRun {
    BeamParameters beam_parameters;
    TrackSettings tracking;
    GpuOptions options;
    ParameterAdjoints params;
    std::array<std::vector<double>, 6>* particle_gradient = nullptr;
    std::unique_ptr<GpuTracker<T>> gpu;
};

template <class T>
class GpuEngine {
public:
    using Run = GpuRun<T>;
    using State = std::array<DeviceColumn<T>, 6>;
    using Reversible = GpuReversible<T>;

    static MemoryTracker& memory();
    static std::shared_ptr<Run> start(const BeamParameters& bp, const TrackSettings& tracking,
                                      const GradientRequest& request, GradientResult& result);
    static void finish(Run& run) { run.gpu.reset(); }

    explicit GpuEngine(std::shared_ptr<Run> run);
    GpuEngine(const GpuEngine&) = delete;
    GpuEngine& operator=(const GpuEngine&) = delete;

    const std::shared_ptr<Run>& run() const { return run_; }
    const TrackSettings& tracking() const { return run_->tracking; }

    void record_beam(Tape& tape, MemoryReport& report);
    void record_map(Tape& tape, MemoryReport& report, std::size_t element, double fraction);
    void record_kick(Tape& tape, MemoryReport& report, std::size_t element, double ds);
    void record_objective(Tape& tape, MemoryReport& report, Objective objective, GradientResult& result);

    void map(std::size_t element, double fraction);
    void kick(std::size_t element, double ds);
    State capture() const;
    void restore(const State& state);
    static std::vector<SavedBuffer> saved(const State& state);
    void forget_snapshots() { snaps_.clear(); }
    void drop() { snaps_.clear(); }  // the tracker keeps its buffers for the next restore

    std::shared_ptr<Reversible> start_reversible();
    void take_position(Reversible& rev);
    void map_adjoint_at(Reversible& rev, std::size_t element, double fraction);
    void kick_adjoint_at(Reversible& rev, std::size_t element, double fraction);

private:
    void map_adjoint_from_output(std::size_t element, double fraction);
    Beam<T> download_beam() const;

    std::shared_ptr<Run> run_;
    Snapshots<DeviceColumn<T>> snaps_;
};

template <class T>
GradientResult gpu_gradient(const BeamParameters& beam, const TrackSettings& tracking, const GradientRequest& request);

}  // namespace sctape
