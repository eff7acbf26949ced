// checkpoint.hpp — the `checkpoint` strategy: the tape keeps beam states, not
// kick internals; backward recomputes a slice forward from its input state,
// tapes it with the fused adjoints and runs that short tape at once.
//
// snapshots = 0 keeps every slice's input state (one state per kick).
// snapshots = s > 0 is binomial checkpointing (Griewank & Walther, revolve):
// at most s states are held, and with r recomputations per step
// beta(s, r) = C(s + r, s) steps can be reversed.
//
//   sctape::GradientRequest req;
//   req.strategy = sctape::Strategy::checkpoint;
//   req.snapshots = 10;
//   auto r = sctape::compute_gradient<double>(beam, tracking, req);
//   r.memory.max_states_held;      // <= 10
//   r.memory.max_recomputations;   // <= 4 for 1000 kicks
#pragma once

#include <cstdint>
#include <vector>

#include <algorithm>

#include "ad/gradient.hpp"

namespace sctape {

// beta(s, r) = C(s + r, s): steps reversible with s states and r recomputations.
std::int64_t binomial_steps(int snapshots, int recomputations);
// The least r with beta(s, r) >= steps.
int binomial_recomputations(std::int64_t steps, int snapshots);
// Where a reversal of steps [a, a + n) with s states places its next state
// (the recursion's split): a + min(n - 1, beta(s, r - 1)), r = binomial_recomputations(n, s).
std::int64_t binomial_split(std::int64_t a, std::int64_t n, int snapshots);

// Steps whose input states the forward pass stores: 0 and the splits of the
// reversal's right spine (every step when snapshots == 0).
std::vector<std::int64_t> checkpoint_spine(std::int64_t steps, int snapshots);

// How many states are held, and how often each step is re-evaluated untaped.
struct CheckpointCounters {
    explicit CheckpointCounters(std::int64_t steps) : advances(steps, 0) {}
    int held = 0, max_held = 0;
    std::vector<int> advances;
    void hold() { max_held = std::max(max_held, ++held); }
    void release() { --held; }
    int max_advances() const { return advances.empty() ? 0 : *std::max_element(advances.begin(), advances.end()); }
};

}  // namespace sctape
