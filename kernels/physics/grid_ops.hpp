// grid_ops.hpp — the grid-side work of a kick on the CPU, as free functions on
// explicit arrays, each with its adjoint: cloud-in-cell deposit and gather,
// the IGF on the doubled grid, Hockney convolution, and the field stencil.
// SpaceChargeKick runs the forward ones; the `fused` strategy runs both.
//
// Arrays of node values are indexed (i*ny + j)*nz + k. Adjoint functions
// accumulate (+=) into their outputs.
//
//   sctape::deposit_cic(geometry, pos, n, scale, threads, scratch, rho);
//   sctape::HockneyConvolver<double> conv(geometry.n, threads);
//   conv.convolve(rho, green_doubled, phi);
#pragma once

#include <array>
#include <complex>
#include <cstdint>
#include <memory>

#include "core/fft_cpu.hpp"
#include "core/memory.hpp"
#include "physics/space_charge.hpp"

namespace sctape {

// rho[node] = scale * sum_p W(p, node); `scratch` holds one grid per thread
// after the first (none on one thread).
template <class T>
void deposit_cic(const GridGeometry& g, const T* const pos[3], std::int64_t n, T scale, int threads,
                 HostArray<T>& scratch, T* rho);
// The fixed-point deposit: sum[node] = sum_p round(W(p, node) * one) in
// integers (bodies::to_fixed_point), the same bits in any order and on any
// split of the particles; `scratch` holds one integer grid per thread.
template <class T>
void deposit_cic_fixed(const GridGeometry& g, const T* const pos[3], std::int64_t n, double one, int threads,
                       HostArray<std::int64_t>& scratch, std::int64_t* sum);
// Given rho_adj: position adjoints (+=) and geometry adjoint (+=); returns d/d(scale).
// exact (the deterministic mode, physics/exact_sums.hpp): the geometry's and
// the scale's sums are exact over every rank's particles (reduced here, on
// every rank), the same bits for any thread count and rank split; otherwise
// they are this rank's, in float64.
template <class T>
double deposit_cic_adjoint(const GridGeometry& g, const T* const pos[3], std::int64_t n, T scale,
                           const T* rho_adj, int threads, T* const pos_adj[3], GeometryAdjoint& geo_adj,
                           bool exact = false);

// e_part[a][p] = sum_node W(p, node) e_grid[a][node].
template <class T>
void gather_cic(const GridGeometry& g, const T* const pos[3], std::int64_t n, const T* const e_grid[3],
                T* const e_part[3], int threads);
// Given e_part_adj: grid adjoints (+=; `scratch` holds the threads' after the
// first, none on one thread), position and geometry adjoints (+=).
// exact: the grid's sums in 128-bit fixed point (fixed_point.hpp: grid_sum_bits)
// and the geometry's exact, both over every rank's particles (reduced here);
// otherwise this rank's, in float64 (T for the grid).
template <class T>
void gather_cic_adjoint(const GridGeometry& g, const T* const pos[3], std::int64_t n, const T* const e_grid[3],
                        const T* const e_part_adj[3], int threads, HostArray<T>& scratch, T* const e_grid_adj[3],
                        T* const pos_adj[3], GeometryAdjoint& geo_adj, bool exact = false);

// The IGF times 1/(4 pi eps0) mirrored into the doubled grid (2nx x 2ny x 2nz),
// with z cells scaled by gamma (modified Poisson equation), built in float64.
// With `gradient`, also the corner lattice's gradient, which shares its
// transcendentals: an adjoint that rebuilds the IGF gets it nearly free.
template <class T>
void build_green(const GridGeometry& g, double gamma, int threads, T* green_doubled,
                 CornerGradient* gradient = nullptr);
// Given the doubled grid's adjoint: geometry adjoint (+=) and d/d(gamma)
// (returned). The reference the folded form below is tested against.
template <class T>
double build_green_adjoint(const GridGeometry& g, double gamma, const T* green_doubled_adj, int threads,
                           GeometryAdjoint& geo_adj);
// The same given the adjoint folded onto the first octant (n0 x n1 x n2: each
// node's mirror images summed, as HockneyConvolver::convolve_adjoint_even gives it).
// `gradient`, when given, is build_green's for this geometry (else recomputed).
template <class T>
double build_green_adjoint_folded(const GridGeometry& g, double gamma, const T* green_folded_adj, int threads,
                                  const CornerGradient* gradient, GeometryAdjoint& geo_adj);

// d/d(theta_z) of build_green's first octant (n0 x n1 x n2, float64), theta_z
// = gamma hz the IGF's z cell: the corner lattice's z gradient times the
// corner's z index, differenced and scaled as build_green does the values.
void build_green_z_cell_derivative(const GridGeometry& g, double gamma, int threads, HostArray<double>& octant);
// From the adjoint of the IGF cells theta = (hx, hy, gamma hz) to the geometry
// adjoint (+=); returns d/d(gamma).
double add_green_cells_adjoint(const GridGeometry& g, double gamma, const double theta_adj[3],
                               GeometryAdjoint& geo_adj);

// E[a] = -d(phi)/d(axis a): centred inside, one-sided on boundary nodes.
template <class T>
void field_from_potential(const GridGeometry& g, const T* phi, T* const e[3], int threads);
template <class T>
void field_from_potential_adjoint(const GridGeometry& g, const T* const e[3], const T* const e_adj[3], int threads,
                                  T* phi_adj, GeometryAdjoint& geo_adj);

// Hockney's free-space convolution on the doubled grid. rho fills one octant
// of it and only one octant of phi is kept, so rho and phi (and their
// adjoints) go through PaddedFft3d, which skips the zeros. The kick's Green
// function is even (mirrored), so its spectrum is real: it is computed once
// per geometry (green_spectrum) and multiplied in (the *_even functions).
template <class T>
class HockneyConvolver {
public:
    HockneyConvolver(std::array<int, 3> n, int threads);
    // phi = crop(pad(rho) (*) green_doubled), for any green
    void convolve(const T* rho, const T* green_doubled, T* phi);
    // the same for an even green given by green_spectrum's output
    void convolve_even(const T* rho, const T* green_spectrum, T* phi);
    // The real DFT of an even green (G[2n - i] = G[i] along each axis, as
    // build_green makes it) divided by the doubled grid's size, at
    // frequencies 0..n of each axis (green_spectrum_size() values).
    void green_spectrum(const T* green_doubled, T* spectrum);
    // rho_adj += crop(pad(phi_adj) correlated with green_doubled);
    // green_doubled_adj = pad(phi_adj) correlated with pad(rho) (overwritten).
    void convolve_adjoint(const T* rho, const T* green_doubled, const T* phi_adj, T* rho_adj, T* green_doubled_adj);
    // The same for an even green given by its spectrum (correlation with it
    // is convolution). The green's adjoint comes folded onto the first octant
    // (n0 x n1 x n2, overwritten): the sum over each node's mirror images, all
    // a green built by build_green can use.
    void convolve_adjoint_even(const T* rho, const T* green_spectrum, const T* phi_adj, T* rho_adj,
                               T* green_folded_adj);
    // The same, with the green's adjoint carried on to the IGF's z cell:
    // given z_derivative = d(green_spectrum)/d(theta_z), returns the sum over
    // the doubled grid's frequencies of it times Re(A conj R), A and R the
    // spectra of pad(phi_adj) and pad(rho) (Parseval): d/d(theta_z) with no
    // inverse transform and no IGF, for a geometry whose derivative is at hand.
    double convolve_adjoint_even_to_z_cell(const T* rho, const T* green_spectrum, const T* phi_adj, T* rho_adj,
                                           const T* z_derivative);
    // green_spectrum's transform for a green given by its first octant
    // (n0 x n1 x n2, float64; the value at index n of the doubled grid is 0).
    void octant_spectrum(const double* octant, T* spectrum);
    std::int64_t doubled_size() const { return fft_.real_size(); }
    std::int64_t green_spectrum_size() const { return even_.size(); }
    // the full doubled-grid transforms (a general green, the green's adjoint)
    const RealFft3d<T>& doubled_fft() const { return fft_; }

private:
    void multiply_even(std::complex<T>* spectrum, const T* green_spectrum) const;
    // rho_adj += the correlation part of convolve_adjoint_even; leaves spec_a_ = A, spec_b_ = R
    void rho_adjoint_even(const T* rho, const T* green_spectrum, const T* phi_adj, T* rho_adj);
    // spec_b_ = FFT(green_doubled) / M
    void transform_green(const T* green_doubled);
    // green_doubled_adj = c2r(spec_a_ * conj(spec_b_)) / M with spec_b_ = FFT(pad(rho))
    void green_adjoint(const T* rho, T* green_doubled_adj);
    // green_adjoint's output folded onto the first octant, from spec_a_ = A
    // and spec_b_ = R without the doubled grid
    void green_folded_adjoint(T* green_folded_adj);

    std::array<int, 3> n_;
    int threads_;
    RealFft3d<T> fft_;
    PaddedFft3d<T> padded_;
    EvenDft3d<T> even_;
    HostArray<T> work_a_, octant_;
    HostArray<std::complex<T>> spec_a_, spec_b_;
};

// Adjoint of grid_covering: the geometry adjoint flows to the particles that
// set the grid (min/max particles, or every particle through mean and rms).
// exact: sigma mode's mean and rms from exact sums (as grid_covering's).
template <class T>
void grid_covering_adjoint(const GridSettings& settings, const T* const pos[3], std::int64_t n,
                           const GeometryAdjoint& geo_adj, T* const pos_adj[3], bool exact = false);

}  // namespace sctape
