#include "checkpoint.hpp"

#include <algorithm>
#include <limits>
#include <memory>

#include "fused_internal.hpp"

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

template <class T>
using State = std::array<Column<T>, 6>;

template <class T>
State<T> capture(Beam<T>& beam) {
    State<T> s;
    for (int c = 0; c < 6; ++c) s[c] = std::make_shared<const HostArray<T>>(*beam.columns()[c]);
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

// How many states are held, and how often each step is re-evaluated untaped.
struct Counters {
    explicit Counters(std::int64_t steps) : advances(steps, 0) {}
    int held = 0, max_held = 0;
    std::vector<int> advances;
    void hold() { max_held = std::max(max_held, ++held); }
    void release() { --held; }
};

// Reverses steps [a, b) from the state at a with `slots` states (the one at
// a included): the recursion of binomial checkpointing.
template <class T>
class Reverser {
public:
    Reverser(std::shared_ptr<Context<T>> ctx, std::shared_ptr<Counters> counters, const std::vector<std::size_t>& elements)
        : ctx_(std::move(ctx)), counters_(std::move(counters)), elements_(elements) {}

    void reverse(std::int64_t a, std::int64_t b, int slots, const State<T>& at_a) {
        const std::int64_t n = b - a;
        if (n == 1) return backward_through_slice(ctx_, restore(*ctx_, at_a), elements_[a]);
        if (slots <= 1) {
            for (std::int64_t i = b - 1; i >= a; --i) {
                Beam<T> beam = restore(*ctx_, at_a);
                for (std::int64_t k = a; k < i; ++k) advance(beam, k);
                backward_through_slice(ctx_, std::move(beam), elements_[i]);
            }
            return;
        }
        const std::int64_t m = binomial_split(a, n, slots);
        {
            Beam<T> beam = restore(*ctx_, at_a);
            for (std::int64_t k = a; k < m; ++k) advance(beam, k);
            const State<T> at_m = capture(beam);
            beam = Beam<T>();
            counters_->hold();
            reverse(m, b, slots - 1, at_m);
            counters_->release();
        }
        reverse(a, m, slots, at_a);
    }

private:
    void advance(Beam<T>& beam, std::int64_t step) {
        advance_slice(*ctx_, beam, elements_[step]);
        ++counters_->advances[step];
    }

    std::shared_ptr<Context<T>> ctx_;
    std::shared_ptr<Counters> counters_;
    const std::vector<std::size_t>& elements_;
};

}  // namespace

template <class T>
GradientResult checkpoint_gradient(const BeamParameters& bp, const TrackSettings& tracking,
                                   const GradientRequest& request) {
    const std::vector<std::size_t> elements = slice_elements(tracking.lattice);
    const auto steps = static_cast<std::int64_t>(elements.size());
    const std::vector<std::int64_t> spine = checkpoint_spine(steps, request.snapshots);
    auto counters = std::make_shared<Counters>(steps);
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
                        Reverser<T>(ctx, counters, elements).reverse(i, end, slots, state);
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
    result.memory.max_recomputations = *std::max_element(counters->advances.begin(), counters->advances.end());
    return result;
}

template GradientResult checkpoint_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult checkpoint_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
