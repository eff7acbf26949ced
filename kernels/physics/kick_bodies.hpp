// kick_bodies.hpp — the per-element bodies of the CUDA kick's kernels, as
// SCTAPE_HD functions with no CUDA types: each kernel in gpu_tracking.cu is a
// grid-stride loop around one of these, and the CPU test
// (tests/test_gpu.cpp, [gpu-emulation]) runs the same bodies in plain loops
// against SpaceChargeKick, so the index arithmetic of the GPU path (CIC
// stencils, corner differences, the mirror fold, padding and cropping, the
// field stencil) is checked on machines without a GPU.
//
// The CPU's deposit, gather and their adjoints (grid_ops.cpp) share the CIC
// math: cic_grid, cic_locate, cic_weights, cic_node and cic_offset (they
// locate particles a block at a time instead of calling cic_point).
//
// The physics math itself comes from kick_math.hpp (cic_locate,
// igf_antiderivative, s_to_t_particle, t_to_s_delta), shared with the CPU.
// Node arrays are indexed (i*ny + j)*nz + k, the doubled grid (i*2ny + j)*2nz + k,
// as on the CPU (grid_ops.cpp).
//
// The grid itself (extents, geometry, cell quantization) is computed by the
// bodies of geometry_bodies.hpp, on the device and in geometry_from_extents.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/hd.hpp"
#include "physics/kick_math.hpp"
#include "physics/space_charge.hpp"

namespace sctape::bodies {

// What a CIC kernel needs of the grid: node counts, origin and 1/h in the
// run's dtype.
template <class T>
struct CicGrid {
    int n[3];
    T origin[3];
    T inv_h[3];
};

template <class T>
inline CicGrid<T> cic_grid(const GridGeometry& g) {
    CicGrid<T> c{};
    for (int a = 0; a < 3; ++a) {
        c.n[a] = g.n[a];
        c.origin[a] = T(g.origin_m[a]);
        c.inv_h[a] = T(1 / g.cell_m[a]);
    }
    return c;
}

// The 8 nodes of one particle: the lower corner node and the weights, in the
// order m = 4a + 2b + c (a, b, c the upper/lower choice along x, y, z).
template <class T>
struct CicPoint {
    std::int64_t base;
    T w[8];
};

// The 8 weights from the upper weights along x, y, z: w[4a + 2b + c] =
// (wx_a wy_b) wz_c. Straight-line, so that a loop over particles around it
// vectorizes (grid_ops.cpp's locate_block).
template <class T>
SCTAPE_HD void cic_weights(T ux, T uy, T uz, T w[8]) {
    const T dx = 1 - ux, dy = 1 - uy, dz = 1 - uz;
    const T xy[4] = {dx * dy, dx * uy, ux * dy, ux * uy};
    for (int m = 0; m < 4; ++m) {
        w[2 * m] = xy[m] * dz;
        w[2 * m + 1] = xy[m] * uz;
    }
}

// Index of node (i, j, k).
template <class T>
SCTAPE_HD std::int64_t cic_node(const CicGrid<T>& g, int i, int j, int k) {
    return (std::int64_t(i) * g.n[1] + j) * g.n[2] + k;
}

template <class T>
SCTAPE_HD CicPoint<T> cic_point(const CicGrid<T>& g, T x, T y, T z) {
    const CicLocation<T> lx = cic_locate(x, g.origin[0], g.inv_h[0], g.n[0]);
    const CicLocation<T> ly = cic_locate(y, g.origin[1], g.inv_h[1], g.n[1]);
    const CicLocation<T> lz = cic_locate(z, g.origin[2], g.inv_h[2], g.n[2]);
    CicPoint<T> p;
    p.base = cic_node(g, lx.index, ly.index, lz.index);
    cic_weights(lx.upper_weight, ly.upper_weight, lz.upper_weight, p.w);
    return p;
}

// Offset of the m-th stencil node from the lower corner node.
template <class T>
SCTAPE_HD std::int64_t cic_offset(const CicGrid<T>& g, int m) {
    const int a = m >> 2, b = (m >> 1) & 1, c = m & 1;
    return (std::int64_t(a) * g.n[1] + b) * g.n[2] + c;
}

// The three field components at one particle: per component the sum over
// the 8 nodes in stencil order; the offsets are computed once and the three
// sums interleave, which keeps more independent loads in flight.
template <class T>
SCTAPE_HD void cic_gather3(const CicGrid<T>& g, const CicPoint<T>& p, const T* const grid[3], T out[3]) {
    T sum[3] = {0, 0, 0};
    for (int m = 0; m < 8; ++m) {
        const std::int64_t node = p.base + cic_offset(g, m);
        for (int a = 0; a < 3; ++a) sum[a] += p.w[m] * grid[a][node];
    }
    for (int a = 0; a < 3; ++a) out[a] = sum[a];
}

// Fixed-point deposit (deterministic mode): each weight becomes an integer
// number of 2^-bits units, so integer atomics sum it in any order to the same
// bits. `bits` keeps the sum of n_particles weights below 2^62.
inline int fixed_point_bits(std::int64_t n_particles) {
    int b = 0;
    while (b < 62 && (std::int64_t(1) << b) < n_particles) ++b;  // b = ceil(log2(n))
    return 62 - b;
}

template <class T>
SCTAPE_HD long long to_fixed_point(T w, double one) {
    return static_cast<long long>(::llrint(double(w) * one));
}

// ---- green: corner lattice, corner differences, mirror (build_green) ----

// g at corner node c: the antiderivative at ((i+1/2) hx, (j+1/2) hy, (k+1/2) hz).
SCTAPE_HD double green_corner(std::int64_t c, int ny, int nz, double hx, double hy, double hz) {
    const int k = int(c % nz);
    const int j = int((c / nz) % ny);
    const int i = int(c / (std::int64_t(ny) * nz));
    return igf_antiderivative((i + 0.5) * hx, (j + 0.5) * hy, (k + 0.5) * hz);
}

// D f(i) = f(i) - f(i-1) with f(-1) = -f(0), along the axis of `stride` and
// length `len` (difference_along in grid_ops.cpp, written per element).
SCTAPE_HD double corner_difference(const double* v, std::int64_t c, std::int64_t stride, int len) {
    const int i = int((c / stride) % len);
    return i == 0 ? 2.0 * v[c] : v[c] - v[c - stride];
}

// Value of the doubled-grid IGF at doubled index d (before the cast to the run's dtype).
SCTAPE_HD double green_mirror(const double* corner, std::int64_t d, int nx, int ny, int nz, double coulomb) {
    const int my = 2 * ny, mz = 2 * nz;
    const int k = int(d % mz);
    const int j = int((d / mz) % my);
    const int i = int(d / (std::int64_t(my) * mz));
    const int fi = mirror_fold(i, nx), fj = mirror_fold(j, ny), fk = mirror_fold(k, nz);
    // index n of the doubled grid is never reached by the cropped convolution
    return (fi < 0 || fj < 0 || fk < 0) ? 0.0 : coulomb * corner[(std::int64_t(fi) * ny + fj) * nz + fk];
}

// ---- convolve: zero padding, spectrum product, cropping ----

// Zero-padded copy of a node array at doubled index d.
template <class T>
SCTAPE_HD T pad_value(const T* cells, std::int64_t d, int nx, int ny, int nz) {
    const int my = 2 * ny, mz = 2 * nz;
    const int k = int(d % mz);
    const int j = int((d / mz) % my);
    const int i = int(d / (std::int64_t(my) * mz));
    return (i < nx && j < ny && k < nz) ? cells[(std::int64_t(i) * ny + j) * nz + k] : T(0);
}

// Doubled-grid index of node c (for cropping).
SCTAPE_HD std::int64_t crop_index(std::int64_t c, int ny, int nz) {
    const int k = int(c % nz);
    const int j = int((c / nz) % ny);
    const int i = int(c / (std::int64_t(ny) * nz));
    return (std::int64_t(i) * (2 * ny) + j) * (2 * nz) + k;
}

// a *= b * norm on (re, im) pairs, as the CPU's spec_a[c] *= spec_b[c] * norm.
template <class T>
SCTAPE_HD void spectrum_product(T& a_re, T& a_im, T b_re, T b_im, T norm) {
    const T br = b_re * norm, bi = b_im * norm;
    const T re = a_re * br - a_im * bi;
    const T im = a_re * bi + a_im * br;
    a_re = re;
    a_im = im;
}

// ---- field: -d(phi)/d(axis) at node c (field_from_potential) ----

// i is node c's index along the axis (a loop that walks the axes knows it).
template <class T>
SCTAPE_HD T field_component_at(const T* phi, std::int64_t c, std::int64_t stride, int i, int len, T inv_h, T inv_2h) {
    if (i == 0) return -(phi[c + stride] - phi[c]) * inv_h;
    if (i == len - 1) return -(phi[c] - phi[c - stride]) * inv_h;
    return -(phi[c + stride] - phi[c - stride]) * inv_2h;
}

template <class T>
SCTAPE_HD T field_component(const T* phi, std::int64_t c, std::int64_t stride, int len, T inv_h, T inv_2h) {
    return field_component_at(phi, c, stride, int((c / stride) % len), len, inv_h, inv_2h);
}

}  // namespace sctape::bodies
