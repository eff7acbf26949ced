#include "physics/elements.hpp"

#include <algorithm>
#include <cmath>

namespace sctape {
namespace {

// A number with one derivative (forward mode), for d(map)/d(parameter).
struct Dual {
    double v = 0, d = 0;
    Dual(double value = 0, double derivative = 0) : v(value), d(derivative) {}
};
Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
Dual operator-(Dual a) { return {-a.v, -a.d}; }
Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }
Dual sin(Dual a) { return {std::sin(a.v), std::cos(a.v) * a.d}; }
Dual cos(Dual a) { return {std::cos(a.v), -std::sin(a.v) * a.d}; }
Dual sinh(Dual a) { return {std::sinh(a.v), std::cosh(a.v) * a.d}; }
Dual cosh(Dual a) { return {std::cosh(a.v), std::sinh(a.v) * a.d}; }
Dual sqrt(Dual a) {
    const double s = std::sqrt(a.v);
    return {s, a.d / (2 * s)};
}
double value(double a) { return a; }
double value(Dual a) { return a.v; }
double to_double(double a) { return a; }
double to_double(Dual a) { return a.v; }

// [[C, S], [-k S, C]] over length l and C - 1: cos/sin for k > 0, cosh/sinh
// for k < 0; near k l^2 = 0 their Taylor series (to (k l^2)^4, truncation
// under 1e-21 for |k l^2| < 1e-3), which keeps d/dk finite at k = 0 and C - 1
// free of cancellation.
template <class S>
struct Focusing {
    S c, s, c_minus_1;
};
template <class S>
Focusing<S> focusing(S k, S l) {
    using std::cos;
    using std::cosh;
    using std::sin;
    using std::sinh;
    using std::sqrt;
    const S x = k * l * l;
    if (std::fabs(value(x)) < 1e-3) {
        const S cm1 = x * (S(-1.0 / 2) + x * (S(1.0 / 24) + x * (S(-1.0 / 720) + x * S(1.0 / 40320))));
        const S s = l * (S(1.0) + x * (S(-1.0 / 6) + x * (S(1.0 / 120) + x * (S(-1.0 / 5040) + x * S(1.0 / 362880)))));
        return {S(1.0) + cm1, s, cm1};
    }
    if (value(k) > 0) {
        const S w = sqrt(k), h = sin(w * l * S(0.5));
        return {cos(w * l), sin(w * l) / w, S(-2.0) * h * h};
    }
    const S w = sqrt(-k), h = sinh(w * l * S(0.5));
    return {cosh(w * l), sinh(w * l) / w, S(2.0) * h * h};
}

template <class S>
struct Blocks {
    S m[3][4];     // a, b, c, d per block
    S minus1[3][2];  // a - 1, d - 1
};

template <class S>
void set_focusing(Blocks<S>& out, int k, const Focusing<S>& f, S strength) {
    out.m[k][0] = f.c;
    out.m[k][1] = f.s;
    out.m[k][2] = -strength * f.s;
    out.m[k][3] = f.c;
    out.minus1[k][0] = out.minus1[k][1] = f.c_minus_1;
}

template <class S>
void set_drift(Blocks<S>& out, int k, S b) {
    out.m[k][0] = S(1.0);
    out.m[k][1] = b;
    out.m[k][2] = S(0.0);
    out.m[k][3] = S(1.0);
    out.minus1[k][0] = out.minus1[k][1] = S(0.0);
}

// The blocks as functions of the parameters p (MapParameter order), in S.
template <class S>
Blocks<S> blocks(const Element& e, double fraction, const S p[kMapParameterCount]) {
    const S l = S(fraction) * p[0];
    const S bg = p[5];
    const S bg2 = bg * bg;
    Blocks<S> out;
    const S tau_b = -l / bg2;  // the drift's -L/(beta0 gamma0)^2, as tracking computed it
    switch (e.kind) {
        case ElementKind::drift:
            set_drift(out, kBlockX, l);
            set_drift(out, kBlockY, l);
            set_drift(out, kBlockTau, tau_b);
            break;
        case ElementKind::quadrupole:
            set_focusing(out, kBlockX, focusing(p[1], l), p[1]);
            set_focusing(out, kBlockY, focusing(-p[1], l), -p[1]);
            set_drift(out, kBlockTau, tau_b);
            break;
        case ElementKind::constant_focusing: {
            // ImpactX's convention: k [1/m] = sign(k) sqrt(|k|) of the quadrupole-like k [1/m^2]
            const S kx2 = value(p[2]) >= 0 ? p[2] * p[2] : -(p[2] * p[2]);
            const S ky2 = value(p[3]) >= 0 ? p[3] * p[3] : -(p[3] * p[3]);
            set_focusing(out, kBlockX, focusing(kx2, l), kx2);
            set_focusing(out, kBlockY, focusing(ky2, l), ky2);
            const S kt2 = p[4] * p[4];
            const Focusing<S> t = focusing(kt2, l);
            out.m[kBlockTau][0] = t.c;
            out.m[kBlockTau][1] = -t.s / bg2;
            out.m[kBlockTau][2] = kt2 * t.s * bg2;
            out.m[kBlockTau][3] = t.c;
            out.minus1[kBlockTau][0] = out.minus1[kBlockTau][1] = t.c_minus_1;
            break;
        }
    }
    return out;
}

template <class S>
void parameters(const Element& e, double beta_gamma, S p[kMapParameterCount]) {
    p[0] = S(e.length_m);
    p[1] = S(e.k1_per_m2);
    p[2] = S(e.kx_per_m);
    p[3] = S(e.ky_per_m);
    p[4] = S(e.kt_per_m);
    p[5] = S(beta_gamma);
}

template <class S>
ElementMap to_map(const Blocks<S>& b, bool derivative) {
    ElementMap m;
    for (int k = 0; k < 3; ++k) {
        double v[4];
        for (int i = 0; i < 4; ++i) v[i] = derivative ? Dual(b.m[k][i]).d : to_double(b.m[k][i]);
        m.block[k].a = v[0];
        m.block[k].b = v[1];
        m.block[k].c = v[2];
        m.block[k].d = v[3];
    }
    return m;
}

}  // namespace

std::string element_path(const Lattice& lattice, std::size_t i) {
    return lattice[i].source.empty() ? "lattice." + std::to_string(i) : lattice[i].source;
}

ElementMap element_map(const Element& element, double fraction, double beta_gamma) {
    double p[kMapParameterCount];
    parameters(element, beta_gamma, p);
    return to_map(blocks(element, fraction, p), false);
}

ElementMap element_map_derivative(const Element& element, double fraction, double beta_gamma, MapParameter which) {
    Dual p[kMapParameterCount];
    parameters(element, beta_gamma, p);
    p[static_cast<int>(which)].d = 1;
    return to_map(blocks(element, fraction, p), true);
}

std::array<std::array<double, 2>, 3> element_map_diagonal_minus_one(const Element& element, double fraction,
                                                                     double beta_gamma) {
    double p[kMapParameterCount];
    parameters(element, beta_gamma, p);
    const Blocks<double> b = blocks(element, fraction, p);
    std::array<std::array<double, 2>, 3> out{};
    for (int k = 0; k < 3; ++k) out[k] = {b.minus1[k][0], b.minus1[k][1]};
    return out;
}

double element_phase_advance(const Element& element, double fraction) {
    const double l = fraction * element.length_m;
    switch (element.kind) {
        case ElementKind::drift:
            return 0;
        case ElementKind::quadrupole:
            return std::sqrt(std::fabs(element.k1_per_m2)) * l;
        case ElementKind::constant_focusing:
            return std::max({element.kx_per_m, element.ky_per_m, element.kt_per_m, 0.0}) * l;
    }
    return 0;
}

}  // namespace sctape
