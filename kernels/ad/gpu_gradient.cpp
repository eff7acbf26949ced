#include "ad/gpu_gradient.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "ad/autograd/autograd.hpp"
#include "ad/checkpoint_reverser.hpp"
#include "cuda/device.hpp"
#include "ad/fused_internal.hpp"
#include "cuda/gpu_reversible.hpp"
#include "cuda/gpu_tracking.hpp"
#include "core/nvtx.hpp"

namespace sctape {
namespace {

using namespace fused;  // the column names (kX ... kDelta)

template <class T>
SavedBuffer save(const DeviceColumn<T>& c) {
    return {c.owner, c.bytes()};
}

// Device copies of beam columns, shared by every entry that saves the column
// until the forward pass changes it (fused::Snapshots on the CPU).
template <class T>
class DeviceSnapshots {
public:
    explicit DeviceSnapshots(GpuTracker<T>& gpu) : gpu_(gpu) {}
    DeviceColumn<T> get(int c) {
        if (!snap_[c].owner) snap_[c] = gpu_.snapshot(static_cast<GpuBuffer>(c));
        return snap_[c];
    }
    void changed(std::initializer_list<int> cols) {
        for (int c : cols) snap_[c] = DeviceColumn<T>();
    }
    void clear() {
        for (auto& s : snap_) s = DeviceColumn<T>();
    }

private:
    GpuTracker<T>& gpu_;
    std::array<DeviceColumn<T>, 6> snap_;
};

// What every backward closure of one run shares.
template <class T>
struct GpuRun {
    BeamParameters beam_parameters;
    TrackSettings tracking;
    ParameterAdjoints params;
    std::unique_ptr<GpuTracker<T>> gpu;
};

// fused::measured() with the device allocator's growth.
template <class F>
void measured_on_device(Tape& tape, MemoryReport& report, const char* scope, F&& work) {
    fused::measured(tape, report, scope, std::forward<F>(work), cuda::device_memory());
}

template <class T>
void record_drift(Tape& tape, MemoryReport& report, const std::shared_ptr<GpuRun<T>>& run, DeviceSnapshots<T>& snaps,
                  std::size_t element, double fraction) {
    measured_on_device(tape, report, "drift", [&] {
        const double element_length = run->tracking.lattice[element].length_m;
        DeviceColumn<T> px = snaps.get(kPx), py = snaps.get(kPy), delta = snaps.get(kDelta);
        run->gpu->drift(fraction * element_length);
        snaps.changed({kX, kY, kTau});
        tape.record({save(px), save(py), save(delta)}, [run, px, py, delta, element, fraction, element_length] {
            run->gpu->drift_adjoint(px, py, delta, element, fraction, element_length, run->params);
        });
    });
}

// The kick runs whole on the device; its entries save, per substep scope,
// the same buffers as the CPU's fused tape (so the per-scope table matches),
// and the t_to_s entry, first in backward, runs the whole kick adjoint.
template <class T>
void record_kick(Tape& tape, MemoryReport& report, const std::shared_ptr<GpuRun<T>>& run, DeviceSnapshots<T>& snaps,
                 std::size_t element) {
    const Drift& d = run->tracking.lattice[element];
    const double ds = d.length_m / d.slices;
    auto saved = std::make_shared<GpuKickSaved<T>>();
    auto& in = saved->input;
    measured_on_device(tape, report, substep_name(Substep::s_to_t), [&] {
        for (int c : {kTau, kPx, kPy, kDelta}) in[c] = snaps.get(c);
    });
    measured_on_device(tape, report, substep_name(Substep::deposit), [&] {
        for (int c : {kX, kY}) in[c] = snaps.get(c);
    });
    run->gpu->kick(ds);
    saved->geometry = run->gpu->geometry();
    measured_on_device(tape, report, substep_name(Substep::convolve), [&] { saved->rho = run->gpu->snapshot(GpuBuffer::charge_density); });
    measured_on_device(tape, report, substep_name(Substep::gather), [&] { saved->phi = run->gpu->snapshot(GpuBuffer::potential); });
    const std::pair<Substep, std::vector<SavedBuffer>> entries[] = {
        {Substep::s_to_t, {save(in[kTau]), save(in[kPx]), save(in[kPy]), save(in[kDelta])}},
        {Substep::deposit, {save(in[kX]), save(in[kY]), save(in[kTau])}},
        {Substep::green, {}},
        {Substep::convolve, {save(saved->rho)}},
        {Substep::field, {}},
        {Substep::gather, {save(saved->phi), save(in[kX]), save(in[kY]), save(in[kTau])}},
        {Substep::push, {}},
        {Substep::t_to_s, {save(in[kPx]), save(in[kPy]), save(in[kDelta])}},
    };
    for (const auto& [sub, buffers] : entries) {
        TapeScope scope(tape, substep_name(sub));
        if (sub != Substep::t_to_s) {
            tape.record(buffers, [] {});
            continue;
        }
        tape.record(buffers, [run, saved, ds, element, slices = d.slices] {
            run->gpu->kick_adjoint(*saved, ds, element, slices, run->params);
        });
    }
    snaps.changed({kPx, kPy, kDelta});
}

// One slice with its adjoint on the tape: drift ds/2, kick ds, drift ds/2
// (a drift ds without space charge).
template <class T>
void record_slice(Tape& tape, MemoryReport& report, const std::shared_ptr<GpuRun<T>>& run, DeviceSnapshots<T>& snaps,
                  std::size_t element) {
    const int slices = run->tracking.lattice[element].slices;
    if (!run->tracking.space_charge) return record_drift(tape, report, run, snaps, element, 1.0 / slices);
    record_drift(tape, report, run, snaps, element, 0.5 / slices);
    record_kick(tape, report, run, snaps, element);
    record_drift(tape, report, run, snaps, element, 0.5 / slices);
    ++report.kicks;
}

// The same slice without a tape.
template <class T>
void advance_slice(GpuRun<T>& run, std::size_t element) {
    const Drift& d = run.tracking.lattice[element];
    const double ds = d.length_m / d.slices;
    if (!run.tracking.space_charge) return run.gpu->drift(ds);
    run.gpu->drift(0.5 * ds);
    run.gpu->kick(ds);
    run.gpu->drift(0.5 * ds);
}

// Binomial reversal on the device: the tracker's coordinates are the current position.
template <class T>
struct GpuEngine {
    using State = std::array<DeviceColumn<T>, 6>;
    std::shared_ptr<GpuRun<T>> run;

    State capture() {
        State s;
        for (int c = 0; c < 6; ++c) s[c] = run->gpu->snapshot(static_cast<GpuBuffer>(c));
        return s;
    }
    void restore(const State& s) { run->gpu->set_state(s); }
    void drop() {}
    void advance(std::size_t element) { advance_slice(*run, element); }
    void backward_through(std::size_t element) {
        Tape tape;
        MemoryReport unused;
        DeviceSnapshots<T> snaps(*run->gpu);
        record_slice(tape, unused, run, snaps, element);
        snaps.clear();
        tape.backward();
    }
};

// The tracker's coordinates as a host beam of the run's species and reference.
template <class T>
Beam<T> download_beam(const GpuRun<T>& run) {
    const BeamParameters& bp = run.beam_parameters;
    Beam<T> beam;
    beam.species = bp.species;
    beam.reference = Reference::from_kinetic(bp.species.mass_eV, bp.kinetic_energy_eV);
    beam.bunch_charge_C = bp.bunch_charge_C;
    for (HostArray<T>* column : beam.columns()) column->resize(std::size_t(bp.n_particles));
    run.gpu->download(beam);
    return beam;
}

// Walks the slices backwards as the CPU's reversible strategy does: each
// inverse step rebuilds on the device the states the slice's adjoint needs
// (the momenta after the kick, the kick's input with its rho and phi, the
// momenta before it), copied into transient device columns.
template <class T>
void reverse_and_adjoin(GpuRun<T>& run, GpuReversible<T>& rev) {
    GpuTracker<T>& gpu = *run.gpu;
    const std::vector<std::size_t> elements = slice_elements(run.tracking.lattice);
    for (std::size_t i = rev.slices(); i-- > 0;) {
        const std::size_t e = elements[i];
        const Drift& d = run.tracking.lattice[e];
        const double half = (rev.space_charge() ? 0.5 : 1.0) / d.slices;
        rev.to_tracker();
        gpu.drift_adjoint(gpu.snapshot(GpuBuffer::px), gpu.snapshot(GpuBuffer::py), gpu.snapshot(GpuBuffer::delta), e,
                          half, d.length_m, run.params);
        rev.undo_half_drift(i);
        if (!rev.space_charge()) continue;
        rev.undo_kick(i);
        GpuKickSaved<T> saved;
        saved.rho = gpu.snapshot(GpuBuffer::charge_density);
        saved.phi = gpu.snapshot(GpuBuffer::potential);
        saved.geometry = gpu.geometry();
        rev.to_tracker();
        for (int c = 0; c < 6; ++c) saved.input[c] = gpu.snapshot(static_cast<GpuBuffer>(c));
        gpu.kick_adjoint(saved, d.length_m / d.slices, e, d.slices, run.params);
        gpu.drift_adjoint(saved.input[kPx], saved.input[kPy], saved.input[kDelta], e, half, d.length_m, run.params);
        rev.undo_half_drift(i);
    }
}

// Scope "reversible": the whole lattice in fixed point; the tape keeps only
// the final int64 state, exactly as on the CPU.
template <class T>
void record_reversible(Tape& tape, MemoryReport& report, const std::shared_ptr<GpuRun<T>>& run, SliceMarks& marks) {
    measured_on_device(tape, report, "reversible", [&] {
        auto rev = std::make_shared<GpuReversible<T>>(download_beam(*run), run->tracking, *run->gpu);
        marks.mark(tape, report);
        for (std::size_t i = 0; i < rev->slices(); ++i) {
            rev->step(i);
            if (run->tracking.space_charge) ++report.kicks;
            marks.mark(tape, report);
        }
        rev->to_tracker();
        tape.record({SavedBuffer{rev, rev->state_bytes()}}, [run, rev] { reverse_and_adjoin(*run, *rev); });
    });
    report.max_states_held = 1;
}

template <class T>
void record_objective(Tape& tape, MemoryReport& report, const std::shared_ptr<GpuRun<T>>& run,
                      DeviceSnapshots<T>& snaps, Objective objective, GradientResult& result) {
    measured_on_device(tape, report, "objective", [&] {
        result.objective = objective_value(download_beam(*run), objective);
        const auto cols = objective_columns(objective);
        DeviceColumn<T> u = snaps.get(cols[0]), p = snaps.get(cols[1]);
        tape.record({save(u), save(p)}, [run, objective, cols, u, p] {
            const std::int64_t n = run->beam_parameters.n_particles;
            HostArray<T> u_host, p_host;
            run->gpu->to_host(u, u_host);
            run->gpu->to_host(p, p_host);
            std::array<HostArray<T>, 6> adj;
            for (auto& a : adj) a.assign(std::size_t(n), T(0));
            const auto& bp = run->beam_parameters;
            const double bg = Reference::from_kinetic(bp.species.mass_eV, bp.kinetic_energy_eV).beta_gamma();
            run->params.beta_gamma += objective_adjoint(objective, u_host, p_host, bg, adj[cols[0]], adj[cols[1]]);
            run->gpu->set_adjoint(adj);
        });
    });
}

// fused (every slice taped) or checkpoint (the spine's states kept, each
// with an entry that reverses its segment binomially).
template <class T>
void record_taped_slices(Tape& tape, MemoryReport& report, const std::shared_ptr<GpuRun<T>>& run,
                         DeviceSnapshots<T>& snaps, SliceMarks& marks, const GradientRequest& request,
                         const std::vector<std::size_t>& elements, const std::shared_ptr<CheckpointCounters>& counters) {
    const auto steps = static_cast<std::int64_t>(elements.size());
    const bool checkpoint = request.strategy == Strategy::checkpoint;
    const std::vector<std::int64_t> spine = checkpoint ? checkpoint_spine(steps, request.snapshots)
                                                       : std::vector<std::int64_t>{};
    std::size_t k = 0;
    for (std::int64_t i = 0; i < steps; ++i) {
        if (!checkpoint) {
            record_slice(tape, report, run, snaps, elements[i]);
            marks.mark(tape, report);
            continue;
        }
        if (k < spine.size() && spine[k] == i) {
            // keep this state; its entry reverses the segment up to the next kept state
            const std::int64_t end = k + 1 < spine.size() ? spine[k + 1] : steps;
            const int slots = request.snapshots == 0 ? 1 : request.snapshots - static_cast<int>(k);
            measured_on_device(tape, report, "checkpoint", [&] {
                GpuEngine<T> engine{run};
                const auto state = engine.capture();
                counters->hold();
                std::vector<SavedBuffer> saved;
                for (const auto& column : state) saved.push_back(save(column));
                tape.record(std::move(saved), [run, counters, state, i, end, slots, &elements] {
                    GpuEngine<T> e{run};
                    Reverser<GpuEngine<T>>(e, *counters, elements).reverse(i, end, slots, state);
                    counters->release();
                });
            });
            ++k;
        }
        measured_on_device(tape, report, "checkpoint", [&] { advance_slice(*run, elements[i]); });
        snaps.clear();
        if (run->tracking.space_charge) ++report.kicks;
        marks.mark(tape, report);
    }
}

}  // namespace

template <class T>
GradientResult gradient_on_gpu(const BeamParameters& bp, const TrackSettings& tracking, const GradientRequest& request) {
    // the generic op engine, with every tensor on the device
    if (request.strategy == Strategy::autograd) return autograd_gradient<T>(bp, tracking, request);
    using clock = std::chrono::steady_clock;
    GradientResult result;
    MemoryReport& report = result.memory;
    MemoryTracker& memory = cuda::device_memory();
    const std::int64_t start = memory.current_bytes();
    memory.reset_peak();
    const std::vector<std::size_t> elements = slice_elements(tracking.lattice);
    const auto steps = static_cast<std::int64_t>(elements.size());
    auto counters = std::make_shared<CheckpointCounters>(steps);
    const auto t0 = clock::now();
    {
        // run before tape: if the forward pass throws, the tape's device
        // buffers are freed while the tracker (and its stream) still lives
        auto run = std::make_shared<GpuRun<T>>();
        Tape tape;
        run->beam_parameters = bp;
        run->tracking = tracking;
        run->params.drift_length_m.assign(tracking.lattice.size(), 0.0);
        {
            cuda::NvtxRange range("forward");
            measured_on_device(tape, report, "beam", [&] {
                const Beam<T> beam = make_beam<T>(bp);
                GpuOptions options = GpuOptions::from_environment();
                // reversible's undo recomputes each kick's field and must get the same bits
                if (request.strategy == Strategy::reversible) options.deterministic_deposit = true;
                run->gpu = std::make_unique<GpuTracker<T>>(beam, tracking.space_charge, tracking.grid, options);
                tape.record({}, [run, &result] {
                    std::array<HostArray<T>, 6> adj;
                    run->gpu->get_adjoint(adj);
                    beam_adjoint(run->beam_parameters, adj, result.particle_gradient, run->params);
                });
            });
            DeviceSnapshots<T> snaps(*run->gpu);
            SliceMarks marks(memory);
            marks.mark(tape, report);
            if (request.strategy == Strategy::reversible) record_reversible(tape, report, run, marks);
            else record_taped_slices(tape, report, run, snaps, marks, request, elements, counters);
            marks.finish(report);
            record_objective(tape, report, run, snaps, request.objective, result);
            snaps.clear();
        }
        for (const auto& [scope, row] : tape.by_scope()) report.tape_bytes_by_scope[scope] = row.bytes;
        report.tape_bytes = tape.tape_bytes();
        report.tape_entries = tape.entries();
        const auto t1 = clock::now();
        result.forward_seconds = std::chrono::duration<double>(t1 - t0).count();
        {
            cuda::NvtxRange range("backward");
            memory.set_backward(true);  // device timeline events of the backward pass
            tape.backward();
            memory.set_backward(false);
        }
        result.backward_seconds = std::chrono::duration<double>(clock::now() - t1).count();
        report_gradients(bp, tracking.lattice, run->params, request.gradients, result);
        run->gpu.reset();
    }
    report.peak_bytes = memory.peak_bytes() - start;
    report.bytes_after_backward = memory.current_bytes() - start;
    if (request.strategy == Strategy::checkpoint) {
        report.max_states_held = counters->max_held;
        report.max_recomputations = counters->max_advances();
    }
    return result;
}

template GradientResult gradient_on_gpu<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult gradient_on_gpu<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
