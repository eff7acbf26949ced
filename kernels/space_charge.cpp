#include "space_charge.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "kick_math.hpp"

namespace sctape {

const char* substep_name(Substep s) {
    static const char* names[kSubstepCount] = {"s_to_t", "deposit", "green", "convolve",
                                               "field",  "gather",  "push",  "t_to_s"};
    return names[static_cast<int>(s)];
}

namespace {
const char* kAxisName[3] = {"x", "y", "z"};

inline std::int64_t node(const GridGeometry& g, int i, int j, int k) {
    return (std::int64_t(i) * g.n[1] + j) * g.n[2] + k;
}
}  // namespace

template <class T>
GridGeometry grid_covering(const GridSettings& settings, const T* const pos[3], std::int64_t n) {
    GridGeometry g;
    g.n = settings.shape;
    for (int a = 0; a < 3; ++a) {
        if (g.n[a] < 2) throw std::runtime_error(std::string("grid needs at least 2 nodes along ") + kAxisName[a]);
        double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
        bool finite = true;
        for (std::int64_t p = 0; p < n; ++p) {
            double u = pos[a][p];
            finite = finite && std::isfinite(u);
            lo = std::min(lo, u);
            hi = std::max(hi, u);
            sum += u;
            sum2 += u * u;
        }
        if (!finite) throw std::runtime_error(std::string("non-finite particle coordinate along ") + kAxisName[a]);
        double center, half;
        if (settings.mode == ExtentMode::minmax) {
            center = 0.5 * (lo + hi);
            half = 0.5 * (hi - lo) * (1.0 + settings.padding);
        } else {
            center = sum / n;
            half = settings.sigma_factor[a] * std::sqrt(std::max(sum2 / n - center * center, 0.0));
        }
        if (!(half > 0)) throw std::runtime_error(std::string("beam has zero extent along ") + kAxisName[a]);
        g.origin_m[a] = center - half;
        g.cell_m[a] = 2.0 * half / (g.n[a] - 1);
        if (lo < center - half || hi > center + half) {
            std::ostringstream msg;
            msg << "particles outside the grid along " << kAxisName[a] << ": beam spans [" << lo << ", " << hi
                << "] m, grid spans [" << center - half << ", " << center + half
                << "] m (increase space_charge.extent.factor)";
            throw std::runtime_error(msg.str());
        }
    }
    return g;
}

template <class T>
SpaceChargeKick<T>::SpaceChargeKick(const GridSettings& settings, int threads)
    : settings_(settings), threads_(std::max(threads, 1)) {
    for (int a = 0; a < 3; ++a)
        if (settings.shape[a] < 2)
            throw std::runtime_error(std::string("grid needs at least 2 nodes along ") + kAxisName[a]);
    const auto& s = settings.shape;
    fft_ = std::make_unique<RealFft3d<T>>(std::array<int, 3>{2 * s[0], 2 * s[1], 2 * s[2]}, threads_);
    std::int64_t cells = std::int64_t(s[0]) * s[1] * s[2];
    rho_.resize(cells);
    phi_.resize(cells);
    for (auto& e : e_grid_) e.resize(cells);
    if (threads_ > 1) deposit_scratch_.resize(cells * threads_);
    green_doubled_.resize(fft_->real_size());
    rho_doubled_.resize(fft_->real_size());
    rho_spectrum_.resize(fft_->spectrum_size());
    green_spectrum_.resize(fft_->spectrum_size());
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
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t p = 0; p < n; ++p)
        s_to_t_particle(beam.px[p], beam.py[p], beam.tau[p], beam.delta[p], beta0, inv_beta0, inv_bg2, z_[p], pz_[p]);
}

template <class T>
void SpaceChargeKick<T>::deposit(const Beam<T>& beam) {
    const std::int64_t n = beam.size();
    const T* pos[3] = {beam.x.data(), beam.y.data(), z_.data()};
    geometry_ = grid_covering(settings_, pos, n);
    const GridGeometry g = geometry_;
    const std::int64_t cells = g.cells();
    const T o[3] = {T(g.origin_m[0]), T(g.origin_m[1]), T(g.origin_m[2])};
    const T inv_h[3] = {T(1 / g.cell_m[0]), T(1 / g.cell_m[1]), T(1 / g.cell_m[2])};
    // Each thread deposits into its own grid; the grids are summed in thread
    // order, so the result is reproducible for a given thread count.
    T* target = threads_ > 1 ? deposit_scratch_.data() : rho_.data();
    std::fill(target, target + cells * threads_, T(0));
#pragma omp parallel num_threads(threads_)
    {
        T* grid = target + cells * omp_get_thread_num();
#pragma omp for schedule(static)
        for (std::int64_t p = 0; p < n; ++p) {
            auto lx = cic_locate(pos[0][p], o[0], inv_h[0], g.n[0]);
            auto ly = cic_locate(pos[1][p], o[1], inv_h[1], g.n[1]);
            auto lz = cic_locate(pos[2][p], o[2], inv_h[2], g.n[2]);
            const T wx[2] = {1 - lx.upper_weight, lx.upper_weight};
            const T wy[2] = {1 - ly.upper_weight, ly.upper_weight};
            const T wz[2] = {1 - lz.upper_weight, lz.upper_weight};
            for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b)
                    for (int c = 0; c < 2; ++c)
                        grid[node(g, lx.index + a, ly.index + b, lz.index + c)] += wx[a] * wy[b] * wz[c];
        }
    }
    const T scale = T(beam.macro_charge_C() / g.cell_volume_m3());
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t c = 0; c < cells; ++c) {
        T sum = 0;
        for (int t = 0; t < threads_; ++t) sum += target[c + cells * t];
        rho_[c] = sum * scale;
    }
}

// Integrated Green function (paper Eqs. 4-5) on the doubled grid, built in
// float64: the 8-corner sum cancels catastrophically far from the origin.
// The antiderivative is odd in each argument, so G = Dx Dy Dz g where g is
// sampled at the corners (i + 1/2) h and D f(i) = f(i) - f(i-1), f(-1) = -f(0).
template <class T>
void SpaceChargeKick<T>::green(const Beam<T>& beam) {
    const GridGeometry& g = geometry_;
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
    const double h[3] = {g.cell_m[0], g.cell_m[1], beam.reference.gamma * g.cell_m[2]};
    HostArray<double> corner(std::size_t(g.cells()));
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            for (int k = 0; k < nz; ++k)
                corner[node(g, i, j, k)] = igf_antiderivative((i + 0.5) * h[0], (j + 0.5) * h[1], (k + 0.5) * h[2]);
    const std::int64_t stride[3] = {std::int64_t(ny) * nz, nz, 1};
    for (int a = 0; a < 3; ++a) {
        const int n_a = g.n[a];
#pragma omp parallel for num_threads(threads_) schedule(static)
        for (std::int64_t c = 0; c < g.cells(); ++c) {
            // one line along axis a starts at each node whose index along a is 0
            if ((c / stride[a]) % n_a != 0) continue;
            double previous = corner[c];
            corner[c] = 2.0 * previous;
            for (int i = 1; i < n_a; ++i) {
                double current = corner[c + i * stride[a]];
                corner[c + i * stride[a]] = current - previous;
                previous = current;
            }
        }
    }
    const double coulomb = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);
    const int mx = 2 * nx, my = 2 * ny, mz = 2 * nz;
    auto fold = [](int i, int n) { return i < n ? i : (i == n ? -1 : 2 * n - i); };
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i < mx; ++i)
        for (int j = 0; j < my; ++j)
            for (int k = 0; k < mz; ++k) {
                int fi = fold(i, nx), fj = fold(j, ny), fk = fold(k, nz);
                // index n of the doubled grid is never reached by a crop of the convolution
                double value = (fi < 0 || fj < 0 || fk < 0) ? 0.0 : coulomb * corner[node(g, fi, fj, fk)];
                green_doubled_[(std::int64_t(i) * my + j) * mz + k] = T(value);
            }
}

// Hockney's method: zero-padded rho convolved with the mirrored IGF by FFT.
template <class T>
void SpaceChargeKick<T>::convolve() {
    const GridGeometry& g = geometry_;
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2], my = 2 * ny, mz = 2 * nz;
    std::fill(rho_doubled_.begin(), rho_doubled_.end(), T(0));
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            std::copy_n(&rho_[node(g, i, j, 0)], nz, &rho_doubled_[(std::int64_t(i) * my + j) * mz]);
    fft_->forward(rho_doubled_.data(), rho_spectrum_.data());
    fft_->forward(green_doubled_.data(), green_spectrum_.data());
    const T norm = T(1.0 / double(fft_->real_size()));
    const std::int64_t ns = fft_->spectrum_size();
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t c = 0; c < ns; ++c) rho_spectrum_[c] *= green_spectrum_[c] * norm;
    fft_->inverse(rho_spectrum_.data(), rho_doubled_.data());
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            std::copy_n(&rho_doubled_[(std::int64_t(i) * my + j) * mz], nz, &phi_[node(g, i, j, 0)]);
}

// E = -grad phi: centred differences inside, one-sided on the boundary nodes.
template <class T>
void SpaceChargeKick<T>::field() {
    const GridGeometry& g = geometry_;
    const std::int64_t stride[3] = {std::int64_t(g.n[1]) * g.n[2], g.n[2], 1};
    for (int a = 0; a < 3; ++a) {
        const int n_a = g.n[a];
        const T inv_2h = T(0.5 / g.cell_m[a]), inv_h = T(1.0 / g.cell_m[a]);
        const std::int64_t s = stride[a];
        T* e = e_grid_[a].data();
        const T* phi = phi_.data();
#pragma omp parallel for num_threads(threads_) schedule(static)
        for (std::int64_t c = 0; c < g.cells(); ++c) {
            int i = int((c / s) % n_a);
            if (i == 0)
                e[c] = -(phi[c + s] - phi[c]) * inv_h;
            else if (i == n_a - 1)
                e[c] = -(phi[c] - phi[c - s]) * inv_h;
            else
                e[c] = -(phi[c + s] - phi[c - s]) * inv_2h;
        }
    }
}

template <class T>
void SpaceChargeKick<T>::gather(const Beam<T>& beam) {
    const std::int64_t n = beam.size();
    const GridGeometry g = geometry_;
    const T* pos[3] = {beam.x.data(), beam.y.data(), z_.data()};
    const T o[3] = {T(g.origin_m[0]), T(g.origin_m[1]), T(g.origin_m[2])};
    const T inv_h[3] = {T(1 / g.cell_m[0]), T(1 / g.cell_m[1]), T(1 / g.cell_m[2])};
    const T* ex = e_grid_[0].data();
    const T* ey = e_grid_[1].data();
    const T* ez = e_grid_[2].data();
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t p = 0; p < n; ++p) {
        auto lx = cic_locate(pos[0][p], o[0], inv_h[0], g.n[0]);
        auto ly = cic_locate(pos[1][p], o[1], inv_h[1], g.n[1]);
        auto lz = cic_locate(pos[2][p], o[2], inv_h[2], g.n[2]);
        const T wx[2] = {1 - lx.upper_weight, lx.upper_weight};
        const T wy[2] = {1 - ly.upper_weight, ly.upper_weight};
        const T wz[2] = {1 - lz.upper_weight, lz.upper_weight};
        T sx = 0, sy = 0, sz = 0;
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b)
                for (int c = 0; c < 2; ++c) {
                    std::int64_t m = node(g, lx.index + a, ly.index + b, lz.index + c);
                    T w = wx[a] * wy[b] * wz[c];
                    sx += w * ex[m];
                    sy += w * ey[m];
                    sz += w * ez[m];
                }
        e_part_[0][p] = sx;
        e_part_[1][p] = sy;
        e_part_[2][p] = sz;
    }
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
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t p = 0; p < n; ++p) {
        T px_old = beam.px[p], py_old = beam.py[p], pz_old = pz_[p];
        T px = px_old + dp_[0][p], py = py_old + dp_[1][p], pz = pz_old + dp_[2][p];
        beam.delta[p] = t_to_s_delta(beam.delta[p], px_old, py_old, pz_old, px, py, pz, inv_beta0, inv_bg2);
        beam.px[p] = px;
        beam.py[p] = py;
    }
}

template class SpaceChargeKick<float>;
template class SpaceChargeKick<double>;
template GridGeometry grid_covering<float>(const GridSettings&, const float* const[3], std::int64_t);
template GridGeometry grid_covering<double>(const GridSettings&, const double* const[3], std::int64_t);

}  // namespace sctape
