// cpu_engine.hpp — the engine (engine.hpp) of the CPU backend: the position
// is a host Beam, the kick a SpaceChargeKick, and each kick's adjoint the
// eight hand-written substep adjoints of physics/grid_ops.hpp. The run's
// shared state (CpuRun) holds the beam and parameter adjoints. Over MPI ranks
// each rank holds its share of the particles and the whole grid: the kick's
// extents and rho are reduced in SpaceChargeKick, the grid adjoints of the
// gather and the deposit's geometry terms here (docs/mpi.md).
//
//   auto r = sctape::cpu_gradient<double>(beam, tracking, request);  // fused, checkpoint or reversible
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "ad/engine.hpp"
#include "physics/reversible_tracking.hpp"
#include "physics/space_charge.hpp"

namespace sctape {

template <class T>
using Column = std::shared_ptr<const HostArray<T>>;

// What every backward closure of one run shares: the beam adjoint, the
// parameter adjoints, and work objects for recomputation.
template <class T>
struct CpuRun {
    TrackSettings tracking;
    BeamParameters beam_parameters;
    Reference ref;
    double charge_e = 0;
    std::int64_t n = 0;        // this rank's particles (core/communicator.hpp)
    std::int64_t n_total = 0;  // the bunch's
    int threads = 1;
    std::array<HostArray<T>, 6> adj;  // d objective / d coordinates
    ParameterAdjoints params;
    std::array<std::vector<double>, 6>* particle_gradient = nullptr;
    std::unique_ptr<SpaceChargeKick<T>> kick;  // null without space charge
    HostArray<T> scratch;
    // The deterministic mode (physics/exact_sums.hpp): on with the fixed-point
    // deposit (SCTAPE_DETERMINISTIC_DEPOSIT, or `reversible` over MPI), every
    // sum over particles exact, so the objective and gradients are the same
    // bits for any thread count and split over ranks.
    bool exact_sums() const { return kick ? kick->fixed_point_deposit() : deterministic_deposit_requested(); }
    // Threads of the grid adjoints whose sums run over nodes (field, green):
    // one in the deterministic mode, so their order is the same for any
    // thread count (the grid is every rank's, so they match over ranks).
    int grid_sum_threads() const { return exact_sums() ? 1 : threads; }
};

template <class T>
class CpuEngine {
public:
    using Run = CpuRun<T>;
    using State = std::array<Column<T>, 6>;
    using Reversible = ReversibleTracker<T>;

    static MemoryTracker& memory() { return host_memory(); }
    static std::shared_ptr<Run> start(const BeamParameters& bp, const TrackSettings& tracking,
                                      const GradientRequest& request, GradientResult& result);
    static void finish(Run&) {}

    explicit CpuEngine(std::shared_ptr<Run> run);
    CpuEngine(const CpuEngine&) = delete;
    CpuEngine& operator=(const CpuEngine&) = delete;

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
    void drop();

    std::shared_ptr<Reversible> start_reversible();
    void take_position(Reversible& rev);
    void map_adjoint_at(Reversible& rev, std::size_t element, double fraction);
    void kick_adjoint_at(Reversible& rev, std::size_t element, double fraction);

private:
    std::shared_ptr<Run> run_;
    Beam<T> beam_;
    Snapshots<Column<T>> snaps_;
};

template <class T>
GradientResult cpu_gradient(const BeamParameters& beam, const TrackSettings& tracking, const GradientRequest& request);

}  // namespace sctape
