// kick_math.hpp — the per-particle and per-cell math of one space-charge kick,
// as small SCTAPE_HD functions. The CPU loops (space_charge.cpp) and the CUDA
// kernels call exactly these, so the CPU tests cover the GPU's math.
//
// Conventions (docs/physics.md): Cheetah's (x, px, y, py, tau, delta); inside the
// kick, momenta are normalized to p0 (P/p0) and z = -beta0*tau is the
// fixed-time longitudinal position.
#pragma once

#include <cmath>

#include "core/hd.hpp"

namespace sctape {

// Hockney's doubled grid along one axis of n nodes: doubled index i -> the
// node it mirrors (i < n: i; i > n: 2n - i), or -1 on the zero plane i == n.
SCTAPE_HD int mirror_fold(int i, int n) { return i < n ? i : (i == n ? -1 : 2 * n - i); }

// Cloud-in-cell location of coordinate u on nodes origin + i*h, i = 0..n-1:
// the lower node index (clamped to n-2, so a particle on the last node still
// puts all its charge on the grid) and the weight of the upper node.
template <class T>
struct CicLocation {
    int index;
    T upper_weight;
};

template <class T>
SCTAPE_HD CicLocation<T> cic_locate(T u, T origin, T inv_h, int n) {
    T s = (u - origin) * inv_h;
    // floor by truncation: std::floor is a libm call on baseline x86-64 (no
    // SSE4.1), a third of the deposit's time. Bounding s first keeps the cast
    // defined (NaN goes to -1). Truncation and floor differ only on negative
    // s, where the clamp below makes both 0: no correction is needed.
    const T bounded = s >= T(-1) ? (s <= T(n) ? s : T(n)) : T(-1);
    int i = static_cast<int>(bounded);
    if (i > n - 2) i = n - 2;
    if (i < 0) i = 0;
    return {i, s - static_cast<T>(i)};
}

// The transcendental terms of the antiderivative of 1/r and of its gradient:
// asinh(x_a / sqrt(sum of the other squares)) and atan(product of the others
// / (x_a r)), a = x, y, z.
struct IgfTerms {
    double asinh_term[3], atan_term[3];
};

SCTAPE_HD IgfTerms igf_terms(double x, double y, double z) {
    const double x2 = x * x, y2 = y * y, z2 = z * z;
    const double r = std::sqrt(x2 + y2 + z2);
    return {{std::asinh(x / std::sqrt(y2 + z2)), std::asinh(y / std::sqrt(x2 + z2)), std::asinh(z / std::sqrt(x2 + y2))},
            {std::atan(y * z / (x * r)), std::atan(x * z / (y * r)), std::atan(x * y / (z * r))}};
}

// Antiderivative of 1/r (paper Eq. 5, without 1/(4 pi eps0)); odd in each
// argument, never evaluated at a zero coordinate (corners sit at half cells).
SCTAPE_HD double igf_antiderivative_of(double x, double y, double z, const IgfTerms& t) {
    const double x2 = x * x, y2 = y * y, z2 = z * z;
    return y * z * t.asinh_term[0] + x * z * t.asinh_term[1] + x * y * t.asinh_term[2] - 0.5 * z2 * t.atan_term[2] -
           0.5 * y2 * t.atan_term[1] - 0.5 * x2 * t.atan_term[0];
}

SCTAPE_HD double igf_antiderivative(double x, double y, double z) {
    return igf_antiderivative_of(x, y, z, igf_terms(x, y, z));
}

// Gradient of igf_antiderivative: d g / d x etc. (the 2D antiderivatives of 1/r).
SCTAPE_HD void igf_antiderivative_gradient_of(double x, double y, double z, const IgfTerms& t, double grad[3]) {
    grad[0] = z * t.asinh_term[1] + y * t.asinh_term[2] - x * t.atan_term[0];
    grad[1] = z * t.asinh_term[0] + x * t.asinh_term[2] - y * t.atan_term[1];
    grad[2] = y * t.asinh_term[0] + x * t.asinh_term[1] - z * t.atan_term[2];
}

SCTAPE_HD void igf_antiderivative_gradient(double x, double y, double z, double grad[3]) {
    igf_antiderivative_gradient_of(x, y, z, igf_terms(x, y, z), grad);
}

// Total momentum over p0 of a particle with energy deviation delta:
// E/(p0 c) = 1/beta0 + delta, (p/p0)^2 = (E/(p0 c))^2 - 1/(beta0 gamma0)^2.
template <class T>
SCTAPE_HD T momentum_squared(T delta, T inv_beta0, T inv_bg0_sq) {
    T e = inv_beta0 + delta;
    return e * e - inv_bg0_sq;
}

// s_to_t for one particle: longitudinal momentum pz (over p0) and z.
template <class T>
SCTAPE_HD void s_to_t_particle(T px, T py, T tau, T delta, T beta0, T inv_beta0, T inv_bg0_sq,
                               T& z, T& pz) {
    z = -beta0 * tau;
    pz = std::sqrt(momentum_squared(delta, inv_beta0, inv_bg0_sq) - px * px - py * py);
}

// t_to_s for one particle: the new delta from old and new momenta, written
// as delta + d(p^2)/(E_new + E_old) so float32 keeps the small energy change.
template <class T>
SCTAPE_HD T t_to_s_delta(T delta, T px_old, T py_old, T pz_old, T px, T py, T pz, T inv_beta0,
                         T inv_bg0_sq) {
    T dp2 = (px + px_old) * (px - px_old) + (py + py_old) * (py - py_old) +
            (pz + pz_old) * (pz - pz_old);
    T e_old = inv_beta0 + delta;
    T e_new = std::sqrt(px * px + py * py + pz * pz + inv_bg0_sq);
    return delta + dp2 / (e_new + e_old);
}

// Adjoint of s_to_t_particle's pz: accumulates into px, py, delta adjoints and
// returns the contributions to d/d(1/beta0) and d/d(1/(beta0 gamma0)^2).
template <class T>
SCTAPE_HD void s_to_t_pz_adjoint(T px, T py, T delta, T pz, T pz_adj, T inv_beta0, T& px_adj, T& py_adj,
                                 T& delta_adj, double& inv_beta0_adj, double& inv_bg0_sq_adj) {
    const T r = pz_adj / pz;
    px_adj -= r * px;
    py_adj -= r * py;
    delta_adj += r * (inv_beta0 + delta);
    inv_beta0_adj += double(r) * (inv_beta0 + delta);
    inv_bg0_sq_adj -= 0.5 * double(r);
}

// ---- per-particle adjoints, shared by the CPU fused adjoints (ad/cpu_engine.cpp) and
// the CUDA backward kernels. `_adj` arguments are adjoints, updated in place;
// double sums collect the adjoints of the run's scalars.

// Adjoint of s_to_t: z = -beta0 tau and pz from (px, py, delta).
template <class T>
SCTAPE_HD void s_to_t_adjoint_particle(T px, T py, T tau, T delta, T pz, T z_adj, T pz_adj, T beta0, T inv_beta0,
                                       T& px_adj, T& py_adj, T& tau_adj, T& delta_adj, double& beta0_adj,
                                       double& inv_beta0_adj, double& inv_bg0_sq_adj) {
    tau_adj -= beta0 * z_adj;
    beta0_adj -= double(tau) * z_adj;
    s_to_t_pz_adjoint(px, py, delta, pz, pz_adj, inv_beta0, px_adj, py_adj, delta_adj, inv_beta0_adj, inv_bg0_sq_adj);
}

// Adjoint of t_to_s after a push dP: px' = px + dpx, py' = py + dpy and
// delta' = |P + dP|_E - 1/beta0 (what t_to_s_delta computes, written for
// float32), which does not depend on delta. Reads the adjoints of px', py',
// delta'; leaves those of px, py (equal to those of dpx, dpy), sets pz's (equal
// to dpz's) and zeroes delta's.
template <class T>
SCTAPE_HD void t_to_s_adjoint_particle(T px, T py, T pz, T dpx, T dpy, T dpz, T inv_bg0_sq, T& px_adj, T& py_adj,
                                       T& delta_adj, T& pz_adj, double& inv_beta0_adj, double& inv_bg0_sq_adj) {
    const T px1 = px + dpx, py1 = py + dpy, pz1 = pz + dpz;
    const T e_new = std::sqrt(px1 * px1 + py1 * py1 + pz1 * pz1 + inv_bg0_sq);
    const T d = delta_adj;
    px_adj = px_adj + d * px1 / e_new;
    py_adj = py_adj + d * py1 / e_new;
    pz_adj = d * pz1 / e_new;
    delta_adj = 0;
    inv_beta0_adj -= d;
    inv_bg0_sq_adj += 0.5 * double(d) / e_new;
}

}  // namespace sctape
