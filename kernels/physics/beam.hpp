// beam.hpp — a bunch of macro-particles in Cheetah's phase-space coordinates
// (x, px, y, py, tau, delta), structure of arrays, and its generators.
//
// Generators are deterministic for a seed and written as a fixed reference
// sample (unit ball or standard normal, drawn once) scaled by the distribution
// parameters, so coordinates are smooth functions of those parameters.
//
//   sctape::BeamParameters p;            // electrons, uniform ellipsoid
//   p.n_particles = 100000;
//   p.distribution.size_m = {1e-3, 1e-3, 1e-3 / (beta * gamma)};
//   sctape::Beam<float> beam = sctape::make_beam<float>(p);
//   sctape::Moments m = sctape::compute_moments(beam);
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "physics/constants.hpp"
#include "core/communicator.hpp"
#include "core/memory.hpp"

namespace sctape {

enum class DistributionType { uniform_ellipsoid, gaussian, waterbag };

struct Distribution {
    DistributionType type = DistributionType::uniform_ellipsoid;
    // Semi-axes (uniform_ellipsoid) or rms sizes (gaussian, waterbag) in x, y, tau.
    std::array<double, 3> size_m = {1e-3, 1e-3, 1e-3};
    // rms of px, py, delta (Gaussian in each, independent of position; for
    // waterbag, the momenta's rms of the 6D uniform ellipsoid).
    std::array<double, 3> momentum_rms = {0.0, 0.0, 0.0};
};

struct BeamParameters {
    Species species = Species::electron();
    double kinetic_energy_eV = 250e6;
    double bunch_charge_C = 1e-9;  // magnitude; the sign comes from the species
    std::int64_t n_particles = 100000;
    std::uint64_t seed = 1;
    Distribution distribution;
};

// The unit sample, six columns in the coordinate order, float64.
struct ReferenceSample {
    std::array<HostArray<double>, 6> column;
    std::int64_t size() const { return static_cast<std::int64_t>(column[0].size()); }
};

ReferenceSample make_reference_sample(DistributionType type, std::int64_t n, std::uint64_t seed);
// Particles [range.begin, range.end) of the sample of n: the same values for
// any split of [0, n) (the generator runs through the particles before it).
ReferenceSample make_reference_sample(DistributionType type, std::int64_t n, std::uint64_t seed, ParticleRange range);

template <class T>
struct Beam {
    Species species;
    Reference reference;
    double bunch_charge_C = 0;  // magnitude
    HostArray<T> x, px, y, py, tau, delta;
    // The particles of the whole bunch when this is one rank's share of it
    // (core/communicator.hpp); 0: this beam is the whole bunch.
    std::int64_t total_particles = 0;

    std::int64_t size() const { return static_cast<std::int64_t>(x.size()); }
    std::int64_t global_size() const { return total_particles > 0 ? total_particles : size(); }
    // Signed charge of one macro-particle, coulomb.
    double macro_charge_C() const {
        return bunch_charge_C * (species.charge_e < 0 ? -1.0 : 1.0) / static_cast<double>(global_size());
    }
    std::array<HostArray<T>*, 6> columns() { return {&x, &px, &y, &py, &tau, &delta}; }
    std::array<const HostArray<T>*, 6> columns() const { return {&x, &px, &y, &py, &tau, &delta}; }
};

template <class T>
Beam<T> scale_reference_sample(const ReferenceSample& sample, const BeamParameters& p);

// This rank's share of the bunch (all of it without MPI: core/communicator.hpp).
template <class T>
Beam<T> make_beam(const BeamParameters& p) {
    Beam<T> beam = scale_reference_sample<T>(
        make_reference_sample(p.distribution.type, p.n_particles, p.seed, local_particles(p.n_particles)), p);
    beam.total_particles = p.n_particles;
    return beam;
}

// Statistical moments of the whole bunch (summed over the ranks), always accumulated in float64.
struct Moments {
    std::array<double, 6> mean{};  // x, px, y, py, tau, delta
    std::array<double, 6> rms{};   // standard deviations, same order
    // Normalized emittances beta0*gamma0*sqrt(<u^2><pu^2> - <u pu>^2) for
    // (x, px), (y, py), (tau, delta); metres.
    std::array<double, 3> normalized_emittance_m{};
};

// exact (the deterministic mode, physics/exact_sums.hpp): the sums exact, the
// same bits for any split over ranks.
template <class T>
Moments compute_moments(const Beam<T>& beam, bool exact = false);

}  // namespace sctape
