// beams.hpp — beams, grids and comparisons shared by the kick tests (CPU,
// emulated kernel bodies, GPU): a 250 MeV electron ball, a 32^3 grid, and
// the max-over-particles difference relative to the rms of the kick.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <catch2/catch.hpp>

#include "physics/beam.hpp"
#include "physics/constants.hpp"
#include "physics/space_charge.hpp"

namespace sctape::test {

inline Reference ref250() { return Reference::from_kinetic(kElectronMass_eV, 250e6); }

inline BeamParameters sphere(std::int64_t n, DistributionType type = DistributionType::uniform_ellipsoid) {
    BeamParameters p;
    p.n_particles = n;
    p.bunch_charge_C = 10e-9;
    p.kinetic_energy_eV = 250e6;
    p.seed = 7;
    p.distribution.type = type;
    const double r = type == DistributionType::gaussian ? 0.4e-3 : 1e-3;
    p.distribution.size_m = {r, 0.8 * r, r / ref250().beta_gamma()};
    return p;
}

inline GridSettings grid32(ExtentMode mode = ExtentMode::minmax) {
    GridSettings g;
    g.shape = {32, 32, 32};
    g.mode = mode;
    return g;
}

inline double rms_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / double(v.size()));
}

template <class T>
std::vector<double> change(const HostArray<T>& after, const HostArray<T>& before) {
    std::vector<double> d(after.size());
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = double(after[i]) - double(before[i]);
    return d;
}

// max |a - b| / rms(reference change)
inline double relative_max_difference(const std::vector<double>& a, const std::vector<double>& b, double scale) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m / scale;
}

// Compares the momentum changes of two kicked copies of `start`, relative to
// the rms of the first copy's changes; positions relative to their rms.
template <class T>
void check_agreement(const Beam<T>& start, const Beam<T>& cpu, const Beam<T>& gpu, double tol_momentum,
                     double tol_position) {
    const char* names[3] = {"px", "py", "delta"};
    const HostArray<T>* s[3] = {&start.px, &start.py, &start.delta};
    const HostArray<T>* c[3] = {&cpu.px, &cpu.py, &cpu.delta};
    const HostArray<T>* g[3] = {&gpu.px, &gpu.py, &gpu.delta};
    for (int a = 0; a < 3; ++a) {
        const auto dc = change(*c[a], *s[a]), dg = change(*g[a], *s[a]);
        const double scale = rms_of(dc);
        REQUIRE(scale > 0);
        const double rel = relative_max_difference(dc, dg, scale);
        std::printf("  %-6s max|other - cpu| / rms(cpu kick) = %.3g (tolerance %.1g)\n", names[a], rel, tol_momentum);
        CHECK(rel <= tol_momentum);
    }
    const HostArray<T>* cp[3] = {&cpu.x, &cpu.y, &cpu.tau};
    const HostArray<T>* gp[3] = {&gpu.x, &gpu.y, &gpu.tau};
    for (int a = 0; a < 3; ++a) {
        std::vector<double> vc(cp[a]->begin(), cp[a]->end()), vg(gp[a]->begin(), gp[a]->end());
        const double rel = relative_max_difference(vc, vg, rms_of(vc));
        CHECK(rel <= tol_position);
    }
}

// Largest |a - b| over the largest |b| (0 when both vanish).
template <class A, class B>
double relative_to_max(const A& a, const B& b) {
    double d = 0, m = 0;
    for (std::size_t i = 0; i < std::size_t(b.size()); ++i) {
        d = std::max(d, std::abs(double(a[i]) - double(b[i])));
        m = std::max(m, std::abs(double(b[i])));
    }
    return m > 0 ? d / m : d;
}

}  // namespace sctape::test
