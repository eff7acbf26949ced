// reversible.hpp — the `reversible` strategy: nothing is stored per kick.
// The forward pass runs the engine's reversible tracker (physics/
// reversible_tracking.hpp), whose integer steps undo bit for bit, so backward
// rebuilds each slice's input state by stepping in reverse and runs that
// slice's adjoint there. The tape keeps only the final fixed-point state.
#pragma once

#include <memory>

#include "ad/engine.hpp"

namespace sctape {

// Walks the slices backwards: each inverse step rebuilds the states the
// slice's adjoint needs (the momenta after the kick for the second map, the
// kick's input coordinates, rho and phi for the kick, the momenta before it
// for the first map), so nothing is recomputed beyond the inverse itself.
template <class Engine>
void reverse_and_adjoin(Engine& engine, typename Engine::Reversible& rev) {
    const std::vector<std::size_t> elements = slice_elements(engine.tracking().lattice);
    for (std::size_t i = rev.slices(); i-- > 0;) {
        const std::size_t e = elements[i];
        const double f = slice_map_fraction(engine.tracking(), e);
        engine.map_adjoint_at(rev, e, f);
        rev.undo_half_map(i);
        if (!rev.space_charge()) continue;
        rev.undo_kick(i);
        engine.kick_adjoint_at(rev, e, f);
        rev.undo_half_map(i);
    }
}

// Scope "reversible": the whole lattice in fixed point.
template <class Engine>
void reversible_forward(Engine& engine, Tape& tape, MemoryReport& report, SliceMarks& marks) {
    measured(
        tape, report, "reversible",
        [&] {
            std::shared_ptr<typename Engine::Reversible> rev = engine.start_reversible();
            marks.mark(tape, report);
            for (std::size_t i = 0; i < rev->slices(); ++i) {
                rev->step(i);
                if (rev->space_charge()) ++report.kicks;
                marks.mark(tape, report);
            }
            engine.take_position(*rev);
            tape.record({SavedBuffer{rev, rev->state_bytes()}}, [run = engine.run(), rev] {
                Engine backward(run);
                reverse_and_adjoin(backward, *rev);
            });
        },
        Engine::memory());
    report.max_states_held = 1;
}

}  // namespace sctape
