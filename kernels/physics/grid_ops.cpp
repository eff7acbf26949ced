#include "physics/grid_ops.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/communicator.hpp"
#include "physics/constants.hpp"
#include "physics/adjoint_bodies.hpp"
#include "physics/exact_sums.hpp"
#include "physics/kick_math.hpp"
#include "physics/thread_share.hpp"

namespace sctape {
namespace {

inline std::int64_t node(const GridGeometry& g, int i, int j, int k) {
    return (std::int64_t(i) * g.n[1] + j) * g.n[2] + k;
}

// From d/d(grid coordinates) of particle p to its position adjoints (+=) and
// the geometry sums (+=, the caller's reduction variables).
template <class T>
inline void add_grid_coordinate_adjoint(const bodies::CicGrid<T>& cg, const bodies::CicPointAdjoint<T>& q,
                                        const double s_adj[3], T* const pos_adj[3], std::int64_t p,
                                        double origin_adj[3], double cell_adj[3]) {
    T u_adj[3];
    bodies::grid_coordinate_adjoint(cg, q, s_adj, u_adj, origin_adj, cell_adj);
    for (int a = 0; a < 3; ++a) pos_adj[a][p] += u_adj[a];
}

// The stencils of a block of particles: each particle's lower node indices
// and its 8 weights, one array per quantity. Locating particles one block at
// a time lets the compiler fill these arrays with vector instructions
// (cic_locate and cic_weights are straight-line code), which it cannot do in
// a loop that also scatters to or gathers from the grid. The deposit and the
// gather then walk the block one particle at a time, in the order they
// always did: the same sums, the same bits.
template <class T>
struct CicBlock {
    static constexpr int size = 128;  // 13 KB (float64): it stays in L1 beside the grids' lines
    int index[3][size];
    T upper[3][size];  // for the adjoints
    T w[8][size];
};

template <class T>
inline void locate_block_body(const bodies::CicGrid<T>& cg, const T* const pos[3], std::int64_t first, int len,
                              CicBlock<T>& block) {
    for (int q = 0; q < len; ++q) {
        CicLocation<T> loc[3];
        for (int a = 0; a < 3; ++a) {
            loc[a] = cic_locate(pos[a][first + q], cg.origin[a], cg.inv_h[a], cg.n[a]);
            block.index[a][q] = loc[a].index;
            block.upper[a][q] = loc[a].upper_weight;
        }
        T w[8];
        bodies::cic_weights(loc[0].upper_weight, loc[1].upper_weight, loc[2].upper_weight, w);
        for (int m = 0; m < 8; ++m) block.w[m][q] = w[m];
    }
}

// On x86-64 the locating loop is compiled twice, for AVX2 and for the
// baseline, and the loader picks the one the CPU runs (GCC's and Clang's
// function multiversioning, which needs glibc's ifunc on ELF). AVX2 brings no
// FMA and the library is built with -ffp-contract=off, so both give the same
// bits.
#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
#define SCTAPE_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SCTAPE_VECTOR_CLONES
#endif

SCTAPE_VECTOR_CLONES void locate_block(const bodies::CicGrid<double>& cg, const double* const pos[3],
                                       std::int64_t first, int len, CicBlock<double>& block) {
    locate_block_body(cg, pos, first, len, block);
}
SCTAPE_VECTOR_CLONES void locate_block(const bodies::CicGrid<float>& cg, const float* const pos[3],
                                       std::int64_t first, int len, CicBlock<float>& block) {
    locate_block_body(cg, pos, first, len, block);
}

// Calls visit(block, first, len) for particles [begin, end), `len` at a
// time from `first`, each run located in `block`.
template <class T, class Visit>
void for_each_block(const bodies::CicGrid<T>& cg, const T* const pos[3], std::int64_t begin, std::int64_t end,
                    Visit&& visit) {
    CicBlock<T> block;
    for (std::int64_t first = begin; first < end; first += CicBlock<T>::size) {
        const int len = int(std::min<std::int64_t>(CicBlock<T>::size, end - first));
        locate_block(cg, pos, first, len, block);
        visit(block, first, len);
    }
}

// Lower node of particle q of a block.
template <class T>
std::int64_t lower_node(const bodies::CicGrid<T>& cg, const CicBlock<T>& block, int q) {
    return bodies::cic_node(cg, block.index[0][q], block.index[1][q], block.index[2][q]);
}

// Particle q's stencil as bodies::cic_point_adjoint computes it.
template <class T>
bodies::CicPointAdjoint<T> located_point_adjoint(const bodies::CicGrid<T>& cg, const CicBlock<T>& block, int q) {
    bodies::CicPointAdjoint<T> located;
    located.point.base = lower_node(cg, block, q);
    for (int m = 0; m < 8; ++m) located.point.w[m] = block.w[m][q];
    for (int a = 0; a < 3; ++a) {
        located.upper[a] = block.upper[a][q];
        located.s[a] = block.index[a][q] + block.upper[a][q];
    }
    return located;
}

struct StencilOffsets {
    std::int64_t of[8];
};
template <class T>
StencilOffsets stencil_offsets(const bodies::CicGrid<T>& cg) {
    StencilOffsets o;
    for (int m = 0; m < 8; ++m) o.of[m] = bodies::cic_offset(cg, m);
    return o;
}

// Hands each CIC weight of particles [begin, end) to add(node, weight), per
// particle in stencil order.
template <class T, class Add>
void deposit_particles(const bodies::CicGrid<T>& cg, const T* const pos[3], std::int64_t begin, std::int64_t end,
                       Add&& add) {
    const StencilOffsets o = stencil_offsets(cg);
    for_each_block(cg, pos, begin, end, [&](const CicBlock<T>& block, std::int64_t, int len) {
        for (int q = 0; q < len; ++q) {
            const std::int64_t lower = lower_node(cg, block, q);
            for (int m = 0; m < 8; ++m) add(lower + o.of[m], block.w[m][q]);
        }
    });
}

// e_part[a][p] for particles [begin, end): per component the sum over the 8
// nodes in stencil order, as bodies::cic_gather3 sums it.
template <class T>
void gather_particles(const bodies::CicGrid<T>& cg, const T* const pos[3], std::int64_t begin, std::int64_t end,
                      const T* const e_grid[3], T* const e_part[3]) {
    const StencilOffsets o = stencil_offsets(cg);
    for_each_block(cg, pos, begin, end, [&](const CicBlock<T>& block, std::int64_t first, int len) {
        for (int q = 0; q < len; ++q) {
            const std::int64_t base = lower_node(cg, block, q);
            T sum[3] = {0, 0, 0};
            for (int m = 0; m < 8; ++m)
                for (int a = 0; a < 3; ++a) sum[a] += block.w[m][q] * e_grid[a][base + o.of[m]];
            for (int a = 0; a < 3; ++a) e_part[a][first + q] = sum[a];
        }
    });
}

// out[c] = (out[c] + the other threads' grids, in thread order) * scale:
// thread 0 works in `out` itself, thread t >= 1 in scratch + (t - 1) * stride.
template <class T>
void add_thread_grids(const T* scratch, std::int64_t stride, std::int64_t cells, int threads, T scale, T* out) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t c = 0; c < cells; ++c) {
        T sum = out[c];
        for (int t = 1; t < threads; ++t) sum += scratch[c + stride * (t - 1)];
        out[c] = sum * scale;
    }
}

// Zeroes the scratch grids of threads 1 .. threads-1 (thread k's at
// scratch + (k - 1) * stride), shared out over the team that calls it, which
// may be smaller than asked: each thread zeroes the grid it fills, in
// parallel, and grids no thread fills are zeroed too.
template <class T>
void zero_scratch_grids(T* scratch, std::int64_t stride, int threads) {
    const int team = omp_get_num_threads();
    for (int k = omp_get_thread_num(); k < threads; k += team)
        if (k > 0) std::fill_n(scratch + (k - 1) * stride, stride, T(0));
}

}  // namespace

template <class T>
void deposit_cic(const GridGeometry& g, const T* const pos[3], std::int64_t n, T scale, int threads,
                 HostArray<T>& scratch, T* rho) {
    const std::int64_t cells = g.cells();
    const bodies::CicGrid<T> cg = bodies::cic_grid<T>(g);
    scratch.resize(std::size_t(cells * (threads - 1)));
    // Thread 0 deposits into rho, each other thread into its own grid; the
    // grids are summed in thread order, so the result is reproducible for a
    // given thread count (and one thread needs no scratch).
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        if (t == 0) std::fill_n(rho, cells, T(0));
        zero_scratch_grids(scratch.data(), cells, threads);
        const ThreadShare share = thread_share(n);
        T* grid = t == 0 ? rho : scratch.data() + cells * (t - 1);
        deposit_particles(cg, pos, share.begin, share.end, [&](std::int64_t node, T w) { grid[node] += w; });
    }
    add_thread_grids(scratch.data(), cells, cells, threads, scale, rho);
}

template <class T>
void deposit_cic_fixed(const GridGeometry& g, const T* const pos[3], std::int64_t n, double one, int threads,
                       HostArray<std::int64_t>& scratch, std::int64_t* sum) {
    const std::int64_t cells = g.cells();
    scratch.assign(std::size_t(cells * threads), 0);
    const bodies::CicGrid<T> cg = bodies::cic_grid<T>(g);
#pragma omp parallel num_threads(threads)
    {
        std::int64_t* grid = scratch.data() + cells * omp_get_thread_num();
        const ThreadShare share = thread_share(n);
        deposit_particles(cg, pos, share.begin, share.end,
                          [&](std::int64_t node, T w) { grid[node] += bodies::to_fixed_point(w, one); });
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t c = 0; c < cells; ++c) {
        std::int64_t total = 0;
        for (int t = 0; t < threads; ++t) total += scratch[c + cells * t];
        sum[c] = total;
    }
}

template <class T>
double deposit_cic_adjoint(const GridGeometry& g, const T* const pos[3], std::int64_t n, T scale, const T* rho_adj,
                           int threads, T* const pos_adj[3], GeometryAdjoint& geo_adj, bool exact) {
    const bodies::CicGrid<T> cg = bodies::cic_grid<T>(g);
    // particle q of a block, p in the beam: its position adjoints, its
    // geometry terms (+=); returns its d/d(scale)
    auto particle = [&](const CicBlock<T>& block, int q, std::int64_t p, double origin_adj[3], double cell_adj[3]) {
        const bodies::CicPointAdjoint<T> located = located_point_adjoint(cg, block, q);
        double s_adj[3];
        const double scale_adj = bodies::deposit_adjoint_particle(cg, located, rho_adj, scale, s_adj);
        add_grid_coordinate_adjoint(cg, located, s_adj, pos_adj, p, origin_adj, cell_adj);
        return scale_adj;
    };
    if (exact) {  // d/d(scale), origin, cell: exact over every rank's particles
        std::array<ExactSum, 7> sums =
            exact_particle_sums<7>(n, threads, [&](std::int64_t begin, std::int64_t end, auto&& add) {
                for_each_block(cg, pos, begin, end, [&](const CicBlock<T>& block, std::int64_t first, int len) {
                    for (int q = 0; q < len; ++q) {
                        double terms[7] = {};
                        terms[0] = particle(block, q, first + q, terms + 1, terms + 4);
                        add(terms);
                    }
                });
            });
        sum_over_ranks(sums.data(), 7);
        for (int a = 0; a < 3; ++a) {
            geo_adj.origin_m[a] += sums[1 + a].value();
            geo_adj.cell_m[a] += sums[4 + a].value();
        }
        return sums[0].value();
    }
    double scale_adj = 0, o_adj[3] = {0, 0, 0}, h_adj[3] = {0, 0, 0};
#pragma omp parallel num_threads(threads) reduction(+ : scale_adj, o_adj[:3], h_adj[:3])
    {
        const ThreadShare share = thread_share(n);
        for_each_block(cg, pos, share.begin, share.end, [&](const CicBlock<T>& block, std::int64_t first, int len) {
            for (int q = 0; q < len; ++q) scale_adj += particle(block, q, first + q, o_adj, h_adj);
        });
    }
    for (int a = 0; a < 3; ++a) {
        geo_adj.origin_m[a] += o_adj[a];
        geo_adj.cell_m[a] += h_adj[a];
    }
    return scale_adj;
}

template <class T>
void gather_cic(const GridGeometry& g, const T* const pos[3], std::int64_t n, const T* const e_grid[3],
                T* const e_part[3], int threads) {
    const bodies::CicGrid<T> cg = bodies::cic_grid<T>(g);
#pragma omp parallel num_threads(threads)
    {
        const ThreadShare share = thread_share(n);
        gather_particles(cg, pos, share.begin, share.end, e_grid, e_part);
    }
}

namespace {

// The gather adjoint of particles [begin, end), a located block at a time in
// two passes: every particle's grid terms w[m] e_adj[a], handed to
// scatter(axis, node, term), then every particle's d/d(s) from the grid
// field, handed to finish(stencil, s_adj, p). Two short loops keep their
// values in registers where one long loop spilled them (the gather adjoint
// took a fifth less time); every sum keeps its order.
template <class T, class Scatter, class Finish>
void gather_adjoint_particles(const bodies::CicGrid<T>& cg, const T* const pos[3], std::int64_t begin,
                              std::int64_t end, const T* const e_grid[3], const T* const e_part_adj[3],
                              Scatter&& scatter, Finish&& finish) {
    const StencilOffsets o = stencil_offsets(cg);
    for_each_block(cg, pos, begin, end, [&](const CicBlock<T>& block, std::int64_t first, int len) {
        for (int q = 0; q < len; ++q) {
            const std::int64_t base = lower_node(cg, block, q);
            for (int a = 0; a < 3; ++a) {
                const T e_adj = e_part_adj[a][first + q];
                for (int m = 0; m < 8; ++m) scatter(a, base + o.of[m], block.w[m][q] * e_adj);
            }
        }
        for (int q = 0; q < len; ++q) {
            const std::int64_t p = first + q;
            const bodies::CicPointAdjoint<T> located = located_point_adjoint(cg, block, q);
            const T e_adj[3] = {e_part_adj[0][p], e_part_adj[1][p], e_part_adj[2][p]};
            double s_adj[3] = {0, 0, 0};
            bodies::gather_adjoint_particle(cg, located, e_grid, e_adj, s_adj);
            finish(located, s_adj, p);
        }
    });
}

// gather_cic_adjoint's deterministic mode: each grid term w e_adj in 128-bit
// fixed point, its scale from the largest |e_adj| of every rank (a weight is
// at most 1) and the particle count (the most terms one node can receive);
// the geometry's terms exact. Every sum is over every rank's particles.
template <class T>
void gather_cic_adjoint_exact(const GridGeometry& g, const T* const pos[3], std::int64_t n, const T* const e_grid[3],
                              const T* const e_part_adj[3], int threads, T* const e_grid_adj[3], T* const pos_adj[3],
                              GeometryAdjoint& geo_adj) {
    const std::int64_t cells = g.cells();
    const bodies::CicGrid<T> cg = bodies::cic_grid<T>(g);
    Communicator& comm = communicator();
    double largest = 0;
    std::int64_t counts[2] = {n, 0};  // particles, non-finite adjoints
    for (int a = 0; a < 3; ++a)
        for (std::int64_t p = 0; p < n; ++p) {
            const double v = std::fabs(double(e_part_adj[a][p]));
            if (std::isfinite(v)) largest = std::max(largest, v);
            else ++counts[1];
        }
    comm.max(&largest, 1);
    comm.sum(counts, 2);
    if (counts[1] > 0) {  // no integers for them: the grid is NaN, as its float sums would be NaN or inf
        for (int a = 0; a < 3; ++a) std::fill_n(e_grid_adj[a], cells, std::numeric_limits<T>::quiet_NaN());
        return;
    }
    const int bits = largest > 0 ? grid_sum_bits(largest, counts[0]) : 0;
    // 2^bits as two exact factors (scale_by_power_of_two), formed once
    const double unit_a = std::ldexp(1.0, bits / 2), unit_b = std::ldexp(1.0, bits - bits / 2);
    HostArray<int128> grids(std::size_t(3 * cells * threads), int128(0));  // [thread][axis][cell]
    std::array<ExactSum, 6> geometry =  // origin, cell
        exact_particle_sums<6>(n, threads, [&](std::int64_t begin, std::int64_t end, auto&& add) {
            int128* grid = grids.data() + 3 * cells * omp_get_thread_num();
            gather_adjoint_particles(
                cg, pos, begin, end, e_grid, e_part_adj,
                [&](int a, std::int64_t node, T term) {
                    grid[a * cells + node] += fixed128_of_scaled(double(term) * unit_a * unit_b);
                },
                [&](const bodies::CicPointAdjoint<T>& located, const double s_adj[3], std::int64_t p) {
                    double terms[6] = {0, 0, 0, 0, 0, 0};
                    add_grid_coordinate_adjoint(cg, located, s_adj, pos_adj, p, terms, terms + 3);
                    add(terms);
                });
        });
    // the threads' grids into the first, then every rank's
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t c = 0; c < 3 * cells; ++c)
        for (int t = 1; t < threads; ++t) grids[c] += grids[c + 3 * cells * t];
    sum_over_ranks(grids.data(), 3 * cells);
    sum_over_ranks(geometry.data(), 6);
    for (int a = 0; a < 3; ++a) {
        for (std::int64_t c = 0; c < cells; ++c) e_grid_adj[a][c] += T(from_fixed128(grids[a * cells + c], bits));
        geo_adj.origin_m[a] += geometry[a].value();
        geo_adj.cell_m[a] += geometry[3 + a].value();
    }
}

}  // namespace

template <class T>
void gather_cic_adjoint(const GridGeometry& g, const T* const pos[3], std::int64_t n, const T* const e_grid[3],
                        const T* const e_part_adj[3], int threads, HostArray<T>& scratch, T* const e_grid_adj[3],
                        T* const pos_adj[3], GeometryAdjoint& geo_adj, bool exact) {
    if (exact) return gather_cic_adjoint_exact(g, pos, n, e_grid, e_part_adj, threads, e_grid_adj, pos_adj, geo_adj);
    const std::int64_t cells = g.cells();
    const bodies::CicGrid<T> cg = bodies::cic_grid<T>(g);
    // thread 0 scatters into e_grid_adj, thread t >= 1 into its own three grids
    scratch.resize(std::size_t(3 * cells * (threads - 1)));
    double o_adj[3] = {0, 0, 0}, h_adj[3] = {0, 0, 0};
#pragma omp parallel num_threads(threads) reduction(+ : o_adj[:3], h_adj[:3])
    {
        const int t = omp_get_thread_num();
        zero_scratch_grids(scratch.data(), 3 * cells, threads);
        T* grid[3];
        for (int a = 0; a < 3; ++a) grid[a] = t == 0 ? e_grid_adj[a] : scratch.data() + (3 * (t - 1) + a) * cells;
        const ThreadShare share = thread_share(n);
        gather_adjoint_particles(
            cg, pos, share.begin, share.end, e_grid, e_part_adj,
            [&](int a, std::int64_t node, T term) { grid[a][node] += term; },
            [&](const bodies::CicPointAdjoint<T>& located, const double s_adj[3], std::int64_t p) {
                add_grid_coordinate_adjoint(cg, located, s_adj, pos_adj, p, o_adj, h_adj);
            });
    }
    for (int a = 0; a < 3; ++a) {
        add_thread_grids(scratch.data() + a * cells, 3 * cells, cells, threads, T(1), e_grid_adj[a]);
        geo_adj.origin_m[a] += o_adj[a];
        geo_adj.cell_m[a] += h_adj[a];
    }
}

namespace {

// Applies the corner difference D f(i) = f(i) - f(i-1), f(-1) = -f(0), or its
// transpose, along axis a of an n0 x n1 x n2 array, in place.
void difference_along(double* v, const std::array<int, 3>& n, int a, bool transpose, int threads) {
    // planes along axis a are contiguous blocks of `inner` values; differences
    // of whole planes vectorize and walk memory in order
    const std::int64_t inner = a == 0 ? std::int64_t(n[1]) * n[2] : (a == 1 ? n[2] : 1);
    const std::int64_t outer = std::int64_t(n[0]) * n[1] * n[2] / (inner * n[a]);
    const int len = n[a];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t o = 0; o < outer; ++o) {
        double* base = v + o * len * inner;
        if (!transpose) {  // from the last plane down, so plane i-1 still holds f(i-1)
            for (int i = len - 1; i >= 1; --i) {
                double* plane = base + i * inner;
                const double* below = plane - inner;
                for (std::int64_t k = 0; k < inner; ++k) plane[k] -= below[k];
            }
            for (std::int64_t k = 0; k < inner; ++k) base[k] *= 2.0;
        } else {  // (D^T y)(i) = y(i) - y(i+1), y(0) counted twice; upwards, so y(i+1) is intact
            for (int i = 0; i + 1 < len; ++i) {
                double* plane = base + i * inner;
                const double* above = plane + inner;
                const double weight = i == 0 ? 2.0 : 1.0;
                for (std::int64_t k = 0; k < inner; ++k) plane[k] = weight * plane[k] - above[k];
            }
            if (len == 1)  // the only plane is both the first and the last
                for (std::int64_t k = 0; k < inner; ++k) base[k] *= 2.0;
        }
    }
}

std::array<double, 3> igf_cells(const GridGeometry& g, double gamma) {
    return {g.cell_m[0], g.cell_m[1], gamma * g.cell_m[2]};
}

constexpr double kCoulomb = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);

}  // namespace

// G = Dx Dy Dz g at the corners (i + 1/2) h: the antiderivative is odd in each
// argument, so the 8-corner sum of paper Eq. 4 needs g at n^3 corners only.
template <class T>
void build_green(const GridGeometry& g, double gamma, int threads, T* green_doubled, CornerGradient* gradient) {
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
    const auto h = igf_cells(g, gamma);
    HostArray<double> corner(std::size_t(g.cells()));
    if (gradient)
        for (auto& axis : *gradient) axis.resize(std::size_t(g.cells()));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            for (int k = 0; k < nz; ++k) {
                const double x = (i + 0.5) * h[0], y = (j + 0.5) * h[1], z = (k + 0.5) * h[2];
                const IgfTerms terms = igf_terms(x, y, z);
                const std::int64_t c = node(g, i, j, k);
                corner[c] = igf_antiderivative_of(x, y, z, terms);
                if (!gradient) continue;
                double grad[3];
                igf_antiderivative_gradient_of(x, y, z, terms, grad);
                for (int a = 0; a < 3; ++a) (*gradient)[a][c] = grad[a];
            }
    for (int a = 0; a < 3; ++a) difference_along(corner.data(), g.n, a, false, threads);
    const int my = 2 * ny, mz = 2 * nz;
    // Row by row: a doubled row (i, j) is corner row (fi, fj) followed by its
    // mirror image; index n of the doubled grid is never reached by the
    // cropped convolution and holds 0.
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < 2 * nx; ++i)
        for (int j = 0; j < my; ++j) {
            T* row = green_doubled + (std::int64_t(i) * my + j) * mz;
            const int fi = mirror_fold(i, nx), fj = mirror_fold(j, ny);
            if (fi < 0 || fj < 0) {
                std::fill_n(row, mz, T(0));
                continue;
            }
            const double* from = corner.data() + node(g, fi, fj, 0);
            for (int k = 0; k < nz; ++k) row[k] = T(kCoulomb * from[k]);
            row[nz] = T(0);
            for (int k = nz + 1; k < mz; ++k) row[k] = row[mz - k];
        }
}

namespace {

// d/d(gamma) and the cells' adjoint (+=) from the adjoint of the corner
// lattice after the differences and the Coulomb factor (consumed).
double green_corner_adjoint(const GridGeometry& g, double gamma, HostArray<double>& corner_adj, int threads,
                            const CornerGradient* gradient, GeometryAdjoint& geo_adj) {
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
    const auto h = igf_cells(g, gamma);
    for (int a = 2; a >= 0; --a) difference_along(corner_adj.data(), g.n, a, true, threads);
    double h_adj[3] = {0, 0, 0};
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : h_adj[:3])
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            for (int k = 0; k < nz; ++k) {
                const double c[3] = {i + 0.5, j + 0.5, k + 0.5};
                const std::int64_t n = node(g, i, j, k);
                double grad[3];
                if (gradient)
                    for (int a = 0; a < 3; ++a) grad[a] = (*gradient)[a][n];
                else
                    igf_antiderivative_gradient(c[0] * h[0], c[1] * h[1], c[2] * h[2], grad);
                const double w = corner_adj[n];
                for (int a = 0; a < 3; ++a) h_adj[a] += w * c[a] * grad[a];
            }
    return add_green_cells_adjoint(g, gamma, h_adj, geo_adj);
}

}  // namespace

template <class T>
double build_green_adjoint(const GridGeometry& g, double gamma, const T* green_doubled_adj, int threads,
                           GeometryAdjoint& geo_adj) {
    HostArray<double> corner_adj(std::size_t(g.cells()));
    // fold: G[i] sits at doubled index i and, for i >= 1, also at 2n - i
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t c = 0; c < g.cells(); ++c)
        corner_adj[c] = bodies::green_fold_adjoint(green_doubled_adj, c, g.n[0], g.n[1], g.n[2], kCoulomb);
    return green_corner_adjoint(g, gamma, corner_adj, threads, nullptr, geo_adj);
}

void build_green_z_cell_derivative(const GridGeometry& g, double gamma, int threads, HostArray<double>& octant) {
    const int nx = g.n[0], ny = g.n[1], nz = g.n[2];
    const auto h = igf_cells(g, gamma);
    octant.resize(std::size_t(g.cells()));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            for (int k = 0; k < nz; ++k) {
                double grad[3];
                igf_antiderivative_gradient((i + 0.5) * h[0], (j + 0.5) * h[1], (k + 0.5) * h[2], grad);
                octant[node(g, i, j, k)] = kCoulomb * (k + 0.5) * grad[2];
            }
    for (int a = 0; a < 3; ++a) difference_along(octant.data(), g.n, a, false, threads);
}

double add_green_cells_adjoint(const GridGeometry& g, double gamma, const double theta_adj[3],
                               GeometryAdjoint& geo_adj) {
    geo_adj.cell_m[0] += theta_adj[0];
    geo_adj.cell_m[1] += theta_adj[1];
    geo_adj.cell_m[2] += gamma * theta_adj[2];
    return g.cell_m[2] * theta_adj[2];
}

template <class T>
double build_green_adjoint_folded(const GridGeometry& g, double gamma, const T* green_folded_adj, int threads,
                                  const CornerGradient* gradient, GeometryAdjoint& geo_adj) {
    HostArray<double> corner_adj(std::size_t(g.cells()));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t c = 0; c < g.cells(); ++c) corner_adj[c] = kCoulomb * green_folded_adj[c];
    return green_corner_adjoint(g, gamma, corner_adj, threads, gradient, geo_adj);
}

namespace {

template <class T>
struct FieldStencil {
    std::int64_t stride[3];  // node index steps along x, y, z
    T inv_h[3], inv_2h[3];   // one-sided and central difference factors
    explicit FieldStencil(const GridGeometry& g) : stride{std::int64_t(g.n[1]) * g.n[2], g.n[2], 1} {
        for (int a = 0; a < 3; ++a) {
            inv_h[a] = T(1.0 / g.cell_m[a]);
            inv_2h[a] = T(0.5 / g.cell_m[a]);
        }
    }
};

}  // namespace

// Both directions walk the nodes as (i, j, k) loops, so every node's index
// along each axis is known without a 64-bit division (which cost more than
// the stencils), and take all three axes in one pass over the grid. The
// per-node bodies are the GPU kernels' (kick_bodies.hpp, adjoint_bodies.hpp);
// each node's value and, on one thread, each sum is what the axis-by-axis
// loops gave, bit for bit.
template <class T>
void field_from_potential(const GridGeometry& g, const T* phi, T* const e[3], int threads) {
    const FieldStencil<T> st(g);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < g.n[0]; ++i)
        for (int j = 0; j < g.n[1]; ++j) {
            const std::int64_t row = i * st.stride[0] + j * st.stride[1];
            for (int k = 0; k < g.n[2]; ++k) {
                const std::int64_t c = row + k;
                const int index[3] = {i, j, k};
                for (int a = 0; a < 3; ++a)
                    e[a][c] = bodies::field_component_at(phi, c, st.stride[a], index[a], g.n[a], st.inv_h[a],
                                                         st.inv_2h[a]);
            }
        }
}

template <class T>
void field_from_potential_adjoint(const GridGeometry& g, const T* const e[3], const T* const e_adj[3], int threads,
                                  T* phi_adj, GeometryAdjoint& geo_adj) {
    const FieldStencil<T> st(g);
    double h_adj[3] = {0, 0, 0};
    // Gather form of the transposed stencil: each node collects from the
    // nodes whose difference used it, so no two threads write one node.
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : h_adj[:3])
    for (int i = 0; i < g.n[0]; ++i)
        for (int j = 0; j < g.n[1]; ++j) {
            const std::int64_t row = i * st.stride[0] + j * st.stride[1];
            for (int k = 0; k < g.n[2]; ++k) {
                const std::int64_t c = row + k;
                const int index[3] = {i, j, k};
                for (int a = 0; a < 3; ++a) {
                    double h_term;
                    phi_adj[c] += bodies::field_adjoint_node_at(e[a], e_adj[a], c, st.stride[a], index[a], g.n[a],
                                                                st.inv_h[a], st.inv_2h[a], g.cell_m[a], h_term);
                    h_adj[a] += h_term;
                }
            }
        }
    for (int a = 0; a < 3; ++a) geo_adj.cell_m[a] += h_adj[a];
}

template <class T>
HockneyConvolver<T>::HockneyConvolver(std::array<int, 3> n, int threads)
    : n_(n),
      threads_(threads),
      fft_({2 * n[0], 2 * n[1], 2 * n[2]}, threads),
      padded_(n, threads),
      even_(n, threads) {
    spec_a_.resize(fft_.spectrum_size());
    spec_b_.resize(fft_.spectrum_size());
}

template <class T>
void HockneyConvolver<T>::transform_green(const T* green_doubled) {
    work_a_.resize(fft_.real_size());
    std::copy_n(green_doubled, fft_.real_size(), work_a_.data());
    fft_.forward(work_a_.data(), spec_b_.data());
    const T norm = T(1.0 / double(fft_.real_size()));
    const std::int64_t ns = fft_.spectrum_size();
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t c = 0; c < ns; ++c) spec_b_[c] *= norm;
}

template <class T>
void HockneyConvolver<T>::convolve(const T* rho, const T* green_doubled, T* phi) {
    transform_green(green_doubled);
    padded_.forward(rho, spec_a_.data());
    const std::int64_t ns = fft_.spectrum_size();
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t c = 0; c < ns; ++c) spec_a_[c] *= spec_b_[c];
    padded_.inverse(spec_a_.data(), phi, false);
}

// The first octant of the doubled grid (indices 0..n, G[n] = 0) through the
// DCT-I: for an even green this is its DFT, real, at frequencies 0..n.
template <class T>
void HockneyConvolver<T>::green_spectrum(const T* green_doubled, T* spectrum) {
    const int nx = n_[0], ny = n_[1], nz = n_[2], my = 2 * ny, mz = 2 * nz;
    const T norm = T(1.0 / double(fft_.real_size()));
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i <= nx; ++i)
        for (int j = 0; j <= ny; ++j)
            for (int k = 0; k <= nz; ++k)
                spectrum[(std::int64_t(i) * (ny + 1) + j) * (nz + 1) + k] =
                    green_doubled[(std::int64_t(i) * my + j) * mz + k] * norm;
    even_.transform(spectrum);
}

// Frequency k of the doubled grid and 2n - k have the same even-spectrum value.
template <class T>
void HockneyConvolver<T>::multiply_even(std::complex<T>* spectrum, const T* green_spectrum) const {
    const int nx = n_[0], ny = n_[1], kz = n_[2] + 1;
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i < 2 * nx; ++i) {
        const int fi = i <= nx ? i : 2 * nx - i;
        for (int j = 0; j < 2 * ny; ++j) {
            const int fj = j <= ny ? j : 2 * ny - j;
            std::complex<T>* row = spectrum + (std::int64_t(i) * 2 * ny + j) * kz;
            const T* g = green_spectrum + (std::int64_t(fi) * (ny + 1) + fj) * kz;
            for (int k = 0; k < kz; ++k) row[k] *= g[k];
        }
    }
}

template <class T>
void HockneyConvolver<T>::convolve_even(const T* rho, const T* green_spectrum, T* phi) {
    padded_.forward(rho, spec_a_.data());
    multiply_even(spec_a_.data(), green_spectrum);
    padded_.inverse(spec_a_.data(), phi, false);
}

template <class T>
void HockneyConvolver<T>::green_adjoint(const T* rho, T* green_doubled_adj) {
    padded_.forward(rho, spec_b_.data());
    const T norm = T(1.0 / double(fft_.real_size()));
    const std::int64_t ns = fft_.spectrum_size();
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t c = 0; c < ns; ++c) spec_b_[c] = spec_a_[c] * std::conj(spec_b_[c]) * norm;
    fft_.inverse(spec_b_.data(), green_doubled_adj);
}

// Both adjoints are circular correlations with pad(phi_adj): with
// A = FFT(pad(phi_adj)), d/d(rho) = crop(c2r(A conj(FFT(green)))) / M and
// d/d(green) = c2r(A conj(FFT(pad(rho)))) / M, the whole doubled grid.
template <class T>
void HockneyConvolver<T>::convolve_adjoint(const T* rho, const T* green_doubled, const T* phi_adj, T* rho_adj,
                                           T* green_doubled_adj) {
    transform_green(green_doubled);
    padded_.forward(phi_adj, spec_a_.data());
    const std::int64_t ns = fft_.spectrum_size();
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t c = 0; c < ns; ++c) spec_b_[c] = spec_a_[c] * std::conj(spec_b_[c]);
    padded_.inverse(spec_b_.data(), rho_adj, true);
    green_adjoint(rho, green_doubled_adj);
}

template <class T>
void HockneyConvolver<T>::rho_adjoint_even(const T* rho, const T* green_spectrum, const T* phi_adj, T* rho_adj) {
    padded_.forward(phi_adj, spec_a_.data());
    std::copy(spec_a_.begin(), spec_a_.end(), spec_b_.begin());
    multiply_even(spec_b_.data(), green_spectrum);
    padded_.inverse(spec_b_.data(), rho_adj, true);
    padded_.forward(rho, spec_b_.data());
}

template <class T>
void HockneyConvolver<T>::convolve_adjoint_even(const T* rho, const T* green_spectrum, const T* phi_adj, T* rho_adj,
                                                T* green_folded_adj) {
    rho_adjoint_even(rho, green_spectrum, phi_adj, rho_adj);
    green_folded_adjoint(green_folded_adj);
}

// The r2c half spectrum holds frequencies kz = 0..nz; those with 0 < kz < nz
// stand for their conjugate partner too, whose product term is the same.
template <class T>
double HockneyConvolver<T>::convolve_adjoint_even_to_z_cell(const T* rho, const T* green_spectrum, const T* phi_adj,
                                                            T* rho_adj, const T* z_derivative) {
    rho_adjoint_even(rho, green_spectrum, phi_adj, rho_adj);
    const int nx = n_[0], ny = n_[1], nz = n_[2], kz = nz + 1;
    double sum = 0;
#pragma omp parallel for num_threads(threads_) schedule(static) reduction(+ : sum)
    for (int i = 0; i < 2 * nx; ++i) {
        const int fi = i <= nx ? i : 2 * nx - i;
        for (int j = 0; j < 2 * ny; ++j) {
            const int fj = j <= ny ? j : 2 * ny - j;
            const std::complex<T>* a = spec_a_.data() + (std::int64_t(i) * 2 * ny + j) * kz;
            const std::complex<T>* r = spec_b_.data() + (std::int64_t(i) * 2 * ny + j) * kz;
            const T* d = z_derivative + (std::int64_t(fi) * (ny + 1) + fj) * kz;
            for (int k = 0; k < kz; ++k) {
                const double weight = (k == 0 || k == nz) ? 1.0 : 2.0;
                sum += weight * (double(a[k].real()) * r[k].real() + double(a[k].imag()) * r[k].imag()) * d[k];
            }
        }
    }
    return sum;
}

template <class T>
void HockneyConvolver<T>::octant_spectrum(const double* octant, T* spectrum) {
    const int nx = n_[0], ny = n_[1], nz = n_[2];
    const double norm = 1.0 / double(fft_.real_size());
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i <= nx; ++i)
        for (int j = 0; j <= ny; ++j)
            for (int k = 0; k <= nz; ++k)
                spectrum[(std::int64_t(i) * (ny + 1) + j) * (nz + 1) + k] =
                    (i == nx || j == ny || k == nz) ? T(0) : T(octant[(std::int64_t(i) * ny + j) * nz + k] * norm);
    even_.transform(spectrum);
}

// The doubled adjoint D = c2r(U) / M, U = A conj(R), summed over the mirror
// images of node m, is mult(m) E(m), E being D's part that is even along every
// axis: E's spectrum is U averaged over the 8 sign flips of the frequency,
// real and even (U(-k) = conj U(k)), so E is the DCT-I of its octant. mult(m)
// counts the distinct images, 2 per axis where m != 0. A DCT of (n+1)^3
// values replaces the c2r of the whole doubled grid.
template <class T>
void HockneyConvolver<T>::green_folded_adjoint(T* green_folded_adj) {
    const int nx = n_[0], ny = n_[1], nz = n_[2], mx = 2 * nx, my = 2 * ny, kz = nz + 1;
    const T quarter_norm = T(0.25 / double(fft_.real_size()));
    octant_.resize(even_.size());
    auto real_product = [&](int i, int j, int k) {
        const std::int64_t c = (std::int64_t(i) * my + j) * kz + k;
        return spec_a_[c].real() * spec_b_[c].real() + spec_a_[c].imag() * spec_b_[c].imag();
    };
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i <= nx; ++i) {
        const int fi = (mx - i) % mx;
        for (int j = 0; j <= ny; ++j) {
            const int fj = (my - j) % my;
            T* row = octant_.data() + (std::int64_t(i) * (ny + 1) + j) * kz;
            for (int k = 0; k < kz; ++k)
                row[k] = quarter_norm * (real_product(i, j, k) + real_product(fi, j, k) + real_product(i, fj, k) +
                                         real_product(fi, fj, k));
        }
    }
    even_.transform(octant_.data());
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int i = 0; i < nx; ++i)
        for (int j = 0; j < ny; ++j)
            for (int k = 0; k < nz; ++k) {
                const T images = T((i ? 2 : 1) * (j ? 2 : 1) * (k ? 2 : 1));
                green_folded_adj[(std::int64_t(i) * ny + j) * nz + k] =
                    images * octant_[(std::int64_t(i) * (ny + 1) + j) * kz + k];
            }
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Whether this rank holds the particle that sets the global minimum (maximum)
// of an axis: the lowest rank among those holding the extreme value, as the
// first such particle is chosen on one rank.
struct ExtremeOwners {
    bool lo = true, hi = true;
};
ExtremeOwners extreme_owners(double local_lo, double local_hi) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return {};
    double lo = local_lo, hi = local_hi;
    comm.min(&lo, 1);
    comm.max(&hi, 1);
    double first[2] = {local_lo == lo ? double(comm.rank()) : kInf, local_hi == hi ? double(comm.rank()) : kInf};
    comm.min(first, 2);
    return {first[0] == comm.rank(), first[1] == comm.rank()};
}

}  // namespace

template <class T>
void grid_covering_adjoint(const GridSettings& settings, const T* const pos[3], std::int64_t n,
                           const GeometryAdjoint& geo_adj, T* const pos_adj[3], bool exact) {
    for (int a = 0; a < 3; ++a) {
        const double o_adj = geo_adj.origin_m[a], h_adj = geo_adj.cell_m[a];
        const ExtentJacobian jac = extent_jacobian(settings, a);
        // the adjoints of the two extent statistics (lo, hi or mean, rms)
        const double stat_adj[2] = {o_adj * jac.origin[0] + h_adj * jac.cell[0],
                                    o_adj * jac.origin[1] + h_adj * jac.cell[1]};
        if (settings.mode == ExtentMode::minmax) {
            std::int64_t lo = 0, hi = 0;
            for (std::int64_t p = 1; p < n; ++p) {
                if (pos[a][p] < pos[a][lo]) lo = p;
                if (pos[a][p] > pos[a][hi]) hi = p;
            }
            const ExtremeOwners owners = extreme_owners(n > 0 ? double(pos[a][lo]) : kInf, n > 0 ? double(pos[a][hi]) : -kInf);
            if (owners.lo) pos_adj[a][lo] += T(stat_adj[0]);
            if (owners.hi) pos_adj[a][hi] += T(stat_adj[1]);
        } else {
            // mean and rms over every rank's particles
            ParticleSums<3> sums(exact);
            sums.add_particles(n, [&](std::int64_t p, double* s) {
                s[0] += pos[a][p];
                s[1] += double(pos[a][p]) * pos[a][p];
                s[2] += 1;  // exact below 2^53 particles
            });
            const std::array<double, 3> all = sums.over_all_ranks();
            const double sum = all[0], sum2 = all[1], total = all[2];
            const double mean = sum / total, rms = std::sqrt(std::max(sum2 / total - mean * mean, 0.0));
            for (std::int64_t p = 0; p < n; ++p)
                pos_adj[a][p] += T(stat_adj[0] / total + stat_adj[1] * (pos[a][p] - mean) / (total * rms));
        }
    }
}

#define SCTAPE_INSTANTIATE(T)                                                                                       \
    template void deposit_cic<T>(const GridGeometry&, const T* const[3], std::int64_t, T, int, HostArray<T>&, T*);   \
    template void deposit_cic_fixed<T>(const GridGeometry&, const T* const[3], std::int64_t, double, int,            \
                                       HostArray<std::int64_t>&, std::int64_t*);                                     \
    template double deposit_cic_adjoint<T>(const GridGeometry&, const T* const[3], std::int64_t, T, const T*, int,   \
                                           T* const[3], GeometryAdjoint&, bool);                                     \
    template void gather_cic<T>(const GridGeometry&, const T* const[3], std::int64_t, const T* const[3], T* const[3], \
                                int);                                                                                \
    template void gather_cic_adjoint<T>(const GridGeometry&, const T* const[3], std::int64_t, const T* const[3],     \
                                        const T* const[3], int, HostArray<T>&, T* const[3], T* const[3],             \
                                        GeometryAdjoint&, bool);                                                     \
    template void build_green<T>(const GridGeometry&, double, int, T*, CornerGradient*);                             \
    template double build_green_adjoint<T>(const GridGeometry&, double, const T*, int, GeometryAdjoint&);            \
    template double build_green_adjoint_folded<T>(const GridGeometry&, double, const T*, int, const CornerGradient*, \
                                                  GeometryAdjoint&);                                                 \
    template void field_from_potential<T>(const GridGeometry&, const T*, T* const[3], int);                          \
    template void field_from_potential_adjoint<T>(const GridGeometry&, const T* const[3], const T* const[3], int, T*, \
                                                  GeometryAdjoint&);                                                 \
    template class HockneyConvolver<T>;                                                                              \
    template void grid_covering_adjoint<T>(const GridSettings&, const T* const[3], std::int64_t,                     \
                                           const GeometryAdjoint&, T* const[3], bool);
SCTAPE_INSTANTIATE(float)
SCTAPE_INSTANTIATE(double)
#undef SCTAPE_INSTANTIATE

}  // namespace sctape
