// fused.hpp — the `fused` strategy: every slice taped, each kick's eight
// substeps with hand-written adjoints that save only what they read (the
// kick's input columns, rho and phi), over any engine (engine.hpp).
#pragma once

#include "ad/engine.hpp"

namespace sctape {

template <class Engine>
void fused_forward(Engine& engine, Tape& tape, MemoryReport& report, SliceMarks& marks) {
    for (std::size_t element : slice_elements(engine.tracking().lattice)) {
        record_slice(engine, tape, report, element);
        marks.mark(tape, report);
    }
}

}  // namespace sctape
