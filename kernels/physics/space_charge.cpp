#include "physics/space_charge.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/communicator.hpp"
#include "physics/exact_sums.hpp"
#include "physics/geometry_bodies.hpp"
#include "physics/grid_ops.hpp"
#include "physics/kick_bodies.hpp"
#include "physics/kick_math.hpp"
#include "physics/thread_share.hpp"

namespace sctape {

const char* substep_name(Substep s) {
    static const char* names[kSubstepCount] = {"s_to_t", "deposit", "green", "convolve",
                                               "field",  "gather",  "push",  "t_to_s"};
    return names[static_cast<int>(s)];
}

namespace {
const char* kAxisName[3] = {"x", "y", "z"};

// min, max and the sums of u[begin, end), assuming every value finite: a NaN
// or an inf makes a sum non-finite, which the caller checks.
template <class T>
AxisExtent finite_extent_of(const T* u, std::int64_t begin, std::int64_t end) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
    for (std::int64_t p = begin; p < end; ++p) {
        const double v = u[p];
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        sum += v;
        sum2 += v * v;
    }
    return AxisExtent{lo, hi, sum, sum2, 0};
}

// Every rank's extents combined; returns the particles of all ranks.
std::int64_t reduce_over_ranks(AxisExtent extent[3], std::int64_t n) {
    Communicator& comm = communicator();
    double lo[3], hi[3], sums[10];
    for (int a = 0; a < 3; ++a) {
        lo[a] = extent[a].lo;
        hi[a] = extent[a].hi;
        sums[3 * a] = extent[a].sum;
        sums[3 * a + 1] = extent[a].sum2;
        sums[3 * a + 2] = double(extent[a].non_finite);
    }
    sums[9] = double(n);  // exact below 2^53 particles
    comm.min(lo, 3);
    comm.max(hi, 3);
    comm.sum(sums, 10);
    for (int a = 0; a < 3; ++a)
        extent[a] = AxisExtent{lo[a], hi[a], sums[3 * a], sums[3 * a + 1], std::int64_t(sums[3 * a + 2])};
    return std::int64_t(sums[9]);
}
}  // namespace

bool deterministic_deposit_requested() {
    const char* v = std::getenv("SCTAPE_DETERMINISTIC_DEPOSIT");
    return v && *v && std::strcmp(v, "0") != 0;
}

double quantized_cell(double cell_m, double quantum) { return bodies::quantized_cell_size(cell_m, quantum); }

ExtentJacobian extent_jacobian(const GridSettings& settings, int axis) {
    const int last_node = settings.shape[axis] - 1;
    const bool quantized = settings.cell_quantum > 0;  // the cell is then constant between steps
    if (settings.mode == ExtentMode::minmax) {
        // exact: origin = lo - (hi-lo) pad/2, cell = (hi-lo)(1+pad)/(n-1);
        // quantized: origin = (lo+hi)/2 - (n-1) cell/2
        const double w = 1.0 + settings.padding;
        if (quantized) return {{0.5, 0.5}, {0, 0}};
        return {{0.5 + 0.5 * w, 0.5 - 0.5 * w}, {-w / last_node, w / last_node}};
    }
    // exact: origin = mean - k rms, cell = 2k rms/(n-1); quantized: origin = mean - (n-1) cell/2
    const double k = settings.sigma_factor[axis];
    if (quantized) return {{1, 0}, {0, 0}};
    return {{1, -k}, {0, 2 * k / last_node}};
}

GridGeometry geometry_from_extents(const GridSettings& settings, const AxisExtent extent[3], std::int64_t n) {
    // the arithmetic is axis_grid's, which the CUDA backend runs on the device
    const bodies::ExtentRule rule = bodies::extent_rule(settings);
    GridGeometry g;
    g.n = settings.shape;
    for (int a = 0; a < 3; ++a) {
        if (g.n[a] < 2) throw std::runtime_error(std::string("grid needs at least 2 nodes along ") + kAxisName[a]);
        const AxisExtent& e = extent[a];
        const bodies::ExtentAcc acc{e.lo, e.hi, e.sum, e.sum2, static_cast<unsigned long long>(e.non_finite)};
        double first, last;
        const int error = bodies::axis_grid(rule, a, acc, n, first, last);
        if (error == bodies::kKickNonFiniteCoordinate)
            throw std::runtime_error(std::string("non-finite particle coordinate along ") + kAxisName[a]);
        if (error == bodies::kKickZeroExtent)
            throw std::runtime_error(std::string("beam has zero extent along ") + kAxisName[a]);
        bodies::axis_cells(rule, a, first, last, g.origin_m[a], g.cell_m[a]);
        if (error == bodies::kKickOutsideGrid) {
            std::ostringstream msg;
            msg << "particles outside the grid along " << kAxisName[a] << ": beam spans [" << e.lo << ", " << e.hi
                << "] m, grid spans [" << first << ", " << last << "] m (increase space_charge.extent.factor)";
            throw std::runtime_error(msg.str());
        }
    }
    return g;
}

// The sums of the finite coordinates and their squares along each axis, exact
// over every rank's particles (the deterministic mode's mean and rms).
template <class T>
void exact_extent_sums(const T* const pos[3], std::int64_t n, AxisExtent extent[3]) {
    std::array<ExactSum, 6> sums{};
    for (int a = 0; a < 3; ++a)
        for (std::int64_t p = 0; p < n; ++p) {
            const double u = pos[a][p];
            if (!std::isfinite(u)) continue;  // counted apart, as AxisExtent::add does
            sums[2 * a].add(u);
            sums[2 * a + 1].add(u * u);
        }
    sum_over_ranks(sums.data(), 6);
    for (int a = 0; a < 3; ++a) {
        extent[a].sum = sums[2 * a].value();
        extent[a].sum2 = sums[2 * a + 1].value();
    }
}

template <class T>
GridGeometry grid_covering(const GridSettings& settings, const T* const pos[3], std::int64_t n, bool exact,
                           int threads) {
    // A minmax grid needs the sums only to notice a non-finite coordinate, in
    // any order, so the threads share the pass; a sigma grid's sums keep one
    // order, and its bits do not depend on the thread count.
    const int team = settings.mode == ExtentMode::minmax ? std::max(threads, 1) : 1;
    std::vector<std::array<AxisExtent, 3>> part(static_cast<std::size_t>(team));  // [thread][axis]
#pragma omp parallel num_threads(team)
    {
        const ThreadShare share = thread_share(n);
        for (int a = 0; a < 3; ++a)
            part[std::size_t(omp_get_thread_num())][a] = finite_extent_of(pos[a], share.begin, share.end);
    }
    AxisExtent extent[3];
    for (int a = 0; a < 3; ++a) {
        AxisExtent e = part[0][a];
        for (std::size_t t = 1; t < part.size(); ++t) {
            e.lo = std::min(e.lo, part[t][a].lo);
            e.hi = std::max(e.hi, part[t][a].hi);
            e.sum += part[t][a].sum;
            e.sum2 += part[t][a].sum2;
        }
        // a NaN or inf makes a sum non-finite, and only then are the
        // particles counted one by one
        if (std::isfinite(e.sum) && std::isfinite(e.sum2)) extent[a] = e;
        else
            for (std::int64_t p = 0; p < n; ++p) extent[a].add(pos[a][p]);
    }
    // the sums set a sigma grid only (a minmax grid needs the extremes)
    const bool exact_sums = exact && settings.mode == ExtentMode::sigma;
    if (communicator().size() == 1) {
        if (exact_sums) exact_extent_sums(pos, n, extent);
        return geometry_from_extents(settings, extent, n);
    }
    const std::int64_t total = reduce_over_ranks(extent, n);
    if (exact_sums) exact_extent_sums(pos, n, extent);
    try {
        return geometry_from_extents(settings, extent, total);
    } catch (const std::runtime_error& e) {  // every rank saw the same reduced extents
        throw CollectiveError(e.what());
    }
}

template <class T>
SpaceChargeKick<T>::SpaceChargeKick(const GridSettings& settings, int threads)
    : settings_(settings), threads_(std::max(threads, 1)), fixed_point_deposit_(deterministic_deposit_requested()) {
    for (int a = 0; a < 3; ++a)
        if (settings.shape[a] < 2)
            throw std::runtime_error(std::string("grid needs at least 2 nodes along ") + kAxisName[a]);
    const auto& s = settings.shape;
    convolver_ = std::make_unique<HockneyConvolver<T>>(s, threads_);
    std::int64_t cells = std::int64_t(s[0]) * s[1] * s[2];
    rho_.resize(cells);
    phi_.resize(cells);
    for (auto& e : e_grid_) e.resize(cells);
    green_doubled_.resize(convolver_->doubled_size());
    green_spectrum_.resize(convolver_->green_spectrum_size());
}

template <class T>
SpaceChargeKick<T>::~SpaceChargeKick() = default;

template <class T>
void SpaceChargeKick<T>::prepare(std::int64_t n) {
    if (static_cast<std::int64_t>(z_.size()) == n) return;
    z_.resize(n);
    pz_.resize(n);
    for (auto& e : e_part_) e.resize(n);
    for (auto& d : dp_) d.resize(n);
}

template <class T>
void SpaceChargeKick<T>::apply(Beam<T>& beam, double ds_m) {
    auto timed = [this](Substep s, auto&& work) {
        MemoryScope scope(substep_name(s));
        auto t0 = std::chrono::steady_clock::now();
        work();
        seconds_[static_cast<int>(s)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    timed(Substep::s_to_t, [&] { s_to_t(beam); });
    timed(Substep::deposit, [&] { deposit(beam); });
    timed(Substep::green, [&] { green(beam); });
    timed(Substep::convolve, [&] { convolve(); });
    timed(Substep::field, [&] { field(); });
    timed(Substep::gather, [&] { gather(beam); });
    timed(Substep::push, [&] { push(beam, ds_m); });
    timed(Substep::t_to_s, [&] { t_to_s(beam); });
}

template <class T>
void SpaceChargeKick<T>::s_to_t(const Beam<T>& beam) {
    const std::int64_t n = beam.size();
    prepare(n);
    const auto& ref = beam.reference;
    const T beta0 = T(ref.beta), inv_beta0 = T(1.0 / ref.beta), inv_bg2 = T(1.0 / (ref.beta_gamma() * ref.beta_gamma()));
    const T *px = beam.px.data(), *py = beam.py.data(), *tau = beam.tau.data(), *delta = beam.delta.data();
    T *z = z_.data(), *pz = pz_.data();
    // 0 * pz is 0 for every finite pz and NaN otherwise: a sum that vectorizes
    // in any order, unlike a branch on isfinite
    T non_finite = 0;
#pragma omp parallel for simd num_threads(threads_) schedule(static) reduction(+ : non_finite)
    for (std::int64_t p = 0; p < n; ++p) {
        s_to_t_particle(px[p], py[p], tau[p], delta[p], beta0, inv_beta0, inv_bg2, z[p], pz[p]);
        non_finite += T(0) * pz[p];
    }
    check_on_all_ranks(non_finite == 0, kNonFinitePzMessage);  // false for NaN too
}

template <class T>
void SpaceChargeKick<T>::deposit(const Beam<T>& beam) {
    const T* pos[3] = {beam.x.data(), beam.y.data(), z_.data()};
    geometry_ = grid_covering(settings_, pos, beam.size(), fixed_point_deposit_, threads_);
    const T scale = T(beam.macro_charge_C() / geometry_.cell_volume_m3());
    Communicator& comm = communicator();
    const std::int64_t cells = geometry_.cells();
    if (!fixed_point_deposit_) {
        deposit_cic(geometry_, pos, beam.size(), scale, threads_, deposit_scratch_, rho_.data());
        comm.sum(rho_.data(), cells);
        return;
    }
    // integer sums: the same bits for every order, thread count and rank split
    const int bits = bodies::fixed_point_bits(beam.global_size());
    fixed_sum_.resize(cells);
    deposit_cic_fixed(geometry_, pos, beam.size(), std::ldexp(1.0, bits), threads_, fixed_scratch_, fixed_sum_.data());
    comm.sum(fixed_sum_.data(), cells);
    const double inv_one = std::ldexp(1.0, -bits);
    for (std::int64_t c = 0; c < cells; ++c) rho_[c] = T(double(fixed_sum_[c]) * inv_one) * scale;
}

template <class T>
void SpaceChargeKick<T>::green(const Beam<T>& beam) {
    hold_green(geometry_, beam.reference.gamma);
}

template <class T>
bool SpaceChargeKick<T>::hold_green(const GridGeometry& g, double gamma, CornerGradient* gradient) {
    const std::array<double, 4> key = {g.cell_m[0], g.cell_m[1], g.cell_m[2], gamma};
    if (green_valid_ && std::memcmp(key.data(), green_key_.data(), sizeof key) == 0) {
        if (gradient) *gradient = CornerGradient();
        return false;
    }
    build_green(g, gamma, threads_, green_doubled_.data(), gradient);
    convolver_->green_spectrum(green_doubled_.data(), green_spectrum_.data());
    green_key_ = key;
    green_geometry_ = g;
    green_valid_ = true;
    green_z_derivative_valid_ = false;
    ++green_builds_;
    return true;
}

template <class T>
const HostArray<T>* SpaceChargeKick<T>::green_spectrum_z_derivative() {
    if (!(settings_.cell_quantum > 0) || !green_valid_) return nullptr;
    if (!green_z_derivative_valid_) {
        HostArray<double> octant;
        build_green_z_cell_derivative(green_geometry_, green_key_[3], threads_, octant);
        green_z_derivative_.resize(convolver_->green_spectrum_size());
        convolver_->octant_spectrum(octant.data(), green_z_derivative_.data());
        green_z_derivative_valid_ = true;
    }
    return &green_z_derivative_;
}

template <class T>
void SpaceChargeKick<T>::convolve() {
    convolver_->convolve_even(rho_.data(), green_spectrum_.data(), phi_.data());
}

template <class T>
void SpaceChargeKick<T>::field() {
    T* e[3] = {e_grid_[0].data(), e_grid_[1].data(), e_grid_[2].data()};
    field_from_potential(geometry_, phi_.data(), e, threads_);
}

template <class T>
void SpaceChargeKick<T>::gather(const Beam<T>& beam) {
    const T* pos[3] = {beam.x.data(), beam.y.data(), z_.data()};
    const T* e_grid[3] = {e_grid_[0].data(), e_grid_[1].data(), e_grid_[2].data()};
    T* e_part[3] = {e_part_[0].data(), e_part_[1].data(), e_part_[2].data()};
    gather_cic(geometry_, pos, beam.size(), e_grid, e_part, threads_);
}

// dP/p0 = q E / gamma0^2 * ds / (beta0 c) / p0 = charge_e * E * ds / (beta0 gamma0^2 p0c[eV]).
template <class T>
void SpaceChargeKick<T>::push(const Beam<T>& beam, double ds_m) {
    const auto& ref = beam.reference;
    const T scale = T(beam.species.charge_e * ds_m / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV));
    const std::int64_t n = beam.size();
    for (int a = 0; a < 3; ++a) {
        const T* e = e_part_[a].data();
        T* dp = dp_[a].data();
#pragma omp parallel for num_threads(threads_) schedule(static)
        for (std::int64_t p = 0; p < n; ++p) dp[p] = scale * e[p];
    }
}

template <class T>
void SpaceChargeKick<T>::t_to_s(Beam<T>& beam) {
    const auto& ref = beam.reference;
    const T inv_beta0 = T(1.0 / ref.beta), inv_bg2 = T(1.0 / (ref.beta_gamma() * ref.beta_gamma()));
    const std::int64_t n = beam.size();
    T *px = beam.px.data(), *py = beam.py.data(), *delta = beam.delta.data();
    const T *pz_old = pz_.data(), *dpx = dp_[0].data(), *dpy = dp_[1].data(), *dpz = dp_[2].data();
#pragma omp parallel for simd num_threads(threads_) schedule(static)
    for (std::int64_t p = 0; p < n; ++p) {
        const T px1 = px[p] + dpx[p], py1 = py[p] + dpy[p], pz1 = pz_old[p] + dpz[p];
        delta[p] = t_to_s_delta(delta[p], px[p], py[p], pz_old[p], px1, py1, pz1, inv_beta0, inv_bg2);
        px[p] = px1;
        py[p] = py1;
    }
}

template class SpaceChargeKick<float>;
template class SpaceChargeKick<double>;
template GridGeometry grid_covering<float>(const GridSettings&, const float* const[3], std::int64_t, bool, int);
template GridGeometry grid_covering<double>(const GridSettings&, const double* const[3], std::int64_t, bool, int);

}  // namespace sctape
