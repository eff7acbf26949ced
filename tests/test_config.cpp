// Config parsing in process [config] (cli/config.hpp): what parse_config
// makes of the keys, and the exact ConfigError text for unknown keys, wrong
// types, missing keys and non-finite numbers. test_cli.cpp runs the same
// classes of bad input through the `sctape` binary (exit code 2, nothing
// written); here the message itself is pinned.
#include <catch2/catch.hpp>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <string>
#include <vector>

#include "config.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sctape::ConfigError;
using sctape::parse_config;

// A valid configuration that sets every non-reverse-mode key.
json full_config() {
    return {
        {"species", "proton"},
        {"kinetic_energy_eV", 250e6},
        {"bunch_charge_C", 1e-9},
        {"n_particles", 2000},
        {"seed", 3},
        {"distribution",
         {{"type", "gaussian"}, {"sigma_x_m", 1e-3}, {"sigma_y_m", 2e-3}, {"sigma_tau_m", 3e-3}, {"sigma_px", 1e-4}}},
        {"lattice", json::array({{{"type", "drift"}, {"length_m", 1.5}, {"slices", 3}}})},
        {"space_charge",
         {{"enabled", true}, {"grid", {8, 16, 32}}, {"extent", {{"mode", "sigma"}, {"factor", {5, 6, 7}}}}}},
        {"dtype", "float32"},
        {"backend", "cpu"},
        {"threads", 2},
    };
}

// The smallest valid configuration: the required keys only.
json required_only() {
    return {
        {"kinetic_energy_eV", 250e6},
        {"bunch_charge_C", 1e-9},
        {"n_particles", 2000},
        {"distribution",
         {{"type", "uniform_ellipsoid"}, {"radius_x_m", 1e-3}, {"radius_y_m", 1e-3}, {"radius_tau_m", 1e-3}}},
        {"lattice", json::array({{{"type", "drift"}, {"length_m", 1.0}, {"slices", 2}}})},
    };
}

// The ConfigError parse_config throws for `config`, or "" when it parses.
std::string config_error(const json& config) {
    try {
        parse_config(config);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

// The ConfigError load_config throws for `path`, or "" when it loads.
std::string load_error(const std::string& path) {
    try {
        sctape::load_config(path);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

// full_config() with `key` (a JSON pointer, e.g. "/lattice/0/slices") set to `value`.
json with(const std::string& key, const json& value) {
    json config = full_config();
    config[json::json_pointer(key)] = value;
    return config;
}

}  // namespace

TEST_CASE("parse_config: every key of a full config reaches the run settings", "[config]") {
    const sctape::RunConfig c = parse_config(full_config());
    CHECK(c.source == full_config());  // echoed into RESULT as given
    CHECK(c.beam.species.name == "proton");
    CHECK(c.beam.species.charge_e == 1.0);
    CHECK(c.beam.kinetic_energy_eV == 250e6);
    CHECK(c.beam.bunch_charge_C == 1e-9);
    CHECK(c.beam.n_particles == 2000);
    CHECK(c.beam.seed == 3);
    CHECK(c.beam.distribution.type == sctape::DistributionType::gaussian);
    CHECK(c.beam.distribution.size_m == std::array<double, 3>{1e-3, 2e-3, 3e-3});
    CHECK(c.beam.distribution.momentum_rms == std::array<double, 3>{1e-4, 0, 0});  // unset spreads stay 0
    REQUIRE(c.tracking.lattice.size() == 1);
    CHECK(c.tracking.lattice[0].length_m == 1.5);
    CHECK(c.tracking.lattice[0].slices == 3);
    CHECK(c.tracking.space_charge);
    CHECK(c.tracking.grid.shape == std::array<int, 3>{8, 16, 32});
    CHECK(c.tracking.grid.mode == sctape::ExtentMode::sigma);
    CHECK(c.tracking.grid.sigma_factor == std::array<double, 3>{5, 6, 7});
    CHECK(c.dtype == sctape::Dtype::float32);
    CHECK(c.backend == sctape::Backend::cpu);
    CHECK(c.tracking.threads == 2);
    CHECK_FALSE(c.differentiate);  // no strategy, objective or gradients
}

TEST_CASE("parse_config: optional keys left out take their defaults", "[config]") {
    const sctape::RunConfig c = parse_config(required_only());
    CHECK(c.beam.species.name == "electron");
    CHECK(c.beam.seed == 1);
    CHECK(c.beam.distribution.momentum_rms == std::array<double, 3>{0, 0, 0});
    CHECK(c.tracking.space_charge);
    CHECK(c.tracking.grid.shape == std::array<int, 3>{32, 32, 32});
    CHECK(c.tracking.grid.mode == sctape::ExtentMode::minmax);
    CHECK(c.tracking.grid.padding == 0.05);
    CHECK(c.dtype == sctape::Dtype::float64);
    CHECK(c.backend == sctape::Backend::automatic);
    CHECK(c.tracking.threads == omp_get_max_threads());
    CHECK_FALSE(c.differentiate);
}

TEST_CASE("parse_config: a reverse-mode key turns on differentiation", "[config]") {
    json config = full_config();
    config["strategy"] = "checkpoint";
    config["snapshots"] = 4;
    config["objective"] = "emittance_y";
    config["gradients"] = {"bunch_charge_C", "lattice.0.length_m"};
    const sctape::RunConfig c = parse_config(config);
    CHECK(c.differentiate);
    CHECK(c.gradient.strategy == sctape::Strategy::checkpoint);
    CHECK(c.gradient.snapshots == 4);
    CHECK(c.gradient.objective == sctape::Objective::emittance_y);
    CHECK(c.gradient.gradients == std::vector<std::string>{"bunch_charge_C", "lattice.0.length_m"});
}

TEST_CASE("parse_config: an unknown key is a ConfigError naming its full path", "[config]") {
    CHECK(config_error(with("/sead", 3)) == "config key 'sead': is not a known key");
    CHECK(config_error(with("/distribution/radius_x_m", 1e-3)) ==
          "config key 'distribution.radius_x_m': is not a known key");  // a uniform_ellipsoid key on a gaussian
    CHECK(config_error(with("/lattice/0/slice", 2)) == "config key 'lattice.0.slice': is not a known key");
    CHECK(config_error(with("/space_charge/extent/padding", 0.1)) ==
          "config key 'space_charge.extent.padding': is not a known key");  // padding is for minmax only
}

TEST_CASE("parse_config: space_charge.extent.cell_quantum is read and bounded", "[config]") {
    CHECK(parse_config(with("/space_charge/extent", json{{"mode", "minmax"}, {"cell_quantum", 0.05}}))
              .tracking.grid.cell_quantum == 0.05);
    CHECK(config_error(with("/space_charge/extent", json{{"mode", "minmax"}, {"cell_quantum", -0.1}})) ==
          "config key 'space_charge.extent.cell_quantum': must not be negative");
    CHECK(config_error(with("/space_charge/extent", json{{"mode", "sigma"}, {"factor", {6, 6, 6}}, {"cell_quantum", 1.5}})) ==
          "config key 'space_charge.extent.cell_quantum': must be at most 1 (a cell up to twice the exact one)");
    CHECK(config_error(with("/space_charge/extent", json{{"mode", "minmax"}, {"cell_quantum", 1e-17}})) ==
          "config key 'space_charge.extent.cell_quantum': must be 0 (off) or at least 1e-6");
}

TEST_CASE("parse_config: a wrong type is a ConfigError naming the key and the type wanted", "[config]") {
    CHECK(config_error(with("/n_particles", "2000")) == "config key 'n_particles': must be an integer");
    CHECK(config_error(with("/n_particles", 2000.5)) == "config key 'n_particles': must be an integer");
    CHECK(config_error(with("/kinetic_energy_eV", "250e6")) == "config key 'kinetic_energy_eV': must be a number");
    CHECK(config_error(with("/lattice/0/length_m", nullptr)) == "config key 'lattice.0.length_m': must be a number");
    CHECK(config_error(with("/space_charge/enabled", "yes")) ==
          "config key 'space_charge.enabled': must be true or false");
    CHECK(config_error(with("/distribution", "gaussian")) == "config key 'distribution': must be an object");
    CHECK(config_error(with("/space_charge/grid", {8, 8.5, 8})) ==
          "config key 'space_charge.grid': entries must be integers");
    CHECK(config_error(with("/dtype", 32)) == "config key 'dtype': must be one of \"float32\", \"float64\"");
    CHECK(config_error(json::array({1, 2})) == "config key '<top level>': must be an object");
}

TEST_CASE("parse_config: a missing required key is a ConfigError naming it", "[config]") {
    json config = full_config();
    config.erase("n_particles");
    CHECK(config_error(config) == "config key 'n_particles': is required");
    config = full_config();
    config["lattice"][0].erase("slices");
    CHECK(config_error(config) == "config key 'lattice.0.slices': is required");
}

// JSON text cannot hold NaN or infinity (test_cli.cpp covers 1e999 and bare
// NaN tokens), but a json value built in process can: parse_config still
// refuses it.
TEST_CASE("parse_config: NaN and infinite numbers are ConfigErrors", "[config]") {
    CHECK(config_error(with("/bunch_charge_C", std::numeric_limits<double>::quiet_NaN())) ==
          "config key 'bunch_charge_C': must be finite");
    CHECK(config_error(with("/lattice/0/length_m", std::numeric_limits<double>::infinity())) ==
          "config key 'lattice.0.length_m': must be finite");
}

TEST_CASE("load_config: a missing file and malformed JSON are ConfigErrors naming the file", "[config]") {
    const fs::path dir = fs::path(SCTAPE_TEST_TMPDIR) / "config";
    fs::create_directories(dir);
    const std::string missing = (dir / "no_such_config.json").string();
    CHECK(load_error(missing) == "cannot read config file '" + missing + "' (no such file)");
    const std::string malformed = (dir / "malformed.json").string();
    std::ofstream(malformed) << "{\"n_particles\": 2000,}";
    // after the prefix comes nlohmann::json's own parse message, not pinned here
    CHECK_THAT(load_error(malformed), Catch::StartsWith("config file '" + malformed + "' is not valid JSON: "));
}

namespace {

json element(const std::string& type, double length, int slices) {
    return {{"type", type}, {"length_m", length}, {"slices", slices}};
}

// full_config() with `lattice` as its lattice.
json with_lattice(const json& lattice) {
    json config = full_config();
    config["lattice"] = lattice;
    return config;
}

// `depth` repeats nested around one drift.
json nested_repeats(int depth) {
    json lattice = json::array({element("drift", 1.0, 1)});
    for (int d = 0; d < depth; ++d) lattice = json::array({{{"type", "repeat"}, {"count", 1}, {"lattice", lattice}}});
    return lattice;
}

}  // namespace

TEST_CASE("parse_config: lattice elements and repeats, and their errors naming the key", "[config][lattice]") {
    json quad = element("quadrupole", 0.2, 2);
    quad["k1_per_m2"] = -4.0;
    json cf = element("constant_focusing", 0.5, 4);
    cf.update({{"kx_per_m", 1.0}, {"ky_per_m", -0.5}, {"kt_per_m", 0.1}});
    const sctape::RunConfig c =
        parse_config(with_lattice(json::array({quad, {{"type", "repeat"}, {"count", 3}, {"lattice", {cf}}}})));
    REQUIRE(c.tracking.lattice.size() == 4);
    CHECK(c.tracking.lattice[0].kind == sctape::ElementKind::quadrupole);
    CHECK(c.tracking.lattice[0].k1_per_m2 == -4.0);
    CHECK(c.tracking.lattice[3].kind == sctape::ElementKind::constant_focusing);
    CHECK(c.tracking.lattice[3].ky_per_m == -0.5);
    CHECK(c.tracking.lattice[3].source == "lattice.1.lattice.0");

    const double nan = std::numeric_limits<double>::quiet_NaN();
    json bad = quad;
    bad["k1_per_m2"] = nan;
    CHECK(config_error(with_lattice(json::array({bad}))) == "config key 'lattice.0.k1_per_m2': must be finite");
    bad = quad;
    bad["length_m"] = -0.2;
    CHECK(config_error(with_lattice(json::array({bad}))) == "config key 'lattice.0.length_m': must be positive");
    bad = quad;
    bad["slices"] = 0;
    CHECK(config_error(with_lattice(json::array({bad}))) == "config key 'lattice.0.slices': must be positive");
    bad = quad;
    bad["kx_per_m"] = 1.0;
    CHECK(config_error(with_lattice(json::array({bad}))) == "config key 'lattice.0.kx_per_m': is not a known key");
    bad = quad;
    bad.erase("k1_per_m2");
    CHECK(config_error(with_lattice(json::array({bad}))) == "config key 'lattice.0.k1_per_m2': is required");
    bad = cf;
    bad["kt_per_m"] = -0.1;
    CHECK(config_error(with_lattice(json::array({bad}))) == "config key 'lattice.0.kt_per_m': must not be negative");
    CHECK(config_error(with_lattice(json::array({{{"type", "repeat"}, {"count", 0}, {"lattice", {quad}}}}))) ==
          "config key 'lattice.0.count': must be positive");
    CHECK(config_error(with_lattice(json::array({{{"type", "repeat"}, {"count", 2}, {"lattice", json::array()}}}))) ==
          "config key 'lattice.0.lattice': must be a non-empty array of elements");
    CHECK(config_error(with_lattice(
              json::array({{{"type", "repeat"}, {"count", 2}, {"lattice", {quad}}, {"slices", 1}}}))) ==
          "config key 'lattice.0.slices': is not a known key");
    CHECK(config_error(with_lattice(nested_repeats(16))).empty());
    CHECK(config_error(with_lattice(nested_repeats(17))) ==
          "config key 'lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0."
          "lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0.lattice.0': repeats nest more than "
          "16 deep");
    // 10^4 x 10^4 x 1 slices: refused before it is built
    json huge = {{"type", "repeat"}, {"count", 10000},
                 {"lattice", {{{"type", "repeat"}, {"count", 10000}, {"lattice", {element("drift", 1.0, 1)}}}}}};
    CHECK(config_error(with_lattice(json::array({huge}))) == "config key 'lattice.0.count': the lattice flattens to more than "
                                                "10000000 slices");
    json many = element("drift", 1.0, 1000000);
    CHECK(config_error(with_lattice(json::array({many, many, many, many, many, many, many, many, many, many, many}))) ==
          "config key 'lattice.10.slices': the lattice flattens to more than 10000000 slices");
}

TEST_CASE("parse_config: the waterbag needs its six rms values", "[config][beam]") {
    json config = full_config();
    config["distribution"] = {{"type", "waterbag"}, {"sigma_x_m", 1e-3}, {"sigma_y_m", 1e-3}, {"sigma_tau_m", 1e-3},
                              {"sigma_px", 1e-4}, {"sigma_py", 1e-4}, {"sigma_delta", 1e-4}};
    const sctape::RunConfig c = parse_config(config);
    CHECK(c.beam.distribution.type == sctape::DistributionType::waterbag);
    CHECK(c.beam.distribution.momentum_rms[2] == 1e-4);
    config["distribution"].erase("sigma_py");
    CHECK(config_error(config) == "config key 'distribution.sigma_py': is required");
}
