#include "ad/checkpoint.hpp"

#include <algorithm>
#include <limits>
#include <memory>

#include "ad/checkpoint_reverser.hpp"
#include "ad/fused_internal.hpp"

namespace sctape {

std::int64_t binomial_steps(int snapshots, int recomputations) {
    // C(s + r, s) built as a product of exact binomials; capped far above any lattice
    const std::int64_t cap = std::numeric_limits<std::int64_t>::max() / 1024;
    std::int64_t c = 1;
    for (int i = 1; i <= snapshots; ++i) {
        c = c * (recomputations + i) / i;
        if (c > cap) return cap;
    }
    return c;
}

int binomial_recomputations(std::int64_t steps, int snapshots) {
    int r = 0;
    while (binomial_steps(snapshots, r) < steps) ++r;
    return r;
}

std::int64_t binomial_split(std::int64_t a, std::int64_t n, int snapshots) {
    const int r = binomial_recomputations(n, snapshots);
    return a + std::min(n - 1, binomial_steps(snapshots, r - 1));
}

std::vector<std::int64_t> checkpoint_spine(std::int64_t steps, int snapshots) {
    std::vector<std::int64_t> spine;
    if (snapshots == 0) {
        for (std::int64_t i = 0; i < steps; ++i) spine.push_back(i);
        return spine;
    }
    spine.push_back(0);
    for (std::int64_t a = 0, s = snapshots; steps - a > 1 && s > 1; --s) {
        a = binomial_split(a, steps - a, static_cast<int>(s));
        spine.push_back(a);
    }
    return spine;
}

namespace {

using namespace fused;

// Binomial reversal on the CPU: the current position is a host Beam.
template <class T>
struct CpuEngine {
    using State = fused::State<T>;
    std::shared_ptr<Context<T>> ctx;
    Beam<T> beam;

    State capture() { return fused::capture(beam); }
    void restore(const State& s) { beam = fused::restore(*ctx, s); }
    void drop() { beam = Beam<T>(); }
    void advance(std::size_t element) { advance_slice(*ctx, beam, element); }
    void backward_through(std::size_t element) { backward_through_slice(ctx, std::move(beam), element); }
};

}  // namespace

template <class T>
GradientResult checkpoint_gradient(const BeamParameters& bp, const TrackSettings& tracking,
                                   const GradientRequest& request) {
    const std::vector<std::size_t> elements = slice_elements(tracking.lattice);
    const auto steps = static_cast<std::int64_t>(elements.size());
    const std::vector<std::int64_t> spine = checkpoint_spine(steps, request.snapshots);
    auto counters = std::make_shared<CheckpointCounters>(steps);
    GradientResult result = run_hand_written<T>(
        bp, tracking, request,
        [&](Tape& tape, MemoryReport& report, const std::shared_ptr<Context<T>>& ctx, Beam<T>& beam,
            Snapshots<T>& snaps) {
            std::size_t k = 0;
            SliceMarks marks;
            marks.mark(tape, report);
            for (std::int64_t i = 0; i < steps; ++i) {
                if (k < spine.size() && spine[k] == i) {
                    // keep this state; its entry reverses the segment up to the next kept state
                    const std::int64_t end = k + 1 < spine.size() ? spine[k + 1] : steps;
                    const int slots = request.snapshots == 0 ? 1 : request.snapshots - static_cast<int>(k);
                    const State<T> state = capture(beam);
                    counters->hold();
                    TapeScope scope(tape, "checkpoint");
                    std::vector<SavedBuffer> saved;
                    for (const auto& column : state) saved.push_back(Tape::save(column));
                    tape.record(std::move(saved), [ctx, counters, state, i, end, slots, &elements] {
                        CpuEngine<T> engine{ctx, Beam<T>()};
                        Reverser<CpuEngine<T>>(engine, *counters, elements).reverse(i, end, slots, state);
                        counters->release();
                    });
                    ++k;
                }
                measured(tape, report, "checkpoint", [&] { advance_slice(*ctx, beam, elements[i]); });
                snaps.clear();
                if (ctx->kick) ++report.kicks;
                marks.mark(tape, report);
            }
            marks.finish(report);
        });
    result.memory.max_states_held = counters->max_held;
    result.memory.max_recomputations = counters->max_advances();
    return result;
}

template GradientResult checkpoint_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult checkpoint_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
