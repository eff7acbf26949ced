#include "ad/cpu_engine.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>

#include "ad/run_gradient.hpp"
#include "core/communicator.hpp"
#include "physics/exact_sums.hpp"
#include "physics/grid_ops.hpp"
#include "physics/kick_math.hpp"

namespace sctape {
namespace {

// One kick's saved data, and what its backward recomputes and passes on.
template <class T>
struct KickState {
    double ds = 0;
    std::size_t element = 0;
    int slices = 1;
    GridGeometry geometry;
    Column<T> x, y, tau, px, py, delta, rho, phi;
    // recomputed in backward
    HostArray<T> z, pz;
    std::array<HostArray<T>, 3> e_grid, e_part;
    // adjoints passed between the kick's backward entries
    HostArray<T> z_adj, pz_adj, phi_adj, rho_adj, green_folded_adj;
    std::optional<double> green_z_cell_adj;  // the green's adjoint carried to the IGF's z cell (quantized cells)
    CornerGradient green_corner_gradient;  // from a Green function rebuilt by the adjoint (else empty)
    const SpaceChargeKick<T>* fields_from = nullptr;  // a kick holding this kick's fields (else recomputed)
    std::array<HostArray<T>, 3> dp_adj, e_part_adj, e_grid_adj;
    GeometryAdjoint geo_adj;

    T push_scale(const CpuRun<T>& ctx) const {
        const Reference& r = ctx.ref;
        return T(ctx.charge_e * ds / (r.beta * r.gamma * r.gamma * r.p0c_eV));
    }
    // z, pz, the field on the grid and at the particles, from the saved data.
    void recompute(const CpuRun<T>& ctx) {
        const std::int64_t n = ctx.n;
        z.resize(n);
        pz.resize(n);
        const T beta0 = T(ctx.ref.beta), ib = T(1.0 / ctx.ref.beta), ibg2 = T(1.0 / std::pow(ctx.ref.beta_gamma(), 2));
        for (std::int64_t p = 0; p < n; ++p)
            s_to_t_particle((*px)[p], (*py)[p], (*tau)[p], (*delta)[p], beta0, ib, ibg2, z[p], pz[p]);
        if (fields_from) {  // the kick that just ran at these positions has them
            e_grid = fields_from->field_on_grid();
            e_part = fields_from->field_at_particles();
            return;
        }
        for (int a = 0; a < 3; ++a) {
            e_grid[a].resize(geometry.cells());
            e_part[a].resize(n);
        }
        T* eg[3] = {e_grid[0].data(), e_grid[1].data(), e_grid[2].data()};
        field_from_potential(geometry, phi->data(), eg, ctx.threads);
        const T* pos[3] = {x->data(), y->data(), z.data()};
        const T* egc[3] = {eg[0], eg[1], eg[2]};
        T* ep[3] = {e_part[0].data(), e_part[1].data(), e_part[2].data()};
        gather_cic(geometry, pos, n, egc, ep, ctx.threads);
    }
};

template <class T>
void t_to_s_backward(CpuRun<T>& ctx, KickState<T>& s) {
    s.recompute(ctx);
    const T scale = s.push_scale(ctx);
    const T ibg2 = T(1.0 / std::pow(ctx.ref.beta_gamma(), 2));
    for (auto& d : s.dp_adj) d.resize(ctx.n);
    s.pz_adj.resize(ctx.n);
    auto& A = ctx.adj;
    ParticleSums<2> sums(ctx.exact_sums());  // d/d(1/beta0), d/d(1/(beta0 gamma0)^2)
    sums.add_particles(ctx.n, [&](std::int64_t p, double* sum) {
        t_to_s_adjoint_particle((*s.px)[p], (*s.py)[p], s.pz[p], scale * s.e_part[0][p], scale * s.e_part[1][p],
                                scale * s.e_part[2][p], ibg2, A[kPx][p], A[kPy][p], A[kDelta][p], s.pz_adj[p], sum[0],
                                sum[1]);
        s.dp_adj[0][p] = A[kPx][p];
        s.dp_adj[1][p] = A[kPy][p];
        s.dp_adj[2][p] = s.pz_adj[p];
    });
    const std::array<double, 2> share = sums.rank_share();
    add_inv_beta_adjoint(ctx.params, ctx.ref, share[0]);
    add_inv_bg_sq_adjoint(ctx.params, ctx.ref, share[1]);
}

template <class T>
void push_backward(CpuRun<T>& ctx, KickState<T>& s) {
    const T scale = s.push_scale(ctx);
    ParticleSums<1> scale_adj(ctx.exact_sums());
    for (int a = 0; a < 3; ++a) {
        s.e_part_adj[a].resize(ctx.n);
        scale_adj.add_particles(ctx.n, [&](std::int64_t p, double* sum) {
            s.e_part_adj[a][p] = scale * s.dp_adj[a][p];
            sum[0] += double(s.e_part[a][p]) * s.dp_adj[a][p];
        });
        s.dp_adj[a] = HostArray<T>();
        s.e_part[a] = HostArray<T>();  // the gather adjoint needs the grid field only
    }
    // scale = charge_e ds / (beta gamma^2 p0c)
    add_push_scale_adjoint(ctx.params, ctx.ref, s.element, s.ds, s.slices, scale_adj.rank_share()[0] * double(scale));
}

template <class T>
void gather_backward(CpuRun<T>& ctx, KickState<T>& s) {
    const std::int64_t cells = s.geometry.cells();
    s.z_adj.assign(ctx.n, T(0));
    for (auto& g : s.e_grid_adj) g.assign(cells, T(0));
    const T* pos[3] = {s.x->data(), s.y->data(), s.z.data()};
    const T* eg[3] = {s.e_grid[0].data(), s.e_grid[1].data(), s.e_grid[2].data()};
    const T* ea[3] = {s.e_part_adj[0].data(), s.e_part_adj[1].data(), s.e_part_adj[2].data()};
    T* ega[3] = {s.e_grid_adj[0].data(), s.e_grid_adj[1].data(), s.e_grid_adj[2].data()};
    T* pa[3] = {ctx.adj[kX].data(), ctx.adj[kY].data(), s.z_adj.data()};
    gather_cic_adjoint(s.geometry, pos, ctx.n, eg, ea, ctx.threads, ctx.scratch, ega, pa, s.geo_adj, ctx.exact_sums());
    for (int a = 0; a < 3; ++a) s.e_part_adj[a] = HostArray<T>();
    // every rank's particles pulled on the grid: from here to the deposit's
    // adjoint, every rank runs the same grid adjoints on the same totals
    // (exact sums are over every rank already)
    if (ctx.exact_sums()) return;
    Communicator& comm = communicator();
    for (int a = 0; a < 3; ++a) comm.sum(s.e_grid_adj[a].data(), cells);
    comm.sum(s.geo_adj.origin_m.data(), 3);
    comm.sum(s.geo_adj.cell_m.data(), 3);
}

template <class T>
void field_backward(CpuRun<T>& ctx, KickState<T>& s) {
    s.phi_adj.assign(s.geometry.cells(), T(0));
    const T* eg[3] = {s.e_grid[0].data(), s.e_grid[1].data(), s.e_grid[2].data()};
    const T* ega[3] = {s.e_grid_adj[0].data(), s.e_grid_adj[1].data(), s.e_grid_adj[2].data()};
    field_from_potential_adjoint(s.geometry, eg, ega, ctx.grid_sum_threads(), s.phi_adj.data(), s.geo_adj);
    for (int a = 0; a < 3; ++a) s.e_grid_adj[a] = s.e_grid[a] = HostArray<T>();
}

// The Green function comes from the kick's cache, rebuilt there only when
// the geometry differs from the last one held: the tape does not hold it.
// With quantized cells the cells have no derivative (extent_jacobian), so of
// the green's adjoint only d/d(gamma), through the IGF's z cell, reaches a
// gradient: when the kick holds this kick's Green function already, the
// spectrum of dG/d(theta_z) kept beside it gives that by Parseval, with no
// IGF and no inverse transform. The deterministic mode keeps to the folded
// adjoint, whose sums run on grid_sum_threads().
template <class T>
void convolve_backward(CpuRun<T>& ctx, KickState<T>& s) {
    SpaceChargeKick<T>& kick = *ctx.kick;
    HockneyConvolver<T>& conv = kick.convolver();
    // a rebuilt IGF brings its corner gradient for green_backward
    const bool rebuilt = kick.hold_green(s.geometry, ctx.ref.gamma, &s.green_corner_gradient);
    s.rho_adj.assign(s.geometry.cells(), T(0));
    const HostArray<T>* z_derivative = rebuilt || ctx.exact_sums() ? nullptr : kick.green_spectrum_z_derivative();
    if (z_derivative) {
        s.green_z_cell_adj = conv.convolve_adjoint_even_to_z_cell(
            s.rho->data(), kick.green_spectrum().data(), s.phi_adj.data(), s.rho_adj.data(), z_derivative->data());
    } else {
        s.green_folded_adj.resize(s.geometry.cells());
        conv.convolve_adjoint_even(s.rho->data(), kick.green_spectrum().data(), s.phi_adj.data(), s.rho_adj.data(),
                                   s.green_folded_adj.data());
    }
    s.phi_adj = HostArray<T>();
}

template <class T>
void green_backward(CpuRun<T>& ctx, KickState<T>& s) {
    if (s.green_z_cell_adj) {  // the x and y cells' adjoints would meet a zero Jacobian
        const double theta_adj[3] = {0, 0, *s.green_z_cell_adj};
        ctx.params.reference.gamma += counted_once(add_green_cells_adjoint(s.geometry, ctx.ref.gamma, theta_adj, s.geo_adj));
        s.green_z_cell_adj.reset();
        return;
    }
    const CornerGradient* gradient = s.green_corner_gradient[0].empty() ? nullptr : &s.green_corner_gradient;
    ctx.params.reference.gamma += counted_once(build_green_adjoint_folded(
        s.geometry, ctx.ref.gamma, s.green_folded_adj.data(), ctx.grid_sum_threads(), gradient, s.geo_adj));
    s.green_folded_adj = HostArray<T>();
    s.green_corner_gradient = CornerGradient();
}

template <class T>
void deposit_backward(CpuRun<T>& ctx, KickState<T>& s) {
    const GridGeometry& g = s.geometry;
    const double macro = ctx.charge_e < 0 ? -1.0 : 1.0;
    const T scale = T(macro * ctx.beam_parameters.bunch_charge_C / double(ctx.n_total) / g.cell_volume_m3());
    const T* pos[3] = {s.x->data(), s.y->data(), s.z.data()};
    T* pa[3] = {ctx.adj[kX].data(), ctx.adj[kY].data(), s.z_adj.data()};
    // this rank's particles' terms, then every rank's: the geometry's adjoint
    // reaches the particles that set the extents, wherever they are
    double terms[7] = {0, 0, 0, 0, 0, 0, 0};  // d/d(scale), origin, cell
    GeometryAdjoint particles;
    const bool exact = ctx.exact_sums();  // then the terms are every rank's already
    terms[0] = deposit_cic_adjoint(g, pos, ctx.n, scale, s.rho_adj.data(), ctx.threads, pa, particles, exact);
    std::copy_n(particles.origin_m.data(), 3, terms + 1);
    std::copy_n(particles.cell_m.data(), 3, terms + 4);
    if (!exact) communicator().sum(terms, 7);
    for (int a = 0; a < 3; ++a) {
        s.geo_adj.origin_m[a] += terms[1 + a];
        s.geo_adj.cell_m[a] += terms[4 + a];
    }
    // scale = +-Q / (N hx hy hz)
    const double v = terms[0] * double(scale);
    ctx.params.bunch_charge_C += counted_once(v / ctx.beam_parameters.bunch_charge_C);
    for (int a = 0; a < 3; ++a) s.geo_adj.cell_m[a] -= v / g.cell_m[a];
    grid_covering_adjoint(ctx.tracking.grid, pos, ctx.n, s.geo_adj, pa, exact);
    s.rho_adj = HostArray<T>();
}

template <class T>
void s_to_t_backward(CpuRun<T>& ctx, KickState<T>& s) {
    const T beta0 = T(ctx.ref.beta), ib = T(1.0 / ctx.ref.beta);
    auto& A = ctx.adj;
    ParticleSums<3> sums(ctx.exact_sums());  // d/d(beta0), d/d(1/beta0), d/d(1/(beta0 gamma0)^2)
    sums.add_particles(ctx.n, [&](std::int64_t p, double* sum) {
        s_to_t_adjoint_particle((*s.px)[p], (*s.py)[p], (*s.tau)[p], (*s.delta)[p], s.pz[p], s.z_adj[p], s.pz_adj[p],
                                beta0, ib, A[kPx][p], A[kPy][p], A[kTau][p], A[kDelta][p], sum[0], sum[1], sum[2]);
    });
    const std::array<double, 3> share = sums.rank_share();
    ctx.params.reference.beta += share[0];
    add_inv_beta_adjoint(ctx.params, ctx.ref, share[1]);
    add_inv_bg_sq_adjoint(ctx.params, ctx.ref, share[2]);
    s.z = s.pz = s.z_adj = s.pz_adj = HostArray<T>();
}

// Adjoint of the map over `fraction` of element `element`, given its input
// coordinates (x, px, y, py, tau, delta order; a drift's positions may be
// null: its adjoint reads the momenta only).
template <class T>
void map_adjoint(CpuRun<T>& ctx, const std::array<const HostArray<T>*, 6>& in, std::size_t element, double fraction) {
    auto& A = ctx.adj;
    const Element& e = ctx.tracking.lattice[element];
    const ElementMap map = element_map(e, fraction, ctx.ref.beta_gamma());
    const bool has_positions = in[kX] != nullptr;
    ParticleSums<12> sums(ctx.exact_sums());
    sums.add_particles(ctx.n, [&](std::int64_t p, double* sum) {
        T values[6];
        for (int c = 0; c < 6; ++c) values[c] = in[c] ? (*in[c])[p] : T(0);
        T* adj[6] = {&A[kX][p], &A[kPx][p], &A[kY][p], &A[kPy][p], &A[kTau][p], &A[kDelta][p]};
        map_adjoint_particle(map, values, has_positions, adj, sum);
    });
    add_map_adjoint(ctx.params, ctx.ref, e, element, fraction, sums.rank_share().data());
}

// The map's input, rebuilt from its output by the inverse map (for the
// reversible strategy, which holds states after a map).
template <class T>
void undo_map(const CpuRun<T>& ctx, Beam<T>& beam, std::size_t element, double fraction) {
    const ElementMap inverse = inverse_map(element_map(ctx.tracking.lattice[element], fraction, ctx.ref.beta_gamma()));
    apply_element_map(beam, inverse, ctx.threads);
}

template <class T>
std::array<const HostArray<T>*, 6> columns_of(const Beam<T>& beam) {
    return beam.columns();
}

// Adjoint of one kick of element `element`, given its input coordinates
// (x, px, y, py, tau, delta order) and the kick object that has just run at
// these positions (its rho, phi, IGF, fields and geometry are reused): the
// eight substep adjoints, last first, as the fused tape runs them.
template <class T>
void kick_adjoint(CpuRun<T>& ctx, const std::array<Column<T>, 6>& input, const SpaceChargeKick<T>& kick,
                  std::size_t element) {
    KickState<T> s;
    const Element& d = ctx.tracking.lattice[element];
    s.ds = d.length_m / d.slices;
    s.element = element;
    s.slices = d.slices;
    s.geometry = kick.geometry();
    s.x = input[kX];
    s.px = input[kPx];
    s.y = input[kY];
    s.py = input[kPy];
    s.tau = input[kTau];
    s.delta = input[kDelta];
    // read in place: nothing runs `kick` again before this adjoint is done
    s.rho = Column<T>(Column<T>(), &kick.charge_density());
    s.phi = Column<T>(Column<T>(), &kick.potential());
    s.fields_from = &kick;
    t_to_s_backward(ctx, s);
    push_backward(ctx, s);
    gather_backward(ctx, s);
    field_backward(ctx, s);
    convolve_backward(ctx, s);
    green_backward(ctx, s);
    deposit_backward(ctx, s);
    s_to_t_backward(ctx, s);
}

}  // namespace

template <class T>
std::shared_ptr<CpuRun<T>> CpuEngine<T>::start(const BeamParameters& bp, const TrackSettings& tracking,
                                               const GradientRequest&, GradientResult& result) {
    auto ctx = std::make_shared<Run>();
    ctx->tracking = tracking;
    ctx->beam_parameters = bp;
    ctx->ref = Reference::from_kinetic(bp.species.mass_eV, bp.kinetic_energy_eV);
    ctx->charge_e = bp.species.charge_e;
    ctx->n = local_particles(bp.n_particles).size();
    ctx->n_total = bp.n_particles;
    ctx->threads = std::max(tracking.threads, 1);
    ctx->params.start(tracking.lattice);
    ctx->particle_gradient = &result.particle_gradient;
    if (tracking.space_charge) {
        ctx->kick = std::make_unique<SpaceChargeKick<T>>(tracking.grid, ctx->threads);
    }
    return ctx;
}

template <class T>
CpuEngine<T>::CpuEngine(std::shared_ptr<Run> run)
    : run_(std::move(run)),
      snaps_([this](int c) { return std::make_shared<const HostArray<T>>(*beam_.columns()[c]); }) {}

// Scope "beam": generates the beam; its backward regenerates the reference
// sample from the seed (nothing saved) and forms the distribution gradients.
template <class T>
void CpuEngine<T>::record_beam(Tape& tape, MemoryReport& report) {
    measured(tape, report, "beam", [&] {
        beam_ = make_beam<T>(run_->beam_parameters);
        tape.record({}, [ctx = run_] {
            beam_adjoint(ctx->beam_parameters, ctx->adj, *ctx->particle_gradient, ctx->params, ctx->exact_sums());
        });
    }, memory());
}

template <class T>
void CpuEngine<T>::record_map(Tape& tape, MemoryReport& report, std::size_t element, double fraction) {
    measured(tape, report, "drift", [&] {
        const MapColumns columns = map_columns(run_->tracking.lattice[element].kind == ElementKind::drift);
        std::array<Column<T>, 6> in;
        for (int c : columns.read) in[c] = snaps_.get(c);
        map(element, fraction);
        snaps_.changed(columns.changed);
        std::vector<SavedBuffer> saved;
        for (int c : columns.read) saved.push_back(Tape::save(in[c]));
        tape.record(std::move(saved), [ctx = run_, in, element, fraction] {
            std::array<const HostArray<T>*, 6> columns{};
            for (int c = 0; c < 6; ++c) columns[c] = in[c].get();
            map_adjoint(*ctx, columns, element, fraction);
        });
    }, memory());
}

template <class T>
void CpuEngine<T>::record_kick(Tape& tape, MemoryReport& report, std::size_t element, double ds) {
    const std::shared_ptr<Run>& ctx = run_;
    SpaceChargeKick<T>& kick = *run_->kick;
    Beam<T>& beam = beam_;
    Snapshots<Column<T>>& snaps = snaps_;
    auto s = std::make_shared<KickState<T>>();
    s->ds = ds;
    s->element = element;
    s->slices = ctx->tracking.lattice[element].slices;
    // forward() runs the substep and returns the buffers its backward needs
    auto step = [&](Substep sub, void (*backward)(CpuRun<T>&, KickState<T>&), auto&& forward) {
        measured(tape, report, substep_name(sub), [&] {
            std::vector<SavedBuffer> saved = forward();
            tape.record(std::move(saved), [ctx, s, backward] { backward(*ctx, *s); });
        }, memory());
    };
    s->tau = snaps.get(kTau);
    s->px = snaps.get(kPx);
    s->py = snaps.get(kPy);
    s->delta = snaps.get(kDelta);
    s->x = snaps.get(kX);
    s->y = snaps.get(kY);
    step(Substep::s_to_t, s_to_t_backward<T>, [&] {
        kick.s_to_t(beam);
        return std::vector<SavedBuffer>{Tape::save(s->tau), Tape::save(s->px), Tape::save(s->py), Tape::save(s->delta)};
    });
    step(Substep::deposit, deposit_backward<T>, [&] {
        kick.deposit(beam);
        s->geometry = kick.geometry();
        return std::vector<SavedBuffer>{Tape::save(s->x), Tape::save(s->y), Tape::save(s->tau)};
    });
    step(Substep::green, green_backward<T>, [&] {
        kick.green(beam);
        return std::vector<SavedBuffer>{};
    });
    step(Substep::convolve, convolve_backward<T>, [&] {
        kick.convolve();
        s->rho = std::make_shared<const HostArray<T>>(kick.charge_density());
        return std::vector<SavedBuffer>{Tape::save(s->rho)};
    });
    step(Substep::field, field_backward<T>, [&] {
        kick.field();
        return std::vector<SavedBuffer>{};
    });
    step(Substep::gather, gather_backward<T>, [&] {
        kick.gather(beam);
        s->phi = std::make_shared<const HostArray<T>>(kick.potential());
        return std::vector<SavedBuffer>{Tape::save(s->phi), Tape::save(s->x), Tape::save(s->y), Tape::save(s->tau)};
    });
    step(Substep::push, push_backward<T>, [&] {
        kick.push(beam, ds);
        return std::vector<SavedBuffer>{};
    });
    step(Substep::t_to_s, t_to_s_backward<T>, [&] {
        kick.t_to_s(beam);
        return std::vector<SavedBuffer>{Tape::save(s->px), Tape::save(s->py), Tape::save(s->delta)};
    });
    snaps.changed({kPx, kPy, kDelta});
}

template <class T>
void CpuEngine<T>::record_objective(Tape& tape, MemoryReport& report, Objective objective, GradientResult& result) {
    measured(tape, report, "objective", [&] {
        result.exact_sums = run_->exact_sums();
        result.objective = objective_value(beam_, objective, result.exact_sums);
        const auto cols = objective_columns(objective);
        Column<T> u = snaps_.get(cols[0]), p = snaps_.get(cols[1]);
        tape.record({Tape::save(u), Tape::save(p)}, [ctx = run_, u, p, objective, cols] {
            for (auto& a : ctx->adj) a.assign(ctx->n, T(0));
            ctx->params.beta_gamma += objective_adjoint(objective, *u, *p, ctx->ref.beta_gamma(),
                                                        ctx->adj[cols[0]], ctx->adj[cols[1]], ctx->exact_sums());
        });
    }, memory());
}

template <class T>
void CpuEngine<T>::map(std::size_t element, double fraction) {
    apply_element_map(beam_, element_map(run_->tracking.lattice[element], fraction, run_->ref.beta_gamma()),
                      run_->threads);
}

template <class T>
void CpuEngine<T>::kick(std::size_t, double ds) {
    run_->kick->apply(beam_, ds);
}

template <class T>
typename CpuEngine<T>::State CpuEngine<T>::capture() const {
    State s;
    const std::array<const HostArray<T>*, 6> columns = beam_.columns();
    for (int c = 0; c < 6; ++c) s[c] = std::make_shared<const HostArray<T>>(*columns[c]);
    return s;
}

template <class T>
void CpuEngine<T>::restore(const State& s) {
    beam_ = Beam<T>();
    beam_.species = run_->beam_parameters.species;
    beam_.reference = run_->ref;
    beam_.bunch_charge_C = run_->beam_parameters.bunch_charge_C;
    beam_.total_particles = run_->n_total;
    for (int c = 0; c < 6; ++c) *beam_.columns()[c] = *s[c];
    snaps_.clear();
}

template <class T>
std::vector<SavedBuffer> CpuEngine<T>::saved(const State& state) {
    std::vector<SavedBuffer> out;
    for (const auto& column : state) out.push_back(Tape::save(column));
    return out;
}

template <class T>
void CpuEngine<T>::drop() {
    snaps_.clear();
    beam_ = Beam<T>();
}

template <class T>
std::shared_ptr<ReversibleTracker<T>> CpuEngine<T>::start_reversible() {
    return std::make_shared<ReversibleTracker<T>>(beam_, run_->tracking, run_->kick.get());
}

template <class T>
void CpuEngine<T>::take_position(Reversible& rev) {
    beam_ = rev.beam();
    snaps_.clear();
}

template <class T>
void CpuEngine<T>::map_adjoint_at(Reversible& rev, std::size_t element, double fraction) {
    Beam<T> input = rev.beam();
    undo_map(*run_, input, element, fraction);
    sctape::map_adjoint(*run_, columns_of(input), element, fraction);
}

template <class T>
void CpuEngine<T>::kick_adjoint_at(Reversible& rev, std::size_t element, double fraction) {
    Beam<T> input = rev.beam();
    auto column = [](HostArray<T>& values) { return std::make_shared<const HostArray<T>>(std::move(values)); };
    const std::array<Column<T>, 6> in = {column(input.x),  column(input.px),  column(input.y),
                                         column(input.py), column(input.tau), column(input.delta)};
    sctape::kick_adjoint(*run_, in, *rev.kick(), element);
    if (run_->tracking.lattice[element].kind == ElementKind::drift) {
        // a drift's adjoint reads the momenta, which the drift leaves unchanged
        sctape::map_adjoint(*run_, {nullptr, in[kPx].get(), nullptr, in[kPy].get(), nullptr, in[kDelta].get()}, element,
                            fraction);
        return;
    }
    Beam<T> map_input = rev.beam();
    undo_map(*run_, map_input, element, fraction);
    sctape::map_adjoint(*run_, columns_of(map_input), element, fraction);
}

template <class T>
GradientResult cpu_gradient(const BeamParameters& bp, const TrackSettings& tracking, const GradientRequest& request) {
    return run_gradient<CpuEngine<T>>(bp, tracking, request);
}

template class CpuEngine<float>;
template class CpuEngine<double>;
template GradientResult cpu_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult cpu_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
