// engine.hpp — what a backend gives the hand-written strategies (fused,
// checkpoint, reversible), which are written once over it. An Engine holds
// a run's shared state (Engine::Run, captured by the tape's closures) and the
// beam's current position, and provides:
//
//   static MemoryTracker& memory();            // host_memory() or the device's
//   static std::shared_ptr<Run> start(bp, tracking, request, result);
//   static void finish(Run&);                  // after backward (frees device state)
//   explicit Engine(std::shared_ptr<Run>);     // CPU: no position until record_beam/restore;
//                                              // GPU: the run's tracker is the position
//   const std::shared_ptr<Run>& run();  const TrackSettings& tracking();  ParameterAdjoints& params();
//   // taped, each in its memory scope(s)
//   void record_beam(Tape&, MemoryReport&);
//   void record_map(Tape&, MemoryReport&, std::size_t element, double fraction);  // element map, scope "drift"
//   void record_kick(Tape&, MemoryReport&, std::size_t element, double ds);
//   void record_objective(Tape&, MemoryReport&, Objective, GradientResult&);
//   // untaped
//   void map(std::size_t element, double fraction);  void kick(std::size_t element, double ds);
//   State capture();  void restore(const State&);  static std::vector<SavedBuffer> saved(const State&);
//   void forget_snapshots();   // the position changed outside record_*
//   void drop();               // release the position (and its snapshots)
//   // reversible tracking (Reversible: a ReversibleSlices of this backend)
//   std::shared_ptr<Reversible> start_reversible();   // quantizes the position
//   void take_position(Reversible&);                  // the position := its state
//   void map_adjoint_at(Reversible&, element, fraction);  // adjoint of the map that led to its state
//   void kick_adjoint_at(Reversible&, element, fraction);   // after undo_kick: that kick's adjoint, then the map before it
//
// The slice is walked by physics' strang_slice, here and in every tracker; a
// element's map comes from physics/elements.hpp (element_map), applied and
// adjoined by the SCTAPE_HD bodies of physics/map_bodies.hpp in every engine;
// reversible tracking factors it into exact integer shears (fixed_point.hpp).
// Internal: include only from the strategies' and engines' sources.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "ad/gradient.hpp"

namespace sctape {

// Runs `work` inside a tape scope and adds the growth of `memory` (the host
// allocator, or the device's) to the report.
template <class F>
void measured(Tape& tape, MemoryReport& report, const char* scope, F&& work, MemoryTracker& memory) {
    TapeScope s(tape, scope);
    MemoryScope tagged(scope, memory);  // the tape scope tags host events only
    const std::int64_t before = memory.current_bytes();
    work();
    report.allocator_delta_by_scope[scope] += memory.current_bytes() - before;
}

// Copies of the beam's columns, shared by every entry that saves a column
// until the forward pass changes it: one buffer, counted once on the tape.
// Column is a shared handle (null when empty); take(c) copies column c.
template <class Column>
class Snapshots {
public:
    explicit Snapshots(std::function<Column(int)> take) : take_(std::move(take)) {}
    Column get(int c) {
        if (!snap_[c]) snap_[c] = take_(c);
        return snap_[c];
    }
    void changed(const std::vector<int>& cols) {
        for (int c : cols) snap_[c] = Column();
    }
    void clear() {
        for (auto& s : snap_) s = Column();
    }

private:
    std::function<Column(int)> take_;
    std::array<Column, 6> snap_;
};

// Column indices of a beam state (x, px, y, py, tau, delta order).
enum Col { kX = 0, kPx = 1, kY = 2, kPy = 3, kTau = 4, kDelta = 5 };

// What a taped element map keeps and changes, for every engine's record_map: a
// drift's adjoint reads only the momenta and a drift moves only the positions;
// any other map reads and changes all six columns. Saved in this order.
struct MapColumns {
    std::vector<int> read, changed;
};
inline MapColumns map_columns(bool drift) {
    if (drift) return {{kPx, kPy, kDelta}, {kX, kY, kTau}};
    return {{kPx, kPy, kDelta, kX, kY, kTau}, {kX, kPx, kY, kPy, kTau, kDelta}};
}

// One slice of lattice element `element` with its adjoint on the tape.
template <class Engine>
void record_slice(Engine& engine, Tape& tape, MemoryReport& report, std::size_t element) {
    strang_slice(
        engine.tracking(), element, [&](std::size_t e, double f) { engine.record_map(tape, report, e, f); },
        [&](std::size_t e, double ds) {
            engine.record_kick(tape, report, e, ds);
            ++report.kicks;
        });
}

// The same slice without a tape.
template <class Engine>
void advance_slice(Engine& engine, std::size_t element) {
    strang_slice(
        engine.tracking(), element, [&](std::size_t e, double f) { engine.map(e, f); },
        [&](std::size_t e, double ds) { engine.kick(e, ds); });
}

// Tapes one slice from the current position and runs that short tape at
// once: the slice's adjoint, for strategies that rebuild states in backward.
template <class Engine>
void backward_through_slice(Engine& engine, std::size_t element) {
    Tape tape;
    MemoryReport unused;
    record_slice(engine, tape, unused, element);
    engine.drop();  // only the slice's tape is needed now
    tape.backward();
}

}  // namespace sctape
