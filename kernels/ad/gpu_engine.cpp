#include "ad/gpu_engine.hpp"

#include <memory>
#include <string>

#include "ad/run_gradient.hpp"
#include "core/communicator.hpp"
#include "cuda/device.hpp"

namespace sctape {
namespace {

// beta0 gamma0 of the run's reference particle (as make_beam sets it).
template <class T>
double beta_gamma_of(const GpuRun<T>& run) {
    const BeamParameters& bp = run.beam_parameters;
    return Reference::from_kinetic(bp.species.mass_eV, bp.kinetic_energy_eV).beta_gamma();
}

}  // namespace

namespace {

template <class T>
SavedBuffer save(const DeviceColumn<T>& c) {
    return {c.owner, c.bytes()};
}

}  // namespace

template <class T>
MemoryTracker& GpuEngine<T>::memory() {
    return cuda::device_memory();
}

template <class T>
std::shared_ptr<GpuRun<T>> GpuEngine<T>::start(const BeamParameters& bp, const TrackSettings& tracking,
                                               const GradientRequest& request, GradientResult& result) {
    auto run = std::make_shared<Run>();
    run->beam_parameters = bp;
    run->tracking = tracking;
    run->options = GpuOptions::from_environment();
    // reversible's undo recomputes each kick's field and must get the same bits
    if (request.strategy == Strategy::reversible) run->options.deterministic_deposit = true;
    run->params.start(tracking.lattice);
    run->particle_gradient = &result.particle_gradient;
    return run;
}

template <class T>
GpuEngine<T>::GpuEngine(std::shared_ptr<Run> run)
    : run_(std::move(run)), snaps_([this](int c) { return run_->gpu->snapshot(static_cast<GpuBuffer>(c)); }) {}

template <class T>
void GpuEngine<T>::record_beam(Tape& tape, MemoryReport& report) {
    measured(tape, report, "beam", [&] {
        const Beam<T> beam = make_beam<T>(run_->beam_parameters);
        run_->gpu = std::make_unique<GpuTracker<T>>(beam, run_->tracking.space_charge, run_->tracking.grid, run_->options);
        run_->gpu->set_substep_timing(false);  // no reader: the kicks need no event waits
        tape.record({}, [run = run_] {
            std::array<HostArray<T>, 6> adj;
            run->gpu->get_adjoint(adj);
            beam_adjoint(run->beam_parameters, adj, *run->particle_gradient, run->params);
        });
    }, memory());
}

template <class T>
void GpuEngine<T>::record_map(Tape& tape, MemoryReport& report, std::size_t element, double fraction) {
    measured(tape, report, "drift", [&] {
        const MapColumns columns = map_columns(run_->tracking.lattice[element].kind == ElementKind::drift);
        std::array<DeviceColumn<T>, 6> in;
        for (int c : columns.read) in[c] = snaps_.get(c);
        map(element, fraction);
        snaps_.changed(columns.changed);
        std::vector<SavedBuffer> saved;
        for (int c : columns.read) saved.push_back(save(in[c]));
        tape.record(std::move(saved), [run = run_, in, element, fraction] {
            run->gpu->map_adjoint(in, run->tracking.lattice, element, fraction, run->params);
        });
    }, memory());
}

// The kick runs whole on the device; its entries save, per substep scope,
// the same buffers as the CPU's fused tape (so the per-scope table matches),
// and the t_to_s entry, first in backward, runs the whole kick adjoint.
template <class T>
void GpuEngine<T>::record_kick(Tape& tape, MemoryReport& report, std::size_t element, double ds) {
    auto saved = std::make_shared<GpuKickSaved<T>>();
    auto& in = saved->input;
    measured(tape, report, substep_name(Substep::s_to_t), [&] {
        for (int c : {kTau, kPx, kPy, kDelta}) in[c] = snaps_.get(c);
    }, memory());
    measured(tape, report, substep_name(Substep::deposit), [&] {
        for (int c : {kX, kY}) in[c] = snaps_.get(c);
    }, memory());
    kick(element, ds);
    measured(tape, report, substep_name(Substep::convolve), [&] {
        saved->rho = run_->gpu->snapshot(GpuBuffer::charge_density);
    }, memory());
    measured(tape, report, substep_name(Substep::gather), [&] {
        saved->phi = run_->gpu->snapshot(GpuBuffer::potential);
    }, memory());
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
    const int slices = run_->tracking.lattice[element].slices;
    for (const auto& [sub, buffers] : entries) {
        TapeScope scope(tape, substep_name(sub));
        if (sub != Substep::t_to_s) {
            tape.record(buffers, [] {});
            continue;
        }
        tape.record(buffers, [run = run_, saved, ds, element, slices] {
            run->gpu->kick_adjoint(*saved, ds, element, slices, run->params);
        });
    }
    snaps_.changed({kPx, kPy, kDelta});
}

template <class T>
void GpuEngine<T>::record_objective(Tape& tape, MemoryReport& report, Objective objective, GradientResult& result) {
    measured(tape, report, "objective", [&] {
        result.objective = objective_value(download_beam(), objective);
        const auto cols = objective_columns(objective);
        DeviceColumn<T> u = snaps_.get(cols[0]), p = snaps_.get(cols[1]);
        tape.record({save(u), save(p)}, [run = run_, objective, cols, u, p] {
            HostArray<T> u_host, p_host;
            run->gpu->to_host(u, u_host);
            run->gpu->to_host(p, p_host);
            std::array<HostArray<T>, 6> adj;  // this rank's particles (objective_adjoint reduces its moments)
            for (auto& a : adj) a.assign(u_host.size(), T(0));
            const auto& bp = run->beam_parameters;
            const double bg = Reference::from_kinetic(bp.species.mass_eV, bp.kinetic_energy_eV).beta_gamma();
            run->params.beta_gamma += objective_adjoint(objective, u_host, p_host, bg, adj[cols[0]], adj[cols[1]]);
            run->gpu->set_adjoint(adj);
        });
    }, memory());
}

template <class T>
void GpuEngine<T>::map(std::size_t element, double fraction) {
    run_->gpu->map(element_map(run_->tracking.lattice[element], fraction, beta_gamma_of(*run_)));
}

template <class T>
void GpuEngine<T>::kick(std::size_t, double ds) {
    run_->gpu->kick(ds);
}

template <class T>
typename GpuEngine<T>::State GpuEngine<T>::capture() const {
    State s;
    for (int c = 0; c < 6; ++c) s[c] = run_->gpu->snapshot(static_cast<GpuBuffer>(c));
    return s;
}

template <class T>
void GpuEngine<T>::restore(const State& s) {
    run_->gpu->set_state(s);
    snaps_.clear();
}

template <class T>
std::vector<SavedBuffer> GpuEngine<T>::saved(const State& state) {
    std::vector<SavedBuffer> out;
    for (const auto& column : state) out.push_back(save(column));
    return out;
}

// The tracker's coordinates as a host beam of the run's species and reference.
template <class T>
Beam<T> GpuEngine<T>::download_beam() const {
    const BeamParameters& bp = run_->beam_parameters;
    Beam<T> beam;
    beam.species = bp.species;
    beam.reference = Reference::from_kinetic(bp.species.mass_eV, bp.kinetic_energy_eV);
    beam.bunch_charge_C = bp.bunch_charge_C;
    beam.total_particles = bp.n_particles;  // the tracker holds this rank's share (make_beam's)
    for (HostArray<T>* column : beam.columns()) column->resize(std::size_t(local_particles(bp.n_particles).size()));
    run_->gpu->download(beam);
    return beam;
}

template <class T>
std::shared_ptr<GpuReversible<T>> GpuEngine<T>::start_reversible() {
    return std::make_shared<GpuReversible<T>>(download_beam(), run_->tracking, *run_->gpu);
}

template <class T>
void GpuEngine<T>::take_position(Reversible& rev) {
    rev.to_tracker();
    snaps_.clear();
}

// The map's input, rebuilt in the tracker's coordinates from the reversible
// state after the map (the coordinates are scratch in the reversible
// backward), and that map's adjoint.
template <class T>
void GpuEngine<T>::map_adjoint_from_output(std::size_t element, double fraction) {
    GpuTracker<T>& gpu = *run_->gpu;
    gpu.unmap(element_map(run_->tracking.lattice[element], fraction, beta_gamma_of(*run_)));
    std::array<DeviceColumn<T>, 6> in;
    for (int c = 0; c < 6; ++c) in[c] = gpu.snapshot(static_cast<GpuBuffer>(c));
    gpu.map_adjoint(in, run_->tracking.lattice, element, fraction, run_->params);
}

template <class T>
void GpuEngine<T>::map_adjoint_at(Reversible& rev, std::size_t element, double fraction) {
    rev.to_tracker();
    map_adjoint_from_output(element, fraction);
}

// undo_kick left the kick's rho and phi in the tracker; its input state is
// copied into transient device columns (the adjoint recomputes the grid from it).
template <class T>
void GpuEngine<T>::kick_adjoint_at(Reversible& rev, std::size_t element, double fraction) {
    GpuTracker<T>& gpu = *run_->gpu;
    const Element& d = run_->tracking.lattice[element];
    GpuKickSaved<T> saved;
    saved.rho = gpu.snapshot(GpuBuffer::charge_density);
    saved.phi = gpu.snapshot(GpuBuffer::potential);
    rev.to_tracker();
    for (int c = 0; c < 6; ++c) saved.input[c] = gpu.snapshot(static_cast<GpuBuffer>(c));
    gpu.kick_adjoint(saved, slice_kick_length(run_->tracking, element), element, d.slices, run_->params);
    rev.to_tracker();  // the kick's adjoint may have used the coordinates
    map_adjoint_from_output(element, fraction);
}

template <class T>
GradientResult gpu_gradient(const BeamParameters& bp, const TrackSettings& tracking, const GradientRequest& request) {
    return run_gradient<GpuEngine<T>>(bp, tracking, request);
}

template class GpuEngine<float>;
template class GpuEngine<double>;
template GradientResult gpu_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult gpu_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
