// The strategies: one matrix of strategy x dtype (gradients against fused,
// exact tape bytes), bit-exact reverse stepping, and the binomial schedule's
// guarantees.
#include <catch2/catch.hpp>

#include <cmath>

#include "ad/checkpoint.hpp"
#include "ad/gradient.hpp"
#include "ad/reversible.hpp"
#include "physics/reversible_tracking.hpp"
#include "support/strategy_matrix.hpp"

using namespace sctape;

namespace {

// The matrix's beam (support/strategy_matrix.hpp) with n particles.
BeamParameters small_beam(std::int64_t n) {
    BeamParameters b = test::matrix_beam();
    b.n_particles = n;
    return b;
}

TrackSettings small_tracking(int kicks, int grid) {
    TrackSettings t;
    t.lattice = {{0.01 * kicks, kicks}};
    t.grid.shape = {grid, grid, grid};
    t.threads = 2;
    return t;
}

}  // namespace

TEST_CASE("binomial schedule: beta(s, r) and the recomputations it needs", "[checkpoint]") {
    CHECK(binomial_steps(10, 4) == 1001);  // C(14, 4)
    CHECK(binomial_steps(1, 5) == 6);      // one state: r + 1 steps
    CHECK(binomial_steps(3, 0) == 1);
    CHECK(binomial_recomputations(1000, 10) == 4);
    CHECK(binomial_recomputations(1001, 10) == 4);
    CHECK(binomial_recomputations(1002, 10) == 5);
    const auto spine = checkpoint_spine(1000, 10);
    CHECK(spine.front() == 0);
    CHECK(spine.size() <= 10);
    CHECK(checkpoint_spine(5, 0).size() == 5);  // every kick's input
}

TEST_CASE("reversible tracking rebuilds every state bit for bit over 1000 kicks", "[reversible]") {
    const BeamParameters beam = small_beam(300);
    const TrackSettings tracking = small_tracking(1000, 8);
    ReversibleTracker<double> tracker(make_beam<double>(beam), tracking);
    std::vector<std::array<HostArray<std::int64_t>, 6>> forward;
    for (std::size_t i = 0; i < tracker.slices(); ++i) {
        forward.push_back(tracker.state());
        tracker.step(i);
    }
    std::size_t mismatches = 0;
    for (std::size_t i = tracker.slices(); i-- > 0;) {
        tracker.unstep(i);
        for (int c = 0; c < 6; ++c) mismatches += tracker.state()[c] != forward[i][c];
    }
    CHECK(tracker.slices() == 1000);
    CHECK(mismatches == 0);
}

// Every strategy and dtype on the CPU (the GPU runs the same cases in
// test_gpu.cpp); checkpoint both keeping every state and binomially (3).
TEST_CASE("strategy matrix on the CPU: gradients, tape bytes, memory returned", "[strategy][tape]") {
    const test::MatrixCase c = GENERATE(test::MatrixCase{Strategy::fused, 0, Backend::cpu},
                                        test::MatrixCase{Strategy::checkpoint, 0, Backend::cpu},
                                        test::MatrixCase{Strategy::checkpoint, 3, Backend::cpu},
                                        test::MatrixCase{Strategy::reversible, 0, Backend::cpu},
                                        test::MatrixCase{Strategy::autograd, 0, Backend::cpu});
    test::check_matrix_case<double>(c);
    test::check_matrix_case<float>(c);
}

// Binomial checkpointing over 1000 kicks with 10 states: never more than 10
// held, at most r = 4 untaped re-evaluations of any step (beta(10, 4) = 1001),
// and the tape at the end of forward holds exactly the spine's states.
TEST_CASE("binomial checkpointing over 1000 kicks holds at most s states", "[checkpoint]") {
    const std::int64_t n = 100;
    const BeamParameters beam = small_beam(n);
    const TrackSettings tracking = small_tracking(1000, 4);
    GradientRequest request;
    request.strategy = Strategy::checkpoint;
    request.snapshots = 10;
    const auto r = compute_gradient<double>(beam, tracking, request);
    CHECK(r.memory.kicks == 1000);
    CHECK(r.memory.max_states_held <= 10);
    CHECK(r.memory.max_recomputations <= 4);
    const auto spine = static_cast<std::int64_t>(checkpoint_spine(1000, 10).size());
    CHECK(r.memory.tape_bytes == spine * 6 * n * 8 + 2 * n * 8);
    CHECK(r.memory.bytes_after_backward == 0);
}
