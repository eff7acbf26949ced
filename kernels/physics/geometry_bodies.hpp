// geometry_bodies.hpp — the kick's grid geometry as SCTAPE_HD functions, so
// that the CUDA backend computes and uses it on the device with no read-back
// in the middle of a kick, with the CPU's very arithmetic:
//
//   per-axis extents   ExtentAcc, extent_add, extent_combine (the device's
//                      fixed-shape tree reduction; grid_covering on the CPU)
//   geometry           axis_grid: geometry_from_extents's formulas and checks,
//                      which the CPU calls too (space_charge.cpp)
//   the kick's frame   kick_frame: geometry, CIC frame, deposit scale, field
//                      stencil and IGF cell sizes (SpaceChargeKick's conversions)
//   IGF reuse          green_key_repeats: the CPU's rule (same cell sizes and
//                      gamma, bit for bit)
//   backward           finish_sum (the block sums in the host's old order),
//                      the geometry adjoint's updates and grid_covering's
//                      adjoint terms (GpuAdjoint's former host arithmetic)
//
// Every product that feeds a sum goes through mul_rn, which the device never
// contracts into an FMA, so the device's results equal the host's bit for
// bit. The [gpu-emulation] tests (tests/test_kernel_bodies.cpp) run these on
// the CPU against the CPU path.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/hd.hpp"
#include "physics/kick_bodies.hpp"
#include "physics/space_charge.hpp"

namespace sctape::bodies {

// a * b, never fused with a following add (the host's x86-64 baseline has no FMA).
SCTAPE_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}

// std::max(x, 0.0) (a NaN stays a NaN, as on the CPU).
SCTAPE_HD double not_below_zero(double x) { return x < 0.0 ? 0.0 : x; }

// Whether two doubles have the same bits (the CPU's memcmp of the IGF key).
SCTAPE_HD bool same_bits(double a, double b) {
    std::uint64_t ua, ub;
    std::memcpy(&ua, &a, sizeof a);
    std::memcpy(&ub, &b, sizeof b);
    return ua == ub;
}

// ---- per-axis extents

// Min, max, sum and sum of squares of the finite coordinates of one axis and
// the count of the others (AxisExtent on the host).
struct ExtentAcc {
    double lo, hi, sum, sum2;
    unsigned long long non_finite;
};

SCTAPE_HD ExtentAcc empty_extent() { return {HUGE_VAL, -HUGE_VAL, 0.0, 0.0, 0ull}; }

SCTAPE_HD void extent_add(ExtentAcc& a, double v) {
    if (std::isfinite(v)) {
        a.lo = std::fmin(a.lo, v);
        a.hi = std::fmax(a.hi, v);
        a.sum += v;
        a.sum2 += mul_rn(v, v);
    } else {
        ++a.non_finite;
    }
}

SCTAPE_HD void extent_combine(ExtentAcc& a, const ExtentAcc& b) {
    a.lo = std::fmin(a.lo, b.lo);
    a.hi = std::fmax(a.hi, b.hi);
    a.sum += b.sum;
    a.sum2 += b.sum2;
    a.non_finite += b.non_finite;
}

// ---- geometry

// GridSettings without std::array (a kernel argument), with its
// extent_jacobian per axis (how origin and cell follow the two extent
// statistics: lo, hi or mean, rms).
struct ExtentRule {
    int n[3];
    bool sigma;
    double padding;
    double sigma_factor[3];
    double cell_quantum;
    double jacobian_origin[3][2], jacobian_cell[3][2];
};

inline ExtentRule extent_rule(const GridSettings& s) {
    ExtentRule r{};
    for (int a = 0; a < 3; ++a) {
        r.n[a] = s.shape[a];
        r.sigma_factor[a] = s.sigma_factor[a];
        const ExtentJacobian j = extent_jacobian(s, a);
        for (int k = 0; k < 2; ++k) {
            r.jacobian_origin[a][k] = j.origin[k];
            r.jacobian_cell[a][k] = j.cell[k];
        }
    }
    r.sigma = s.mode == ExtentMode::sigma;
    r.padding = s.padding;
    r.cell_quantum = s.cell_quantum;
    return r;
}

// What can be wrong with a kick's grid (the host turns each into the CPU's message).
enum KickError : int {
    kKickOk = 0,
    kKickNonFinitePz = 1,          // kNonFinitePzMessage
    kKickNonFiniteCoordinate = 2,  // "non-finite particle coordinate along <axis>"
    kKickZeroExtent = 3,           // "beam has zero extent along <axis>"
    kKickOutsideGrid = 4,          // "particles outside the grid along <axis>: ..."
};

// Grid edges first, last of axis a (nodes first + i cell); returns a
// KickError. Edges are lo - margin and hi + margin, so with padding 0 the
// extreme particles sit exactly on the first and last nodes.
SCTAPE_HD int axis_grid(const ExtentRule& r, int a, const ExtentAcc& e, std::int64_t n, double& first,
                        double& last) {
    first = last = 0;
    if (e.non_finite > 0) return kKickNonFiniteCoordinate;
    if (!r.sigma) {
        const double margin = mul_rn(mul_rn(0.5, e.hi - e.lo), r.padding);
        first = e.lo - margin;
        last = e.hi + margin;
    } else {
        const double mean = e.sum / double(n);
        const double half = mul_rn(r.sigma_factor[a], std::sqrt(not_below_zero(e.sum2 / double(n) - mul_rn(mean, mean))));
        first = mean - half;
        last = mean + half;
    }
    if (!(last > first)) return kKickZeroExtent;
    if (e.lo < first || e.hi > last) return kKickOutsideGrid;
    return kKickOk;
}

SCTAPE_HD double cell_size(double first, double last, int nodes) { return (last - first) / (nodes - 1); }

// The cell size rounded up to the next power of (1 + quantum) (quantized_cell
// on the host). The device's log and exp may differ from the host's by an
// ulp, so there the quantized cell can differ in its last bit; it still
// repeats bit for bit from kick to kick.
SCTAPE_HD double quantized_cell_size(double cell_m, double quantum) {
    const double step = std::log1p(quantum);
    const double k = std::ceil(std::log(cell_m) / step);
    const double cell = std::exp(k * step);
    if (cell >= cell_m) return cell;
    const double next = std::exp((k + 1) * step);  // log's rounding may land one step low
    return next >= cell_m ? next : cell_m;          // never below the exact cell
}

// Origin and cell of axis a from the grid's edges: the exact grid, or with
// cell_quantum > 0 the wider quantized grid, centred where the exact one was.
SCTAPE_HD void axis_cells(const ExtentRule& r, int a, double first, double last, double& origin, double& cell) {
    origin = first;
    cell = cell_size(first, last, r.n[a]);
    if (r.cell_quantum > 0) {
        cell = quantized_cell_size(cell, r.cell_quantum);
        origin = mul_rn(0.5, first + last) - mul_rn(0.5 * (r.n[a] - 1), cell);
    }
}

// Everything a kick's kernels read of its grid, computed on the device from
// the extents (the CPU's GridGeometry, CicGrid, deposit scale, field stencil
// and IGF cell sizes, with the same conversions).
template <class T>
struct KickFrame {
    double origin[3], cell[3];  // GridGeometry::origin_m, cell_m
    CicGrid<T> cic;
    T deposit_scale;            // macro charge / cell volume, C/m^3
    T inv_h[3], inv_2h[3];      // the field stencil
    double green_h[3];          // the IGF's cell sizes (z times gamma)
    int green_stale;            // 1: the IGF must be rebuilt (green_key_repeats)
};

// The frame of a kick from its extents; returns a KickError and its axis
// (the first failing axis, in x, y, z order, as geometry_from_extents). On
// an error the frame is a unit grid, so the kernels that still run index in
// bounds until the host raises the error.
template <class T>
SCTAPE_HD int kick_frame(const ExtentRule& r, const ExtentAcc ext[3], std::int64_t n, double macro_charge_C,
                         double gamma, KickFrame<T>& f, int& error_axis) {
    int error = kKickOk;
    error_axis = 0;
    for (int a = 0; a < 3 && error == kKickOk; ++a) {
        double first, last;
        error = axis_grid(r, a, ext[a], n, first, last);
        axis_cells(r, a, first, last, f.origin[a], f.cell[a]);
        error_axis = a;
    }
    if (error != kKickOk)
        for (int a = 0; a < 3; ++a) f.origin[a] = 0, f.cell[a] = 1;
    const double volume = mul_rn(mul_rn(f.cell[0], f.cell[1]), f.cell[2]);
    f.deposit_scale = T(macro_charge_C / volume);
    for (int a = 0; a < 3; ++a) {
        f.cic.n[a] = r.n[a];
        f.cic.origin[a] = T(f.origin[a]);
        f.cic.inv_h[a] = T(1 / f.cell[a]);
        f.inv_h[a] = T(1.0 / f.cell[a]);
        f.inv_2h[a] = T(0.5 / f.cell[a]);
    }
    f.green_h[0] = f.cell[0];
    f.green_h[1] = f.cell[1];
    f.green_h[2] = mul_rn(gamma, f.cell[2]);
    return error;
}

// The IGF of the last build: its key (cell sizes, gamma) and whether it is
// still in place (an adjoint overwrites it).
struct GreenCache {
    double key[4];
    int valid;
};

// The CPU's reuse rule (SpaceChargeKick::green): the IGF depends on the cell
// sizes and gamma only; when both repeat bit for bit the last one is reused.
// Updates the cache; returns whether the IGF must be rebuilt.
SCTAPE_HD bool green_needs_build(GreenCache& c, const double cell[3], double gamma) {
    const double key[4] = {cell[0], cell[1], cell[2], gamma};
    bool same = c.valid != 0;
    for (int i = 0; i < 4; ++i) same = same && same_bits(key[i], c.key[i]);
    if (same) return false;
    for (int i = 0; i < 4; ++i) c.key[i] = key[i];
    c.valid = 1;
    return true;
}

// ---- backward

// Sum k of a sum kernel's partials, in block order (the host's former order).
SCTAPE_HD double finish_sum(const double* partials, int blocks, int k) {
    double s = 0;
    for (int b = 0; b < blocks; ++b) s += partials[std::int64_t(k) * blocks + b];
    return s;
}

// The grid geometry's adjoint (GeometryAdjoint), kept on the device.
struct GeometryAdjointAcc {
    double origin[3], cell[3];
};

// origin[a] += s[origin_at + a], cell[a] += s[cell_at + a] (the gather's and the deposit's sums).
SCTAPE_HD void add_geometry_sums(GeometryAdjointAcc& g, const double* s, int origin_at, int cell_at) {
    for (int a = 0; a < 3; ++a) {
        g.origin[a] += s[origin_at + a];
        g.cell[a] += s[cell_at + a];
    }
}

// The IGF's cell-size adjoint h (h_z = gamma cell_z): into the geometry's,
// and returns gamma's share, cell_z h_z.
SCTAPE_HD double add_green_adjoint(GeometryAdjointAcc& g, const double h[3], double gamma, double cell_z) {
    g.cell[0] += h[0];
    g.cell[1] += h[1];
    g.cell[2] += mul_rn(gamma, h[2]);
    return mul_rn(cell_z, h[2]);
}

// The deposit scale = +-Q / (N hx hy hz): its adjoint v = scale d/d(scale)
// into the cell sizes'; returns v (the host adds v / Q to the charge's).
SCTAPE_HD double add_deposit_scale_adjoint(GeometryAdjointAcc& g, double scale_sum, double scale, const double cell[3]) {
    const double v = mul_rn(scale_sum, scale);
    for (int a = 0; a < 3; ++a) g.cell[a] -= v / cell[a];
    return v;
}

// grid_covering's adjoint along one axis: minmax mode adds lo_adj to the
// first particle at lo and hi_adj to the first at hi; sigma mode gives every
// particle sigma_grid_adjoint(u, mean, rms, n, mean_adj, rms_adj).
struct CoveringAdjoint {
    double lo, hi, lo_adj, hi_adj;
    double mean, rms, mean_adj, rms_adj;
};

SCTAPE_HD CoveringAdjoint covering_adjoint(const ExtentRule& r, int a, const ExtentAcc& e, std::int64_t n,
                                           const GeometryAdjointAcc& g) {
    CoveringAdjoint c{};
    const double o_adj = g.origin[a], h_adj = g.cell[a];
    // the adjoints of the two extent statistics (lo, hi or mean, rms)
    const double stat_adj[2] = {mul_rn(o_adj, r.jacobian_origin[a][0]) + mul_rn(h_adj, r.jacobian_cell[a][0]),
                                mul_rn(o_adj, r.jacobian_origin[a][1]) + mul_rn(h_adj, r.jacobian_cell[a][1])};
    c.lo = e.lo;
    c.hi = e.hi;
    if (!r.sigma) {
        c.lo_adj = stat_adj[0];
        c.hi_adj = stat_adj[1];
    } else {
        c.mean = e.sum / double(n);
        c.rms = std::sqrt(not_below_zero(e.sum2 / double(n) - mul_rn(c.mean, c.mean)));
        c.mean_adj = stat_adj[0];
        c.rms_adj = stat_adj[1];
    }
    return c;
}

}  // namespace sctape::bodies
