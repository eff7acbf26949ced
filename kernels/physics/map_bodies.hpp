// map_bodies.hpp — the linear map of a lattice element over a fraction of its
// length, as three 2x2 blocks on (x, px), (y, py), (tau, delta), and the
// per-particle SCTAPE_HD bodies that apply it and its adjoint (the CPU loops
// and the CUDA kernels call exactly these). The blocks come from
// physics/elements.hpp (element_map).
//
//   sctape::ElementMap m = sctape::element_map(element, 0.5, beta_gamma);
//   sctape::apply_map_particle(m, x, px, y, py, tau, delta);
#pragma once

#include "core/hd.hpp"

namespace sctape {

// [[a, b], [c, d]] acting on (u, p_u).
struct MapBlock {
    double a = 1, b = 0, c = 0, d = 1;
};
enum MapBlockIndex { kBlockX = 0, kBlockY = 1, kBlockTau = 2 };
struct ElementMap {
    MapBlock block[3];
};

// A block of the drift's shape, u += b p_u: applied as that one shear, so a
// drift computes exactly what the drift-only trackers computed (bit for bit).
SCTAPE_HD bool is_shear(const MapBlock& m) { return m.a == 1 && m.c == 0 && m.d == 1; }

template <class T>
SCTAPE_HD void apply_block(const MapBlock& m, T& u, T& pu) {
    if (is_shear(m)) {
        u += T(m.b) * pu;
        return;
    }
    const T u0 = u, p0 = pu;
    u = T(m.a) * u0 + T(m.b) * p0;
    pu = T(m.c) * u0 + T(m.d) * p0;
}

template <class T>
SCTAPE_HD void apply_map_particle(const ElementMap& m, T& x, T& px, T& y, T& py, T& tau, T& delta) {
    apply_block(m.block[kBlockX], x, px);
    apply_block(m.block[kBlockY], y, py);
    apply_block(m.block[kBlockTau], tau, delta);
}

// The inverse of a block (det 1): [[d, -b], [-c, a]]. The reversible
// strategy's adjoints use it to rebuild a map's input from its output.
SCTAPE_HD MapBlock inverse_block(const MapBlock& m) {
    MapBlock inv;
    inv.a = m.d;
    inv.b = -m.b;
    inv.c = -m.c;
    inv.d = m.a;
    return inv;
}
SCTAPE_HD ElementMap inverse_map(const ElementMap& m) {
    ElementMap inv;
    for (int k = 0; k < 3; ++k) inv.block[k] = inverse_block(m.block[k]);
    return inv;
}

// Adjoint of one block given its input (u, p_u) and the adjoint of its output
// (u_adj, pu_adj, replaced by the input's): the input adjoint is M^T times the
// output adjoint, and sums[0..3] collect d/da, d/db, d/dc, d/dd (the outer
// product of output adjoint and input), from which parameter adjoints follow
// by the chain rule (add_map_adjoint). A shear block's u is not read when
// `has_u` is false (a drift saves only the momenta; its a, c, d are constants).
template <class T>
SCTAPE_HD void block_adjoint(const MapBlock& m, T u, T pu, bool has_u, T& u_adj, T& pu_adj, double sums[4]) {
    sums[1] += double(u_adj) * double(pu);
    sums[3] += double(pu_adj) * double(pu);
    if (has_u) {
        sums[0] += double(u_adj) * double(u);
        sums[2] += double(pu_adj) * double(u);
    }
    if (is_shear(m)) {
        pu_adj += T(m.b) * u_adj;
        return;
    }
    const T ua = u_adj, pa = pu_adj;
    u_adj = T(m.a) * ua + T(m.c) * pa;
    pu_adj = T(m.b) * ua + T(m.d) * pa;
}

// Adjoint of apply_map_particle: in[6] the map's input (x, px, y, py, tau,
// delta order), adj[6] the adjoints (output's in, input's out), sums[12] the
// three blocks' sums of block_adjoint.
template <class T>
SCTAPE_HD void map_adjoint_particle(const ElementMap& m, const T in[6], bool has_positions, T* adj[6],
                                    double sums[12]) {
    for (int k = 0; k < 3; ++k)
        block_adjoint(m.block[k], in[2 * k], in[2 * k + 1], has_positions, *adj[2 * k], *adj[2 * k + 1], sums + 4 * k);
}

}  // namespace sctape
