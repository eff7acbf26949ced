// CLI tests: run the real `sctape` binary (SCTAPE_CLI_PATH) on small
// configurations in a scratch directory (SCTAPE_TEST_TMPDIR) and check exit
// codes, standard error, the RESULT JSON, the particle CSVs, and that bad
// input exits with code 2 and leaves the output directory untouched.
//
// Every run is small (2000 particles, 8^3 grid, 2 slices, 1 thread) so the
// whole file takes a few seconds. The "fixed bug" cases at the end pin bugs
// found while writing these tests.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include "core/backend.hpp"
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Catch::Matchers::Contains;

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 2;
constexpr std::int64_t kParticles = 2000;

const std::vector<std::string> kSubstepNames = {"s_to_t", "deposit", "green", "convolve",
                                                "field",  "gather",  "push",  "t_to_s"};

// ---------------------------------------------------------------- helpers

// A fresh, empty directory for one test case: <tmp>/<name>.
fs::path scratch_dir(const std::string& name) {
    fs::path dir = fs::path(SCTAPE_TEST_TMPDIR) / name;
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    return dir;
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

fs::path write_config(const fs::path& path, const json& config) {
    write_text(path, config.dump(2) + "\n");
    return path;
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

struct CliRun {
    int exit_code = -1;
    std::string out;  // standard output
    std::string err;  // standard error
};

// Runs `sctape ARGS...`; stdout and stderr are captured into files under `io`
// (a directory separate from the one whose contents the tests inspect).
CliRun run_cli(const std::vector<std::string>& args, const fs::path& io) {
    fs::create_directories(io);
    const fs::path out = io / "stdout.txt", err = io / "stderr.txt";
    std::string cmd = shell_quote(SCTAPE_CLI_PATH);
    for (const auto& a : args) cmd += " " + shell_quote(a);
    cmd += " </dev/null >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string());
    const int status = std::system(cmd.c_str());
    INFO("command: " << cmd);
    REQUIRE(status != -1);
    REQUIRE(WIFEXITED(status));
    CliRun r;
    r.exit_code = WEXITSTATUS(status);
    r.out = read_text(out);
    r.err = read_text(err);
    return r;
}

// Names of the entries of a directory (not recursive).
std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
}

bool any_tmp_file(const fs::path& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
    return false;
}

// The small, valid configuration every test starts from.
// What "auto" resolves to here: the CUDA kick when built and a GPU answers.
const char* expected_auto_backend() { return sctape::probe_gpu().usable ? "cuda" : "cpu"; }

json good_config() {
    return {
        {"species", "electron"},
        {"kinetic_energy_eV", 250e6},
        {"bunch_charge_C", 1e-9},
        {"n_particles", kParticles},
        {"seed", 3},
        {"distribution",
         {{"type", "uniform_ellipsoid"}, {"radius_x_m", 1e-3}, {"radius_y_m", 1e-3}, {"radius_tau_m", 1e-3}}},
        {"lattice", json::array({{{"type", "drift"}, {"length_m", 1.0}, {"slices", 2}}})},
        {"space_charge", {{"enabled", true}, {"grid", {8, 8, 8}}}},
        {"dtype", "float64"},
        {"backend", "auto"},
        {"threads", 1},
    };
}

bool is_finite_number(const json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

void check_positive_finite(const json& obj, const std::string& key) {
    INFO("key " << key << " in " << obj.dump());
    REQUIRE(obj.contains(key));
    CHECK(is_finite_number(obj.at(key)));
    if (is_finite_number(obj.at(key))) CHECK(obj.at(key).get<double>() > 0);
}

// moments_json: mean, rms, normalized_emittance_m, every entry a finite number.
void check_moments_shape(const json& m) {
    INFO("moments " << m.dump());
    REQUIRE(m.is_object());
    CHECK(m.contains("mean"));
    CHECK(m.contains("rms"));
    CHECK(m.contains("normalized_emittance_m"));
    const std::map<std::string, std::set<std::string>> expected = {
        {"mean", {"x_m", "px", "y_m", "py", "tau_m", "delta"}},
        {"rms", {"sigma_x_m", "sigma_px", "sigma_y_m", "sigma_py", "sigma_tau_m", "sigma_delta"}},
        {"normalized_emittance_m", {"x", "y", "tau"}},
    };
    for (const auto& [group, keys] : expected) {
        if (!m.contains(group)) continue;
        std::set<std::string> got;
        for (auto it = m.at(group).begin(); it != m.at(group).end(); ++it) {
            got.insert(it.key());
            INFO(group << "." << it.key());
            CHECK(is_finite_number(it.value()));
        }
        CHECK(got == keys);
    }
    for (const char* k : {"sigma_x_m", "sigma_y_m", "sigma_tau_m"}) check_positive_finite(m.at("rms"), k);
}

// Each substep name present, a finite non-negative number; nothing else.
void check_substeps(const json& t) {
    INFO("timing " << t.dump());
    REQUIRE(t.is_object());
    std::set<std::string> got;
    for (auto it = t.begin(); it != t.end(); ++it) {
        got.insert(it.key());
        CHECK(is_finite_number(it.value()));
        if (is_finite_number(it.value())) CHECK(it.value().get<double>() >= 0);
    }
    CHECK(got == std::set<std::string>(kSubstepNames.begin(), kSubstepNames.end()));
}

// Runs `sctape track CONFIG --out RESULT --quiet` in `dir`; returns the parsed RESULT.
json run_ok(const fs::path& dir, const json& config) {
    const fs::path cfg = write_config(dir / "config.json", config);
    const fs::path result = dir / "result.json";
    CliRun r = run_cli({"track", cfg.string(), "--out", result.string(), "--quiet"}, dir / "io");
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == kExitOk);
    REQUIRE(fs::is_regular_file(result));
    CHECK_FALSE(any_tmp_file(dir));
    json j;
    REQUIRE_NOTHROW(j = json::parse(read_text(result)));
    return j;
}

// The CSV as rows of doubles; checks the header and that every row has six finite numbers.
std::vector<std::vector<double>> read_particles_csv(const fs::path& path) {
    INFO("csv " << path);
    REQUIRE(fs::is_regular_file(path));
    std::istringstream in(read_text(path));
    std::string line;
    REQUIRE(std::getline(in, line));
    CHECK(line == "x,px,y,py,tau,delta");
    std::vector<std::vector<double>> rows;
    bool all_good = true;
    while (std::getline(in, line)) {
        std::vector<double> row;
        std::istringstream fields(line);
        std::string f;
        while (std::getline(fields, f, ',')) {
            try {
                std::size_t used = 0;
                double v = std::stod(f, &used);
                if (used != f.size() || !std::isfinite(v)) all_good = false;
                row.push_back(v);
            } catch (const std::exception&) {
                all_good = false;
            }
        }
        if (row.size() != 6) all_good = false;
        rows.push_back(row);
    }
    CHECK(all_good);
    return rows;
}

// --------------------------------------------------- bad-input machinery

// One way to break the input: the config (a mutation of good_config(), or raw
// text), extra arguments, and the substrings stderr must contain.
struct BadCase {
    std::string what;
    std::function<void(json&)> mutate;  // applied to good_config() unless raw is set
    std::vector<std::string> expect;    // each must appear in stderr
    std::string raw = {};               // config file text used verbatim when not empty
};

// Runs `sctape track DIR/config.json --out DIR/result.json --dump-particles DIR/particles`
// (plus `extra`) and checks: exit code 2, an error on stderr naming the
// problem, nothing on stdout, and DIR exactly as before (no result, no CSVs,
// no *.tmp-* leftovers).
void expect_rejected(const fs::path& dir, const BadCase& c, const std::vector<std::string>& extra = {}) {
    INFO("case: " << c.what);
    fs::create_directories(dir);
    const fs::path cfg = dir / "config.json";
    if (!c.raw.empty()) {
        write_text(cfg, c.raw);
    } else {
        json config = good_config();
        if (c.mutate) c.mutate(config);
        INFO("config: " << config.dump());
        write_config(cfg, config);
    }
    const std::set<std::string> before = listing(dir);
    std::vector<std::string> args = {"track", cfg.string(), "--out", (dir / "result.json").string(),
                                     "--dump-particles", (dir / "particles").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    CliRun r = run_cli(args, dir.parent_path() / (dir.filename().string() + ".io"));
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == kExitBadInput);
    CHECK_THAT(r.err, Contains("error"));
    for (const auto& e : c.expect) CHECK_THAT(r.err, Contains(e));
    CHECK(r.out.empty());
    CHECK(listing(dir) == before);
    CHECK_FALSE(fs::exists(dir / "result.json"));
    CHECK_FALSE(fs::exists(dir / "particles_initial.csv"));
    CHECK_FALSE(fs::exists(dir / "particles_final.csv"));
    CHECK_FALSE(any_tmp_file(dir));
}

void expect_all_rejected(const std::string& test_dir, const std::vector<BadCase>& cases) {
    const fs::path base = scratch_dir(test_dir);
    for (std::size_t i = 0; i < cases.size(); ++i) expect_rejected(base / std::to_string(i), cases[i]);
}

// json& for lattice element 0 etc., shortening the mutations below.
json& lattice0(json& c) { return c["lattice"][0]; }

}  // namespace

// =================================================================== runs

TEST_CASE("track: a good config exits 0 and writes a complete RESULT", "[cli]") {
    const fs::path dir = scratch_dir("good_config");
    const json config = good_config();
    const fs::path cfg = write_config(dir / "config.json", config);
    const fs::path result = dir / "result.json";
    CliRun r = run_cli({"track", cfg.string(), "--out", result.string()}, dir / "io");
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == kExitOk);
    CHECK(r.out.empty());                            // the result goes to --out only
    CHECK_THAT(r.err, Contains("[sctape] slice 2/2"));  // progress on stderr without --quiet
    CHECK(listing(dir) == std::set<std::string>{"config.json", "result.json", "io"});

    json j;
    REQUIRE_NOTHROW(j = json::parse(read_text(result)));
    REQUIRE(j.is_object());

    SECTION("top-level keys are pinned") {
        std::set<std::string> keys;
        for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
        CHECK(keys == std::set<std::string>{"schema_version", "sctape_version", "config", "backend", "dtype",
                                            "threads", "n_particles", "kicks", "moments", "timing"});
    }
    SECTION("schema, config echo and run summary") {
        CHECK(j.at("schema_version") == 1);
        CHECK(j.at("sctape_version").is_string());
        CHECK(j.at("config") == config);
        CHECK(j.at("config") == json::parse(read_text(cfg)));
        CHECK(j.at("dtype") == "float64");
        CHECK(j.at("threads") == 1);
        CHECK(j.at("n_particles") == kParticles);
        CHECK(j.at("kicks") == 2);  // one kick per slice
    }
    SECTION("backend") {
        const json& b = j.at("backend");
        CHECK(b.at("requested") == "auto");
        CHECK(b.at("used") == expected_auto_backend());
        CHECK(b.at("reason").is_string());
        CHECK_FALSE(b.at("reason").get<std::string>().empty());
    }
    SECTION("initial and final moments") {
        const json& m = j.at("moments");
        REQUIRE(m.contains("initial"));
        REQUIRE(m.contains("final"));
        check_moments_shape(m.at("initial"));
        check_moments_shape(m.at("final"));
        // Uniform ellipsoid of semi-axis R: rms = R / sqrt(5).
        CHECK(m.at("initial").at("rms").at("sigma_x_m").get<double>() ==
              Approx(1e-3 / std::sqrt(5.0)).epsilon(0.1));
        // Space charge pushes the beam apart: momenta grow from zero.
        CHECK(m.at("initial").at("rms").at("sigma_px") == 0.0);
        CHECK(m.at("final").at("rms").at("sigma_px").get<double>() > 0);
    }
    SECTION("timing per substep") {
        const json& t = j.at("timing");
        check_substeps(t.at("substep_per_kick_s"));
        check_substeps(t.at("substep_total_s"));
        for (const char* k : {"total_s", "drift_s"}) {
            INFO(k);
            CHECK(is_finite_number(t.at(k)));
            CHECK(t.at(k).get<double>() >= 0);
        }
        for (const auto& s : kSubstepNames)
            CHECK(t.at("substep_total_s").at(s).get<double>() ==
                  Approx(2 * t.at("substep_per_kick_s").at(s).get<double>()));
    }
}

TEST_CASE("track: without --out the RESULT goes to standard output", "[cli]") {
    const fs::path dir = scratch_dir("stdout_result");
    const fs::path cfg = write_config(dir / "config.json", good_config());
    CliRun r = run_cli({"track", cfg.string(), "--quiet"}, dir / "io");
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == kExitOk);
    CHECK(r.err.empty());  // --quiet
    json j;
    REQUIRE_NOTHROW(j = json::parse(r.out));
    CHECK(j.at("schema_version") == 1);
    CHECK(j.at("config") == good_config());
    CHECK(listing(dir) == std::set<std::string>{"config.json", "io"});
}

TEST_CASE("track: float32, gaussian with momentum spread, proton, no space charge", "[cli]") {
    const fs::path dir = scratch_dir("float32_gaussian");
    json config = good_config();
    config["species"] = "proton";
    config["dtype"] = "float32";
    config["backend"] = "cpu";
    config["distribution"] = {{"type", "gaussian"},   {"sigma_x_m", 1e-3}, {"sigma_y_m", 2e-3},
                              {"sigma_tau_m", 3e-3},  {"sigma_px", 1e-4},  {"sigma_py", 2e-4},
                              {"sigma_delta", 3e-4}};
    config["space_charge"] = {{"enabled", false}};
    const json j = run_ok(dir, config);

    CHECK(j.at("schema_version") == 1);
    CHECK(j.at("config") == config);
    CHECK(j.at("dtype") == "float32");
    CHECK(j.at("backend").at("requested") == "cpu");
    CHECK(j.at("backend").at("used") == "cpu");
    CHECK(j.at("kicks") == 0);
    check_moments_shape(j.at("moments").at("initial"));
    check_moments_shape(j.at("moments").at("final"));
    const json& rms = j.at("moments").at("initial").at("rms");
    const std::vector<std::pair<const char*, double>> expected = {
        {"sigma_x_m", 1e-3}, {"sigma_y_m", 2e-3}, {"sigma_tau_m", 3e-3},
        {"sigma_px", 1e-4},  {"sigma_py", 2e-4},  {"sigma_delta", 3e-4}};
    for (const auto& [key, sigma] : expected) {
        INFO(key);
        check_positive_finite(rms, key);
        CHECK(rms.at(key).get<double>() == Approx(sigma).epsilon(0.1));  // 2000 samples
    }
    // No kicks: momenta are unchanged by drifts, and no substep ran.
    CHECK(j.at("moments").at("final").at("rms").at("sigma_px").get<double>() ==
          Approx(rms.at("sigma_px").get<double>()).epsilon(1e-5));
    check_substeps(j.at("timing").at("substep_total_s"));
    for (const auto& s : kSubstepNames) CHECK(j.at("timing").at("substep_total_s").at(s) == 0.0);
}

TEST_CASE("track: species object and grid extent modes", "[cli]") {
    json config = good_config();
    std::string name;
    SECTION("custom species {mass_eV, charge_e}") {
        name = "species_object";
        config["species"] = {{"mass_eV", 938272088.16}, {"charge_e", 1}};
    }
    SECTION("sigma extent mode") {
        name = "extent_sigma";
        config["space_charge"]["extent"] = {{"mode", "sigma"}, {"factor", {6, 6, 6}}};
    }
    SECTION("minmax extent mode with padding, two threads") {
        name = "extent_minmax";
        config["space_charge"]["extent"] = {{"mode", "minmax"}, {"padding", 0.1}};
        config["threads"] = 2;
    }
    SECTION("optional keys left out (defaults)") {
        name = "defaults";
        for (const char* k : {"species", "seed", "dtype", "backend", "threads"}) config.erase(k);
        config["space_charge"].erase("grid");
        config["space_charge"]["enabled"] = false;  // default grid is 32^3: keep it quick
    }
    const fs::path dir = scratch_dir("variant_" + name);
    const json j = run_ok(dir, config);
    CHECK(j.at("schema_version") == 1);
    CHECK(j.at("config") == config);
    CHECK(j.at("backend").at("used") == (config.value("backend", "auto") == "cpu" ? "cpu" : expected_auto_backend()));
    check_moments_shape(j.at("moments").at("initial"));
    check_moments_shape(j.at("moments").at("final"));
    if (config["space_charge"]["enabled"] == true) {
        CHECK(j.at("kicks") == 2);
        check_substeps(j.at("timing").at("substep_per_kick_s"));
    }
}

TEST_CASE("track: --dump-particles writes the initial and final particle CSVs", "[cli]") {
    const fs::path dir = scratch_dir("dump_particles");
    const fs::path cfg = write_config(dir / "config.json", good_config());
    const fs::path prefix = dir / "beam";
    CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "result.json").string(), "--dump-particles",
                        prefix.string(), "--quiet"},
                       dir / "io");
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == kExitOk);
    CHECK(listing(dir) ==
          std::set<std::string>{"config.json", "result.json", "beam_initial.csv", "beam_final.csv", "io"});

    const auto initial = read_particles_csv(dir / "beam_initial.csv");
    const auto final_ = read_particles_csv(dir / "beam_final.csv");
    CHECK(initial.size() == static_cast<std::size_t>(kParticles));
    CHECK(final_.size() == static_cast<std::size_t>(kParticles));

    // The CSVs are the beam the moments were computed from.
    const json result = json::parse(read_text(dir / "result.json"));
    auto mean = [](const std::vector<std::vector<double>>& rows, int col) {
        double s = 0;
        for (const auto& row : rows) s += row.size() == 6 ? row[col] : 0.0;
        return s / rows.size();
    };
    const char* mean_keys[6] = {"x_m", "px", "y_m", "py", "tau_m", "delta"};
    for (int c = 0; c < 6; ++c) {
        INFO("column " << mean_keys[c]);
        CHECK(mean(initial, c) ==
              Approx(result["moments"]["initial"]["mean"][mean_keys[c]].get<double>()).margin(1e-12));
        CHECK(mean(final_, c) ==
              Approx(result["moments"]["final"]["mean"][mean_keys[c]].get<double>()).margin(1e-12));
    }
    // Tracking changed the beam (space-charge kicks give momenta).
    CHECK(initial != final_);
}

// ================================================================== usage

TEST_CASE("usage: --help, track --help, no arguments, unknown command", "[cli]") {
    const fs::path io = scratch_dir("usage");
    SECTION("sctape --help") {
        CliRun r = run_cli({"--help"}, io);
        CHECK(r.exit_code == kExitOk);
        CHECK_THAT(r.out, Contains("usage: sctape"));
        CHECK_THAT(r.out, Contains("track"));
    }
    SECTION("sctape -h") {
        CliRun r = run_cli({"-h"}, io);
        CHECK(r.exit_code == kExitOk);
        CHECK_THAT(r.out, Contains("usage: sctape"));
    }
    SECTION("sctape track --help") {
        CliRun r = run_cli({"track", "--help"}, io);
        CHECK(r.exit_code == kExitOk);
        CHECK_THAT(r.out, Contains("usage: sctape track"));
        CHECK_THAT(r.out, Contains("--out"));
        CHECK_THAT(r.out, Contains("--dump-particles"));
    }
    SECTION("sctape --version") {
        CliRun r = run_cli({"--version"}, io);
        CHECK(r.exit_code == kExitOk);
        CHECK_THAT(r.out, Contains("sctape "));
    }
    SECTION("no arguments: usage on stderr, exit 2") {
        CliRun r = run_cli({}, io);
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("usage: sctape"));
        CHECK(r.out.empty());
    }
    SECTION("unknown command") {
        CliRun r = run_cli({"trak"}, io);
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("unknown command 'trak'"));
    }
}

// ============================================================= bad input

TEST_CASE("bad config: unknown keys (typos) are rejected by name", "[cli]") {
    expect_all_rejected(
        "bad_unknown_key",
        {
            {"top-level typo", [](json& c) { c["sead"] = 3; }, {"'sead'", "not a known key"}},
            {"top-level typo of n_particles", [](json& c) { c["n_partcles"] = 10; }, {"'n_partcles'"}},
            {"distribution", [](json& c) { c["distribution"]["radius_z_m"] = 1e-3; },
             {"'distribution.radius_z_m'", "not a known key"}},
            {"gaussian key on a uniform ellipsoid", [](json& c) { c["distribution"]["sigma_x_m"] = 1e-3; },
             {"'distribution.sigma_x_m'", "not a known key"}},
            {"lattice element", [](json& c) { lattice0(c)["slice"] = 2; }, {"'lattice.0.slice'", "not a known key"}},
            {"space_charge", [](json& c) { c["space_charge"]["grids"] = {8, 8, 8}; },
             {"'space_charge.grids'", "not a known key"}},
            {"padding in sigma extent mode",
             [](json& c) {
                 c["space_charge"]["extent"] = {{"mode", "sigma"}, {"factor", {6, 6, 6}}, {"padding", 0.1}};
             },
             {"'space_charge.extent.padding'", "not a known key"}},
            {"species object",
             [](json& c) { c["species"] = {{"mass_eV", 1e6}, {"charge_e", 1}, {"name", "x"}}; },
             {"'species.name'", "not a known key"}},
        });
}

TEST_CASE("bad config: missing required keys are rejected by name", "[cli]") {
    auto missing = [](std::string key, std::function<void(json&)> erase) {
        return BadCase{"missing " + key, erase, {"'" + key + "'", "is required"}};
    };
    expect_all_rejected(
        "bad_missing_key",
        {
            missing("n_particles", [](json& c) { c.erase("n_particles"); }),
            missing("lattice", [](json& c) { c.erase("lattice"); }),
            missing("distribution", [](json& c) { c.erase("distribution"); }),
            missing("kinetic_energy_eV", [](json& c) { c.erase("kinetic_energy_eV"); }),
            missing("bunch_charge_C", [](json& c) { c.erase("bunch_charge_C"); }),
            missing("distribution.type", [](json& c) { c["distribution"].erase("type"); }),
            missing("distribution.radius_tau_m", [](json& c) { c["distribution"].erase("radius_tau_m"); }),
            missing("lattice.0.length_m", [](json& c) { lattice0(c).erase("length_m"); }),
            missing("lattice.0.slices", [](json& c) { lattice0(c).erase("slices"); }),
            missing("lattice.0.type", [](json& c) { lattice0(c).erase("type"); }),
            missing("space_charge.enabled", [](json& c) { c["space_charge"].erase("enabled"); }),
            missing("space_charge.extent.factor",
                    [](json& c) { c["space_charge"]["extent"] = {{"mode", "sigma"}}; }),
            missing("species.mass_eV", [](json& c) { c["species"] = {{"charge_e", 1}}; }),
        });
}

TEST_CASE("bad config: wrong types are rejected by name", "[cli]") {
    expect_all_rejected(
        "bad_wrong_type",
        {
            {"string for an integer", [](json& c) { c["n_particles"] = "2000"; },
             {"'n_particles'", "must be an integer"}},
            {"fraction for an integer", [](json& c) { c["n_particles"] = 2000.5; },
             {"'n_particles'", "must be an integer"}},
            {"string for a number", [](json& c) { c["kinetic_energy_eV"] = "250e6"; },
             {"'kinetic_energy_eV'", "must be a number"}},
            {"string for a nested number", [](json& c) { lattice0(c)["length_m"] = "1"; },
             {"'lattice.0.length_m'", "must be a number"}},
            {"null for a number", [](json& c) { c["bunch_charge_C"] = nullptr; },
             {"'bunch_charge_C'", "must be a number"}},
            {"string for a boolean", [](json& c) { c["space_charge"]["enabled"] = "yes"; },
             {"'space_charge.enabled'", "must be true or false"}},
            {"object expected", [](json& c) { c["distribution"] = "gaussian"; },
             {"'distribution'", "must be an object"}},
            {"array expected", [](json& c) { c["lattice"] = lattice0(c); }, {"'lattice'"}},
            {"lattice element not an object", [](json& c) { c["lattice"] = {1.0}; },
             {"'lattice.0'", "must be an object"}},
            {"string grid entries", [](json& c) { c["space_charge"]["grid"] = {"8", "8", "8"}; },
             {"'space_charge.grid'", "integers"}},
            {"negative seed", [](json& c) { c["seed"] = -1; }, {"'seed'", "non-negative integer"}},
            {"fractional threads", [](json& c) { c["threads"] = 1.5; }, {"'threads'", "must be an integer"}},
        });
}

TEST_CASE("bad config: non-positive sizes and counts are rejected by name", "[cli]") {
    expect_all_rejected(
        "bad_non_positive",
        {
            {"n_particles 0", [](json& c) { c["n_particles"] = 0; }, {"'n_particles'", "must be positive"}},
            {"n_particles negative", [](json& c) { c["n_particles"] = -5; }, {"'n_particles'", "must be positive"}},
            {"negative radius", [](json& c) { c["distribution"]["radius_x_m"] = -1e-3; },
             {"'distribution.radius_x_m'", "must be positive"}},
            {"zero radius", [](json& c) { c["distribution"]["radius_tau_m"] = 0; },
             {"'distribution.radius_tau_m'", "must be positive"}},
            {"zero drift length", [](json& c) { lattice0(c)["length_m"] = 0.0; },
             {"'lattice.0.length_m'", "must be positive"}},
            {"negative drift length", [](json& c) { lattice0(c)["length_m"] = -1.0; },
             {"'lattice.0.length_m'", "must be positive"}},
            {"zero slices", [](json& c) { lattice0(c)["slices"] = 0; }, {"'lattice.0.slices'", "must be positive"}},
            {"too many slices", [](json& c) { lattice0(c)["slices"] = 2000000; }, {"'lattice.0.slices'"}},
            {"empty lattice", [](json& c) { c["lattice"] = json::array(); }, {"'lattice'", "non-empty"}},
            {"zero bunch charge", [](json& c) { c["bunch_charge_C"] = 0; }, {"'bunch_charge_C'", "must be positive"}},
            {"negative kinetic energy", [](json& c) { c["kinetic_energy_eV"] = -1.0; },
             {"'kinetic_energy_eV'", "must be positive"}},
            {"negative momentum spread", [](json& c) { c["distribution"]["sigma_px"] = -1e-4; },
             {"'distribution.sigma_px'", "must not be negative"}},
            {"zero species charge", [](json& c) { c["species"] = {{"mass_eV", 1e6}, {"charge_e", 0}}; },
             {"'species.charge_e'"}},
            {"zero species mass", [](json& c) { c["species"] = {{"mass_eV", 0}, {"charge_e", 1}}; },
             {"'species.mass_eV'", "must be positive"}},
            {"negative padding",
             [](json& c) { c["space_charge"]["extent"] = {{"mode", "minmax"}, {"padding", -0.1}}; },
             {"'space_charge.extent.padding'", "must not be negative"}},
            {"zero sigma factor",
             [](json& c) { c["space_charge"]["extent"] = {{"mode", "sigma"}, {"factor", {6, 0, 6}}}; },
             {"'space_charge.extent.factor'"}},
            {"threads 0", [](json& c) { c["threads"] = 0; }, {"'threads'", "must be positive"}},
        });
}

TEST_CASE("bad config: grids under 2 nodes or of the wrong length", "[cli]") {
    auto grid = [](json g) { return [g](json& c) { c["space_charge"]["grid"] = g; }; };
    expect_all_rejected(
        "bad_grid",
        {
            {"1 node on y", grid({8, 1, 8}), {"'space_charge.grid'", "at least 2 nodes"}},
            {"0 nodes on z", grid({8, 8, 0}), {"'space_charge.grid'", "at least 2 nodes"}},
            {"negative nodes on x", grid({-8, 8, 8}), {"'space_charge.grid'", "at least 2 nodes"}},
            {"two entries", grid({8, 8}), {"'space_charge.grid'", "[nx, ny, nz]"}},
            {"four entries", grid({8, 8, 8, 8}), {"'space_charge.grid'", "[nx, ny, nz]"}},
            {"not an array", grid(8), {"'space_charge.grid'", "[nx, ny, nz]"}},
            {"fractional entry", grid({8, 8.5, 8}), {"'space_charge.grid'", "integers"}},
            {"over 4096 nodes", grid({8, 8, 4097}), {"'space_charge.grid'", "4096"}},
        });
}

TEST_CASE("bad config: invalid enum values list the allowed ones", "[cli]") {
    expect_all_rejected(
        "bad_enum",
        {
            {"dtype float16", [](json& c) { c["dtype"] = "float16"; }, {"'dtype'", "\"float32\"", "\"float64\""}},
            {"distribution type", [](json& c) { c["distribution"]["type"] = "kv"; },
             {"'distribution.type'", "\"gaussian\"", "\"uniform_ellipsoid\"", "\"waterbag\""}},
            {"extent mode", [](json& c) { c["space_charge"]["extent"] = {{"mode", "box"}}; },
             {"'space_charge.extent.mode'", "\"minmax\"", "\"sigma\""}},
            {"backend", [](json& c) { c["backend"] = "gpu"; }, {"'backend'", "\"cpu\"", "\"cuda\"", "\"auto\""}},
            {"lattice element type", [](json& c) { lattice0(c)["type"] = "sextupole"; },
             {"'lattice.0.type'", "\"drift\"", "\"quadrupole\"", "\"constant_focusing\"", "\"repeat\""}},
            {"species name", [](json& c) { c["species"] = "muon"; }, {"'species'", "\"electron\""}},
            {"enum given as a number", [](json& c) { c["dtype"] = 32; }, {"'dtype'", "must be one of"}},
        });
}

TEST_CASE("bad config: NaN and infinite numbers", "[cli]") {
    std::string text = good_config().dump(2);
    auto replace = [&text](const std::string& key, const std::string& literal) {
        // Replace the value of a top-level number key in the dumped good config.
        std::string t = text;
        const std::string needle = "\"" + key + "\": ";
        const std::size_t at = t.find(needle);
        REQUIRE(at != std::string::npos);
        const std::size_t start = at + needle.size(), end = t.find_first_of(",\n}", start);
        t.replace(start, end - start, literal);
        return t;
    };
    expect_all_rejected(
        "bad_non_finite",
        {
            // JSON cannot hold NaN or infinity: an overflowing literal is the nearest thing.
            {"1e999 literal", nullptr, {"1e999"}, replace("bunch_charge_C", "1e999")},
            {"-1e999 literal", nullptr, {"1e999"}, replace("kinetic_energy_eV", "-1e999")},
            {"\"NaN\" string", [](json& c) { c["kinetic_energy_eV"] = "NaN"; },
             {"'kinetic_energy_eV'", "must be a number"}},
            {"\"inf\" string in a nested key", [](json& c) { lattice0(c)["length_m"] = "inf"; },
             {"'lattice.0.length_m'", "must be a number"}},
            {"bare NaN token (not JSON)", nullptr, {"not valid JSON"}, replace("bunch_charge_C", "NaN")},
            {"bare Infinity token (not JSON)", nullptr, {"not valid JSON"}, replace("bunch_charge_C", "Infinity")},
        });
}

TEST_CASE("bad config: malformed JSON", "[cli]") {
    const std::string full = good_config().dump(2);
    expect_all_rejected(
        "bad_malformed",
        {
            {"truncated file", nullptr, {"not valid JSON"}, full.substr(0, full.size() / 2)},
            {"trailing garbage", nullptr, {"not valid JSON"}, full + " }"},
            {"trailing comma", nullptr, {"not valid JSON"}, "{\"n_particles\": 2000,}"},
            {"whitespace only", nullptr, {"not valid JSON"}, "  \n"},
            {"top level is an array", nullptr, {"<top level>", "must be an object"}, "[1, 2, 3]"},
        });
}

TEST_CASE("bad config: unreadable or nonexistent config file", "[cli]") {
    const fs::path dir = scratch_dir("bad_unreadable");
    const fs::path io = dir.parent_path() / "bad_unreadable.io";
    const std::set<std::string> before = listing(dir);
    const std::vector<std::string> outs = {"--out", (dir / "result.json").string(), "--dump-particles",
                                           (dir / "particles").string()};
    SECTION("nonexistent file") {
        const std::string missing = (dir / "no_such_config.json").string();
        std::vector<std::string> args = {"track", missing};
        args.insert(args.end(), outs.begin(), outs.end());
        CliRun r = run_cli(args, io);
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("cannot read config file"));
        CHECK_THAT(r.err, Contains(missing));
    }
    SECTION("a directory instead of a file") {
        fs::create_directories(dir / "a_directory");
        std::vector<std::string> args = {"track", (dir / "a_directory").string()};
        args.insert(args.end(), outs.begin(), outs.end());
        CliRun r = run_cli(args, io);
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("error"));
        fs::remove(dir / "a_directory");
    }
    CHECK(listing(dir) == before);
    CHECK_FALSE(any_tmp_file(dir));
}

TEST_CASE("bad command line: unknown option, missing values, extra arguments", "[cli]") {
    const fs::path base = scratch_dir("bad_cli");
    SECTION("unknown option") {
        expect_rejected(base / "unknown", {"unknown option", nullptr, {"unknown option '--frobnicate'"}},
                        {"--frobnicate"});
    }
    SECTION("unknown short option") {
        expect_rejected(base / "short", {"unknown short option", nullptr, {"unknown option '-x'"}}, {"-x"});
    }
    SECTION("--out without a value") {
        // The earlier --out is overridden by the last one, which lacks its value.
        expect_rejected(base / "out_value", {"--out without value", nullptr, {"--out needs a value"}}, {"--out"});
    }
    SECTION("second positional argument") {
        expect_rejected(base / "extra", {"extra argument", nullptr, {"unexpected argument 'extra.json'"}},
                        {"extra.json"});
    }
    SECTION("no CONFIG.json") {
        CliRun r = run_cli({"track", "--quiet"}, base / "io");
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("missing CONFIG.json"));
    }
}

TEST_CASE("bad run: particles outside a sigma-mode grid fail at run time", "[cli]") {
    const fs::path base = scratch_dir("bad_outside_grid");
    auto sigma_half = [](int threads) {
        return [threads](json& c) {
            c["space_charge"]["extent"] = {{"mode", "sigma"}, {"factor", {0.5, 0.5, 0.5}}};
            c["threads"] = threads;
        };
    };
    expect_rejected(base / "t1", {"factor 0.5, one thread", sigma_half(1),
                                  {"particles outside the grid", "space_charge.extent.factor"}});
    expect_rejected(base / "t2", {"factor 0.5, two threads", sigma_half(2), {"particles outside the grid"}});
    // The same, result on stdout: nothing may reach stdout either.
    const fs::path dir = base / "stdout";
    fs::create_directories(dir);
    json config = good_config();
    sigma_half(1)(config);
    const fs::path cfg = write_config(dir / "config.json", config);
    CliRun r = run_cli({"track", cfg.string(), "--quiet"}, base / "stdout.io");
    CHECK(r.exit_code == kExitBadInput);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Contains("particles outside the grid"));
}

TEST_CASE("backend cuda: refused without a usable GPU, used with one", "[cli]") {
    if (expected_auto_backend() == std::string("cuda")) {
        json config = good_config();
        config["backend"] = "cuda";
        const json j = run_ok(scratch_dir("cuda_used"), config);
        CHECK(j.at("backend").at("used") == "cuda");
        return;
    }
    expect_all_rejected("bad_cuda", {{"backend cuda", [](json& c) { c["backend"] = "cuda"; },
                                      {"backend \"cuda\" is not available"}}});
}

TEST_CASE("bad run: a request larger than memory is refused up front", "[cli]") {
    expect_all_rejected(
        "bad_memory",
        {
            {"n_particles 1e13", [](json& c) { c["n_particles"] = std::int64_t(10000000000000); },
             {"memory", "n_particles"}},
            {"n_particles 1e13 without space charge",
             [](json& c) {
                 c["n_particles"] = std::int64_t(10000000000000);
                 c["space_charge"] = {{"enabled", false}};
             },
             {"memory"}},
            {"4096^3 grid", [](json& c) { c["space_charge"]["grid"] = {4096, 4096, 4096}; },
             {"memory", "space_charge.grid"}},
            // autograd keeps ~1 kB per particle per kick: 1e6 particles over 1e5 kicks is ~60 TB
            {"autograd tape", [](json& c) {
                 c["n_particles"] = 1000000;
                 c["lattice"][0]["slices"] = 100000;
                 c["strategy"] = "autograd";
             },
             {"strategy \"autograd\"", "tape", "reversible"}},
        });
}

TEST_CASE("bad output path: --out in a nonexistent directory writes nothing", "[cli]") {
    const fs::path dir = scratch_dir("bad_out_path");
    const fs::path cfg = write_config(dir / "config.json", good_config());
    const std::set<std::string> before = listing(dir);
    SECTION("missing directory") {
        const fs::path out = dir / "no_such_dir" / "result.json";
        CliRun r = run_cli({"track", cfg.string(), "--out", out.string(), "--quiet"}, dir.string() + ".io");
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains(out.string()));
        CHECK(r.out.empty());
        CHECK_FALSE(fs::exists(dir / "no_such_dir"));
    }
    SECTION("--out names an existing directory") {
        fs::create_directories(dir / "existing_dir");
        CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "existing_dir").string(), "--quiet"},
                           dir.string() + ".io");
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("existing_dir"));
        CHECK(fs::is_directory(dir / "existing_dir"));
        CHECK(fs::is_empty(dir / "existing_dir"));
        CHECK_FALSE(any_tmp_file(dir));
        fs::remove(dir / "existing_dir");
    }
    SECTION("--dump-particles into a missing directory") {
        CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "result.json").string(), "--dump-particles",
                            (dir / "no_such_dir" / "beam").string(), "--quiet"},
                           dir.string() + ".io");
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Contains("beam_initial.csv"));
    }
    CHECK(listing(dir) == before);
    CHECK_FALSE(any_tmp_file(dir));
}

// ============================================================ fixed bugs

// Regression test for a fixed bug (cli/track_command.cpp, run<T>() then track_command): the CSVs of
// --dump-particles were written inside run<T>() before the RESULT was written to
// --out, so when --out could not be written the command exited 2 ("bad input,
// nothing written") but left PREFIX_initial.csv and PREFIX_final.csv behind.
// Now every file is written by one write_files_atomically call.
TEST_CASE("fixed bug: a failing --out leaves no --dump-particles CSVs behind", "[cli]") {
    const fs::path dir = scratch_dir("bug_out_after_dump");
    const fs::path cfg = write_config(dir / "config.json", good_config());
    const std::set<std::string> before = listing(dir);
    CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "no_such_dir" / "result.json").string(),
                        "--dump-particles", (dir / "beam").string(), "--quiet"},
                       dir.string() + ".io");
    CHECK(r.exit_code == kExitBadInput);
    CHECK(listing(dir) == before);
}

// Regression test for a fixed bug (cli/result.cpp, estimate_tracking_bytes): 6*n*word + 6*n*8 + 8*n*word
// overflowed std::int64_t for n_particles around 1e17 and above (signed
// overflow, undefined behaviour); for n = 2^62 it wrapped to a tiny estimate,
// the memory check passed, and the run died in std::vector with
// "vector::_M_default_append" instead of the memory message naming n_particles.
// The estimate is a double now.
TEST_CASE("fixed bug: n_particles 2^62 is refused by the memory check naming n_particles", "[cli]") {
    const fs::path dir = scratch_dir("bug_memory_overflow");
    expect_rejected(dir, {"n_particles 2^62",
                          [](json& c) { c["n_particles"] = std::int64_t(4611686018427387904); },
                          {"memory", "n_particles"}});
}

// Regression test for a fixed bug (cli/track_command.cpp run<T>): nothing
// checked that the final beam is finite when space charge is off (the kick's
// grid_covering does check it), so a config whose drift overflows tau exited 0
// and wrote RESULT moments as JSON null. kinetic_energy_eV 1e-300 does that:
// gamma0 = 1 + 1e-300 / 511e3 rounds to 1, so beta0 = 0 and the drift's
// tau -= L delta / (beta0 gamma0)^2 is infinite or NaN. Such an energy is now
// refused before the run (cli/ranges.cpp: beta0 must be resolved), and any
// non-finite RESULT number still is after it: exit 2, nothing written.
TEST_CASE("fixed bug: non-finite final moments exit 2 naming kinetic_energy_eV, nothing written", "[cli]") {
    const auto overflowing_drift = [](json& c) {
        c["kinetic_energy_eV"] = 1e-300;
        c["distribution"]["sigma_delta"] = 1e-3;
        c["space_charge"] = {{"enabled", false}};
    };
    const std::string message = "sctape track: error: config key 'kinetic_energy_eV': 1e-300 eV is below 1e-10 "
                                "of the rest energy 5.11e+05 eV: beta0 is not resolved in float64";
    const fs::path base = scratch_dir("bug_non_finite_moments");
    // with --out and --dump-particles: no RESULT, no CSVs, no temporaries
    expect_rejected(base / "files", {"kinetic_energy_eV 1e-300, no space charge", overflowing_drift, {message}});
    // without --out: nothing on stdout either (the RESULT would go there)
    json config = good_config();
    overflowing_drift(config);
    const fs::path cfg = write_config(base / "config.json", config);
    CliRun r = run_cli({"track", cfg.string(), "--quiet"}, base / "stdout.io");
    CHECK(r.exit_code == kExitBadInput);
    CHECK(r.out.empty());
    CHECK(r.err == message + "\n");
}

// ============================================================ reverse mode

TEST_CASE("reverse mode writes gradients, memory and a timeline", "[cli][gradient]") {
    const fs::path dir = scratch_dir("reverse_mode");
    json config = good_config();
    config["strategy"] = "fused";
    config["objective"] = "emittance_x";
    config["gradients"] = {"bunch_charge_C", "lattice.0.length_m"};
    const fs::path cfg = write_config(dir / "config.json", config);
    CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "result.json").string(), "--timeline",
                        (dir / "timeline.json").string(), "--dump-particles", (dir / "beam").string(), "--quiet"},
                       dir.string() + ".io");
    REQUIRE(r.exit_code == kExitOk);
    const json result = json::parse(std::ifstream(dir / "result.json"));
    const json& rm = result.at("reverse_mode");
    CHECK(rm.at("strategy") == "fused");
    CHECK(rm.at("objective").at("name") == "emittance_x");
    CHECK(rm.at("gradients").size() == 2);
    CHECK(std::isfinite(rm.at("gradients").at("bunch_charge_C").get<double>()));
    CHECK(rm.at("memory").at("tape_bytes").get<std::int64_t>() > 0);
    CHECK(rm.at("memory").at("bytes_after_backward") == 0);
    const json timeline = json::parse(std::ifstream(dir / "timeline.json"));
    CHECK(timeline.at("schema_version") == 2);
    CHECK(timeline.at("mode") == "reverse");
    REQUIRE(!timeline.at("events").empty());
    bool saw_backward = false;
    for (const json& e : timeline.at("events")) saw_backward = saw_backward || e.at("backward").get<bool>();
    CHECK(saw_backward);
    CHECK(fs::exists(dir / "beam_gradient.csv"));
}

// The kick markers of a TIMELINE file: those of the forward pass (backward
// false) numbered 0, 1, ... in time order, each ending after it starts and
// before the next one starts. Returns how many there are.
int forward_kicks(const json& timeline) {
    int count = 0;
    double last_end = 0;
    for (const json& k : timeline.at("kicks")) {
        if (k.at("backward").get<bool>()) continue;
        CHECK(k.at("index") == count);
        CHECK(k.at("start_s").get<double>() >= last_end);
        CHECK(k.at("end_s").get<double>() > k.at("start_s").get<double>());
        last_end = k.at("end_s").get<double>();
        ++count;
    }
    return count;
}

TEST_CASE("track timeline: the kicks of a forward-only and of a reverse-mode run", "[cli][timeline]") {
    const fs::path dir = scratch_dir("timeline_kicks");
    json config = good_config();
    config["lattice"][0]["slices"] = 3;
    config["backend"] = "cpu";  // the host allocator's timeline

    SECTION("forward only: three kicks, and the memory back at its start level") {
        const fs::path cfg = write_config(dir / "forward.json", config);
        CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "result.json").string(), "--timeline",
                            (dir / "timeline.json").string(), "--quiet"},
                           dir.string() + ".forward.io");
        REQUIRE(r.exit_code == kExitOk);
        const json timeline = json::parse(std::ifstream(dir / "timeline.json"));
        CHECK(timeline.at("schema_version") == 2);
        CHECK(timeline.at("mode") == "forward");
        CHECK(timeline.at("strategy").is_null());
        CHECK(forward_kicks(timeline) == 3);
        CHECK(timeline.at("kicks").size() == 3);
        const json& events = timeline.at("events");
        REQUIRE(!events.empty());
        CHECK(events.back().at("current_bytes") == 0);
        for (const json& e : events) CHECK(!e.at("backward").get<bool>());
    }
    SECTION("reverse mode: three forward kicks for every strategy") {
        config["objective"] = "sigma_x";
        config["gradients"] = {"bunch_charge_C"};
        for (const char* strategy : {"autograd", "fused", "checkpoint", "reversible"}) {
            INFO("strategy " << strategy);
            config["strategy"] = strategy;
            const fs::path cfg = write_config(dir / (std::string(strategy) + ".json"), config);
            const fs::path out = dir / (std::string("timeline_") + strategy + ".json");
            CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "result.json").string(), "--timeline",
                                out.string(), "--quiet"},
                               dir.string() + "." + strategy + ".io");
            REQUIRE(r.exit_code == kExitOk);
            const json timeline = json::parse(std::ifstream(out));
            CHECK(timeline.at("mode") == "reverse");
            CHECK(timeline.at("strategy") == strategy);
            CHECK(forward_kicks(timeline) == 3);
            CHECK(timeline.at("events").back().at("current_bytes") == 0);
        }
    }
}

TEST_CASE("reverse-mode bad input: unknown gradient, strategy, snapshots without checkpoint", "[cli][gradient]") {
    const fs::path dir = scratch_dir("reverse_mode_bad");
    for (auto [key, value, expected] :
         {std::tuple<const char*, json, const char*>{"gradients", json::array({"lattice.9.length_m"}), "unknown gradient name"},
          {"strategy", "adjoint", "strategy"},
          {"snapshots", 4, "snapshots"}}) {
        json config = good_config();
        config[key] = value;
        const fs::path cfg = write_config(dir / "config.json", config);
        CliRun r = run_cli({"track", cfg.string(), "--out", (dir / "result.json").string(), "--quiet"},
                           dir.string() + ".io");
        INFO(key);
        CHECK(r.exit_code == kExitBadInput);
        CHECK(r.err.find(expected) != std::string::npos);
        CHECK_FALSE(fs::exists(dir / "result.json"));
    }
}
