#include "ad/gradient.hpp"

#include <cmath>
#include <map>
#include <stdexcept>

#include "ad/autograd/autograd.hpp"
#include "ad/cpu_engine.hpp"
#include "physics/exact_sums.hpp"
#ifdef SCTAPE_HAVE_CUDA
#include "ad/gpu_engine.hpp"
#endif

namespace sctape {

namespace {

const char* size_key(DistributionType type, int axis) {
    static const char* uniform[3] = {"radius_x_m", "radius_y_m", "radius_tau_m"};
    static const char* gaussian[3] = {"sigma_x_m", "sigma_y_m", "sigma_tau_m"};
    return type == DistributionType::uniform_ellipsoid ? uniform[axis] : gaussian[axis];
}
const char* kMomentumKey[3] = {"sigma_px", "sigma_py", "sigma_delta"};

bool is_emittance(Objective o) {
    return o == Objective::emittance_x || o == Objective::emittance_y || o == Objective::emittance_tau;
}

const char* kStrengthKey[4] = {"k1_per_m2", "kx_per_m", "ky_per_m", "kt_per_m"};

// The strength keys (kStrengthKey indices) an element kind has.
std::vector<int> strength_keys(ElementKind kind) {
    switch (kind) {
        case ElementKind::quadrupole: return {0};
        case ElementKind::constant_focusing: return {1, 2, 3};
        default: return {};
    }
}

// Every element parameter's gradient, keyed by its config path: the flat
// elements of one config element (repetitions) share a path, so their
// adjoints sum.
std::map<std::string, double> element_gradients(const Lattice& lattice, const ParameterAdjoints* adj) {
    std::map<std::string, double> out;
    for (std::size_t i = 0; i < lattice.size(); ++i) {
        const std::string path = element_path(lattice, i);
        const bool have = adj && i < adj->element_length_m.size();
        out[path + ".length_m"] += have ? adj->element_length_m[i] : 0.0;
        for (int k : strength_keys(lattice[i].kind))
            out[path + "." + kStrengthKey[k]] += have && i < adj->element_strength.size() ? adj->element_strength[i][k] : 0.0;
    }
    return out;
}

}  // namespace

std::array<int, 2> objective_columns(Objective o) {
    switch (o) {
        case Objective::sigma_x: case Objective::emittance_x: return {0, 1};
        case Objective::sigma_y: case Objective::emittance_y: return {2, 3};
        case Objective::sigma_tau: case Objective::emittance_tau: return {4, 5};
        // an rms spread is the rms of the first column: the momentum, paired with its coordinate
        case Objective::sigma_px: return {1, 0};
        case Objective::sigma_py: return {3, 2};
        case Objective::sigma_delta: return {5, 4};
    }
    throw std::logic_error("objective_columns: unknown objective");
}

std::vector<std::string> gradient_names(const BeamParameters& beam, const Lattice& lattice) {
    std::vector<std::string> names = {"bunch_charge_C", "kinetic_energy_eV"};
    for (int a = 0; a < 3; ++a) names.push_back(std::string("distribution.") + size_key(beam.distribution.type, a));
    for (int a = 0; a < 3; ++a) names.push_back(std::string("distribution.") + kMomentumKey[a]);
    for (const auto& element : element_gradients(lattice, nullptr)) names.push_back(element.first);
    return names;
}

// Centred second moments of columns (u, p) over every rank's particles,
// accumulated in float64 (or exactly), and the particle count.
template <class T>
static std::array<double, 6> centred_moments(const HostArray<T>& u, const HostArray<T>& p, bool exact) {
    const std::int64_t count = std::int64_t(u.size());
    ParticleSums<3> first_sums(exact);
    first_sums.add_particles(count, [&](std::int64_t i, double* s) {
        s[0] += u[i];
        s[1] += p[i];
        s[2] += 1;  // exact below 2^53 particles
    });
    const std::array<double, 3> first = first_sums.over_all_ranks();
    const double n = first[2];
    const double mu = first[0] / n, mp = first[1] / n;
    ParticleSums<3> second_sums(exact);
    second_sums.add_particles(count, [&](std::int64_t i, double* s) {
        const double du = u[i] - mu, dp = p[i] - mp;
        s[0] += du * du;
        s[1] += dp * dp;
        s[2] += du * dp;
    });
    const std::array<double, 3> second = second_sums.over_all_ranks();
    return {mu, mp, second[0] / n, second[1] / n, second[2] / n, n};
}

template <class T>
double objective_value(const Beam<T>& beam, Objective objective, bool exact) {
    const auto cols = objective_columns(objective);
    const auto m = centred_moments(*beam.columns()[cols[0]], *beam.columns()[cols[1]], exact);
    if (!is_emittance(objective)) return std::sqrt(m[2]);
    return beam.reference.beta_gamma() * std::sqrt(m[2] * m[3] - m[4] * m[4]);
}

template <class T>
double objective_adjoint(Objective objective, const HostArray<T>& u, const HostArray<T>& p, double beta_gamma,
                         HostArray<T>& u_adj, HostArray<T>& p_adj, bool exact) {
    const auto m = centred_moments(u, p, exact);
    const double n = m[5];
    if (!is_emittance(objective)) {
        const double sigma = std::sqrt(m[2]);
        for (std::size_t i = 0; i < u.size(); ++i) u_adj[i] += T((u[i] - m[0]) / (n * sigma));
        return 0.0;
    }
    // eps = bg * sqrt(det), det = <uu><pp> - <up>^2; the mean terms cancel
    const double det = m[2] * m[3] - m[4] * m[4], bg = beta_gamma;
    const double c = bg / (2.0 * std::sqrt(det)) * 2.0 / n;
    for (std::size_t i = 0; i < u.size(); ++i) {
        const double du = u[i] - m[0], dp = p[i] - m[1];
        u_adj[i] += T(c * (m[3] * du - m[4] * dp));
        p_adj[i] += T(c * (m[2] * dp - m[4] * du));
    }
    return counted_once(std::sqrt(det));  // d eps / d(beta gamma)
}

void report_gradients(const BeamParameters& beam, const Lattice& lattice, const ParameterAdjoints& adj,
                      const std::vector<std::string>& names, GradientResult& result) {
    const Reference ref = Reference::from_kinetic(beam.species.mass_eV, beam.kinetic_energy_eV);
    ReferenceAdjoint total = adj.reference;
    total.beta += adj.beta_gamma * ref.gamma;
    total.gamma += adj.beta_gamma * ref.beta;
    std::map<std::string, double> all;
    all["bunch_charge_C"] = adj.bunch_charge_C;
    all["kinetic_energy_eV"] = total.to_kinetic_energy(ref);
    for (int a = 0; a < 3; ++a) {
        all[std::string("distribution.") + size_key(beam.distribution.type, a)] = adj.size_m[a];
        all[std::string("distribution.") + kMomentumKey[a]] = adj.momentum_rms[a];
    }
    for (const auto& element : element_gradients(lattice, &adj)) all[element.first] = element.second;
    for (const std::string& name : names) {
        auto it = all.find(name);
        if (it == all.end()) throw std::invalid_argument("unknown gradient name '" + name + "'");
        result.gradients[name] = it->second;
    }
}

template <class T>
void beam_adjoint(const BeamParameters& beam, const std::array<HostArray<T>, 6>& coordinate_adjoint,
                  std::array<std::vector<double>, 6>& particle_gradient, ParameterAdjoints& adj, bool exact) {
    // this rank's particles (make_beam's share)
    const ParticleRange mine = local_particles(beam.n_particles);
    const std::int64_t n = mine.size();
    const ReferenceSample sample = make_reference_sample(beam.distribution.type, beam.n_particles, beam.seed, mine);
    for (int c = 0; c < 6; ++c) {
        auto& out = particle_gradient[c];
        out.resize(n);
        ParticleSums<1> sum(exact);
        sum.add_particles(n, [&](std::int64_t p, double* s) {
            out[p] = coordinate_adjoint[c][p];
            s[0] += out[p] * sample.column[c][p];
        });
        (c % 2 == 0 ? adj.size_m : adj.momentum_rms)[c / 2] += sum.rank_share()[0];
    }
}

template void beam_adjoint<float>(const BeamParameters&, const std::array<HostArray<float>, 6>&,
                                  std::array<std::vector<double>, 6>&, ParameterAdjoints&, bool);
template void beam_adjoint<double>(const BeamParameters&, const std::array<HostArray<double>, 6>&,
                                   std::array<std::vector<double>, 6>&, ParameterAdjoints&, bool);

void SliceMarks::mark(const Tape& tape, const MemoryReport& report) {
    previous_ = std::move(last_);
    last_ = Mark{};
    for (const auto& [scope, row] : tape.by_scope()) last_.tape_by_scope[scope] = row.bytes;
    last_.delta_by_scope = report.allocator_delta_by_scope;
    last_.tape = tape.tape_bytes();
    last_.current = memory_.current_bytes();
}

void SliceMarks::finish(MemoryReport& report) const {
    auto difference = [](const std::map<std::string, std::int64_t>& after, const std::map<std::string, std::int64_t>& before) {
        std::map<std::string, std::int64_t> d;
        for (const auto& [scope, value] : after) {
            const auto it = before.find(scope);
            d[scope] = value - (it == before.end() ? 0 : it->second);
        }
        return d;
    };
    report.last_slice_tape_bytes_by_scope = difference(last_.tape_by_scope, previous_.tape_by_scope);
    report.last_slice_allocator_delta_by_scope = difference(last_.delta_by_scope, previous_.delta_by_scope);
    report.last_slice_tape_bytes = last_.tape - previous_.tape;
    report.last_slice_allocator_delta = last_.current - previous_.current;
}

template <class T>
GradientResult compute_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                                const GradientRequest& request) {
    // Unknown names fail before any work is done.
    GradientResult names_check;
    report_gradients(beam, tracking.lattice, ParameterAdjoints{}, request.gradients, names_check);
    if (request.backend == Backend::automatic)
        throw std::invalid_argument("compute_gradient: resolve the backend \"auto\" with resolve_backend() first");
#ifndef SCTAPE_HAVE_CUDA
    if (request.backend == Backend::cuda)
        throw std::runtime_error("backend \"cuda\" requested, but this build has no CUDA backend");
#endif
    if (communicator().size() > 1 && request.strategy == Strategy::autograd && request.backend == Backend::cuda)
        throw CollectiveError("over MPI ranks, autograd runs on the CPU backend only (docs/mpi.md)");
    // autograd is its own op engine, on either device
    if (request.strategy == Strategy::autograd) return autograd_gradient<T>(beam, tracking, request);
#ifdef SCTAPE_HAVE_CUDA
    if (request.backend == Backend::cuda) return gpu_gradient<T>(beam, tracking, request);
#endif
    return cpu_gradient<T>(beam, tracking, request);
}

template double objective_value<float>(const Beam<float>&, Objective, bool);
template double objective_value<double>(const Beam<double>&, Objective, bool);
template double objective_adjoint<float>(Objective, const HostArray<float>&, const HostArray<float>&, double,
                                         HostArray<float>&, HostArray<float>&, bool);
template double objective_adjoint<double>(Objective, const HostArray<double>&, const HostArray<double>&, double,
                                          HostArray<double>&, HostArray<double>&, bool);
template GradientResult compute_gradient<float>(const BeamParameters&, const TrackSettings&, const GradientRequest&);
template GradientResult compute_gradient<double>(const BeamParameters&, const TrackSettings&, const GradientRequest&);

}  // namespace sctape
