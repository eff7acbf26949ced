#include "physics/parameter_adjoints.hpp"

namespace sctape {

double ReferenceAdjoint::to_kinetic_energy(const Reference& ref) const {
    // gamma = 1 + K/m, beta = sqrt(1 - 1/gamma^2), p0c = sqrt(E^2 - m^2): dp0c/dK = E/p0c = 1/beta
    const double m = ref.mass_eV;
    return gamma / m + beta / (m * ref.beta * ref.gamma * ref.gamma * ref.gamma) + p0c_eV / ref.beta;
}

void add_inv_beta_adjoint(ParameterAdjoints& adj, const Reference& ref, double v) {
    adj.reference.beta -= v / (ref.beta * ref.beta);
}

void add_inv_bg_sq_adjoint(ParameterAdjoints& adj, const Reference& ref, double v) {
    const double bg = ref.beta_gamma();
    adj.beta_gamma -= 2.0 * v / (bg * bg * bg);
}

void add_drift_adjoint(ParameterAdjoints& adj, const Reference& ref, std::size_t element, double fraction,
                       double length_m, double length_adj, double tau_term_adj) {
    const double bg = ref.beta_gamma();
    adj.drift_length_m[element] += fraction * length_adj;
    adj.beta_gamma += tau_term_adj * 2.0 * length_m / (bg * bg * bg);
}

void add_push_scale_adjoint(ParameterAdjoints& adj, const Reference& ref, std::size_t element, double ds, int slices,
                            double v_scaled) {
    adj.drift_length_m[element] += v_scaled / ds / slices;
    adj.reference.beta -= v_scaled / ref.beta;
    adj.reference.gamma -= 2.0 * v_scaled / ref.gamma;
    adj.reference.p0c_eV -= v_scaled / ref.p0c_eV;
}

}  // namespace sctape
