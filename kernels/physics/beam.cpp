#include "physics/beam.hpp"

#include <cmath>
#include <random>
#include <stdexcept>

#include "physics/exact_sums.hpp"

namespace sctape {
namespace {

// Uniform in [0, 1) with 53 random bits; mt19937_64 is fully specified by the
// standard, so samples are identical on every platform.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Box-Muller, written out so the sample does not depend on the C++ library.
std::array<double, 2> standard_normal_pair(std::mt19937_64& rng) {
    double u1 = 1.0 - uniform01(rng);  // (0, 1]
    double u2 = uniform01(rng);
    double r = std::sqrt(-2.0 * std::log(u1));
    return {r * std::cos(2.0 * kPi * u2), r * std::sin(2.0 * kPi * u2)};
}

// A point uniform in the 6D unit-rms waterbag: uniform in the 6-ball of
// radius sqrt(8) (each coordinate of a uniform n-ball of radius R has
// variance R^2/(n + 2)), drawn as a normal direction times R u^(1/6).
std::array<double, 6> waterbag_point(std::mt19937_64& rng) {
    std::array<double, 6> v;
    double norm2 = 0;
    do {
        for (int k = 0; k < 3; ++k) {
            const auto pair = standard_normal_pair(rng);
            v[2 * k] = pair[0];
            v[2 * k + 1] = pair[1];
        }
        norm2 = 0;
        for (double c : v) norm2 += c * c;
    } while (!(norm2 > 0));
    const double radius = std::sqrt(8.0) * std::pow(uniform01(rng), 1.0 / 6.0) / std::sqrt(norm2);
    for (double& c : v) c *= radius;
    return v;
}

}  // namespace

ReferenceSample make_reference_sample(DistributionType type, std::int64_t n, std::uint64_t seed) {
    return make_reference_sample(type, n, seed, ParticleRange{0, n});
}

ReferenceSample make_reference_sample(DistributionType type, std::int64_t n, std::uint64_t seed, ParticleRange range) {
    if (n <= 0) throw std::invalid_argument("n_particles must be positive");
    if (range.begin < 0 || range.end > n || range.begin > range.end)
        throw std::invalid_argument("make_reference_sample: particle range outside [0, n_particles)");
    ReferenceSample s;
    for (auto& c : s.column) c.resize(static_cast<std::size_t>(range.size()));
    std::mt19937_64 rng(seed);
    // draws particle g, kept at index g - begin when this range holds it
    for (std::int64_t g = 0; g < range.end; ++g) {
        const bool keep = g >= range.begin;
        const std::int64_t i = g - range.begin;
        if (type == DistributionType::waterbag) {  // (x, px, y, py, tau, delta), correlated only through the 6-ball
            const std::array<double, 6> v = waterbag_point(rng);
            if (keep)
                for (int c = 0; c < 6; ++c) s.column[c][i] = v[c];
            continue;
        }
        std::array<double, 3> pos;
        if (type == DistributionType::uniform_ellipsoid) {
            do {  // rejection from the cube: uniform in the unit ball
                for (double& u : pos) u = 2.0 * uniform01(rng) - 1.0;
            } while (pos[0] * pos[0] + pos[1] * pos[1] + pos[2] * pos[2] > 1.0);
        } else {
            auto a = standard_normal_pair(rng);
            auto b = standard_normal_pair(rng);
            pos = {a[0], a[1], b[0]};
        }
        auto c = standard_normal_pair(rng);
        auto d = standard_normal_pair(rng);
        if (!keep) continue;
        s.column[0][i] = pos[0];
        s.column[2][i] = pos[1];
        s.column[4][i] = pos[2];
        s.column[1][i] = c[0];
        s.column[3][i] = c[1];
        s.column[5][i] = d[0];
    }
    return s;
}

template <class T>
Beam<T> scale_reference_sample(const ReferenceSample& sample, const BeamParameters& p) {
    Beam<T> beam;
    beam.species = p.species;
    beam.reference = Reference::from_kinetic(p.species.mass_eV, p.kinetic_energy_eV);
    beam.bunch_charge_C = p.bunch_charge_C;
    const auto& size = p.distribution.size_m;
    const auto& mom = p.distribution.momentum_rms;
    const double scale[6] = {size[0], mom[0], size[1], mom[1], size[2], mom[2]};
    auto cols = beam.columns();
    for (int c = 0; c < 6; ++c) {
        cols[c]->resize(sample.column[c].size());
        for (std::size_t i = 0; i < sample.column[c].size(); ++i)
            (*cols[c])[i] = static_cast<T>(scale[c] * sample.column[c][i]);
    }
    return beam;
}

template <class T>
Moments compute_moments(const Beam<T>& beam, bool exact) {
    Moments m;
    const double n = static_cast<double>(beam.global_size());
    auto cols = beam.columns();
    ParticleSums<6> sums(exact);
    sums.add_particles(beam.size(), [&](std::int64_t i, double* sum) {
        for (int c = 0; c < 6; ++c) sum[c] += (*cols[c])[i];
    });
    m.mean = sums.over_all_ranks();
    for (double& mean : m.mean) mean /= n;
    // the variances and covariances, reduced together
    ParticleSums<9> second_sums(exact);
    second_sums.add_particles(beam.size(), [&](std::int64_t i, double* sum) {
        double d[6];
        for (int c = 0; c < 6; ++c) {
            d[c] = (*cols[c])[i] - m.mean[c];
            sum[c] += d[c] * d[c];
        }
        for (int a = 0; a < 3; ++a) sum[6 + a] += d[2 * a] * d[2 * a + 1];
    });
    const std::array<double, 9> second = second_sums.over_all_ranks();
    const double* var = second.data();
    const double* cov = second.data() + 6;
    for (int c = 0; c < 6; ++c) m.rms[c] = std::sqrt(var[c] / n);
    const double bg = beam.reference.beta_gamma();
    for (int a = 0; a < 3; ++a) {
        double det = var[2 * a] * var[2 * a + 1] - cov[a] * cov[a];
        m.normalized_emittance_m[a] = bg * std::sqrt(std::max(det, 0.0)) / n;
    }
    return m;
}

template Beam<float> scale_reference_sample<float>(const ReferenceSample&, const BeamParameters&);
template Beam<double> scale_reference_sample<double>(const ReferenceSample&, const BeamParameters&);
template Moments compute_moments<float>(const Beam<float>&, bool);
template Moments compute_moments<double>(const Beam<double>&, bool);

}  // namespace sctape
