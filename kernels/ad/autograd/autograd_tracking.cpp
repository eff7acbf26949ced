// The `autograd` strategy: tracking.cpp / space_charge.cpp / grid_ops.cpp
// rewritten as a chain of the generic ops of autograd/tensor.hpp, each
// expression in the forward's order so the values agree with sctape::track
// to rounding (bit for bit on one thread in float64). The kick is written the
// way a PyTorch PIC code writes it (Cheetah's idiom): every substep is a
// function of the beam, so deposit and gather each build their own CIC
// weights and node indices; the IGF is an elementwise chain on n^3 float64
// cell arrays; FFTs save nothing. With backend "cuda" every tensor lives on
// the GPU (ag::Device::cuda) and the same ops record the same tape; the
// allocator figures are then the device allocator's.
//
// Over MPI ranks (docs/mpi.md, "autograd over ranks") each rank tracks its
// share of the particles and the whole grid: the extents, rho and the
// objective's means are the ranks_* ops (reductions in forward and backward),
// rank 0 seeds the objective, and the parameter gradients, each rank's
// partial adjoints, are summed over the ranks after backward.
#include "ad/autograd/autograd.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "ad/autograd/op_bodies.hpp"
#include "ad/autograd/runner.hpp"
#include "ad/autograd/tensor.hpp"
#include "core/communicator.hpp"
#include "physics/constants.hpp"
#include "core/nvtx.hpp"
#include "physics/space_charge.hpp"
#ifdef SCTAPE_HAVE_CUDA
#include "cuda/device.hpp"
#include "cuda/gpu_tracking.hpp"
#endif

namespace sctape {
namespace {

using ag::Device;
using ag::Tensor;
using Scalar = ag::Tensor<double>;  // 1-element float64 tensor
using Deltas = std::map<std::string, std::int64_t>;

constexpr double kCoulomb = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);

// The tracking allocator of the device the tensors live on.
MemoryTracker& memory_of(Device device) {
#ifdef SCTAPE_HAVE_CUDA
    if (device == Device::cuda) return cuda::device_memory();
#endif
    (void)device;
    return host_memory();
}

// What every block of one run shares: the tape, the per-scope allocator
// growth and the allocator that measures it.
struct Recorder {
    Tape& tape;
    Deltas& deltas;
    MemoryTracker& memory;
};

// A named block of the forward pass: tape scope, allocator tag, NVTX range,
// and the allocator's growth over the block added to `deltas[name]`.
class Block {
public:
    Block(const Recorder& rec, const char* name)
        : scope_(rec.tape, name), memory_scope_(name, rec.memory), range_(name), name_(name), rec_(rec),
          before_(rec.memory.current_bytes()) {}
    ~Block() { rec_.deltas[name_] += rec_.memory.current_bytes() - before_; }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;

private:
    TapeScope scope_;
    MemoryScope memory_scope_;
    cuda::NvtxRange range_;
    const char* name_;
    const Recorder& rec_;
    std::int64_t before_;
};

// Reference-particle quantities as functions of the kinetic energy (Reference::from_kinetic).
struct RefTensors {
    Scalar gamma, beta, p0c, bg, bg2;
};

RefTensors reference(const Scalar& kinetic, double mass) {
    using namespace ag;
    RefTensors r;
    Scalar energy = add_scalar(kinetic, mass);
    r.gamma = div_scalar(energy, mass);
    r.beta = sqrt(rsub_scalar(1.0, reciprocal(mul(r.gamma, r.gamma))));
    r.p0c = sqrt(add_scalar(mul(energy, energy), -(mass * mass)));
    r.bg = mul(r.beta, r.gamma);
    r.bg2 = mul(r.bg, r.bg);
    return r;
}

template <class T>
struct Particles {
    Tensor<T> x, px, y, py, tau, delta;
    const Tensor<T>& column(int c) const {
        const Tensor<T>* cols[6] = {&x, &px, &y, &py, &tau, &delta};
        return *cols[c];
    }
};

// Everything a kick needs besides the particles.
template <class T>
struct KickContext {
    const GridSettings* grid;
    std::shared_ptr<const ag::Fft3<T>> fft;
    const RefTensors* ref;
    Scalar bunch_charge;
    double charge_sign;  // of the species
    double charge_e;
    std::int64_t n_total;  // every rank's particles
    const Recorder* rec;
};

// Linear drift (tracking.cpp): x += L px, y += L py, tau -= L delta / (beta0 gamma0)^2.
template <class T>
void drift(Particles<T>& p, const Scalar& length, const RefTensors& ref, const Recorder& rec) {
    using namespace ag;
    Block block(rec, "drift");
    Tensor<T> l = cast<T>(length);
    Tensor<T> l_tau = cast<T>(div(neg(length), ref.bg2));
    p.x = add(p.x, mul(l, p.px));
    p.y = add(p.y, mul(l, p.py));
    p.tau = add(p.tau, mul(l_tau, p.delta));
}

// The taped scalars an element map depends on (MapParameter order; null: not
// differentiated, e.g. a drift's strengths).
using MapInputs = std::array<const Scalar*, kMapParameterCount>;

// The map's 12 block entries as taped scalars: each is its value v plus
// sum_i dv/dtheta_i (theta_i - value(theta_i)), exactly v forward and exactly
// the derivatives of element_map backward (the op set has no sin or cosh;
// the derivatives come from element_map_derivative).
std::array<Scalar, 12> map_entries(const Element& e, double fraction, const MapInputs& inputs, double beta_gamma,
                                   Device device) {
    using namespace ag;
    const ElementMap m = element_map(e, fraction, beta_gamma);
    std::array<Scalar, 12> out;
    for (int i = 0; i < 12; ++i) {
        const MapBlock& b = m.block[i / 4];
        const double values[4] = {b.a, b.b, b.c, b.d};
        out[i] = constant_scalar(values[i % 4], device);
    }
    for (int p = 0; p < kMapParameterCount; ++p) {
        if (!inputs[p]) continue;
        const Scalar& theta = *inputs[p];
        const Scalar offset = sub(theta, constant_scalar(theta.item(), device));  // 0, with d/d(theta) = 1
        const ElementMap dm = element_map_derivative(e, fraction, beta_gamma, static_cast<MapParameter>(p));
        for (int i = 0; i < 12; ++i) {
            const MapBlock& b = dm.block[i / 4];
            const double d[4] = {b.a, b.b, b.c, b.d};
            if (d[i % 4] != 0) out[i] = add(out[i], scale(offset, d[i % 4]));
        }
    }
    return out;
}

// A linear element map other than a drift: u' = a u + b p, p' = c u + d p per block.
template <class T>
void element_map_op(Particles<T>& p, const std::array<Scalar, 12>& entries, const Recorder& rec) {
    using namespace ag;
    Block block(rec, "drift");
    Tensor<T>* cols[6] = {&p.x, &p.px, &p.y, &p.py, &p.tau, &p.delta};
    for (int k = 0; k < 3; ++k) {
        Tensor<T> a = cast<T>(entries[4 * k]), b = cast<T>(entries[4 * k + 1]);
        Tensor<T> c = cast<T>(entries[4 * k + 2]), d = cast<T>(entries[4 * k + 3]);
        Tensor<T>& u = *cols[2 * k];
        Tensor<T>& pu = *cols[2 * k + 1];
        Tensor<T> u_new = add(mul(a, u), mul(b, pu));
        pu = add(mul(c, u), mul(d, pu));
        u = u_new;
    }
}

// Grid geometry along one axis (grid_covering), differentiable in the positions
// of every rank's particles:
// edges lo - margin, hi + margin (minmax) or mean -+ k rms (sigma),
// origin = first edge, cell = (last - first) / (n - 1), or with a cell quantum
// the quantized cell around the edges' centre.
template <class T>
void axis_geometry(const GridSettings& gs, int a, const Tensor<T>& u, Scalar& origin, Scalar& cell) {
    using namespace ag;
    Scalar first, last;
    if (gs.mode == ExtentMode::minmax) {
        Scalar lo = cast<double>(ranks_min(u)), hi = cast<double>(ranks_max(u));
        Scalar margin = scale(scale(sub(hi, lo), 0.5), gs.padding);
        first = sub(lo, margin);
        last = add(hi, margin);
    } else {
        Tensor<double> ud = cast<double>(u);
        Scalar center = ranks_mean(ud);
        Scalar var = sub(ranks_mean(mul(ud, ud)), mul(center, center));
        Scalar half = scale(sqrt(clamp(var, 0.0, std::numeric_limits<double>::infinity())), gs.sigma_factor[a]);
        first = sub(center, half);
        last = add(center, half);
    }
    if (gs.cell_quantum > 0) {
        // a constant cell between quantization steps, the grid centred on the
        // beam (geometry_from_extents's arithmetic)
        const double exact = (last.item() - first.item()) / (gs.shape[a] - 1);
        cell = constant_scalar(quantized_cell(exact, gs.cell_quantum), u.device());
        origin = sub(scale(add(first, last), 0.5), scale(cell, 0.5 * (gs.shape[a] - 1)));
        return;
    }
    origin = first;
    cell = div_scalar(sub(last, first), gs.shape[a] - 1);
}

// Which of the two CIC weights of axis a each of the 8 corners takes
// (corner m = 4a + 2b + c, the forward's loop order).
ag::Index corner_bits(int axis, Device device) {
    std::int64_t bits[8];
    for (int m = 0; m < 8; ++m) bits[m] = (m >> (2 - axis)) & 1;
    return std::make_shared<const ag::IndexArray>(ag::IndexArray::copy_of(bits, 8, device));
}

ag::Index clamp_index(const ag::Index& i, std::int64_t lo, std::int64_t hi) {
    auto out = std::make_shared<ag::IndexArray>(i->size(), i->device());
    ag::for_each(i->device(), i->size(), ag::ClampIndex{i->data(), lo, hi, out->data()});
    return out;
}

// The index values as a constant tensor of T.
template <class T>
Tensor<T> index_values(const ag::Index& i) {
    auto v = std::make_shared<ag::Array<T>>(i->size(), i->device());
    ag::for_each(i->device(), i->size(), ag::Convert<T, std::int64_t>{i->data(), v->data(), false});
    return ag::constant<T>(std::move(v));
}

// Flat node index of the 8 corners of every particle, (N, 8), int64.
ag::Index corner_nodes(const std::array<ag::Index, 3>& idx, const ag::Shape3& n) {
    const std::int64_t count = idx[0]->size();
    auto out = std::make_shared<ag::IndexArray>(8 * count, idx[0]->device());
    ag::for_each(idx[0]->device(), count,
                 ag::CornerNodes{idx[0]->data(), idx[1]->data(), idx[2]->data(), {n[0], n[1], n[2]}, out->data()});
    return out;
}

// Cloud-in-cell weights (N, 8) and node indices (N, 8), cic_locate semantics:
// s = (u - o) / h, index = floor(s) clamped to [0, n-2], upper weight s - index.
template <class T>
struct Cic {
    Tensor<T> weight;
    ag::Index node;
};

template <class T>
Cic<T> cic_weights(const std::array<Tensor<T>, 3>& pos, const std::array<Tensor<T>, 3>& origin,
                   const std::array<Tensor<T>, 3>& inv_h, const ag::Shape3& n) {
    using namespace ag;
    std::array<Tensor<T>, 3> w8;
    std::array<Index, 3> idx;
    for (int a = 0; a < 3; ++a) {
        Tensor<T> s = mul(sub(pos[a], origin[a]), inv_h[a]);
        idx[a] = clamp_index(to_index(floor(s)), 0, n[a] - 2);
        Tensor<T> upper = sub(s, index_values<T>(idx[a]));
        Tensor<T> lower = rsub_scalar(1.0, upper);
        w8[a] = select_inner(stack_inner<T>({lower, upper}), 2, corner_bits(a, s.device()));
    }
    return {mul(mul(w8[0], w8[1]), w8[2]), corner_nodes(idx, n)};
}

// Antiderivative of 1/r (paper Eq. 5, kick_math.hpp's igf_antiderivative) as elementwise ops.
Tensor<double> igf_antiderivative(const Tensor<double>& x, const Tensor<double>& y, const Tensor<double>& z) {
    using namespace ag;
    Tensor<double> x2 = mul(x, x), y2 = mul(y, y), z2 = mul(z, z);
    Tensor<double> r = sqrt(add(add(x2, y2), z2));
    Tensor<double> t1 = mul(mul(y, z), asinh(div(x, sqrt(add(y2, z2)))));
    Tensor<double> t2 = mul(mul(x, z), asinh(div(y, sqrt(add(x2, z2)))));
    Tensor<double> t3 = mul(mul(x, y), asinh(div(z, sqrt(add(x2, y2)))));
    Tensor<double> t4 = mul(scale(z2, 0.5), atan(div(mul(x, y), mul(z, r))));
    Tensor<double> t5 = mul(scale(y2, 0.5), atan(div(mul(x, z), mul(y, r))));
    Tensor<double> t6 = mul(scale(x2, 0.5), atan(div(mul(y, z), mul(x, r))));
    return sub(sub(sub(add(add(t1, t2), t3), t4), t5), t6);
}

// (i + 1/2) along `axis` on the n^3 node lattice, float64 (a meshgrid).
Tensor<double> half_cell_lattice(const ag::Shape3& n, int axis, Device device) {
    auto v = std::make_shared<ag::Array<double>>(std::int64_t(n[0]) * n[1] * n[2], device);
    ag::for_each(device, v->size(), ag::HalfCellLattice{{n[0], n[1], n[2]}, axis, v->data()});
    return ag::constant<double>(std::move(v));
}

// The forward's checks before the deposit (non-finite coordinates, zero
// extent, particles outside a sigma grid), with the CPU kick's messages.
template <class T>
void check_grid(const GridSettings& gs, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& z) {
    const std::int64_t count = x.size();
    if (x.device() == Device::host) {
        const T* raw[3] = {x.data(), y.data(), z.data()};
        (void)grid_covering(gs, raw, count);
        return;
    }
#ifdef SCTAPE_HAVE_CUDA
    AxisExtent extent[3];
    device_axis_extents(x.data(), y.data(), z.data(), count, extent);
    (void)geometry_from_extents(gs, extent, count);
#endif
}

// One space-charge kick over ds, the eight substeps of space_charge.cpp.
template <class T>
void kick(Particles<T>& p, const Scalar& ds, const KickContext<T>& ctx) {
    using namespace ag;
    const Recorder& rec = *ctx.rec;
    const RefTensors& ref = *ctx.ref;
    const GridSettings& gs = *ctx.grid;
    const Shape3 n = gs.shape;
    const Shape3 m = {2 * n[0], 2 * n[1], 2 * n[2]};
    const std::int64_t cells = std::int64_t(n[0]) * n[1] * n[2];

    Tensor<T> z, pz;
    {
        Block block(rec, "s_to_t");
        Tensor<T> beta0 = cast<T>(ref.beta);
        Tensor<T> inv_beta0 = cast<T>(reciprocal(ref.beta));
        Tensor<T> inv_bg2 = cast<T>(reciprocal(ref.bg2));
        z = mul(neg(beta0), p.tau);
        Tensor<T> e = add(inv_beta0, p.delta);
        pz = sqrt(sub(sub(sub(mul(e, e), inv_bg2), mul(p.px, p.px)), mul(p.py, p.py)));
    }

    const std::array<Tensor<T>, 3> pos = {p.x, p.y, z};
    std::array<Scalar, 3> cell;
    std::array<Tensor<T>, 3> origin, inv_h;
    Tensor<T> rho;
    {
        Block block(rec, "deposit");
        check_grid(gs, p.x, p.y, z);
        for (int a = 0; a < 3; ++a) {
            Scalar o;
            axis_geometry(gs, a, pos[a], o, cell[a]);
            origin[a] = cast<T>(o);
            inv_h[a] = cast<T>(reciprocal(cell[a]));
        }
        Cic<T> cic = cic_weights(pos, origin, inv_h, n);
        Tensor<T> weight_sum = ranks_sum(scatter_add(cic.weight, cic.node, cells));
        Scalar macro = div_scalar(scale(ctx.bunch_charge, ctx.charge_sign), static_cast<double>(ctx.n_total));
        Scalar volume = mul(mul(cell[0], cell[1]), cell[2]);
        rho = mul(weight_sum, cast<T>(div(macro, volume)));
    }

    Tensor<T> green;
    {
        Block block(rec, "green");
        const std::array<Scalar, 3> h = {cell[0], cell[1], mul(ref.gamma, cell[2])};
        std::array<Tensor<double>, 3> corner;
        for (int a = 0; a < 3; ++a) corner[a] = mul(half_cell_lattice(n, a, p.x.device()), h[a]);
        Tensor<double> g = igf_antiderivative(corner[0], corner[1], corner[2]);
        for (int a = 0; a < 3; ++a) g = sub(g, shift_odd(g, n, a));  // D f(i) = f(i) - f(i-1), f(-1) = -f(0)
        green = cast<T>(mirror3(scale(g, kCoulomb), n));
    }

    Tensor<T> phi;
    {
        Block block(rec, "convolve");
        ComplexTensor<T> rho_hat = rfft3(pad3(rho, n, m), ctx.fft);
        ComplexTensor<T> green_hat = rfft3(green, ctx.fft);
        const T norm = T(1.0 / double(ctx.fft->real_size()));
        phi = crop3(irfft3(cmul(rho_hat, cscale(green_hat, norm)), ctx.fft), m, n);
    }

    std::array<Tensor<T>, 3> e_grid;
    {
        Block block(rec, "field");
        for (int a = 0; a < 3; ++a) e_grid[a] = mul(neg(grad_stencil(phi, n, a)), inv_h[a]);
    }

    std::array<Tensor<T>, 3> e_part;
    {
        Block block(rec, "gather");
        Cic<T> cic = cic_weights(pos, origin, inv_h, n);
        for (int a = 0; a < 3; ++a) e_part[a] = sum_inner(mul(cic.weight, gather(e_grid[a], cic.node)), 8);
    }

    std::array<Tensor<T>, 3> dp;
    {
        Block block(rec, "push");
        // dP/p0 = charge_e * E * ds / (beta0 gamma0^2 p0c)
        Scalar denominator = mul(mul(mul(ref.beta, ref.gamma), ref.gamma), ref.p0c);
        Tensor<T> k = cast<T>(div(scale(ds, ctx.charge_e), denominator));
        for (int a = 0; a < 3; ++a) dp[a] = mul(k, e_part[a]);
    }

    {
        Block block(rec, "t_to_s");
        Tensor<T> inv_beta0 = cast<T>(reciprocal(ref.beta));
        Tensor<T> inv_bg2 = cast<T>(reciprocal(ref.bg2));
        Tensor<T> px = add(p.px, dp[0]), py = add(p.py, dp[1]), pz_new = add(pz, dp[2]);
        Tensor<T> dp2 = add(add(mul(add(px, p.px), sub(px, p.px)), mul(add(py, p.py), sub(py, p.py))),
                            mul(add(pz_new, pz), sub(pz_new, pz)));
        Tensor<T> e_old = add(inv_beta0, p.delta);
        Tensor<T> e_new = sqrt(add(add(add(mul(px, px), mul(py, py)), mul(pz_new, pz_new)), inv_bg2));
        p.delta = add(p.delta, div(dp2, add(e_new, e_old)));
        p.px = px;
        p.py = py;
    }
}

// The objective (gradient.cpp's objective_value) from float64 casts of the
// final columns, its means over every rank's particles.
template <class T>
Scalar objective(const Particles<T>& p, Objective o, const RefTensors& ref) {
    using namespace ag;
    const auto [u_col, p_col] = objective_columns(o);
    Tensor<double> u = cast<double>(p.column(u_col));
    Tensor<double> du = sub(u, ranks_mean(u));
    Scalar uu = ranks_mean(mul(du, du));
    if (o != Objective::emittance_x && o != Objective::emittance_y && o != Objective::emittance_tau) return sqrt(uu);
    Tensor<double> q = cast<double>(p.column(p_col));
    Tensor<double> dq = sub(q, ranks_mean(q));
    Scalar qq = ranks_mean(mul(dq, dq)), uq = ranks_mean(mul(du, dq));
    return mul(ref.bg, sqrt(sub(mul(uu, qq), mul(uq, uq))));
}

double scalar_grad(const Scalar& s) {
    const ag::Array<double>* g = s.grad();
    return (g && !g->empty()) ? g->at(0) : 0.0;
}

}  // namespace

template <class T>
GradientResult autograd_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                                 const GradientRequest& request) {
    using clock = std::chrono::steady_clock;
    using namespace ag;
    GradientResult result;
    MemoryReport& report = result.memory;
    const Device device = request.backend == Backend::cuda ? Device::cuda : Device::host;
    MemoryTracker& memory = memory_of(device);

    std::shared_ptr<const ag::Fft3<T>> fft;
    if (tracking.space_charge) {
        const auto& s = tracking.grid.shape;
        for (int a = 0; a < 3; ++a)
            if (s[a] < 2) throw std::runtime_error("grid needs at least 2 nodes along " + std::string(1, "xyz"[a]));
        fft = ag::make_fft<T>({2 * s[0], 2 * s[1], 2 * s[2]}, device, std::max(tracking.threads, 1));
    }

    const std::int64_t start = memory.current_bytes();
    memory.reset_peak();
    const auto t0 = clock::now();
    ParameterAdjoints adj;
    {
        Tape tape;
        Recording recording(tape);
        const Recorder rec{tape, report.allocator_delta_by_scope, memory};
        auto forward_range = std::make_unique<cuda::NvtxRange>("forward");

        // Differentiable scalars (leaves, float64).
        const auto& dist = beam.distribution;
        Scalar bunch_charge = parameter_scalar(beam.bunch_charge_C, device);
        Scalar kinetic = parameter_scalar(beam.kinetic_energy_eV, device);
        std::array<Scalar, 3> size, momentum;
        for (int a = 0; a < 3; ++a) {
            size[a] = parameter_scalar(dist.size_m[a], device);
            momentum[a] = parameter_scalar(dist.momentum_rms[a], device);
        }
        std::vector<Scalar> length;
        // strengths (k1, kx, ky, kt) only for the elements that have them
        std::vector<std::array<Scalar, 4>> strength(tracking.lattice.size());
        for (std::size_t e = 0; e < tracking.lattice.size(); ++e) {
            const Element& d = tracking.lattice[e];
            length.push_back(parameter_scalar(d.length_m, device));
            if (d.kind == ElementKind::drift) continue;
            const double k[4] = {d.k1_per_m2, d.kx_per_m, d.ky_per_m, d.kt_per_m};
            for (int i = 0; i < 4; ++i) strength[e][i] = parameter_scalar(k[i], device);
        }

        Particles<T> p;
        std::array<Tensor<T>, 6> initial;
        RefTensors ref;
        {
            Block block(rec, "beam");
            // this rank's share of the one global sample (make_beam's)
            ReferenceSample sample =
                make_reference_sample(dist.type, beam.n_particles, beam.seed, local_particles(beam.n_particles));
            const Scalar* scale_of[6] = {&size[0], &momentum[0], &size[1], &momentum[1], &size[2], &momentum[2]};
            for (int c = 0; c < 6; ++c) {
                Tensor<double> unit = constant(std::move(sample.column[c]), device);
                initial[c] = cast<T>(mul(*scale_of[c], unit));  // T(scale * sample), as scale_reference_sample
                initial[c].retain_grad();
            }
            p = {initial[0], initial[1], initial[2], initial[3], initial[4], initial[5]};
            ref = reference(kinetic, beam.species.mass_eV);
        }

        KickContext<T> ctx{&tracking.grid, fft, &ref, bunch_charge, beam.species.charge_e < 0 ? -1.0 : 1.0,
                           beam.species.charge_e, beam.n_particles, &rec};
        int kicks = 0;
        SliceMarks marks(memory);
        marks.mark(tape, report);
        for (std::size_t e = 0; e < tracking.lattice.size(); ++e) {
            const int slices = tracking.lattice[e].slices;
            if (slices <= 0) continue;
            // taped scalars of the element's length, f L for each map (as every
            // other tracker computes it) and L / slices for the kick
            const Element& element = tracking.lattice[e];
            const bool is_drift = element.kind == ElementKind::drift;
            Scalar ds, map_length;
            std::array<Scalar, 12> entries;
            {
                Block block(rec, "drift");
                ds = div_scalar(length[e], static_cast<double>(slices));
                const double f = slice_map_fraction(tracking, e);
                if (is_drift) {
                    map_length = scale(length[e], f);
                } else {
                    const MapInputs inputs = {&length[e], &strength[e][0], &strength[e][1], &strength[e][2],
                                              &strength[e][3], &ref.bg};
                    entries = map_entries(element, f, inputs, ref.bg.item(), device);
                }
            }
            auto map = [&](std::size_t, double) {
                if (is_drift) drift(p, map_length, ref, rec);
                else element_map_op(p, entries, rec);
            };
            for (int s = 0; s < slices; ++s) {
                strang_slice(
                    tracking, e, map,
                    [&](std::size_t, double) {
                        kick(p, ds, ctx);
                        ++kicks;
                    });
                marks.mark(tape, report);
            }
        }
        marks.finish(report);

        Scalar value;
        {
            Block block(rec, "objective");
            value = objective(p, request.objective, ref);
        }
        result.objective = value.item();
        for (const auto& row : tape.by_scope()) report.tape_bytes_by_scope[row.first] = row.second.bytes;
        report.tape_bytes = tape.tape_bytes();
        report.tape_entries = tape.entries();
        report.kicks = kicks;
        forward_range.reset();
        const auto t1 = clock::now();
        result.forward_seconds = std::chrono::duration<double>(t1 - t0).count();

        // Backward: release the forward's live tensors first, as a user's script would.
        p = Particles<T>{};
        ctx.bunch_charge = Scalar{};
        // the objective is every rank's alike: rank 0 seeds it, so that the
        // ranks' partial adjoints of every replicated value sum to its adjoint
        seed(value, communicator().rank() == 0 ? 1.0 : 0.0);
        value = Scalar{};
        {
            cuda::NvtxRange range("backward");
            memory.set_backward(true);  // timeline events of the backward pass (the tape tags the host's)
            tape.backward();
            memory.set_backward(false);
        }

        adj.bunch_charge_C = scalar_grad(bunch_charge);
        // report_gradients folds ReferenceAdjoint into d/dK as gamma/m + ...: d/dK itself goes in via gamma.
        adj.reference.gamma = scalar_grad(kinetic) * beam.species.mass_eV;
        for (int a = 0; a < 3; ++a) {
            adj.size_m[a] = scalar_grad(size[a]);
            adj.momentum_rms[a] = scalar_grad(momentum[a]);
        }
        adj.start(tracking.lattice);
        for (std::size_t e = 0; e < length.size(); ++e) {
            adj.element_length_m[e] = scalar_grad(length[e]);
            if (tracking.lattice[e].kind == ElementKind::drift) continue;
            for (int i = 0; i < 4; ++i) adj.element_strength[e][i] = scalar_grad(strength[e][i]);
        }
        adj.sum_over_ranks();  // each rank holds its partial adjoints
        for (int c = 0; c < 6; ++c) {  // this rank's particles
            const ag::Array<T>* g = initial[c].grad();
            auto& out = result.particle_gradient[c];
            out.assign(static_cast<std::size_t>(initial[c].size()), 0.0);
            if (g && !g->empty()) {
                const std::vector<T> values = g->to_vector();
                for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(values[i]);
            }
        }
        result.backward_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    }  // every tensor, node and the (empty) tape are released here
    report.peak_bytes = memory.peak_bytes() - start;
    report.bytes_after_backward = memory.current_bytes() - start;
    report_gradients(beam, tracking.lattice, adj, request.gradients, result);
    return result;
}

template GradientResult autograd_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult autograd_gradient<double>(const BeamParameters&, const TrackSettings&,
                                                  const GradientRequest&);

}  // namespace sctape
