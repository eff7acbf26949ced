// backward_kernels.cuh — the kernels of the kick's and element maps' adjoints:
// grid-stride loops around the SCTAPE_HD bodies of physics/adjoint_bodies.hpp and
// kick_math.hpp. Grid adjoints from particles scatter with atomics; scalar
// adjoints (parameters, grid geometry) reduce through block_sums. Adjoint
// columns are A[0..5] in (x, px, y, py, tau, delta) order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "physics/adjoint_bodies.hpp"
#include "physics/geometry_bodies.hpp"
#include "physics/kick_bodies.hpp"
#include "physics/kick_math.hpp"
#include "physics/map_bodies.hpp"
#include "cuda/launch.cuh"

namespace sctape::cuda {

using namespace bodies;  // the per-element bodies (physics/) the kernels run

template <class T>
struct AdjointColumns {
    T* a[6];
};

// Adjoint of an element map given its input columns (positions may be null:
// a drift reads the momenta only). sums: the 12 block-entry adjoints.
template <class T>
__global__ void map_adjoint_kernel(const T* x, const T* px, const T* y, const T* py, const T* tau, const T* delta,
                                   AdjointColumns<T> A, std::int64_t n, ElementMap map, double* partials) {
    double local[12] = {};
    const bool has_positions = x != nullptr;
    SCTAPE_GRID_LOOP(p, n) {
        const T in[6] = {has_positions ? x[p] : T(0), px[p], has_positions ? y[p] : T(0),
                         py[p], has_positions ? tau[p] : T(0), delta[p]};
        T* adj[6] = {&A.a[0][p], &A.a[1][p], &A.a[2][p], &A.a[3][p], &A.a[4][p], &A.a[5][p]};
        map_adjoint_particle(map, in, has_positions, adj, local);
    }
    block_sums<12>(local, partials);
}

// Writes dP's adjoint into dp_adj and pz's into pz_adj. sums: d/d(1/beta0), d/d(1/(beta0 gamma0)^2)
template <class T>
__global__ void t_to_s_adjoint_kernel(const T* px, const T* py, const T* pz, const T* ex, const T* ey, const T* ez,
                                      std::int64_t n, T scale, T inv_bg2, AdjointColumns<T> A, T* pz_adj, T* dpx_adj,
                                      T* dpy_adj, T* dpz_adj, double* partials) {
    double local[2] = {0, 0};
    SCTAPE_GRID_LOOP(p, n) {
        T pza;
        t_to_s_adjoint_particle(px[p], py[p], pz[p], scale * ex[p], scale * ey[p], scale * ez[p], inv_bg2, A.a[1][p],
                                A.a[3][p], A.a[5][p], pza, local[0], local[1]);
        pz_adj[p] = pza;
        dpx_adj[p] = A.a[1][p];
        dpy_adj[p] = A.a[3][p];
        dpz_adj[p] = pza;
    }
    block_sums<2>(local, partials);
}

// dP = scale E: turns dP's adjoint (in place) into E's. sum: d/d(scale)
template <class T>
__global__ void push_adjoint_kernel(const T* ex, const T* ey, const T* ez, std::int64_t n, T scale, T* ax, T* ay,
                                    T* az, double* partials) {
    double local[1] = {0};
    SCTAPE_GRID_LOOP(p, n) {
        local[0] += double(ex[p]) * ax[p] + double(ey[p]) * ay[p] + double(ez[p]) * az[p];
        ax[p] *= scale;
        ay[p] *= scale;
        az[p] *= scale;
    }
    block_sums<1>(local, partials);
}

// Field grids' adjoints (+=, atomics), x and y adjoints (+=), z's (=).
// sums: d/d(origin) x3, d/d(cell) x3
template <class T>
__global__ void gather_adjoint_kernel(const KickFrame<T>* frame, const T* x, const T* y, const T* z, std::int64_t n,
                                      const T* ex, const T* ey, const T* ez, const T* eax, const T* eay,
                                      const T* eaz, T* egx, T* egy, T* egz, T* x_adj, T* y_adj, T* z_adj,
                                      double* partials) {
    const CicGrid<T> g = frame->cic;
    double local[6] = {0, 0, 0, 0, 0, 0};
    const T* e_grid[3] = {ex, ey, ez};
    T* e_grid_adj[3] = {egx, egy, egz};
    SCTAPE_GRID_LOOP(p, n) {
        const CicPointAdjoint<T> q = cic_point_adjoint(g, x[p], y[p], z[p]);
        const T e_adj[3] = {eax[p], eay[p], eaz[p]};
        for (int a = 0; a < 3; ++a)
            for (int m = 0; m < 8; ++m) atomicAdd(e_grid_adj[a] + q.point.base + cic_offset(g, m), q.point.w[m] * e_adj[a]);
        double s_adj[3] = {0, 0, 0};
        gather_adjoint_particle(g, q, e_grid, e_adj, s_adj);
        T u_adj[3];
        grid_coordinate_adjoint(g, q, s_adj, u_adj, local, local + 3);
        x_adj[p] += u_adj[0];
        y_adj[p] += u_adj[1];
        z_adj[p] = u_adj[2];
    }
    block_sums<6>(local, partials);
}

// phi's adjoint (+=) from one axis of the field. sum: d/d(cell) of that axis
template <class T>
__global__ void field_adjoint_kernel(const KickFrame<T>* frame, int axis, const T* e, const T* e_adj,
                                     std::int64_t cells, std::int64_t stride, int len, T* phi_adj, double* partials) {
    const T inv_h = frame->inv_h[axis], inv_2h = frame->inv_2h[axis];
    const double h = frame->cell[axis];
    double local[1] = {0};
    SCTAPE_GRID_LOOP(c, cells) {
        double h_term;
        phi_adj[c] += field_adjoint_node(e, e_adj, c, stride, len, inv_h, inv_2h, h, h_term);
        local[0] += h_term;
    }
    block_sums<1>(local, partials);
}

template <class T>
__global__ void correlation_kernel(const T* a, T* b, std::int64_t modes, T norm) {
    SCTAPE_GRID_LOOP(c, modes) {
        T re, im;
        correlation_product(a[2 * c], a[2 * c + 1], b[2 * c], b[2 * c + 1], norm, re, im);
        b[2 * c] = re;
        b[2 * c + 1] = im;
    }
}

template <class T>
__global__ void green_fold_adjoint_kernel(const T* green_adj, std::int64_t cells, int nx, int ny, int nz,
                                          double coulomb, double* corner_adj) {
    SCTAPE_GRID_LOOP(c, cells) corner_adj[c] = green_fold_adjoint(green_adj, c, nx, ny, nz, coulomb);
}

__global__ void corner_difference_transpose_kernel(const double* in, std::int64_t cells, std::int64_t stride, int len,
                                                   double* out) {
    SCTAPE_GRID_LOOP(c, cells) out[c] = corner_difference_transpose(in, c, stride, len);
}

// sums: d/d(h) x3 of the IGF cells (h_z = gamma cell_z)
template <class T>
__global__ void green_cell_adjoint_kernel(const KickFrame<T>* frame, const double* corner_adj, std::int64_t cells,
                                          int ny, int nz, double* partials) {
    const double hx = frame->green_h[0], hy = frame->green_h[1], hz = frame->green_h[2];
    double local[3] = {0, 0, 0};
    SCTAPE_GRID_LOOP(c, cells) {
        double h[3];
        green_cell_adjoint_node(corner_adj, c, ny, nz, hx, hy, hz, h);
        for (int a = 0; a < 3; ++a) local[a] += h[a];
    }
    block_sums<3>(local, partials);
}

// x and y adjoints (+=), z's (+=). sums: d/d(scale), d/d(origin) x3, d/d(cell) x3
template <class T>
__global__ void deposit_adjoint_kernel(const KickFrame<T>* frame, const T* x, const T* y, const T* z, std::int64_t n,
                                       const T* rho_adj, T* x_adj, T* y_adj, T* z_adj, double* partials) {
    const CicGrid<T> g = frame->cic;
    const T scale = frame->deposit_scale;
    double local[7] = {0, 0, 0, 0, 0, 0, 0};
    SCTAPE_GRID_LOOP(p, n) {
        const CicPointAdjoint<T> q = cic_point_adjoint(g, x[p], y[p], z[p]);
        double s_adj[3];
        local[0] += deposit_adjoint_particle(g, q, rho_adj, scale, s_adj);
        T u_adj[3];
        grid_coordinate_adjoint(g, q, s_adj, u_adj, local + 1, local + 4);
        x_adj[p] += u_adj[0];
        y_adj[p] += u_adj[1];
        z_adj[p] += u_adj[2];
    }
    block_sums<7>(local, partials);
}

// *first = n (one thread), before first_index_kernel.
__global__ void reset_index_kernel(long long* first, std::int64_t n) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *first = n;
}

// The first index holding *value (atomicMin; `first` starts at n).
template <class T>
__global__ void first_index_kernel(const T* u, std::int64_t n, const double* value, long long* first) {
    const double v = *value;
    SCTAPE_GRID_LOOP(p, n) {
        if (double(u[p]) == v) atomicMin(first, (long long)p);
    }
}

// u_adj[*index] += *v unless *index is n (none here), one thread.
template <class T>
__global__ void add_at_kernel(T* u_adj, const long long* index, std::int64_t n, const double* v) {
    if (blockIdx.x == 0 && threadIdx.x == 0 && *index < n) u_adj[*index] += T(*v);
}

// Over MPI ranks: *owner = rank when this rank holds the value (*index < n),
// else +inf, for a min over the ranks; then keep_if_owner_kernel sets the
// index to none (n) on every rank but the lowest holder.
__global__ void rank_if_found_kernel(const long long* index, std::int64_t n, double rank, double* owner) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *owner = *index < n ? rank : HUGE_VAL;
}
__global__ void keep_if_owner_kernel(long long* index, std::int64_t n, const double* owner, double rank) {
    if (blockIdx.x == 0 && threadIdx.x == 0 && *owner != rank) *index = n;
}

// n: this rank's particles; total: every rank's (the mean and rms are over them).
template <class T>
__global__ void sigma_grid_adjoint_kernel(const T* u, std::int64_t n, std::int64_t total, const CoveringAdjoint* c,
                                          T* u_adj) {
    const double mean = c->mean, rms = c->rms, mean_adj = c->mean_adj, rms_adj = c->rms_adj;
    SCTAPE_GRID_LOOP(p, n) u_adj[p] += T(sigma_grid_adjoint(u[p], mean, rms, total, mean_adj, rms_adj));
}

// ---- the backward's scalars, on the device (geometry_bodies.hpp)

// out[k] = sum k of a sum kernel's partials, in block order (threads k < K).
__global__ void finish_sums_kernel(const double* partials, int blocks, int sums, double* out) {
    const int k = int(threadIdx.x);
    if (blockIdx.x == 0 && k < sums) out[k] = finish_sum(partials, blocks, k);
}

// One thread each: the geometry adjoint's updates of GpuAdjoint::kick.
__global__ void add_geometry_sums_kernel(GeometryAdjointAcc* g, const double* s, int origin_at, int cell_at) {
    if (blockIdx.x == 0 && threadIdx.x == 0) add_geometry_sums(*g, s, origin_at, cell_at);
}

__global__ void add_cell_sum_kernel(GeometryAdjointAcc* g, int axis, const double* s) {
    if (blockIdx.x == 0 && threadIdx.x == 0) g->cell[axis] += *s;
}

// gamma's share into *gamma_term.
template <class T>
__global__ void add_green_adjoint_kernel(GeometryAdjointAcc* g, const KickFrame<T>* frame, const double* h,
                                         double gamma, double* gamma_term) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *gamma_term = add_green_adjoint(*g, h, gamma, frame->cell[2]);
}

// v = scale d/d(scale) into *v.
template <class T>
__global__ void add_deposit_scale_kernel(GeometryAdjointAcc* g, const KickFrame<T>* frame, const double* scale_sum,
                                         double* v) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *v = add_deposit_scale_adjoint(*g, *scale_sum, double(frame->deposit_scale), frame->cell);
}

// grid_covering's adjoint terms of the three axes.
__global__ void covering_adjoint_kernel(ExtentRule rule, const ExtentAcc* extents, std::int64_t n,
                                        const GeometryAdjointAcc* g, CoveringAdjoint* out) {
    const int a = int(threadIdx.x);
    if (blockIdx.x == 0 && a < 3) out[a] = covering_adjoint(rule, a, extents[a], n, *g);
}

// sums: d/d(beta0), d/d(1/beta0), d/d(1/(beta0 gamma0)^2)
template <class T>
__global__ void s_to_t_adjoint_kernel(const T* px, const T* py, const T* tau, const T* delta, const T* pz,
                                      const T* z_adj, const T* pz_adj, std::int64_t n, T beta0, T inv_beta0,
                                      AdjointColumns<T> A, double* partials) {
    double local[3] = {0, 0, 0};
    SCTAPE_GRID_LOOP(p, n) {
        s_to_t_adjoint_particle(px[p], py[p], tau[p], delta[p], pz[p], z_adj[p], pz_adj[p], beta0, inv_beta0, A.a[1][p],
                                A.a[3][p], A.a[4][p], A.a[5][p], local[0], local[1], local[2]);
    }
    block_sums<3>(local, partials);
}

}  // namespace sctape::cuda
