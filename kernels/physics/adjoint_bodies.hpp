// adjoint_bodies.hpp — the per-element bodies of the kick's adjoints, as
// SCTAPE_HD functions with no CUDA types (the adjoint counterpart of
// kick_bodies.hpp). Both backends run them: each backward kernel in
// gpu_tracking.cu is a grid-stride loop around one of these plus atomics or
// a reduction, and the CPU adjoints of grid_ops.cpp call them inside their
// OpenMP loops (per-thread grids instead of atomics). The [gpu-emulation]
// tests (tests/test_gpu.cpp) run them in the GPU's sequence of plain loops
// against the CPU adjoints. The per-particle adjoints of s_to_t and t_to_s
// are in kick_math.hpp, the element maps' in map_bodies.hpp, shared the same way.
#pragma once

#include <cstdint>

#include "core/hd.hpp"
#include "physics/kick_bodies.hpp"
#include "physics/kick_math.hpp"

namespace sctape::bodies {

// A particle's CIC stencil with its grid coordinates s = (u - origin)/h and
// its upper weights (s minus the lower node's index), from which the
// weights' derivatives follow (trilinear_gradient). The CPU forms the same
// from particles located a block at a time (grid_ops.cpp,
// located_point_adjoint).
template <class T>
struct CicPointAdjoint {
    CicPoint<T> point;
    T upper[3];
    T s[3];
};

template <class T>
SCTAPE_HD CicPointAdjoint<T> cic_point_adjoint(const CicGrid<T>& g, T x, T y, T z) {
    const T u[3] = {x, y, z};
    CicLocation<T> loc[3];
    CicPointAdjoint<T> q;
    for (int a = 0; a < 3; ++a) {
        loc[a] = cic_locate(u[a], g.origin[a], g.inv_h[a], g.n[a]);
        q.upper[a] = loc[a].upper_weight;
        q.s[a] = loc[a].index + loc[a].upper_weight;
    }
    q.point.base = cic_node(g, loc[0].index, loc[1].index, loc[2].index);
    cic_weights(q.upper[0], q.upper[1], q.upper[2], q.point.w);
    return q;
}

// d/d(s) of the trilinear sum over the stencil of f[m] w_m(s) (m = 4a + 2b + c):
// along each axis the difference of the two faces, weighted over the other
// two axes. The gather adjoint sums its three fields' node values first and
// differentiates once: 24 + 24 products per particle, against 72 for each
// weight's derivative times each field.
template <class T>
SCTAPE_HD void trilinear_gradient(const double f[8], const T upper[3], double grad[3]) {
    const double w[3][2] = {{1 - double(upper[0]), double(upper[0])},
                            {1 - double(upper[1]), double(upper[1])},
                            {1 - double(upper[2]), double(upper[2])}};
    grad[0] = grad[1] = grad[2] = 0;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
            grad[0] += w[1][i] * w[2][j] * (f[4 + 2 * i + j] - f[2 * i + j]);
            grad[1] += w[0][i] * w[2][j] * (f[4 * i + 2 + j] - f[4 * i + j]);
            grad[2] += w[0][i] * w[1][j] * (f[4 * i + 2 * j + 1] - f[4 * i + 2 * j]);
        }
}

// From d/d(s_a) to the particle's position adjoints (returned) and the
// geometry's: origin (-= u_adj) and cell size (-= u_adj s_a), summed by the caller.
template <class T>
SCTAPE_HD void grid_coordinate_adjoint(const CicGrid<T>& g, const CicPointAdjoint<T>& q, const double s_adj[3],
                                       T pos_adj[3], double origin_adj[3], double cell_adj[3]) {
    for (int a = 0; a < 3; ++a) {
        const double u_adj = s_adj[a] * g.inv_h[a];
        pos_adj[a] = T(u_adj);
        origin_adj[a] -= u_adj;
        cell_adj[a] -= u_adj * q.s[a];
    }
}

// Deposit adjoint of one particle: d/d(s) from rho_adj; returns the
// particle's share of d/d(scale) (rho = scale * sum of weights).
template <class T>
SCTAPE_HD double deposit_adjoint_particle(const CicGrid<T>& g, const CicPointAdjoint<T>& q, const T* rho_adj, T scale,
                                          double s_adj[3]) {
    double scale_adj = 0, r[8];
    for (int m = 0; m < 8; ++m) {
        r[m] = rho_adj[q.point.base + cic_offset(g, m)];
        scale_adj += r[m] * q.point.w[m];
    }
    trilinear_gradient(r, q.upper, s_adj);
    for (int a = 0; a < 3; ++a) s_adj[a] *= double(scale);
    return scale_adj;
}

// Gather adjoint of one particle: adds d/d(s) of sum_a e_adj[a] E_a(s) (the
// gathered field's adjoint) to s_adj; the grid's share, w[m] * e_adj[a], is
// the caller's to scatter (atomics on the GPU).
template <class T>
SCTAPE_HD void gather_adjoint_particle(const CicGrid<T>& g, const CicPointAdjoint<T>& q, const T* const e_grid[3],
                                       const T e_adj[3], double s_adj[3]) {
    double f[8];
    for (int m = 0; m < 8; ++m) {
        const std::int64_t node = q.point.base + cic_offset(g, m);
        f[m] = double(e_adj[0]) * e_grid[0][node] + double(e_adj[1]) * e_grid[1][node] +
               double(e_adj[2]) * e_grid[2][node];
    }
    double grad[3];
    trilinear_gradient(f, q.upper, grad);
    for (int a = 0; a < 3; ++a) s_adj[a] += grad[a];
}

// Transposed field stencil at node c along one axis (field_component's
// adjoint, in gather form: no two threads write one node); `h_term` gets
// the node's share of d/d(h) (-e_adj e / h).
// i is node c's index along the axis (a loop that walks the axes knows it).
template <class T>
SCTAPE_HD T field_adjoint_node_at(const T* e, const T* e_adj, std::int64_t c, std::int64_t stride, int i, int len,
                                  T inv_h, T inv_2h, double h, double& h_term) {
    T acc = 0;
    if (i >= 1) acc -= e_adj[c - stride] * (i - 1 == 0 ? inv_h : inv_2h);
    if (i + 1 <= len - 1) acc += e_adj[c + stride] * (i + 1 == len - 1 ? inv_h : inv_2h);
    if (i == 0) acc += e_adj[c] * inv_h;
    if (i == len - 1) acc -= e_adj[c] * inv_h;
    h_term = -double(e_adj[c]) * e[c] / h;
    return acc;
}

template <class T>
SCTAPE_HD T field_adjoint_node(const T* e, const T* e_adj, std::int64_t c, std::int64_t stride, int len, T inv_h,
                               T inv_2h, double h, double& h_term) {
    return field_adjoint_node_at(e, e_adj, c, stride, int((c / stride) % len), len, inv_h, inv_2h, h, h_term);
}

// Adjoint of the mirror: corner node c collects the doubled-grid adjoint of
// every image it was copied to (index i, and 2n - i for i >= 1), times the
// Coulomb constant.
template <class T>
SCTAPE_HD double green_fold_adjoint(const T* green_doubled_adj, std::int64_t c, int nx, int ny, int nz,
                                    double coulomb) {
    const int k = int(c % nz);
    const int j = int((c / nz) % ny);
    const int i = int(c / (std::int64_t(ny) * nz));
    const int my = 2 * ny, mz = 2 * nz;
    double sum = 0;
    for (int di = 0; di < (i ? 2 : 1); ++di)
        for (int dj = 0; dj < (j ? 2 : 1); ++dj)
            for (int dk = 0; dk < (k ? 2 : 1); ++dk) {
                const int ii = di ? 2 * nx - i : i, jj = dj ? 2 * ny - j : j, kk = dk ? 2 * nz - k : k;
                sum += green_doubled_adj[(std::int64_t(ii) * my + jj) * mz + kk];
            }
    return coulomb * sum;
}

// Transposed corner difference at c: (D^T y)(i) = w_i y(i) - y(i+1), with
// w_0 = 2 and y(n) = 0 (corner_difference's adjoint).
SCTAPE_HD double corner_difference_transpose(const double* y, std::int64_t c, std::int64_t stride, int len) {
    const int i = int((c / stride) % len);
    const double weight = i == 0 ? 2.0 : 1.0;
    return i + 1 >= len ? weight * y[c] : weight * y[c] - y[c + stride];
}

// Corner node c's share of d/d(h_a) of the IGF (h_z already scaled by gamma):
// the corner sits at (i + 1/2) h, so d g / d h_a = (i_a + 1/2) d g / d x_a.
SCTAPE_HD void green_cell_adjoint_node(const double* corner_adj, std::int64_t c, int ny, int nz, double hx, double hy,
                                       double hz, double h_adj[3]) {
    const int k = int(c % nz);
    const int j = int((c / nz) % ny);
    const int i = int(c / (std::int64_t(ny) * nz));
    const double at[3] = {i + 0.5, j + 0.5, k + 0.5};
    double grad[3];
    igf_antiderivative_gradient(at[0] * hx, at[1] * hy, at[2] * hz, grad);
    for (int a = 0; a < 3; ++a) h_adj[a] = corner_adj[c] * at[a] * grad[a];
}

// out = a * conj(b) * norm on (re, im) pairs: the correlation in the
// convolution's adjoint (spec_a * std::conj(spec_b) * norm on the CPU).
template <class T>
SCTAPE_HD void correlation_product(T a_re, T a_im, T b_re, T b_im, T norm, T& out_re, T& out_im) {
    const T re = a_re * b_re + a_im * b_im;
    const T im = a_im * b_re - a_re * b_im;
    out_re = re * norm;
    out_im = im * norm;
}

// grid_covering's adjoint in sigma mode for one coordinate: origin = mean -
// k rms, cell = 2 k rms / (n - 1), so every particle gets a share.
SCTAPE_HD double sigma_grid_adjoint(double u, double mean, double rms, std::int64_t n, double mean_adj,
                                    double rms_adj) {
    return mean_adj / n + rms_adj * (u - mean) / (n * rms);
}

}  // namespace sctape::bodies
