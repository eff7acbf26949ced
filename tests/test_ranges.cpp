// Validated ranges (docs/physics.md, "Validated ranges"): hostile input never
// crashes, never writes on error and never exits 0 with NaN. Each case runs
// the real `sctape` binary and checks the exit code, the exact error or
// warning line, and (for errors) that the directory is left as it was.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "physics/fixed_point.hpp"
#include "support/configs.hpp"
#include "support/files.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using sctape::test::read_text;

fs::path fresh_dir(const std::string& name) { return sctape::test::scratch_dir("ranges_" + name); }

std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

struct Run {
    int code = -1;
    std::string out, err;
};

// `prefix` runs before the binary in the same shell (e.g. a ulimit).
Run run(const fs::path& dir, const std::string& args, const std::string& prefix = "") {
    const std::string cmd = prefix + "'" SCTAPE_CLI_PATH "' " + args + " </dev/null >'" + (dir / "stdout.io").string() +
                            "' 2>'" + (dir / "stderr.io").string() + "'";
    const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
    INFO("command: " << cmd);
    REQUIRE(WIFEXITED(status));
    return {WEXITSTATUS(status), read_text(dir / "stdout.io"), read_text(dir / "stderr.io")};
}

json small_config() { return sctape::test::small_track_config(2000); }

// Tracks `config` with --out and --dump-particles; returns the run.
Run track(const fs::path& dir, const json& config) {
    std::ofstream(dir / "config.json") << config.dump();
    return run(dir, "track config.json --out result.json --dump-particles beam --quiet",
               "cd '" + dir.string() + "' && ");
}

// Exit 2, exactly `line` on stderr, nothing on stdout, nothing written.
void expect_error(const std::string& name, const json& config, const std::string& line) {
    INFO("case " << name);
    const fs::path dir = fresh_dir(name);
    const Run r = track(dir, config);
    CHECK(r.code == 2);
    CHECK(r.err == "sctape track: error: " + line + "\n");
    CHECK(r.out.empty());
    CHECK(listing(dir) == std::set<std::string>{"config.json", "stdout.io", "stderr.io"});
}

// Exit 0, `line` among the warnings, a RESULT written.
void expect_warning(const std::string& name, const json& config, const std::string& line) {
    INFO("case " << name);
    const fs::path dir = fresh_dir(name);
    const Run r = track(dir, config);
    INFO("stderr: " << r.err);
    CHECK(r.code == 0);
    CHECK(r.err.find("sctape track: warning: " + line + "\n") != std::string::npos);
    CHECK(fs::is_regular_file(dir / "result.json"));
}

}  // namespace

TEST_CASE("ranges: a cold beam's emittance gradient is refused, not written as NaN", "[cli][ranges]") {
    json c = small_config();
    c["space_charge"] = {{"enabled", false}};
    c["objective"] = "emittance_x";
    for (const char* strategy : {"fused", "autograd"}) {
        c["strategy"] = strategy;
        expect_error(std::string("cold_emittance_") + strategy, c,
                     "the emittance of a cold beam is 0: its gradient is undefined "
                     "(objective emittance_x; give the beam a spread)");
    }
}

TEST_CASE("ranges: kinetic energies too small to resolve beta0 are named", "[cli][ranges]") {
    json c = small_config();
    c["kinetic_energy_eV"] = 1e-320;
    expect_error("ke_1e-320", c,
                 "config key 'kinetic_energy_eV': 1e-320 eV is below 1e-10 of the rest energy 5.11e+05 eV: "
                 "beta0 is not resolved in float64");
    c["strategy"] = "reversible";
    expect_error("ke_1e-320_reversible", c,
                 "config key 'kinetic_energy_eV': 1e-320 eV is below 1e-10 of the rest energy 5.11e+05 eV: "
                 "beta0 is not resolved in float64");
    c = small_config();
    c["species"] = {{"mass_eV", 1e-300}, {"charge_e", -1}};
    expect_error("gamma_inf", c,
                 "config key 'kinetic_energy_eV': gamma0 = inf (species mass_eV 1e-300) overflows the kick's gamma0^2 p0");
}

TEST_CASE("ranges: a 0.5 eV bunch with space charge is refused before it explodes", "[cli][ranges]") {
    json c = small_config();
    c["kinetic_energy_eV"] = 0.5;
    const std::string line =
        "the space-charge kick of px and py over the lattice reaches about 4.39e+03, beyond the paraxial range "
        "(<= 0.3) where the linear drift holds: the space charge of bunch_charge_C in the distribution sizes at "
        "kinetic_energy_eV";
    expect_error("half_eV", c, line);
    c["strategy"] = "reversible";
    expect_error("half_eV_reversible", c, line);
    // without space charge a cold 0.5 eV beam simply drifts: allowed
    c = small_config();
    c["kinetic_energy_eV"] = 0.5;
    c["space_charge"] = {{"enabled", false}};
    const fs::path dir = fresh_dir("half_eV_drift");
    const Run r = track(dir, c);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
}

TEST_CASE("ranges: non-paraxial momenta, extreme aspect ratios and sizes", "[cli][ranges]") {
    json c = small_config();
    c["distribution"]["sigma_px"] = 0.5;
    expect_error("px_0.5", c,
                 "the initial |px|, |py| (3 rms) reaches about 1.5, beyond the paraxial range (<= 0.3) where the "
                 "linear drift holds: distribution.sigma_px, sigma_py, sigma_delta");
    c = small_config();
    c["distribution"]["sigma_px"] = 0.02;
    expect_warning("px_0.02", c,
                   "the initial |px|, |py| (3 rms) reaches about 0.06: the linear drift's error p^2/2 exceeds 0.00045 "
                   "(distribution.sigma_px, sigma_py, sigma_delta)");
    c = small_config();
    c["distribution"]["radius_x_m"] = 1e5;
    expect_error("aspect_1e8", c,
                 "config key 'distribution': the bunch's rest-frame aspect ratio (x, y and beta0 gamma0 tau sizes) is "
                 "1e+08, above 1e+06 where the Green function has no digits left");
    c = small_config();
    c["kinetic_energy_eV"] = 5.11e10;  // gamma0 1e5: rest-frame tau 100 m against 1 mm
    expect_warning("aspect_1e5", c,
                   "the bunch's rest-frame aspect ratio (x, y and beta0 gamma0 tau sizes) is 1e+05, above the "
                   "validated 1e+04");
    c = small_config();
    c["lattice"][0]["length_m"] = 1e300;
    expect_error("length_1e300", c,
                 "config key 'lattice': the beam would grow to about 4.69e+296 m (lattice length_m times the "
                 "momenta), beyond 1e+90 m where the Green function's products are finite");
    c = small_config();
    c["space_charge"]["extent"] = {{"mode", "minmax"}, {"padding", 1e300}};
    expect_error("padding", c, "config key 'space_charge.extent.padding': the beam would span under one cell of the grid");
}

// float32 keeps a change of pz (~1) only above 2^-24; the longitudinal kick
// of this bunch falls as 1/gamma0^3 (docs/physics.md derives the threshold).
TEST_CASE("ranges: float32 refuses or warns where it loses the longitudinal kick", "[cli][ranges]") {
    json c = small_config();
    c["dtype"] = "float32";
    c["kinetic_energy_eV"] = 5.11e10;
    expect_error("f32_gamma_1e5", c,
                 "config key 'dtype': float32 keeps a change of pz above 2^-24 = 5.96e-08; this bunch's longitudinal "
                 "kick (about 2.96e-13 per kick, falling as 1/gamma0^3) drops below it above gamma0 = 1.71e+03 and "
                 "gamma0 is 1e+05: the longitudinal kick is lost; use dtype \"float64\"");
    c["kinetic_energy_eV"] = 999 * 510998.95;  // gamma0 1000: sigma_delta 8.5% off float64
    expect_warning("f32_gamma_1e3", c,
                   "float32 keeps a change of pz above 2^-24 = 5.96e-08; this bunch's longitudinal kick (about "
                   "1.74e-07 per kick, falling as 1/gamma0^3) drops below it above gamma0 = 1.43e+03 and gamma0 is "
                   "1e+03: fewer than 4 bits of it survive (use dtype \"float64\")");
    c["kinetic_energy_eV"] = 250e6;  // gamma0 490: float32 within 2e-4 of float64
    const fs::path dir = fresh_dir("f32_250MeV");
    const Run r = track(dir, c);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
}

TEST_CASE("ranges: threads above the hardware are capped with a warning, also under ulimit -v", "[cli][ranges]") {
    json c = small_config();
    c["threads"] = 1000;
    const fs::path dir = fresh_dir("threads");
    std::ofstream(dir / "config.json") << c.dump();
    // AddressSanitizer reserves terabytes of shadow memory, which no ulimit -v
    // allows: the asan preset checks the cap without the limit.
#if defined(__SANITIZE_ADDRESS__)
    const std::string limit = "";
#else
    const std::string limit = "ulimit -v 2000000 && ";
#endif
    const Run r = run(dir, "track config.json --out result.json --quiet",
                      "cd '" + dir.string() + "' && " + limit + "timeout 60 ");
    INFO("stderr: " << r.err);
    CHECK(r.code == 0);
    CHECK(r.err.find("sctape track: warning: threads 1000 is above the ") == 0);
    REQUIRE(fs::is_regular_file(dir / "result.json"));
    const int used = json::parse(read_text(dir / "result.json")).at("threads");
    CHECK(used >= 1);
    CHECK(used < 1000);
}

TEST_CASE("ranges: a byte count past int64 is refused naming n_particles", "[cli][ranges]") {
    json c = small_config();
    c["n_particles"] = std::int64_t(1) << 60;
    c["space_charge"]["grid"] = {4096, 4096, 4096};
    expect_error("bytes", c,
                 "config key 'n_particles': with space_charge.grid the run's memory (1.84e+20 bytes) overflows "
                 "64-bit byte counts");
}

// The step is checked in floating point before llrint and the int64 sum
// (both undefined behaviour past int64; the asan preset's UBSan traps them).
TEST_CASE("ranges: fixed-point steps beyond int64 are refused without overflow", "[ranges]") {
    std::int64_t column = (std::int64_t(1) << 62) - 1;
    CHECK_FALSE(sctape::fixed_point_add(column, 1e30, +1));
    CHECK_FALSE(sctape::fixed_point_add(column, std::numeric_limits<double>::quiet_NaN(), +1));
    CHECK_FALSE(sctape::fixed_point_add(column, 0x1.0p61, +1));  // the sum leaves the 2^62 range
    CHECK(column == (std::int64_t(1) << 62) - 1);                  // unchanged on refusal
    CHECK(sctape::fixed_point_add(column, 0x1.0p61, -1));
    CHECK(column == (std::int64_t(1) << 62) - 1 - (std::int64_t(1) << 61));
}

TEST_CASE("ranges: plan prints only finite numbers and reads fits without alpha_0_bytes", "[cli][ranges]") {
    const fs::path dir = fresh_dir("plan");
    std::ofstream(dir / "c.json") << R"({"fits":[{"measure":"tape_bytes","scope":"total","dtype":"float32",)"
                                     R"("strategy":"fused","alpha_part_bytes":24,"alpha_cells_bytes":8}]})";
    const std::string coeffs = "'" + (dir / "c.json").string() + "'";
    Run r = run(dir, "plan " + coeffs + " --n-part 1e5 --grid 32 32 32 --kicks 10");
    CHECK(r.code == 0);
    // per kick 24 * 1e5 + 8 * 32768 = 2662144 B = 2.5 MiB; 10 kicks and the
    // objective's 16 B per particle = 0.026 GiB; no overhead fit: no peak
    CHECK(r.out.find("fused              float32             2.5        0.026            -") != std::string::npos);
    r = run(dir, "plan " + coeffs + " --n-part 1e300 --grid 1e300 32 32 --kicks 1e10");
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "sctape plan: error: the fused tape overflows: --n-part, --grid and --kicks are too large\n");
}

// The validation cases the project ships (examples/, the memory-scaling
// paper's Table 1 bunch among them) lie inside the validated range: exit 0
// and no warning. Particles and grid are reduced so the case runs in
// milliseconds; the range checks depend on the beam and lattice, not on them.
TEST_CASE("ranges: every shipped example runs without a warning", "[cli][ranges]") {
    const fs::path examples = fs::path(SCTAPE_PLOT_PY).parent_path().parent_path() / "examples";
    int checked = 0;
    for (const auto& entry : fs::directory_iterator(examples)) {
        if (entry.path().extension() != ".json") continue;
        INFO(entry.path().filename().string());
        json config = json::parse(read_text(entry.path()));
        config["n_particles"] = 2000;
        config["space_charge"]["grid"] = {8, 8, 8};
        config["threads"] = 1;
        const fs::path dir = fresh_dir("example_" + entry.path().stem().string());
        const Run r = track(dir, config);
        CHECK(r.code == 0);
        CHECK(r.err.empty());
        ++checked;
    }
    CHECK(checked >= 2);  // free_expansion.json and reverse_mode.json
}
