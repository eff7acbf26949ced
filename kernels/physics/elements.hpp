// elements.hpp — lattice elements and their linear maps, the same as
// ImpactX's (Drift, Quad, ConstF) with sctape's (tau, delta) = ImpactX's
// (t, -pt). Each element is cut into `slices`; a map covers a fraction of
// the element (half a slice with space charge, a whole slice without).
//
//   sctape::Element q{/*length_m=*/0.2, /*slices=*/4, sctape::ElementKind::quadrupole};
//   q.k1_per_m2 = 5.0;
//   sctape::ElementMap m = sctape::element_map(q, 0.125, beta_gamma);
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "physics/map_bodies.hpp"

namespace sctape {

enum class ElementKind { drift, quadrupole, constant_focusing };

struct Element {
    Element() = default;
    Element(double length, int slice_count, ElementKind element_kind = ElementKind::drift)
        : length_m(length), slices(slice_count), kind(element_kind) {}

    double length_m = 0;
    int slices = 1;
    ElementKind kind = ElementKind::drift;
    double k1_per_m2 = 0;  // quadrupole: k > 0 focuses in x
    double kx_per_m = 0, ky_per_m = 0, kt_per_m = 0;  // constant_focusing (ImpactX's ConstF)
    // The config path of the element this one was flattened from (e.g.
    // "lattice.1.lattice.0"); repetitions share it, and with it their
    // parameters' gradients. Empty: "lattice.<index in the flat list>".
    std::string source;
};
using Lattice = std::vector<Element>;

// The config path of element i (Element::source, or "lattice.<i>").
std::string element_path(const Lattice& lattice, std::size_t i);

// The map over fraction f of the element (length f L):
//   drift      x, y: [[1, l], [0, 1]];  tau: [[1, -l/(beta0 gamma0)^2], [0, 1]]
//   quadrupole x: focusing(k1), y: focusing(-k1), tau as the drift
//   constant_focusing x: focusing(kx |kx|), y: focusing(ky |ky|),
//              tau: [[C, -S/(beta0 gamma0)^2], [kt^2 S (beta0 gamma0)^2, C]] with C, S of focusing(kt^2)
// where focusing(k) = [[C, S], [-k S, C]], C = cos(sqrt(k) l), S = sin(sqrt(k) l)/sqrt(k)
// (cosh, sinh for k < 0, l for k = 0).
ElementMap element_map(const Element& element, double fraction, double beta_gamma);

// The differentiable parameters of an element map.
enum class MapParameter { length_m, k1_per_m2, kx_per_m, ky_per_m, kt_per_m, beta_gamma };
constexpr int kMapParameterCount = 6;
// d(map)/d(parameter), each block entry's derivative.
ElementMap element_map_derivative(const Element& element, double fraction, double beta_gamma, MapParameter p);

// C - 1 of each block's diagonal, computed without cancellation (the
// fixed-point factorisation divides it by b): [a - 1, d - 1] per block.
std::array<std::array<double, 2>, 3> element_map_diagonal_minus_one(const Element& element, double fraction,
                                                                     double beta_gamma);

// The largest phase advance |sqrt(k)| l over the focusing blocks of a map of
// fraction f (0 for drifts and defocusing planes).
double element_phase_advance(const Element& element, double fraction);

}  // namespace sctape
