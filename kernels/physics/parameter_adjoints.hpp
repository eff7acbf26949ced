// parameter_adjoints.hpp — the adjoints of every differentiable scalar a
// backward pass collects (charge, reference energy, distribution sizes,
// element lengths), and the chain rules from the quantities a slice's adjoint
// sums to them, shared by the CPU and CUDA adjoints.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include "physics/beam.hpp"
#include "physics/elements.hpp"

namespace sctape {

// Adjoints of the reference-particle quantities, folded into d/d(kinetic energy).
struct ReferenceAdjoint {
    double beta = 0, gamma = 0, p0c_eV = 0;
    double to_kinetic_energy(const Reference& ref) const;
};

// Every differentiable scalar's adjoint plus the initial coordinates'.
struct ParameterAdjoints {
    double bunch_charge_C = 0;
    ReferenceAdjoint reference;
    double beta_gamma = 0;                  // d/d(beta0 gamma0), added to `reference`
    std::array<double, 3> size_m{};         // distribution.size_m
    std::array<double, 3> momentum_rms{};   // distribution.momentum_rms
    std::vector<double> element_length_m;   // per element of the flat lattice
    // d/d(k1_per_m2, kx_per_m, ky_per_m, kt_per_m), per element of the flat lattice
    std::vector<std::array<double, 4>> element_strength;
    // Sizes both per-element vectors for `lattice`.
    void start(const Lattice& lattice);
    // Every rank's adjoints summed (each rank collected its particles' terms
    // and rank 0 the replicated grid's: core/communicator.hpp); all ranks get the total.
    void sum_over_ranks();
};

// Chain rules from the scalars a slice's adjoint collects to the parameters,
// shared by the CPU and CUDA adjoints. v is the adjoint of the named quantity.
void add_inv_beta_adjoint(ParameterAdjoints& adj, const Reference& ref, double v);   // 1/beta0
void add_inv_bg_sq_adjoint(ParameterAdjoints& adj, const Reference& ref, double v);  // 1/(beta0 gamma0)^2
// The map over `fraction` of element `index` (lattice[index]): sums[12] as
// map_adjoint_particle collects them (d/d of each block entry), carried to
// the element's length and strengths and to beta0 gamma0.
void add_map_adjoint(ParameterAdjoints& adj, const Reference& ref, const Element& element, std::size_t index,
                     double fraction, const double sums[12]);
// The push's scale = charge ds / (beta0 gamma0^2 p0c) of a kick over ds =
// length / slices of element `element`; v_scaled = scale * d/d(scale).
void add_push_scale_adjoint(ParameterAdjoints& adj, const Reference& ref, std::size_t element, double ds, int slices,
                            double v_scaled);

}  // namespace sctape
