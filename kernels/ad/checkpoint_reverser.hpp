// checkpoint_reverser.hpp — the checkpoint strategy's forward pass and the
// reversal of binomial checkpointing, written once over any engine
// (engine.hpp). Internal: include only from the engines' sources.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ad/checkpoint.hpp"
#include "ad/engine.hpp"

namespace sctape {

// Reverses steps [a, b) from the state at a with `slots` states (the one at
// a included): the recursion of binomial checkpointing.
template <class Engine>
class Reverser {
public:
    using State = typename Engine::State;
    Reverser(Engine& engine, CheckpointCounters& counters, const std::vector<std::size_t>& elements)
        : engine_(engine), counters_(counters), elements_(elements) {}

    void reverse(std::int64_t a, std::int64_t b, int slots, const State& at_a) {
        const std::int64_t n = b - a;
        if (n == 1) {
            engine_.restore(at_a);
            return backward_through_slice(engine_, elements_[a]);
        }
        if (slots <= 1) {
            for (std::int64_t i = b - 1; i >= a; --i) {
                engine_.restore(at_a);
                for (std::int64_t k = a; k < i; ++k) advance(k);
                backward_through_slice(engine_, elements_[i]);
            }
            return;
        }
        const std::int64_t m = binomial_split(a, n, slots);
        {
            engine_.restore(at_a);
            for (std::int64_t k = a; k < m; ++k) advance(k);
            const State at_m = engine_.capture();
            engine_.drop();
            counters_.hold();
            reverse(m, b, slots - 1, at_m);
            counters_.release();
        }
        reverse(a, m, slots, at_a);
    }

private:
    void advance(std::int64_t step) {
        advance_slice(engine_, elements_[step]);
        ++counters_.advances[step];
    }

    Engine& engine_;
    CheckpointCounters& counters_;
    const std::vector<std::size_t>& elements_;
};

// Keeps the states on the spine (checkpoint_spine), each with an entry that
// reverses its segment binomially; the slices between run untaped.
template <class Engine>
void checkpoint_forward(Engine& engine, Tape& tape, MemoryReport& report, SliceMarks& marks, int snapshots,
                        const std::shared_ptr<CheckpointCounters>& counters) {
    auto elements = std::make_shared<const std::vector<std::size_t>>(slice_elements(engine.tracking().lattice));
    const auto steps = static_cast<std::int64_t>(elements->size());
    const std::vector<std::int64_t> spine = checkpoint_spine(steps, snapshots);
    std::size_t k = 0;
    for (std::int64_t i = 0; i < steps; ++i) {
        if (k < spine.size() && spine[k] == i) {
            const std::int64_t end = k + 1 < spine.size() ? spine[k + 1] : steps;
            const int slots = snapshots == 0 ? 1 : snapshots - static_cast<int>(k);
            measured(
                tape, report, "checkpoint",
                [&] {
                    const typename Engine::State state = engine.capture();
                    counters->hold();
                    tape.record(Engine::saved(state), [run = engine.run(), counters, elements, state, i, end, slots] {
                        Engine backward(run);
                        Reverser<Engine>(backward, *counters, *elements).reverse(i, end, slots, state);
                        counters->release();
                    });
                },
                Engine::memory());
            ++k;
        }
        measured(tape, report, "checkpoint", [&] { advance_slice(engine, (*elements)[i]); }, Engine::memory());
        engine.forget_snapshots();
        if (engine.tracking().space_charge) ++report.kicks;
        marks.mark(tape, report);
    }
}

}  // namespace sctape
