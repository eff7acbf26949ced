#include "config.hpp"

#include "json_input.hpp"

#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>
#include <sstream>

namespace sctape {


namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& key, const std::string& what) {
    throw ConfigError("config key '" + key + "': " + what);
}

// Reads one JSON object, remembering which keys were used so that unknown
// keys (typos) are reported instead of silently ignored.
class ObjectReader {
public:
    ObjectReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
        if (!j_.is_object()) fail(path_.empty() ? "<top level>" : path_, "must be an object");
    }
    bool has(const std::string& key) const { return j_.contains(key); }
    const json& at(const std::string& key) {
        used_.insert(key);
        if (!j_.contains(key)) fail(name(key), "is required");
        return j_.at(key);
    }
    std::string name(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

    double number(const std::string& key) {
        const json& v = at(key);
        if (!v.is_number()) fail(name(key), "must be a number");
        double x = v.get<double>();
        if (!std::isfinite(x)) fail(name(key), "must be finite");
        return x;
    }
    double positive(const std::string& key) {
        double x = number(key);
        if (!(x > 0)) fail(name(key), "must be positive");
        return x;
    }
    double non_negative(const std::string& key) {
        double x = number(key);
        if (x < 0) fail(name(key), "must not be negative");
        return x;
    }
    std::int64_t positive_integer(const std::string& key) {
        const json& v = at(key);
        if (!v.is_number_integer()) fail(name(key), "must be an integer");
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX))
            fail(name(key), "is too large");
        if (v.is_number_unsigned() ? v.get<std::uint64_t>() == 0 : v.get<std::int64_t>() <= 0)
            fail(name(key), "must be positive");
        return v.get<std::int64_t>();
    }
    bool boolean(const std::string& key) {
        const json& v = at(key);
        if (!v.is_boolean()) fail(name(key), "must be true or false");
        return v.get<bool>();
    }
    std::string choice(const std::string& key, const std::set<std::string>& allowed) {
        const json& v = at(key);
        std::ostringstream list;
        for (const auto& a : allowed) list << (list.tellp() ? ", " : "") << '"' << a << '"';
        if (!v.is_string() || !allowed.count(v.get<std::string>()))
            fail(name(key), "must be one of " + list.str());
        return v.get<std::string>();
    }
    void finish() const {
        for (auto it = j_.begin(); it != j_.end(); ++it)
            if (!used_.count(it.key())) fail(name(it.key()), "is not a known key");
    }

private:
    const json& j_;
    std::string path_;
    std::set<std::string> used_;
};

Species parse_species(const json& v) {
    if (v.is_string()) {
        if (v == "electron") return Species::electron();
        if (v == "proton") return Species::proton();
        fail("species", "must be \"electron\", \"proton\" or {mass_eV, charge_e}");
    }
    ObjectReader r(v, "species");
    Species s;
    s.name = "custom";
    s.mass_eV = r.positive("mass_eV");
    s.charge_e = r.number("charge_e");
    if (s.charge_e == 0) fail("species.charge_e", "must not be zero");
    r.finish();
    return s;
}

Distribution parse_distribution(const json& v) {
    ObjectReader r(v, "distribution");
    Distribution d;
    std::string type = r.choice("type", {"uniform_ellipsoid", "gaussian", "waterbag"});
    if (type == "uniform_ellipsoid") {
        d.type = DistributionType::uniform_ellipsoid;
        d.size_m = {r.positive("radius_x_m"), r.positive("radius_y_m"), r.positive("radius_tau_m")};
    } else {
        d.type = type == "gaussian" ? DistributionType::gaussian : DistributionType::waterbag;
        d.size_m = {r.positive("sigma_x_m"), r.positive("sigma_y_m"), r.positive("sigma_tau_m")};
    }
    // the waterbag is 6D: its momentum spreads are part of it, so required
    const bool momenta_required = d.type == DistributionType::waterbag;
    const char* momentum_keys[3] = {"sigma_px", "sigma_py", "sigma_delta"};
    for (int a = 0; a < 3; ++a)
        if (momenta_required || r.has(momentum_keys[a])) d.momentum_rms[a] = r.non_negative(momentum_keys[a]);
    r.finish();
    return d;
}

// Limits on what a config's lattice may expand to: repeats nest at most
// kMaxRepeatDepth deep and flatten to at most kMaxSlices slices (kicks).
constexpr int kMaxRepeatDepth = 16;
constexpr std::int64_t kMaxSlices = 10000000;

// Appends the elements of the config list `v` at `path` (e.g. "lattice" or
// "lattice.1.lattice") to `out`, repeats flattened; `slices` counts the
// slices so far (the limit is checked as the list grows, so a huge count
// fails before anything large is built).
void flatten_lattice(const json& v, const std::string& path, int depth, Lattice& out, std::int64_t& slices);

void check_slice_count(std::int64_t slices, const std::string& key) {
    if (slices > kMaxSlices)
        fail(key, "the lattice flattens to more than " + std::to_string(kMaxSlices) + " slices");
}

Element parse_element(ObjectReader& r, const std::string& type) {
    Element e;
    e.length_m = r.positive("length_m");
    const std::int64_t slices = r.positive_integer("slices");
    if (slices > 1000000) fail(r.name("slices"), "must be at most 1000000");
    e.slices = static_cast<int>(slices);
    if (type == "quadrupole") {
        e.kind = ElementKind::quadrupole;
        e.k1_per_m2 = r.number("k1_per_m2");
    } else if (type == "constant_focusing") {
        e.kind = ElementKind::constant_focusing;
        e.kx_per_m = r.number("kx_per_m");
        e.ky_per_m = r.number("ky_per_m");
        e.kt_per_m = r.non_negative("kt_per_m");  // ImpactX's ConstF: kt >= 0
    }
    return e;
}

void flatten_lattice(const json& v, const std::string& path, int depth, Lattice& out, std::int64_t& slices) {
    if (!v.is_array() || v.empty()) fail(path, "must be a non-empty array of elements");
    for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string here = path + "." + std::to_string(i);
        ObjectReader r(v[i], here);
        const std::string type = r.choice("type", {"drift", "quadrupole", "constant_focusing", "repeat"});
        if (type == "repeat") {
            if (depth >= kMaxRepeatDepth)
                fail(here, "repeats nest more than " + std::to_string(kMaxRepeatDepth) + " deep");
            const std::int64_t count = r.positive_integer("count");
            const std::size_t first = out.size();
            const std::int64_t slices_before = slices;
            flatten_lattice(r.at("lattice"), r.name("lattice"), depth + 1, out, slices);
            const std::int64_t cell_slices = slices - slices_before;
            if (count > kMaxSlices || cell_slices * count > kMaxSlices - slices_before)
                fail(r.name("count"), "the lattice flattens to more than " + std::to_string(kMaxSlices) + " slices");
            r.finish();
            const Lattice cell(out.begin() + first, out.end());
            for (std::int64_t c = 1; c < count; ++c) out.insert(out.end(), cell.begin(), cell.end());
            slices = slices_before + cell_slices * count;
            continue;
        }
        Element e = parse_element(r, type);
        r.finish();
        e.source = here;
        slices += e.slices;
        check_slice_count(slices, here + ".slices");
        out.push_back(e);
    }
}

// The config's lattice as the flat list of elements the trackers walk.
Lattice parse_lattice(const json& v) {
    Lattice lattice;
    std::int64_t slices = 0;
    flatten_lattice(v, "lattice", 0, lattice, slices);
    return lattice;
}

std::array<double, 3> number_triple(const json& v, const std::string& key) {
    if (!v.is_array() || v.size() != 3) fail(key, "must be an array of 3 numbers");
    std::array<double, 3> out;
    for (int a = 0; a < 3; ++a) {
        if (!v[a].is_number() || !std::isfinite(v[a].get<double>()) || !(v[a].get<double>() > 0))
            fail(key, "entries must be positive finite numbers");
        out[a] = v[a].get<double>();
    }
    return out;
}

void parse_space_charge(const json& v, TrackSettings& t) {
    ObjectReader r(v, "space_charge");
    t.space_charge = r.boolean("enabled");
    if (r.has("grid")) {
        const json& g = r.at("grid");
        if (!g.is_array() || g.size() != 3) fail("space_charge.grid", "must be [nx, ny, nz]");
        for (int a = 0; a < 3; ++a) {
            if (!g[a].is_number_integer()) fail("space_charge.grid", "entries must be integers");
            if (g[a].is_number_unsigned() && g[a].get<std::uint64_t>() > 4096)
                fail("space_charge.grid", "at most 4096 nodes per axis");
            std::int64_t n = g[a].get<std::int64_t>();
            if (n < 2) fail("space_charge.grid", "needs at least 2 nodes on every axis");
            if (n > 4096) fail("space_charge.grid", "at most 4096 nodes per axis");
            t.grid.shape[a] = static_cast<int>(n);
        }
    }
    if (r.has("extent")) {
        ObjectReader e(r.at("extent"), "space_charge.extent");
        std::string mode = e.choice("mode", {"minmax", "sigma"});
        if (mode == "minmax") {
            t.grid.mode = ExtentMode::minmax;
            if (e.has("padding")) t.grid.padding = e.non_negative("padding");
        } else {
            t.grid.mode = ExtentMode::sigma;
            t.grid.sigma_factor = number_triple(e.at("factor"), "space_charge.extent.factor");
        }
        if (e.has("cell_quantum")) {
            t.grid.cell_quantum = e.non_negative("cell_quantum");
            // below 1e-6 the ladder's rungs approach the rounding of exp and log
            const double q = t.grid.cell_quantum;
            if (q > 1) fail("space_charge.extent.cell_quantum", "must be at most 1 (a cell up to twice the exact one)");
            if (q > 0 && q < 1e-6) fail("space_charge.extent.cell_quantum", "must be 0 (off) or at least 1e-6");
        }
        e.finish();
    }
    r.finish();
}

void parse_gradient_request(ObjectReader& r, RunConfig& c) {
    c.differentiate = r.has("strategy") || r.has("gradients") || r.has("objective");
    if (r.has("strategy"))
        c.gradient.strategy = parse_strategy(r.choice("strategy", kStrategyNames.set()));
    if (r.has("snapshots")) {
        if (c.gradient.strategy != Strategy::checkpoint) fail("snapshots", "is only used with strategy \"checkpoint\"");
        const std::int64_t s = r.positive_integer("snapshots");
        if (s > 100000) fail("snapshots", "must be at most 100000");
        c.gradient.snapshots = static_cast<int>(s);
    }
    if (r.has("objective"))
        c.gradient.objective = parse_objective(r.choice("objective", kObjectiveNames.set()));
    if (r.has("gradients")) {
        const json& g = r.at("gradients");
        if (!g.is_array()) fail("gradients", "must be an array of names");
        const auto known = gradient_names(c.beam, c.tracking.lattice);
        for (const json& name : g) {
            if (!name.is_string()) fail("gradients", "entries must be strings");
            const std::string s = name.get<std::string>();
            if (std::find(known.begin(), known.end(), s) == known.end()) {
                std::string list;
                for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
                fail("gradients", "unknown gradient name '" + s + "' (known: " + list + ")");
            }
            c.gradient.gradients.push_back(s);
        }
    }
}

}  // namespace

RunConfig parse_config(const json& j) {
    RunConfig c;
    c.source = j;
    ObjectReader r(j, "");
    if (r.has("species")) c.beam.species = parse_species(r.at("species"));
    c.beam.kinetic_energy_eV = r.positive("kinetic_energy_eV");
    c.beam.bunch_charge_C = r.positive("bunch_charge_C");
    c.beam.n_particles = r.positive_integer("n_particles");
    if (r.has("seed")) {
        const json& s = r.at("seed");
        if (!s.is_number_integer() || (s.is_number_integer() && !s.is_number_unsigned() && s.get<std::int64_t>() < 0))
            fail("seed", "must be a non-negative integer");
        c.beam.seed = s.get<std::uint64_t>();
    }
    c.beam.distribution = parse_distribution(r.at("distribution"));
    c.tracking.lattice = parse_lattice(r.at("lattice"));
    if (r.has("space_charge")) parse_space_charge(r.at("space_charge"), c.tracking);
    if (r.has("dtype")) c.dtype = kDtypeNames.parse(r.choice("dtype", kDtypeNames.set()), "dtype");
    if (r.has("backend")) c.backend = kBackendNames.parse(r.choice("backend", kBackendNames.set()), "backend");
    c.tracking.threads = omp_get_max_threads();
    if (r.has("threads")) {
        std::int64_t t = r.positive_integer("threads");
        if (t > 1024) fail("threads", "must be at most 1024");
        c.tracking.threads = static_cast<int>(t);
    }
    parse_gradient_request(r, c);
    r.finish();
    return c;
}

RunConfig load_config(const std::string& path) {
    try {
        return parse_config(read_json_input(path, "config file"));
    } catch (const JsonInputError& e) {
        throw ConfigError(e.what());
    }
}

}  // namespace sctape
