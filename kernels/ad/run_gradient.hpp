// run_gradient.hpp — one gradient run of a hand-written strategy over any
// engine (engine.hpp): the beam, the strategy's forward pass, the objective,
// backward, and the memory report. Each engine's source instantiates it.
// Internal: include only from the engines' sources.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>

#include "ad/checkpoint_reverser.hpp"
#include "ad/engine.hpp"
#include "ad/fused.hpp"
#include "ad/reversible.hpp"
#include "core/nvtx.hpp"

namespace sctape {

// Marks a tracker's events as backward ones while it lives, exceptions included.
class BackwardPhase {
public:
    explicit BackwardPhase(MemoryTracker& memory) : memory_(memory) { memory_.set_backward(true); }
    ~BackwardPhase() { memory_.set_backward(false); }
    BackwardPhase(const BackwardPhase&) = delete;
    BackwardPhase& operator=(const BackwardPhase&) = delete;

private:
    MemoryTracker& memory_;
};

template <class Engine>
GradientResult run_gradient(const BeamParameters& bp, const TrackSettings& tracking, const GradientRequest& request) {
    if (request.strategy == Strategy::autograd) throw std::logic_error("run_gradient: autograd is its own engine");
    using clock = std::chrono::steady_clock;
    GradientResult result;
    MemoryReport& report = result.memory;
    MemoryTracker& memory = Engine::memory();
    const std::int64_t start = memory.current_bytes();
    memory.reset_peak();
    const auto counters = std::make_shared<CheckpointCounters>(std::int64_t(slice_elements(tracking.lattice).size()));
    const auto t0 = clock::now();
    {
        // the run before the tape: if the forward pass throws, the tape's
        // buffers are freed while the run (a device stream) still lives
        const std::shared_ptr<typename Engine::Run> run = Engine::start(bp, tracking, request, result);
        Tape tape;
        {
            cuda::NvtxRange range("forward");
            Engine engine(run);
            engine.record_beam(tape, report);
            SliceMarks marks(memory);
            marks.mark(tape, report);
            switch (request.strategy) {
                case Strategy::fused: fused_forward(engine, tape, report, marks); break;
                case Strategy::checkpoint:
                    checkpoint_forward(engine, tape, report, marks, request.snapshots, counters);
                    break;
                case Strategy::reversible: reversible_forward(engine, tape, report, marks); break;
                case Strategy::autograd: break;  // refused above
            }
            marks.finish(report);
            engine.record_objective(tape, report, request.objective, result);
        }  // the final snapshots (and, on the CPU, the final beam) are released before backward
        for (const auto& [scope, row] : tape.by_scope()) report.tape_bytes_by_scope[scope] = row.bytes;
        report.tape_bytes = tape.tape_bytes();
        report.tape_entries = tape.entries();
        const auto t1 = clock::now();
        result.forward_seconds = std::chrono::duration<double>(t1 - t0).count();
        {
            cuda::NvtxRange range("backward");
            BackwardPhase phase(memory);  // timeline events of the backward pass
            tape.backward();
        }
        result.backward_seconds = std::chrono::duration<double>(clock::now() - t1).count();
        result.backward_seconds_by_scope = tape.backward_seconds_by_scope();
        run->params.sum_over_ranks();  // each rank holds its particles' share
        report_gradients(bp, tracking.lattice, run->params, request.gradients, result);
        Engine::finish(*run);
    }
    report.peak_bytes = memory.peak_bytes() - start;
    report.bytes_after_backward = memory.current_bytes() - start;
    if (request.strategy == Strategy::checkpoint) {
        report.max_states_held = counters->max_held;
        report.max_recomputations = counters->max_advances();
    }
    return result;
}

}  // namespace sctape
