#include "ad/reversible.hpp"

#include "ad/fused_internal.hpp"
#include "physics/reversible_tracking.hpp"

namespace sctape {
namespace {

template <class T>
fused::Column<T> column(HostArray<T>& values) {
    return std::make_shared<const HostArray<T>>(std::move(values));
}

// Walks the slices backwards: each inverse step rebuilds the states the
// slice's adjoint needs (the momenta after the kick for the second drift, the
// kick's input coordinates, rho and phi for the kick, the momenta before it
// for the first drift), so nothing is recomputed beyond the inverse itself.
template <class T>
void reverse_and_adjoin(fused::Context<T>& ctx, ReversibleTracker<T>& tracker) {
    const std::vector<std::size_t> elements = slice_elements(ctx.tracking.lattice);
    for (std::size_t i = tracker.slices(); i-- > 0;) {
        const std::size_t e = elements[i];
        const double half = (tracker.space_charge() ? 0.5 : 1.0) / ctx.tracking.lattice[e].slices;
        {
            const Beam<T> after = tracker.beam();
            fused::drift_adjoint(ctx, after.px, after.py, after.delta, e, half);
        }
        tracker.undo_half_drift(i);
        if (!tracker.space_charge()) continue;
        tracker.undo_kick(i);
        Beam<T> input = tracker.beam();
        const std::array<fused::Column<T>, 6> in = {column(input.x),   column(input.px),  column(input.y),
                                                    column(input.py),  column(input.tau), column(input.delta)};
        fused::kick_adjoint(ctx, in, *tracker.kick(), e);
        fused::drift_adjoint(ctx, *in[1], *in[3], *in[5], e, half);
        tracker.undo_half_drift(i);
    }
}

}  // namespace

template <class T>
GradientResult reversible_gradient(const BeamParameters& bp, const TrackSettings& tracking,
                                   const GradientRequest& request) {
    using namespace fused;
    return run_hand_written<T>(
        bp, tracking, request,
        [&](Tape& tape, MemoryReport& report, const std::shared_ptr<Context<T>>& ctx, Beam<T>& beam,
            Snapshots<T>& snaps) {
            std::shared_ptr<ReversibleTracker<T>> tracker;
            SliceMarks marks;
            measured(tape, report, "reversible", [&] {
                tracker = std::make_shared<ReversibleTracker<T>>(beam, tracking, ctx->kick.get());
                marks.mark(tape, report);
                for (std::size_t i = 0; i < tracker->slices(); ++i) {
                    tracker->step(i);
                    if (tracking.space_charge) ++report.kicks;
                    marks.mark(tape, report);
                }
                marks.finish(report);
                beam = tracker->beam();
                snaps.clear();
                // the final fixed-point state is all the tape keeps
                const std::int64_t bytes = 6 * ctx->n * std::int64_t(sizeof(std::int64_t));
                tape.record({SavedBuffer{tracker, bytes}}, [ctx, tracker] { reverse_and_adjoin(*ctx, *tracker); });
            });
            report.max_states_held = 1;
        });
}

template GradientResult reversible_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult reversible_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
