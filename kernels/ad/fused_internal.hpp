// fused_internal.hpp — pieces shared by the hand-written strategies
// (fused, checkpoint, reversible): the backward context, column snapshots,
// recording one lattice slice with fused adjoints, and the driver that sets
// up the tape, the beam and the objective around a strategy's forward pass.
// Internal: include only from kernels/*.cpp.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "ad/gradient.hpp"
#include "physics/space_charge.hpp"

namespace sctape::fused {

template <class T>
using Column = std::shared_ptr<const HostArray<T>>;

enum Col { kX = 0, kPx = 1, kY = 2, kPy = 3, kTau = 4, kDelta = 5 };

// State every backward closure of one run shares: the beam adjoint, the
// parameter adjoints, and work objects for recomputation.
template <class T>
struct Context {
    TrackSettings tracking;
    BeamParameters beam_parameters;
    Reference ref;
    double charge_e = 0;
    std::int64_t n = 0;
    int threads = 1;
    std::array<HostArray<T>, 6> adj;  // d objective / d coordinates
    ParameterAdjoints params;
    std::array<std::vector<double>, 6>* particle_gradient = nullptr;
    std::unique_ptr<SpaceChargeKick<T>> kick;  // null without space charge
    HostArray<T> scratch;

    void add_inv_beta_adjoint(double v) { sctape::add_inv_beta_adjoint(params, ref, v); }
    void add_inv_bg_sq_adjoint(double v) { sctape::add_inv_bg_sq_adjoint(params, ref, v); }
};

// Copies of beam columns, shared by every entry that saves the column until
// the forward pass changes it: one buffer, counted once on the tape.
template <class T>
class Snapshots {
public:
    explicit Snapshots(Beam<T>& beam) : beam_(beam) {}
    Column<T> get(int c) {
        if (!snap_[c]) snap_[c] = std::make_shared<const HostArray<T>>(*beam_.columns()[c]);
        return snap_[c];
    }
    void changed(std::initializer_list<int> cols) {
        for (int c : cols) snap_[c].reset();
    }
    void clear() {
        for (auto& s : snap_) s.reset();
    }

private:
    Beam<T>& beam_;
    std::array<Column<T>, 6> snap_;
};

// A copy of the six columns of a beam (checkpoint's stored states).
template <class T>
using State = std::array<Column<T>, 6>;

template <class T>
State<T> capture(const Beam<T>& beam) {
    State<T> s;
    const std::array<const HostArray<T>*, 6> columns = beam.columns();
    for (int c = 0; c < 6; ++c) s[c] = std::make_shared<const HostArray<T>>(*columns[c]);
    return s;
}

template <class T>
Beam<T> restore(const Context<T>& ctx, const State<T>& s) {
    Beam<T> beam;
    beam.species = ctx.beam_parameters.species;
    beam.reference = ctx.ref;
    beam.bunch_charge_C = ctx.beam_parameters.bunch_charge_C;
    for (int c = 0; c < 6; ++c) *beam.columns()[c] = *s[c];
    return beam;
}

// Runs `work` inside a tape scope and adds the growth of `memory` (the host
// allocator, or the device's for the CUDA backend) to the report.
template <class F>
void measured(Tape& tape, MemoryReport& report, const char* scope, F&& work, MemoryTracker& memory = host_memory()) {
    TapeScope s(tape, scope);
    MemoryScope tagged(scope, memory);  // the tape scope tags host events only
    const std::int64_t before = memory.current_bytes();
    work();
    report.allocator_delta_by_scope[scope] += memory.current_bytes() - before;
}

// Records one slice of lattice element `element` with fused adjoints: drift
// ds/2, kick ds, drift ds/2 (or a drift ds without space charge).
template <class T>
void record_slice(Tape& tape, MemoryReport& report, const std::shared_ptr<Context<T>>& ctx, Beam<T>& beam,
                  Snapshots<T>& snaps, std::size_t element);

// Tapes one slice from `beam` (its input state) and runs that short tape at
// once: the slice's adjoint, for strategies that rebuild states in backward.
template <class T>
void backward_through_slice(const std::shared_ptr<Context<T>>& ctx, Beam<T> beam, std::size_t element);

// Adjoint of a drift of `fraction` of element `element`, given the momenta it read.
template <class T>
void drift_adjoint(Context<T>& ctx, const HostArray<T>& px, const HostArray<T>& py, const HostArray<T>& delta,
                   std::size_t element, double fraction);

// Adjoint of one kick of element `element`, given its input coordinates
// (x, px, y, py, tau, delta order) and the kick object that has just run at
// these positions (its rho, phi, IGF, fields and geometry are reused): the
// eight substep adjoints, last first, as the fused tape runs them.
template <class T>
void kick_adjoint(Context<T>& ctx, const std::array<Column<T>, 6>& input, const SpaceChargeKick<T>& kick,
                  std::size_t element);

// The same slice without a tape.
template <class T>
void advance_slice(Context<T>& ctx, Beam<T>& beam, std::size_t element);

template <class T>
std::shared_ptr<Context<T>> make_context(const BeamParameters& bp, const TrackSettings& tracking,
                                         GradientResult& result);
// Scope "beam": generates the beam; its backward regenerates the reference
// sample from the seed (nothing saved) and forms the distribution gradients.
template <class T>
void record_beam(Tape& tape, MemoryReport& report, const std::shared_ptr<Context<T>>& ctx, Beam<T>& beam);
template <class T>
void record_objective(Tape& tape, MemoryReport& report, const std::shared_ptr<Context<T>>& ctx, const Beam<T>& beam,
                      Snapshots<T>& snaps, Objective objective, GradientResult& result);

// Sets up a run, calls forward(tape, report, ctx, beam, snaps) to track
// through the lattice recording what the strategy keeps, then records the
// objective, runs backward and fills the result.
template <class T, class Forward>
GradientResult run_hand_written(const BeamParameters& bp, const TrackSettings& tracking,
                                const GradientRequest& request, Forward&& forward) {
    using clock = std::chrono::steady_clock;
    GradientResult result;
    MemoryReport& report = result.memory;
    const std::int64_t start = host_memory().current_bytes();
    host_memory().reset_peak();
    const auto t0 = clock::now();
    {
        Tape tape;
        auto ctx = make_context<T>(bp, tracking, result);
        Beam<T> beam;
        record_beam(tape, report, ctx, beam);
        Snapshots<T> snaps(beam);
        forward(tape, report, ctx, beam, snaps);
        record_objective(tape, report, ctx, beam, snaps, request.objective, result);
        for (const auto& [scope, row] : tape.by_scope()) report.tape_bytes_by_scope[scope] = row.bytes;
        report.tape_bytes = tape.tape_bytes();
        report.tape_entries = tape.entries();
        snaps.clear();
        beam = Beam<T>();
        const auto t1 = clock::now();
        result.forward_seconds = std::chrono::duration<double>(t1 - t0).count();
        tape.backward();
        result.backward_seconds = std::chrono::duration<double>(clock::now() - t1).count();
        report_gradients(bp, tracking.lattice, ctx->params, request.gradients, result);
    }
    report.peak_bytes = host_memory().peak_bytes() - start;
    report.bytes_after_backward = host_memory().current_bytes() - start;
    return result;
}

}  // namespace sctape::fused
