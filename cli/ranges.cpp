#include "ranges.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "result.hpp"

namespace sctape {
namespace {

[[noreturn]] void fail(const std::string& key, const std::string& what) {
    throw ConfigError("config key '" + key + "': " + what);
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

// Error above kParaxialError, warning above kParaxialWarning.
void check_paraxial(const std::string& what, double scale, const std::string& hint,
                    std::vector<std::string>& warnings) {
    const std::string text = what + " reaches about " + num(scale);
    if (scale > kParaxialError)
        throw ConfigError(text + ", beyond the paraxial range (<= " + num(kParaxialError) +
                          ") where the linear drift holds: " + hint);
    if (scale > kParaxialWarning)
        warnings.push_back(text + ": the linear drift's error p^2/2 exceeds " +
                           num(kParaxialWarning * kParaxialWarning / 2) + " (" + hint + ")");
}

// The reference particle, every quantity the kick and drift divide by finite
// and positive, so a bad energy is named here rather than as a NaN later.
Reference checked_reference(const BeamParameters& beam) {
    const double k = beam.kinetic_energy_eV / beam.species.mass_eV;
    if (!(k >= kMinKineticOverRest))
        fail("kinetic_energy_eV", num(beam.kinetic_energy_eV) + " eV is below " + num(kMinKineticOverRest) +
                                      " of the rest energy " + num(beam.species.mass_eV) +
                                      " eV: beta0 is not resolved in float64");
    const Reference r = Reference::from_kinetic(beam.species.mass_eV, beam.kinetic_energy_eV);
    const double bg = r.beta_gamma();
    const double push = r.beta * r.gamma * r.gamma * r.p0c_eV;  // the kick divides by this
    if (!std::isfinite(r.gamma) || !std::isfinite(push) || !(bg > 0) || !std::isfinite(1.0 / (bg * bg)))
        fail("kinetic_energy_eV", "gamma0 = " + num(r.gamma) + " (species mass_eV " + num(beam.species.mass_eV) +
                                      ") overflows the kick's gamma0^2 p0");
    return r;
}

// Semi-axes of the bunch in its rest frame: x, y, and z = gamma0 beta0 tau.
// A Gaussian or waterbag counts as the uniform ellipsoid of the same rms (sqrt(5) sigma).
std::array<double, 3> rest_semi_axes(const Distribution& d, const Reference& r) {
    const double f = d.type == DistributionType::uniform_ellipsoid ? 1.0 : std::sqrt(5.0);
    return {f * d.size_m[0], f * d.size_m[1], f * d.size_m[2] * r.beta_gamma()};
}

// Depolarization factor along the axis c of a spheroid (a, a, c): the field
// inside a uniform ellipsoid is rho N_i x_i / eps0 (Landau & Lifshitz, ECM §4).
double axial_depolarization(double a, double c) {
    const double r = c / a;
    if (std::fabs(r - 1) < 1e-6) return 1.0 / 3;
    if (r > 1) {  // prolate; atanh(e) = ln(r (1 + e)) avoids 1 - e
        const double e = std::sqrt(1 - 1 / (r * r));
        return (std::log(r * (1 + e)) - e) / (r * r * e * e * e);
    }
    const double e = std::sqrt(1 / (r * r) - 1);  // oblate
    return (1 + e * e) / (e * e * e) * (e - std::atan(e));
}

struct SurfaceFields {
    double transverse = 0, longitudinal = 0;  // rest frame, V/m, at the surface
    double potential = 0;                     // V, an upper bound at the centre
};

SurfaceFields surface_fields(const std::array<double, 3>& axes, double charge_C) {
    const double a = std::min(axes[0], axes[1]), c = axes[2];
    const double nz = axial_depolarization(a, c), coulomb = charge_C / (4 * kPi * kVacuumPermittivity_F_per_m);
    // all charge within the smallest semi-axis bounds the centre potential
    return {3 * coulomb * (1 - nz) / 2 / (a * c), 3 * coulomb * nz / (a * a),
            1.5 * coulomb / std::min(a, c)};
}

// Upper bound on the momenta the space charge gives over the lattice: the
// smaller of (surface field x lattice time) and the potential energy
// released (the bunch starts at rest in its frame and only expands).
double lattice_length(const Lattice& lattice) {
    double length = 0;
    for (const Element& d : lattice) length += d.length_m;
    return length;
}

// Transverse size after the lattice: the largest semi-axis plus L p_perp.
double grown_size(const RunConfig& c, const std::array<double, 3>& axes, double p_perp) {
    return *std::max_element(axes.begin(), axes.end()) + lattice_length(c.tracking.lattice) * p_perp;
}

// Returns the bound on the transverse momenta.
double check_space_charge_strength(const RunConfig& c, const Reference& r, const SurfaceFields& f,
                                   std::vector<std::string>& warnings) {
    const double length = lattice_length(c.tracking.lattice);
    const double q = std::fabs(c.beam.species.charge_e), mc2 = r.mass_eV, b2 = r.beta * r.beta;
    const double released = std::sqrt(2 * q * f.potential / mc2) / r.beta;  // rest-frame p' over m c beta0
    const double p_perp = std::min(q * f.transverse * length / (b2 * r.gamma * r.gamma * mc2), released / r.gamma);
    const double delta = std::min(q * f.longitudinal * length / (b2 * r.gamma * mc2), released);
    const std::string hint = "the space charge of bunch_charge_C in the distribution sizes at kinetic_energy_eV";
    check_paraxial("the space-charge kick of px and py over the lattice", p_perp, hint, warnings);
    // the drift reads delta only through tau's slip L delta / (beta0 gamma0)^2,
    // whose linearisation errs by O(delta^2 / gamma0^2): delta / gamma0 plays
    // the part of an angle (the free-expansion case has delta ~ 0.3 at gamma0 490)
    check_paraxial("the space-charge kick of delta / gamma0 over the lattice", delta / r.gamma, hint, warnings);
    return p_perp;
}

// The Green function multiplies three lengths and squares them: rest-frame
// sizes, before and after the lattice, stay within 1e+-90 m so that neither
// overflows nor underflows in float64.
void check_lengths(const std::array<double, 3>& axes) {
    const double lo = *std::min_element(axes.begin(), axes.end()), hi = *std::max_element(axes.begin(), axes.end());
    if (!(lo >= kMinLength_m && hi <= kMaxLength_m))
        fail("distribution", "rest-frame sizes from " + num(lo) + " to " + num(hi) + " m leave [" + num(kMinLength_m) +
                                 ", " + num(kMaxLength_m) + "] m where the Green function's products are finite");
}

void check_growth(const RunConfig& c, const std::array<double, 3>& axes, double p_perp) {
    const double grown = grown_size(c, axes, p_perp);
    if (!(grown <= kMaxLength_m))
        fail("lattice", "the beam would grow to about " + num(grown) + " m (lattice length_m times the momenta), beyond " +
                            num(kMaxLength_m) + " m where the Green function's products are finite");
}

void check_aspect(const std::array<double, 3>& axes, std::vector<std::string>& warnings) {
    const double ratio = *std::max_element(axes.begin(), axes.end()) / *std::min_element(axes.begin(), axes.end());
    const std::string text = "the bunch's rest-frame aspect ratio (x, y and beta0 gamma0 tau sizes) is " + num(ratio);
    if (!(ratio <= kAspectError))
        fail("distribution", text + ", above " + num(kAspectError) + " where the Green function has no digits left");
    if (ratio > kAspectWarning)
        warnings.push_back(text + ", above the validated " + num(kAspectWarning));
}

// float32 adds each longitudinal kick dpz to pz ~ 1 and keeps it only above
// its unit roundoff u = 2^-24. The kick's largest value (the field at the
// bunch's tip over the shortest slice) falls as 1/gamma0^3 at fixed lab
// sizes, so it drops below u above gamma_u = gamma0 (dpz / u)^(1/3).
void check_float32(const RunConfig& c, const Reference& r, const SurfaceFields& f,
                   std::vector<std::string>& warnings) {
    if (c.dtype != Dtype::float32) return;
    double ds = INFINITY;
    for (const Element& d : c.tracking.lattice) ds = std::min(ds, d.length_m / d.slices);
    const double dpz = std::fabs(c.beam.species.charge_e) * f.longitudinal * ds /
                       (r.beta * r.beta * r.gamma * r.mass_eV);
    const double bits = std::log2(dpz / kFloat32Roundoff);
    const std::string text = "float32 keeps a change of pz above 2^-24 = " + num(kFloat32Roundoff) +
                             "; this bunch's longitudinal kick (about " + num(dpz) +
                             " per kick, falling as 1/gamma0^3) drops below it above gamma0 = " +
                             num(r.gamma * std::cbrt(dpz / kFloat32Roundoff)) + " and gamma0 is " + num(r.gamma);
    if (!(bits >= 0)) fail("dtype", text + ": the longitudinal kick is lost; use dtype \"float64\"");
    if (bits < kFloat32WarningBits)
        warnings.push_back(text + ": fewer than " + num(kFloat32WarningBits) +
                           " bits of it survive (use dtype \"float64\")");
}

// The beam must span at least one cell per axis, else its field has no shape.
void check_grid_resolution(const TrackSettings& t) {
    for (int a = 0; a < 3; ++a) {
        const double cells = t.grid.shape[a] - 1;
        if (t.grid.mode == ExtentMode::minmax && cells / (1 + t.grid.padding) < 1)
            fail("space_charge.extent.padding", "the beam would span under one cell of the grid");
        if (t.grid.mode == ExtentMode::sigma && cells * std::sqrt(5.0) / t.grid.sigma_factor[a] < 1)
            fail("space_charge.extent.factor", "the beam would span under one cell of the grid");
    }
}

// Byte counts (allocator, tape) are int64: a run whose estimate does not fit
// one would wrap them.
void check_sizes(const RunConfig& c) {
    const double bytes = estimate_tracking_bytes(c) + estimate_tape_bytes(c);
    if (!(bytes < 0x1.0p62))
        fail("n_particles", "with space_charge.grid the run's memory (" + num(bytes) +
                                " bytes) overflows 64-bit byte counts");
}

// The reversible strategy factors each map into three exact shears
// (physics/fixed_point.hpp), well conditioned up to a phase advance of pi/2
// per map (half a slice with space charge).
void check_reversible_phase_advance(const RunConfig& c) {
    if (!c.differentiate || c.gradient.strategy != Strategy::reversible) return;
    for (std::size_t i = 0; i < c.tracking.lattice.size(); ++i) {
        const double mu = element_phase_advance(c.tracking.lattice[i], slice_map_fraction(c.tracking, i));
        if (mu > kPi / 2)
            fail(element_path(c.tracking.lattice, i) + ".slices",
                 "the phase advance per map is " + num(mu) + " rad; the reversible strategy's exact fixed-point "
                 "maps need at most pi/2: give the element more slices");
    }
}

void check_threads(RunConfig& c, int hardware, std::vector<std::string>& warnings) {
    if (hardware < 1 || c.tracking.threads <= hardware) return;
    warnings.push_back("threads " + std::to_string(c.tracking.threads) + " is above the " +
                       std::to_string(hardware) + " hardware threads: using " + std::to_string(hardware));
    c.tracking.threads = hardware;
}

}  // namespace

std::vector<std::string> validate_run(RunConfig& config, int hardware_threads) {
    std::vector<std::string> warnings;
    check_sizes(config);
    check_threads(config, hardware_threads, warnings);
    check_reversible_phase_advance(config);
    const Reference r = checked_reference(config.beam);
    const auto& mom = config.beam.distribution.momentum_rms;
    const std::string hint = "distribution.sigma_px, sigma_py, sigma_delta";
    check_paraxial("the initial |px|, |py| (3 rms)", 3 * std::max(mom[0], mom[1]), hint, warnings);
    check_paraxial("the initial |delta| / gamma0 (3 rms)", 3 * mom[2] / r.gamma, hint, warnings);
    if (!config.tracking.space_charge) return warnings;
    const std::array<double, 3> axes = rest_semi_axes(config.beam.distribution, r);
    check_aspect(axes, warnings);
    check_lengths(axes);
    check_grid_resolution(config.tracking);
    const SurfaceFields f = surface_fields(axes, config.beam.bunch_charge_C);
    const double p_sc = check_space_charge_strength(config, r, f, warnings);
    check_growth(config, axes, 3 * std::max(mom[0], mom[1]) + p_sc);
    check_float32(config, r, f, warnings);
    return warnings;
}

namespace {

// Why a RESULT number is not finite, where the cause is known.
std::string non_finite_cause(const nlohmann::json& result, const std::string& path) {
    if (path.rfind("/moments", 0) == 0)
        return "the tracked beam has non-finite coordinates (check kinetic_energy_eV, the distribution and the lattice)";
    if (path.rfind("/reverse_mode", 0) == 0) {
        const auto& objective = result["reverse_mode"]["objective"];
        const std::string name = objective["name"];
        if (objective["value"].is_number() && objective["value"].get<double>() == 0) {
            const bool emittance = name.rfind("emittance", 0) == 0;
            return std::string("the ") + (emittance ? "emittance of a cold beam" : "rms size of the beam") +
                   " is 0: its gradient is undefined (objective " + name + "; give the beam a spread)";
        }
    }
    return "the RESULT value " + path + " is not finite";
}

void find_non_finite(const nlohmann::json& j, const std::string& path, std::string& found) {
    if (!found.empty()) return;
    if (j.is_number_float() && !std::isfinite(j.get<double>())) found = path.empty() ? "/" : path;
    if (j.is_object())
        for (auto it = j.begin(); it != j.end(); ++it) find_non_finite(it.value(), path + "/" + it.key(), found);
    if (j.is_array())
        for (std::size_t i = 0; i < j.size(); ++i) find_non_finite(j[i], path + "/" + std::to_string(i), found);
}

double mean_plus_3rms(const nlohmann::json& m, const char* mean, const char* rms) {
    return std::fabs(m["mean"][mean].get<double>()) + 3 * m["rms"][rms].get<double>();
}

}  // namespace

std::vector<std::string> check_result(const nlohmann::json& result, double gamma0) {
    std::string path;
    find_non_finite(result, "", path);
    if (!path.empty()) throw ConfigError(non_finite_cause(result, path));
    std::vector<std::string> warnings;
    const nlohmann::json& m = result["moments"]["final"];
    const std::string hint = "check bunch_charge_C, kinetic_energy_eV and the distribution";
    check_paraxial("the tracked beam's |px|, |py| (mean + 3 rms)",
                   std::max(mean_plus_3rms(m, "px", "sigma_px"), mean_plus_3rms(m, "py", "sigma_py")), hint, warnings);
    check_paraxial("the tracked beam's |delta| / gamma0 (mean + 3 rms)",
                   mean_plus_3rms(m, "delta", "sigma_delta") / gamma0, hint, warnings);
    return warnings;
}

}  // namespace sctape
