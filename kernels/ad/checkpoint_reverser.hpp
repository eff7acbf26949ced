// checkpoint_reverser.hpp — the reversal of binomial checkpointing, written
// once for every backend. An Engine holds the current beam position and
// provides:
//   State capture();                          // a copy of the current position
//   void restore(const State&);               // make a copy current
//   void drop();                              // release the current position
//   void advance(std::size_t element);        // one slice forward, untaped
//   void backward_through(std::size_t element);  // tape that slice from the current
//                                             // position and run its adjoint now
// Internal: include only from the strategies' sources.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "ad/checkpoint.hpp"

namespace sctape {

// How many states are held, and how often each step is re-evaluated untaped.
struct CheckpointCounters {
    explicit CheckpointCounters(std::int64_t steps) : advances(steps, 0) {}
    int held = 0, max_held = 0;
    std::vector<int> advances;
    void hold() { max_held = std::max(max_held, ++held); }
    void release() { --held; }
    int max_advances() const { return advances.empty() ? 0 : *std::max_element(advances.begin(), advances.end()); }
};

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
            return engine_.backward_through(elements_[a]);
        }
        if (slots <= 1) {
            for (std::int64_t i = b - 1; i >= a; --i) {
                engine_.restore(at_a);
                for (std::int64_t k = a; k < i; ++k) advance(k);
                engine_.backward_through(elements_[i]);
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
        engine_.advance(elements_[step]);
        ++counters_.advances[step];
    }

    Engine& engine_;
    CheckpointCounters& counters_;
    const std::vector<std::size_t>& elements_;
};

}  // namespace sctape
