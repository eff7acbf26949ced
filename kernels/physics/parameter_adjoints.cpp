#include "physics/parameter_adjoints.hpp"

#include "core/communicator.hpp"

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

void ParameterAdjoints::start(const Lattice& lattice) {
    element_length_m.assign(lattice.size(), 0.0);
    element_strength.assign(lattice.size(), {0.0, 0.0, 0.0, 0.0});
}

void ParameterAdjoints::sum_over_ranks() {
    Communicator& comm = communicator();
    if (comm.size() == 1) return;
    // one reduction of every scalar, packed in a fixed order; a field added to
    // ParameterAdjoints must be added here too, which this size check enforces
    static_assert(sizeof(ParameterAdjoints) == (2 + 3 + 6) * sizeof(double) +  // with ReferenceAdjoint's 3
                                                   sizeof(std::vector<double>) +
                                                   sizeof(std::vector<std::array<double, 4>>),
                  "ParameterAdjoints changed: sum its new fields over the ranks");
    std::vector<double*> fields = {&bunch_charge_C, &reference.beta, &reference.gamma, &reference.p0c_eV, &beta_gamma};
    for (double& v : size_m) fields.push_back(&v);
    for (double& v : momentum_rms) fields.push_back(&v);
    for (double& v : element_length_m) fields.push_back(&v);
    for (auto& strengths : element_strength)
        for (double& v : strengths) fields.push_back(&v);
    std::vector<double> packed;
    for (double* f : fields) packed.push_back(*f);
    comm.sum(packed.data(), std::int64_t(packed.size()));
    for (std::size_t i = 0; i < fields.size(); ++i) *fields[i] = packed[i];
}

void add_map_adjoint(ParameterAdjoints& adj, const Reference& ref, const Element& element, std::size_t index,
                     double fraction, const double sums[12]) {
    auto chain = [&](MapParameter p) {
        const ElementMap dm = element_map_derivative(element, fraction, ref.beta_gamma(), p);
        double v = 0;
        for (int k = 0; k < 3; ++k) {
            const MapBlock& b = dm.block[k];
            v += sums[4 * k] * b.a + sums[4 * k + 1] * b.b + sums[4 * k + 2] * b.c + sums[4 * k + 3] * b.d;
        }
        return v;
    };
    adj.element_length_m[index] += chain(MapParameter::length_m);
    adj.beta_gamma += chain(MapParameter::beta_gamma);
    if (element.kind == ElementKind::quadrupole) adj.element_strength[index][0] += chain(MapParameter::k1_per_m2);
    if (element.kind == ElementKind::constant_focusing) {
        adj.element_strength[index][1] += chain(MapParameter::kx_per_m);
        adj.element_strength[index][2] += chain(MapParameter::ky_per_m);
        adj.element_strength[index][3] += chain(MapParameter::kt_per_m);
    }
}

void add_push_scale_adjoint(ParameterAdjoints& adj, const Reference& ref, std::size_t element, double ds, int slices,
                            double v_scaled) {
    adj.element_length_m[element] += v_scaled / ds / slices;
    adj.reference.beta -= v_scaled / ref.beta;
    adj.reference.gamma -= 2.0 * v_scaled / ref.gamma;
    adj.reference.p0c_eV -= v_scaled / ref.p0c_eV;
}

}  // namespace sctape
