// Fit tests [fit]: the relative-weighted least squares recovers known
// coefficients with sane standard errors, the F test separates linear from
// quadratic data, the F distribution matches known values, and the `sctape
// fit` / `sctape check` commands handle good and bad input (exit 0/1/2,
// nothing written on bad input, COEFFS keys pinned).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "check.hpp"
#include "coeffs.hpp"
#include "f_distribution.hpp"
#include "memory_law.hpp"
#include "memory_model.hpp"
#include "plan.hpp"
#include "sweep.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sctape::fit::FitError;
using sctape::fit::LawPoint;
using Catch::Matchers::Contains;

// The paper's Cheetah coefficients (float32): bytes per particle, per cell.
constexpr double kAlphaPart = 1400, kAlphaCells = 1200;

const std::vector<double> kParts = {1e3, 1e4, 1e5, 1e6};
const std::vector<double> kCells = {512, 4096, 32768, 262144};

// ---------------------------------------------------------------- helpers

using Law = std::function<double(double n_part, double n_cells)>;

double linear_law(double np, double nc) { return kAlphaPart * np + kAlphaCells * nc; }

// y = law · (1 + noise·N(0,1)) on the kParts × kCells grid.
std::vector<LawPoint> grid_points(const Law& law, double noise = 0, std::uint64_t seed = 1) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<LawPoint> points;
    for (double np : kParts)
        for (double nc : kCells) points.push_back({np, nc, law(np, nc) * (1 + noise * normal(rng))});
    return points;
}

// A Google Benchmark document shaped like the kick_memory sweep: per kick,
// tape bytes 36/part + 8/cell (s_to_t 4, deposit 8, drift 24 per particle;
// convolve, gather 4 per cell; green 0), allocator twice that, totals vs N_kicks.
json synthetic_sweep(const std::string& strategy = "fused", double scale = 1) {
    json benchmarks = json::array();
    auto entry = [&](double np, int g, int kicks) {
        const double nc = double(g) * g * g;
        json e = {{"name", "kick_memory/" + strategy + "/float32/N_part:" + std::to_string(int(np)) + "/grid:" +
                               std::to_string(g) + "x" + std::to_string(g) + "x" + std::to_string(g) +
                               "/N_kicks:" + std::to_string(kicks) + "/iterations:1"},
                  {"run_type", "iteration"},
                  {"N_part", np},
                  {"N_cells", nc},
                  {"N_kicks", kicks}};
        const std::map<std::string, double> per_part = {{"s_to_t", 4}, {"deposit", 8}, {"drift", 24}};
        const std::map<std::string, double> per_cell = {{"convolve", 4}, {"gather", 4}};
        double total = 0;
        for (const char* s : {"s_to_t", "deposit", "green", "convolve", "field", "gather", "push", "t_to_s", "drift"}) {
            const double bytes = scale * ((per_part.count(s) ? per_part.at(s) * np : 0) +
                                          (per_cell.count(s) ? per_cell.at(s) * nc : 0));
            e[std::string("tape_") + s + "_bytes"] = bytes;
            e[std::string("alloc_") + s + "_bytes"] = 2 * bytes;
            total += bytes;
        }
        e["tape_bytes"] = total;
        e["alloc_delta_bytes"] = 2 * total;
        e["tape_bytes_total"] = total * kicks + 4 * np;
        e["peak_bytes_total"] = 3 * total * kicks + 100 * nc;
        e["forward_ms"] = 1.0 * kicks;
        e["backward_ms"] = 2.0 * kicks;
        benchmarks.push_back(e);
    };
    for (double np : {1000.0, 10000.0, 100000.0})
        for (int g : {8, 16, 32}) entry(np, g, 1);
    for (int k : {2, 4, 8}) entry(10000, 16, k);
    return {{"context", {{"backend", "cpu"}, {"device", "test"}, {"sctape_version", "0.1.0"}, {"caches", json::array()}}},
            {"benchmarks", benchmarks}};
}

const json* find_fit(const json& coeffs, const std::string& measure, const std::string& scope) {
    for (const json& f : coeffs["fits"])
        if (f["measure"] == measure && f["scope"] == scope) return &f;
    return nullptr;
}

fs::path scratch_dir(const std::string& name) {
    fs::path dir = fs::path(SCTAPE_TEST_TMPDIR) / ("fit_" + name);
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    return dir;
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

fs::path write_json(const fs::path& path, const json& doc) {
    write_text(path, doc.dump(2));
    return path;
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

struct CliRun {
    int exit_code = -1;
    std::string out, err;
};

// Runs `sctape ARGS...` with stdout/stderr captured in `dir`.
CliRun run_cli(const std::vector<std::string>& args, const fs::path& dir) {
    std::string command = quote(SCTAPE_CLI_PATH);
    for (const auto& a : args) command += " " + quote(a);
    const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
    command += " >" + quote(out.string()) + " 2>" + quote(err.string());
    const int status = std::system(command.c_str());
    CliRun run;
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.out = read_text(out);
    run.err = read_text(err);
    return run;
}

std::set<std::string> keys_of(const json& object) {
    std::set<std::string> keys;
    for (const auto& [key, value] : object.items()) keys.insert(key);
    return keys;
}

}  // namespace

// ---------------------------------------------------------------- the fit

TEST_CASE("fit recovers exact linear coefficients, with and without a constant", "[fit]") {
    const auto fit = sctape::fit::fit_memory_law(grid_points(linear_law), false);
    CHECK(fit.alpha_part.value == Approx(kAlphaPart).epsilon(1e-10));
    CHECK(fit.alpha_cells.value == Approx(kAlphaCells).epsilon(1e-10));
    CHECK_FALSE(fit.alpha_0.has_value());
    CHECK(fit.max_relative_residual < 1e-12);
    CHECK(fit.n_points == 16);
    REQUIRE(fit.linearity_p_value.has_value());
    CHECK(*fit.linearity_p_value == 1.0);  // exact to rounding: nothing to improve

    const auto with_constant = sctape::fit::fit_memory_law(
        grid_points([](double np, double nc) { return linear_law(np, nc) + 5e5; }), true);
    REQUIRE(with_constant.alpha_0.has_value());
    CHECK(with_constant.alpha_0->value == Approx(5e5).epsilon(1e-8));
    CHECK(with_constant.alpha_part.value == Approx(kAlphaPart).epsilon(1e-10));
    CHECK(with_constant.alpha_cells.value == Approx(kAlphaCells).epsilon(1e-10));
}

TEST_CASE("fit with 1% noise: coefficients within their standard errors, errors match the scatter", "[fit]") {
    // The stated tolerance: every coefficient within 6 σ of the truth, about
    // 6.5% of them beyond 2 σ (Student t with 14 degrees of freedom), and the
    // quoted σ within 25% of the replicas' actual spread.
    constexpr int kReplicas = 200;
    constexpr double kNoise = 0.01;
    std::vector<double> parts, part_errors;
    int beyond_two_sigma = 0;
    auto pull = [&](const sctape::fit::Coefficient& c, double truth) {
        REQUIRE(c.stderr_.has_value());
        const double z = std::fabs(c.value - truth) / *c.stderr_;
        CHECK(z < 6);
        if (z > 2) ++beyond_two_sigma;
    };
    for (int r = 0; r < kReplicas; ++r) {
        const auto fit = sctape::fit::fit_memory_law(grid_points(linear_law, kNoise, 100 + r), false);
        pull(fit.alpha_part, kAlphaPart);
        pull(fit.alpha_cells, kAlphaCells);
        CHECK(fit.max_relative_residual < 5 * kNoise);
        parts.push_back(fit.alpha_part.value);
        part_errors.push_back(*fit.alpha_part.stderr_);
    }
    CHECK(beyond_two_sigma > 0.02 * 2 * kReplicas);
    CHECK(beyond_two_sigma < 0.12 * 2 * kReplicas);
    double mean = 0, spread = 0, quoted = 0;
    for (double v : parts) mean += v / kReplicas;
    for (double v : parts) spread += (v - mean) * (v - mean) / (kReplicas - 1);
    for (double e : part_errors) quoted += e / kReplicas;
    CHECK(quoted == Approx(std::sqrt(spread)).epsilon(0.25));
    CHECK(std::fabs(mean - kAlphaPart) < 0.5 * std::sqrt(spread));  // unbiased to well within the scatter
}

TEST_CASE("F test: small p for quadratic data, calibrated p for linear data with noise", "[fit]") {
    // Linear data: p is uniform on [0, 1], so about 5% of replicas fall below 0.05.
    int below = 0;
    constexpr int kReplicas = 400;
    for (int r = 0; r < kReplicas; ++r) {
        const auto fit = sctape::fit::fit_memory_law(grid_points(linear_law, 0.01, 1000 + r), false);
        REQUIRE(fit.linearity_p_value.has_value());
        if (*fit.linearity_p_value < 0.05) ++below;
    }
    CHECK(below > kReplicas * 0.01);
    CHECK(below < kReplicas * 0.10);
    // A single linear replica: p not small.
    const auto linear = sctape::fit::fit_memory_law(grid_points(linear_law, 0.01, 7), false);
    CHECK(*linear.linearity_p_value > 0.01);

    // An N_part·N_cells term worth a few percent to ~1.6x of the largest point.
    const Law quadratic = [](double np, double nc) { return linear_law(np, nc) + 1e-3 * np * nc; };
    for (int r = 0; r < 20; ++r) {
        const auto fit = sctape::fit::fit_memory_law(grid_points(quadratic, 0.005, 2000 + r), false);
        REQUIRE(fit.linearity_p_value.has_value());
        CHECK(*fit.linearity_p_value < 1e-6);
    }
    const Law part_squared = [](double np, double nc) { return linear_law(np, nc) + 1e-3 * np * np; };
    CHECK(*sctape::fit::fit_memory_law(grid_points(part_squared, 0.005, 3), false).linearity_p_value < 1e-6);
}

TEST_CASE("F distribution and incomplete beta against known values", "[fit]") {
    using sctape::fit::f_cdf;
    using sctape::fit::f_survival;
    using sctape::fit::regularized_incomplete_beta;
    // Reference values from scipy.stats.f and scipy.special.betainc.
    CHECK(f_cdf(1, 1, 1) == Approx(0.5).epsilon(1e-12));
    CHECK(f_cdf(3.708264819, 3, 10) == Approx(0.95).epsilon(1e-9));        // F_0.95(3, 10) = 3.708
    CHECK(f_survival(5.848932, 2, 20) == Approx(0.009999999524328429).epsilon(1e-9));
    CHECK(f_cdf(0.5, 4, 7) == Approx(0.26231350936734876).epsilon(1e-10));
    CHECK(f_cdf(10, 5, 3) == Approx(0.95658134433427).epsilon(1e-10));
    CHECK(f_cdf(2.5, 1, 30) == Approx(0.8756665799534347).epsilon(1e-10));
    CHECK(f_survival(100, 3, 12) == Approx(9.335436244972537e-09).epsilon(1e-8));
    // F(2, d2) in closed form: cdf = 1 − (1 + 2x/d2)^(−d2/2).
    for (double x : {0.1, 1.0, 3.0, 30.0})
        CHECK(f_cdf(x, 2, 9) == Approx(1 - std::pow(1 + 2 * x / 9, -4.5)).epsilon(1e-12));
    CHECK(f_cdf(0, 3, 4) == 0);
    CHECK(f_survival(0, 3, 4) == 1);

    CHECK(regularized_incomplete_beta(2, 3, 0.4) == Approx(0.5248).epsilon(1e-12));
    CHECK(regularized_incomplete_beta(0.5, 0.5, 0.3) == Approx(0.3690101195655454).epsilon(1e-11));
    CHECK(regularized_incomplete_beta(10, 20, 0.35) == Approx(0.592386663663905).epsilon(1e-11));
    CHECK(regularized_incomplete_beta(5, 1.5, 0.9) == Approx(0.7761721343162157).epsilon(1e-11));
    for (double x : {0.05, 0.5, 0.95}) {
        CHECK(regularized_incomplete_beta(1, 1, x) == Approx(x).epsilon(1e-13));
        CHECK(regularized_incomplete_beta(3.5, 1, x) == Approx(std::pow(x, 3.5)).epsilon(1e-12));
    }
    CHECK(regularized_incomplete_beta(7, 7, 0.5) == Approx(0.5).epsilon(1e-13));
    CHECK_THROWS(regularized_incomplete_beta(1, 1, 1.5));
}

TEST_CASE("kick scaling: slope and intercept, linearity", "[fit]") {
    std::vector<sctape::fit::KickPoint> points;
    for (double k : {1, 2, 4, 8, 16}) points.push_back({k, 272768 * k + 160000});
    const auto fit = sctape::fit::fit_kick_scaling(points);
    CHECK(fit.slope.value == Approx(272768).epsilon(1e-12));
    CHECK(fit.intercept.value == Approx(160000).epsilon(1e-10));
    CHECK(fit.max_relative_residual < 1e-12);
    REQUIRE(fit.linearity_p_value.has_value());
    CHECK(*fit.linearity_p_value == 1.0);

    std::vector<sctape::fit::KickPoint> curved;
    for (double k : {1, 2, 4, 8, 16, 32}) curved.push_back({k, 1e5 * k + 1e4 * k * k + 1e5 * (k == 4 ? 1.01 : 1)});
    CHECK(*sctape::fit::fit_kick_scaling(curved).linearity_p_value < 0.01);

    CHECK_THROWS_AS(sctape::fit::fit_kick_scaling({{4, 1e6}, {4, 1e6}}), FitError);
    CHECK_THROWS_AS(sctape::fit::fit_kick_scaling({{1, 1e6}, {2, 0}}), FitError);
}

TEST_CASE("fit: every class of bad input is a FitError naming the problem", "[fit]") {
    using sctape::fit::fit_memory_law;
    CHECK_THROWS_WITH(fit_memory_law({}, false), Contains("no points"));
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}}, false), Contains("1 point(s) for 2 unknowns"));
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}, {2000, 4096, 2e5}}, true), Contains("for 3 unknowns"));
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}, {1000, 4096, 2e5}, {1000, 8, 3e5}}, false),
                      Contains("every point has N_part = 1000"));
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}, {2000, 512, 2e5}}, false), Contains("every point has N_cells"));
    // N_cells proportional to N_part: α_part and α_cells cannot be told apart.
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}, {2000, 1024, 2e5}, {4000, 2048, 4e5}}, false),
                      Contains("singular design"));
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}, {2000, 4096, -1}, {4000, 8, 4e5}}, false),
                      Contains("bytes > 0"));
    CHECK_THROWS_WITH(fit_memory_law({{1000, 512, 1e5}, {2000, 4096, 0}, {4000, 8, 4e5}}, false),
                      Contains("bytes > 0"));
    CHECK_THROWS_WITH(fit_memory_law({{NAN, 512, 1e5}, {2000, 4096, 1}}, false), Contains("N_part"));

    CHECK_THROWS_WITH(sctape::fit::parse_sweep(json::object()), Contains("Google Benchmark"));
    CHECK_THROWS_WITH(sctape::fit::parse_sweep({{"benchmarks", json::array()}}), Contains("empty sweep"));
    CHECK_THROWS_WITH(sctape::fit::parse_point_list(json::array()), Contains("empty"));
    CHECK_THROWS_WITH(sctape::fit::parse_point_list(json::array({{{"N_part", 1}, {"bytes", 1}}})), Contains("N_cells"));
}

TEST_CASE("fit of a sweep: per substep, zero series reported as 0 with a note, kick fits", "[fit]") {
    const json coeffs = sctape::fit::fit_sweep(sctape::fit::parse_sweep(synthetic_sweep()), {});
    const json* total = find_fit(coeffs, "tape_bytes", "total");
    REQUIRE(total);
    CHECK((*total)["alpha_part_bytes"].get<double>() == Approx(36).epsilon(1e-12));
    CHECK((*total)["alpha_cells_bytes"].get<double>() == Approx(8).epsilon(1e-12));
    CHECK((*total)["n_points"] == 9);
    const json* alloc = find_fit(coeffs, "alloc_delta_bytes", "total");
    REQUIRE(alloc);
    CHECK((*alloc)["alpha_part_bytes"].get<double>() == Approx(72).epsilon(1e-12));
    const json* deposit = find_fit(coeffs, "tape_bytes", "deposit");
    REQUIRE(deposit);
    CHECK((*deposit)["alpha_part_bytes"].get<double>() == Approx(8).epsilon(1e-12));
    CHECK(std::fabs((*deposit)["alpha_cells_bytes"].get<double>()) < 1e-9);

    const json* green = find_fit(coeffs, "tape_bytes", "green");
    REQUIRE(green);
    CHECK((*green)["alpha_part_bytes"] == 0.0);
    CHECK((*green)["alpha_cells_bytes"] == 0.0);
    CHECK_THAT((*green)["note"].get<std::string>(), Contains("all bytes are 0"));

    // 10 scopes (8 substeps, drift, total) × 2 measures, and the whole-run
    // tape_fixed_bytes and peak_overhead_bytes (two phases: one law here).
    CHECK(coeffs["fits"].size() == 23);
    const json* fixed = find_fit(coeffs, "tape_fixed_bytes", "total");
    REQUIRE(fixed);  // tape_bytes_total - N_kicks * tape_bytes = 4 N_part
    CHECK((*fixed)["alpha_part_bytes"].get<double>() == Approx(4).epsilon(1e-9));
    CHECK(std::fabs((*fixed)["alpha_cells_bytes"].get<double>()) < 1e-6);
    const json* overhead = find_fit(coeffs, "peak_overhead_bytes", "grid");
    REQUIRE(overhead);  // 3 tape + 100 N_cells - (tape + 4 N_part), tape = 36 N_part + 8 N_cells
    CHECK((*overhead)["alpha_part_bytes"].get<double>() == Approx(68).epsilon(1e-9));
    CHECK((*overhead)["alpha_cells_bytes"].get<double>() == Approx(116).epsilon(1e-9));
    REQUIRE(coeffs["kick_fits"].size() == 2);  // tape_bytes_total, peak_bytes_total
    const json& kick = coeffs["kick_fits"][0];
    CHECK(kick["measure"] == "tape_bytes_total");
    CHECK(kick["slope_bytes_per_kick"].get<double>() == Approx(36 * 1e4 + 8 * 4096).epsilon(1e-12));
    CHECK(kick["intercept_bytes"].get<double>() == Approx(4e4).epsilon(1e-9));
    CHECK(kick["n_points"] == 4);  // N_kicks 1, 2, 4, 8

    // A substep with zero bytes at some points only: kept, not fitted, with a note.
    json mixed = synthetic_sweep();
    mixed["benchmarks"][0]["tape_deposit_bytes"] = 0.0;
    const json m = sctape::fit::fit_sweep(sctape::fit::parse_sweep(mixed), {});
    CHECK(find_fit(m, "tape_bytes", "deposit")->at("alpha_part_bytes").is_null());
    CHECK_THAT(find_fit(m, "tape_bytes", "deposit")->at("note").get<std::string>(), Contains("<= 0"));
    // A strategy run only in the N_kicks sweep (binomial): kick fits, a note, no law.
    json kicks_only = synthetic_sweep();
    const json binomial = synthetic_sweep("binomial");
    for (json b : binomial["benchmarks"])
        if (b["N_part"] == 10000 && b["N_cells"] == 4096) {
            b["tape_bytes_total"] = 0.0;  // and a kick series of zeros
            kicks_only["benchmarks"].push_back(b);
        }
    const json k = sctape::fit::fit_sweep(sctape::fit::parse_sweep(kicks_only), {});
    int binomial_kick_fits = 0;
    for (const json& f : k["kick_fits"])
        if (f["strategy"] == "binomial") {
            ++binomial_kick_fits;
            if (f["measure"] == "tape_bytes_total") {  // all zero: 0 with a note
                CHECK(f["slope_bytes_per_kick"] == 0.0);
                CHECK_THAT(f["note"].get<std::string>(), Contains("all bytes are 0"));
            }
        }
    CHECK(binomial_kick_fits == 2);
    for (const json& f : k["fits"]) CHECK(f["strategy"] != "binomial");
    CHECK_THAT(k["notes"].dump(), Contains("strategy binomial, dtype float32: no per-kick law fitted"));
    // ... but a sweep that gives no fit at all is bad input.
    json single = synthetic_sweep();
    json only_one = json::array({single["benchmarks"][0]});
    single["benchmarks"] = only_one;
    CHECK_THROWS_WITH(sctape::fit::fit_sweep(sctape::fit::parse_sweep(single), {}), Contains("nothing to fit"));

    // ... but a total cannot be.
    json bad_total = synthetic_sweep();
    bad_total["benchmarks"][0]["tape_bytes"] = 0.0;
    CHECK_THROWS_WITH(sctape::fit::fit_sweep(sctape::fit::parse_sweep(bad_total), {}),
                      Contains("strategy fused, dtype float32, measure tape_bytes, scope total"));
}

TEST_CASE("COEFFS JSON keys are pinned", "[fit]") {
    json sweep = synthetic_sweep();
    const json autograd = synthetic_sweep("autograd", 40);
    for (const json& b : autograd["benchmarks"]) sweep["benchmarks"].push_back(b);
    const json coeffs = sctape::fit::fit_sweep(sctape::fit::parse_sweep(sweep), {});
    CHECK(keys_of(coeffs) == std::set<std::string>{"schema_version", "kind", "sctape_version", "law", "weighting",
                                                   "with_constant", "context", "fits", "kick_fits", "notes"});
    CHECK(coeffs["schema_version"] == 1);
    CHECK(coeffs["context"]["backend"] == "cpu");
    CHECK_FALSE(coeffs["context"].contains("caches"));  // scalar context values only
    const std::set<std::string> fit_keys = {
        "strategy", "dtype", "backend", "measure", "scope", "alpha_part_bytes", "alpha_part_stderr_bytes",
        "alpha_cells_bytes", "alpha_cells_stderr_bytes", "alpha_0_bytes", "alpha_0_stderr_bytes",
        "max_relative_residual", "linearity_p_value", "n_points", "note"};
    const std::set<std::string> kick_keys = {
        "strategy", "dtype", "backend", "measure", "N_part", "N_cells", "grid", "slope_bytes_per_kick",
        "slope_stderr_bytes_per_kick", "intercept_bytes", "intercept_stderr_bytes", "max_relative_residual",
        "linearity_p_value", "n_points", "note"};
    std::set<std::string> strategies;
    for (const json& f : coeffs["fits"]) {
        CHECK(keys_of(f) == fit_keys);
        strategies.insert(f["strategy"].get<std::string>());
    }
    for (const json& k : coeffs["kick_fits"]) CHECK(keys_of(k) == kick_keys);
    CHECK(strategies == std::set<std::string>{"fused", "autograd"});
}

// ---------------------------------------------------------------- the CLI

TEST_CASE("sctape fit: sweep and plain list in, COEFFS out, table printed", "[fit]") {
    const fs::path dir = scratch_dir("cli_ok");
    const auto sweep = write_json(dir / "sweep.json", synthetic_sweep());
    const CliRun run = run_cli({"fit", sweep.string(), "-o", (dir / "coeffs.json").string()}, dir);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("alpha_part [B]"));
    CHECK_THAT(run.out, Contains("fused"));
    const json coeffs = json::parse(read_text(dir / "coeffs.json"));
    CHECK(coeffs["kind"] == "sctape-coeffs");

    // Points from another code: bytes over N_kicks kicks → per kick.
    json list = json::array();
    for (const auto& p : grid_points(linear_law)) list.push_back({{"N_part", p.n_part}, {"N_cells", p.n_cells},
                                                                  {"N_kicks", 3}, {"bytes", 3 * p.bytes}});
    const auto points = write_json(dir / "points.json", list);
    const CliRun plain = run_cli({"fit", points.string(), "--out", (dir / "plain.json").string()}, dir);
    REQUIRE(plain.exit_code == 0);
    const json one = json::parse(read_text(dir / "plain.json"));
    REQUIRE(one["fits"].size() == 1);
    CHECK(one["fits"][0]["alpha_part_bytes"].get<double>() == Approx(kAlphaPart).epsilon(1e-10));
    CHECK(one["fits"][0]["alpha_cells_bytes"].get<double>() == Approx(kAlphaCells).epsilon(1e-10));
    CHECK(one["fits"][0]["strategy"] == "input");

    CHECK(run_cli({"fit", "--help"}, dir).exit_code == 0);
    CHECK_THAT(run_cli({"fit", "--help"}, dir).out, Contains("relative-weighted"));
}

TEST_CASE("sctape fit: bad input exits 2, names the problem, writes nothing", "[fit]") {
    const fs::path dir = scratch_dir("cli_bad");
    const fs::path out = dir / "coeffs.json";
    auto expect_bad = [&](const std::string& input, const std::string& message) {
        const CliRun run = run_cli({"fit", input, "-o", out.string()}, dir);
        CHECK(run.exit_code == 2);
        CHECK_THAT(run.err, Contains(message));
        CHECK_FALSE(fs::exists(out));
    };
    expect_bad((dir / "missing.json").string(), "cannot read");
    write_text(dir / "malformed.json", "{\"benchmarks\": [");
    expect_bad((dir / "malformed.json").string(), "not valid JSON");
    expect_bad(write_json(dir / "empty.json", {{"context", json::object()}, {"benchmarks", json::array()}}).string(),
               "empty sweep");
    expect_bad(write_json(dir / "few.json", json::array({{{"N_part", 1000}, {"N_cells", 512}, {"bytes", 1e5}}})).string(),
               "for 2 unknowns");
    json same_part = json::array();
    for (double nc : {512.0, 4096.0, 32768.0}) same_part.push_back({{"N_part", 1000}, {"N_cells", nc}, {"bytes", 1e5 + nc}});
    expect_bad(write_json(dir / "singular.json", same_part).string(), "singular design");
    json zero = same_part;
    zero[1]["N_part"] = 2000;
    zero[0]["bytes"] = 0;
    expect_bad(write_json(dir / "zero.json", zero).string(), "bytes > 0");
    json negative = same_part;
    negative[1]["N_part"] = 2000;
    negative[2]["bytes"] = -5;
    expect_bad(write_json(dir / "negative.json", negative).string(), "bytes > 0");
    json sweep_bad = synthetic_sweep();
    sweep_bad["benchmarks"][3].erase("N_cells");
    expect_bad(write_json(dir / "no_cells.json", sweep_bad).string(), "N_cells");
    CHECK(run_cli({"fit"}, dir).exit_code == 2);
    CHECK(run_cli({"fit", "a.json", "--bogus"}, dir).exit_code == 2);
}

// ---------------------------------------------------------------- point lists from other codes

// kParts x kCells points of bytes = N_kicks * (a_part*N_part + a_cells*N_cells), with labels.
json labelled_points(const json& labels, double a_part, double a_cells, int kicks) {
    json list = json::array();
    for (double np : kParts)
        for (double nc : kCells) {
            json p = labels;
            p.update({{"N_part", np}, {"N_cells", nc}, {"N_kicks", kicks}, {"bytes", kicks * (a_part * np + a_cells * nc)}});
            list.push_back(p);
        }
    return list;
}

const json* find_labelled(const json& coeffs, const std::string& code, const std::string& dtype) {
    for (const json& f : coeffs["fits"])
        if (f["code"] == code && f["dtype"] == dtype) return &f;
    return nullptr;
}

TEST_CASE("point list: each label group fitted on its own, exact coefficients; plan and check use the fits",
          "[fit][plan]") {
    const fs::path dir = scratch_dir("labelled");
    // Two codes, two dtypes, one strategy: groups interleaved point by point,
    // so a fit that pooled them would give neither law.
    const json a = labelled_points({{"code", "impactx"}, {"strategy", "fused"}, {"dtype", "float32"}}, 1400, 1200, 4);
    const json b = labelled_points({{"code", "cheetah"}, {"strategy", "fused"}, {"dtype", "float64"}, {"scope", "total"}},
                                   96, 16, 1);
    json list = json::array();
    for (std::size_t i = 0; i < a.size(); ++i) list.insert(list.end(), {a[i], b[i]});
    const fs::path coeffs_path = dir / "coeffs.json";
    REQUIRE(run_cli({"fit", write_json(dir / "points.json", list).string(), "-o", coeffs_path.string()}, dir).exit_code == 0);
    const json coeffs = json::parse(read_text(coeffs_path));
    REQUIRE(coeffs["fits"].size() == 2);
    const json* fa = find_labelled(coeffs, "impactx", "float32");
    const json* fb = find_labelled(coeffs, "cheetah", "float64");
    REQUIRE(fa);
    REQUIRE(fb);
    // exact data: the relative least squares reproduces the coefficients to rounding
    CHECK((*fa)["alpha_part_bytes"].get<double>() == Approx(1400).epsilon(1e-10));
    CHECK((*fa)["alpha_cells_bytes"].get<double>() == Approx(1200).epsilon(1e-10));
    CHECK((*fb)["alpha_part_bytes"].get<double>() == Approx(96).epsilon(1e-10));
    CHECK((*fb)["alpha_cells_bytes"].get<double>() == Approx(16).epsilon(1e-10));
    for (const json* f : {fa, fb}) {
        CHECK((*f)["strategy"] == "fused");
        CHECK((*f)["scope"] == "total");  // the default scope
        CHECK((*f)["measure"] == "bytes");
        CHECK((*f)["n_points"] == 16);
        CHECK((*f)["max_relative_residual"].get<double>() < 1e-12);
    }

    // plan: 1e6 particles, 64^3 cells, 10 kicks with impactx float32:
    // 10 * (1400e6 + 1200 * 262144) B = 1.71457e10 B = 15.968 GiB
    const CliRun plan = run_cli({"plan", coeffs_path.string(), "--n-part", "1000000", "--grid", "64", "64", "64",
                                 "--kicks", "10", "--dtype", "float32"}, dir);
    INFO("plan stderr: " << plan.err);
    REQUIRE(plan.exit_code == 0);
    CHECK_THAT(plan.out, Contains("impactx:fused") && Contains("15.968"));
    CHECK_THAT(plan.out, !Contains("cheetah"));  // float64 only

    // check: a baseline from the same fits passes; a lower baseline for one code fails for that code
    const fs::path baseline = dir / "baseline.json";
    REQUIRE(run_cli({"check", "--write-baseline", coeffs_path.string(), baseline.string()}, dir).exit_code == 0);
    json base = json::parse(read_text(baseline));
    REQUIRE(base["fits"].size() == 2);
    CHECK(run_cli({"check", baseline.string(), coeffs_path.string()}, dir).exit_code == 0);
    for (json& f : base["fits"])
        if (f["code"] == "cheetah") f["alpha_part_bytes"] = 90.0;
    const CliRun rose = run_cli({"check", write_json(dir / "lower.json", base).string(), coeffs_path.string()}, dir);
    CHECK(rose.exit_code == 1);
    CHECK_THAT(rose.out, Contains("cheetah:fused") && Contains("ROSE"));
}

TEST_CASE("point list: the typo n_kicks, unknown keys, bad labels and mixed dtypes exit 2 naming key and point",
          "[fit]") {
    const fs::path dir = scratch_dir("labelled_bad");
    const fs::path out = dir / "coeffs.json";
    auto expect_bad = [&](const std::string& name, const json& list, const std::string& message) {
        INFO(name);
        const CliRun run = run_cli({"fit", write_json(dir / (name + ".json"), list).string(), "-o", out.string()}, dir);
        CHECK(run.exit_code == 2);
        CHECK_THAT(run.err, Contains("error: ") && Contains(message));
        CHECK_FALSE(fs::exists(out));
    };
    json typo = labelled_points(json::object(), 1400, 1200, 10);
    typo[3]["n_kicks"] = typo[3]["N_kicks"];
    typo[3].erase("N_kicks");
    // read as N_kicks = 1 it would give a coefficient 10x too large
    expect_bad("typo", typo, "point 3 has unknown key \"n_kicks\"");
    json unknown = labelled_points(json::object(), 1400, 1200, 1);
    unknown[7]["backend"] = "cpu";
    expect_bad("unknown", unknown, "point 7 has unknown key \"backend\"");
    json mixed = labelled_points({{"dtype", "float32"}}, 1400, 1200, 1);
    mixed[5].erase("dtype");
    expect_bad("mixed", mixed, "point 5 has no \"dtype\" but point 0");
    json bad_label = labelled_points({{"strategy", "fused"}}, 1400, 1200, 1);
    bad_label[2]["strategy"] = 3;
    expect_bad("bad_label", bad_label, "point 2: \"strategy\" must be a non-empty string");
    json fractional = labelled_points(json::object(), 1400, 1200, 1);
    fractional[1]["N_kicks"] = 2.5;
    expect_bad("fractional", fractional, "point 1 has N_kicks = 2.5");
    // one group of two points cannot be fitted: the error names the group
    json small = labelled_points({{"code", "x"}}, 1400, 1200, 1);
    small.push_back({{"code", "y"}, {"N_part", 1}, {"N_cells", 8}, {"bytes", 10}});
    expect_bad("small", small, "points with code y");
}

TEST_CASE("sctape check: identical passes, a rise or a broken law fails, bad input is 2", "[fit]") {
    const fs::path dir = scratch_dir("check");
    const auto sweep = write_json(dir / "sweep.json", synthetic_sweep());
    const fs::path coeffs = dir / "coeffs.json", baseline = dir / "baseline.json";
    REQUIRE(run_cli({"fit", sweep.string(), "-o", coeffs.string()}, dir).exit_code == 0);
    REQUIRE(run_cli({"check", "--write-baseline", coeffs.string(), baseline.string()}, dir).exit_code == 0);
    const json base = json::parse(read_text(baseline));
    CHECK(base["kind"] == "sctape-baseline");
    CHECK(base["fits"].size() == 10);  // tape_bytes only
    for (const json& f : base["fits"]) {
        CHECK(f["measure"] == "tape_bytes");
        CHECK_FALSE(f.contains("backend"));
    }

    const CliRun same = run_cli({"check", baseline.string(), coeffs.string()}, dir);
    CHECK(same.exit_code == 0);
    CHECK_THAT(same.out, Contains("passed"));

    // A baseline 5% lower: the "new" coefficient rose by ~5% > 1%.
    json lowered = base;
    for (json& f : lowered["fits"])
        if (f["scope"] == "total") f["alpha_part_bytes"] = f["alpha_part_bytes"].get<double>() * 0.95;
    const CliRun rose = run_cli({"check", write_json(dir / "lowered.json", lowered).string(), coeffs.string()}, dir);
    CHECK(rose.exit_code == 1);
    CHECK_THAT(rose.out, Contains("ROSE"));
    CHECK_THAT(rose.out, Contains("+5.26%"));

    // Below the tolerance (0.5% rise) and within the 0.5-byte slack near zero: pass.
    json slightly = base;
    for (json& f : slightly["fits"]) {
        if (f["scope"] == "total") f["alpha_part_bytes"] = f["alpha_part_bytes"].get<double>() * 0.995;
        if (f["scope"] == "green") f["alpha_cells_bytes"] = -0.4;
    }
    CHECK(run_cli({"check", write_json(dir / "slightly.json", slightly).string(), coeffs.string()}, dir).exit_code == 0);

    // The law broke: the total's max relative residual above 2%.
    json broken = json::parse(read_text(coeffs));
    for (json& f : broken["fits"])
        if (f["scope"] == "total" && f["measure"] == "tape_bytes") f["max_relative_residual"] = 0.03;
    const CliRun nonlinear = run_cli({"check", baseline.string(), write_json(dir / "broken.json", broken).string()}, dir);
    CHECK(nonlinear.exit_code == 1);
    CHECK_THAT(nonlinear.out, Contains("NONLINEAR"));

    // A baseline entry missing from COEFFS fails unless allowed.
    json extra = base;
    json autograd = extra["fits"][0];
    autograd["strategy"] = "autograd";
    extra["fits"].push_back(autograd);
    const auto extra_path = write_json(dir / "extra.json", extra);
    CHECK(run_cli({"check", extra_path.string(), coeffs.string()}, dir).exit_code == 1);
    CHECK(run_cli({"check", extra_path.string(), coeffs.string(), "--allow-missing"}, dir).exit_code == 0);

    // Bad input.
    CHECK(run_cli({"check", (dir / "nope.json").string(), coeffs.string()}, dir).exit_code == 2);
    write_text(dir / "garbage.json", "[1, 2");
    CHECK(run_cli({"check", (dir / "garbage.json").string(), coeffs.string()}, dir).exit_code == 2);
    CHECK(run_cli({"check", write_json(dir / "nofits.json", json::object()).string(), coeffs.string()}, dir).exit_code == 2);
    CHECK(run_cli({"check", baseline.string()}, dir).exit_code == 2);
    const fs::path never = dir / "never.json";
    CHECK(run_cli({"check", "--write-baseline", (dir / "nope.json").string(), never.string()}, dir).exit_code == 2);
    CHECK_FALSE(fs::exists(never));
    CHECK(run_cli({"check", "--help"}, dir).exit_code == 0);
}

// Runs SCTAPE_PLOT_PY with Debian's /usr/bin/python3 (where python3-matplotlib
// lives); output goes to `log`. Returns the exit code, -1 when it did not exit.
int run_plot_py(const std::vector<std::string>& args, const fs::path& log) {
    std::string command = "/usr/bin/python3 " + quote(SCTAPE_PLOT_PY);
    for (const auto& a : args) command += " " + quote(a);
    command += " >" + quote(log.string()) + " 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A memory timeline of 40 events: 30 forward allocations, 10 backward frees.
json synthetic_timeline() {
    json events = json::array();
    double bytes = 1e6;
    for (int i = 0; i < 40; ++i) {
        bytes += i < 30 ? 1e4 : -3e4;
        events.push_back({{"time_s", 1e-3 * i}, {"current_bytes", bytes}, {"scope", i % 3 ? "deposit" : "drift"},
                          {"backward", i >= 30}});
    }
    return {{"schema_version", 1}, {"events", events}, {"strategy", "fused"}, {"dtype", "float32"}};
}

// STEM.png starts with the PNG signature and STEM.svg is an <svg> document.
void check_png_and_svg(const fs::path& dir, const std::string& stem) {
    INFO("figure " << stem);
    const std::string png = read_text(dir / (stem + ".png")), svg = read_text(dir / (stem + ".svg"));
    CHECK(png.rfind("\x89PNG\r\n\x1a\n", 0) == 0);
    CHECK(png.size() > 1000);  // the signature and the header chunk alone are 33 bytes
    CHECK_THAT(svg, Contains("<svg") && Contains("</svg>"));
}

// Not discovered by ctest: it runs as `plot_py_draws_a_synthetic_sweep` through
// tests/skip_without_matplotlib.sh, reported as skipped without matplotlib.
// Run directly without matplotlib it fails, with plot.py's message.
TEST_CASE("plot.py draws every figure from a sweep, COEFFS and a timeline", "[fit][plot]") {
    const fs::path dir = scratch_dir("plot");
    const auto sweep = write_json(dir / "sweep.json", synthetic_sweep());
    const fs::path coeffs = dir / "coeffs.json";
    REQUIRE(run_cli({"fit", sweep.string(), "-o", coeffs.string()}, dir).exit_code == 0);
    const auto timeline = write_json(dir / "timeline.json", synthetic_timeline());
    const fs::path out = dir / "plots", log = dir / "plot.log";
    const int code = run_plot_py({sweep.string(), coeffs.string(), "--timeline", timeline.string(), "-o", out.string()},
                                 log);
    INFO("plot.py output:\n" << read_text(log));
    REQUIRE(code == 0);
    // one strategy (fused) and one dtype (float32): every figure plot.py draws
    const std::vector<std::string> stems = {"law_fused_float32_tape_bytes",
                                            "law_fused_float32_alloc_delta_bytes",
                                            "coefficients_float32_tape_bytes",
                                            "coefficients_float32_alloc_delta_bytes",
                                            "kicks_float32",
                                            "timing_float32",
                                            "timeline_fused_float32"};
    std::set<std::string> expected;
    for (const auto& stem : stems) expected.insert({stem + ".png", stem + ".svg"});
    std::set<std::string> written;
    for (const auto& e : fs::directory_iterator(out)) written.insert(e.path().filename().string());
    CHECK(written == expected);
    for (const auto& stem : stems) check_png_and_svg(out, stem);
}

TEST_CASE("plot.py: bad input exits 2 and draws nothing", "[fit][plot]") {
    const fs::path dir = scratch_dir("plot_bad");
    const auto sweep = write_json(dir / "sweep.json", synthetic_sweep());
    const fs::path none = dir / "none", log = dir / "plot.log";
    // the sweep given as COEFFS: no "fits" list
    const int code = run_plot_py({sweep.string(), sweep.string(), "-o", none.string()}, log);
    const std::string output = read_text(log);
    INFO("plot.py output:\n" << output);
    CHECK(code == 2);
    CHECK_THAT(output, Contains("plot.py: error: '" + sweep.string() + "': COEFFS has no \"fits\" list"));
    CHECK_FALSE(fs::exists(none));
}

// `text` with the first occurrence of `from` replaced by `to` (REQUIREs that it occurs).
std::string replace_once(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

TEST_CASE("plot.py: a non-finite or mistyped value in any input exits 2 naming file and key, draws nothing",
          "[fit][plot]") {
    const fs::path dir = scratch_dir("plot_hostile");
    const auto sweep = write_json(dir / "sweep.json", synthetic_sweep());
    const fs::path coeffs = dir / "coeffs.json";
    REQUIRE(run_cli({"fit", sweep.string(), "-o", coeffs.string()}, dir).exit_code == 0);
    const auto timeline = write_json(dir / "timeline.json", synthetic_timeline());
    const std::string sweep_text = read_text(sweep), coeffs_text = read_text(coeffs), timeline_text = read_text(timeline);
    struct Case {
        std::string name, file, text, message;
    };
    // Python's json reads NaN, Infinity and 1e999 as floats: each must be refused by plot.py itself.
    const std::vector<Case> cases = {
        {"nan_n_part", "sweep", replace_once(sweep_text, "\"N_part\": 1000.0", "\"N_part\": NaN"),
         "benchmarks[0].N_part must be a positive finite number, got nan"},
        {"inf_counter", "sweep", replace_once(sweep_text, "\"forward_ms\": 1.0", "\"forward_ms\": 1e999"),
         "benchmarks[0].forward_ms must be a finite number, got inf"},
        {"bool_kicks", "sweep", replace_once(sweep_text, "\"N_kicks\": 1", "\"N_kicks\": true"),
         "benchmarks[0].N_kicks must be a positive finite number, got true"},
        {"string_alpha", "coeffs", replace_once(coeffs_text, "\"alpha_part_bytes\": ", "\"alpha_part_bytes\": \"12\", \"x\": "),
         "fits[0].alpha_part_bytes must be a finite number or null, got \"12\""},
        {"infinite_slope", "coeffs", replace_once(coeffs_text, "\"slope_bytes_per_kick\": ", "\"slope_bytes_per_kick\": -Infinity, \"x\": "),
         "kick_fits[0].slope_bytes_per_kick must be a finite number or null, got -inf"},
        {"path_in_strategy", "coeffs", replace_once(coeffs_text, "\"strategy\": \"fused\"", "\"strategy\": \"../x\""),
         "fits[0].strategy must be null or a name"},
        {"nan_time", "timeline", replace_once(timeline_text, "\"time_s\": 0.0", "\"time_s\": NaN"),
         "events[0].time_s must be a finite number, got nan"},
        {"string_backward", "timeline", replace_once(timeline_text, "\"backward\": false", "\"backward\": \"no\""),
         "events[0].backward must be true or false"},
    };
    for (const Case& c : cases) {
        INFO("case " << c.name);
        std::map<std::string, fs::path> files = {{"sweep", sweep}, {"coeffs", coeffs}, {"timeline", timeline}};
        files[c.file] = dir / (c.name + ".json");
        write_text(files[c.file], c.text);
        const fs::path out = dir / ("out_" + c.name), log = dir / (c.name + ".log");
        const int code = run_plot_py({files["sweep"].string(), files["coeffs"].string(), "--timeline",
                                      files["timeline"].string(), "-o", out.string()}, log);
        const std::string output = read_text(log);
        INFO("plot.py output:\n" << output);
        CHECK(code == 2);
        CHECK_THAT(output, Contains("plot.py: error: '" + files[c.file].string() + "': " + c.message));
        CHECK_FALSE(fs::exists(out));
    }
}

TEST_CASE("sctape plan predicts tape bytes from the fitted law and checks a budget", "[fit][plan]") {
    const fs::path dir = fs::path(SCTAPE_TEST_TMPDIR) / "plan";
    fs::create_directories(dir);
    // fused float32: 24 B per particle and 8 B per cell per kick (the README's closed form)
    const json coeffs = {{"schema_version", 1},
                         {"fits", json::array({{{"strategy", "fused"}, {"dtype", "float32"}, {"measure", "tape_bytes"},
                                                {"scope", "total"}, {"alpha_part_bytes", 24.0}, {"alpha_cells_bytes", 8.0},
                                                {"alpha_0_bytes", nullptr}}})}};
    std::ofstream(dir / "coeffs.json") << coeffs.dump();
    const std::string cli = SCTAPE_CLI_PATH;
    const std::string base = cli + " plan " + (dir / "coeffs.json").string() + " --n-part 1000000 --grid 64 64 64 --kicks 100";
    const std::string out = (dir / "out.txt").string();
    // the closed form: 100 * (24e6 + 8 * 262144) + 16e6 bytes = 2.6257e9 B = 2.445 GiB;
    // no peak_overhead_bytes fit: no peak, and the budget holds the tape
    int rc = std::system((base + " --memory-GiB 3 > " + out).c_str());
    CHECK(WEXITSTATUS(rc) == 0);
    std::ifstream in(out);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_THAT(text, Catch::Contains("2.445"));
    CHECK_THAT(text, Catch::Contains("no peak_overhead_bytes fit"));
    CHECK_THAT(text, Catch::Contains("yes"));
    rc = std::system((base + " --memory-GiB 2 > " + out + " 2>&1").c_str());
    CHECK(WEXITSTATUS(rc) == 1);  // does not fit
    rc = std::system((base + " --dtype float16 > " + out + " 2>&1").c_str());
    CHECK(WEXITSTATUS(rc) == 2);
    rc = std::system((cli + " plan " + (dir / "missing.json").string() + " --n-part 1 --grid 2 2 2 --kicks 1 > " + out +
                      " 2>&1").c_str());
    CHECK(WEXITSTATUS(rc) == 2);
}

// The memory pre-check of `sctape track` reads the committed sweep's laws
// (compiled in). The hand-written strategies' laws are exact byte counts
// (docs/tape-accounting.md: fused (6N + 2C) w, checkpoint 6N w, reversible
// 0 per kick), so the fitted values must equal them to the fit's rounding
// (max relative residual ~1e-15; tolerance 1e-9 of the coefficient).
TEST_CASE("tape_laws: the compiled-in sweep gives the exact per-kick laws", "[fit]") {
    struct Expected {
        const char* strategy;
        const char* dtype;
        double alpha_part, alpha_cells;
    };
    const Expected cases[] = {{"fused", "float32", 24, 8},    {"fused", "float64", 48, 16},
                              {"checkpoint", "float32", 24, 0}, {"checkpoint", "float64", 48, 0},
                              {"reversible", "float32", 0, 0},  {"reversible", "float64", 0, 0}};
    for (const Expected& e : cases) {
        INFO(e.strategy << " " << e.dtype);
        const auto laws = sctape::fit::tape_laws(sctape::fit::measured_coeffs(), e.dtype, e.strategy);
        REQUIRE(laws.size() == 1);
        CHECK(laws[0].alpha_part == Approx(e.alpha_part).margin(1e-9 * 48));
        CHECK(laws[0].alpha_cells == Approx(e.alpha_cells).margin(1e-9 * 48));
        CHECK(laws[0].per_kick_bytes(1000, 512) == Approx(e.alpha_part * 1000 + e.alpha_cells * 512).margin(1e-6));
    }
    // a fit entry without alpha_0_bytes or with a non-number is read safely
    const nlohmann::json coeffs = {{"fits", {{{"measure", "tape_bytes"}, {"scope", "total"}, {"dtype", "float32"},
                                              {"strategy", "x"}, {"alpha_part_bytes", 2}, {"alpha_cells_bytes", 1}},
                                             {{"measure", "tape_bytes"}, {"scope", "total"}, {"dtype", "float32"},
                                              {"strategy", "y"}, {"alpha_part_bytes", "2"}, {"alpha_cells_bytes", 1}}}}};
    const auto laws = sctape::fit::tape_laws(coeffs, "float32");
    REQUIRE(laws.size() == 1);
    CHECK(laws[0].strategy == "x");
    CHECK(laws[0].per_kick_bytes(10, 4) == 24);
}

// ---------------------------------------------------------------- rank sweeps (docs/mpi.md)

namespace {

// A rank sweep as bench/rank_sweep.py writes it (rank 0's counters): fused
// float64's closed-form tape at rank 0's share ceil(N/P), and a peak of
// 100 B per particle on the rank + 300 B per cell + 5000 B above it, and
// over several ranks 72 B per cell more (reduction buffers).
json synthetic_rank_sweep() {
    json benchmarks = json::array();
    for (double n : {3000.0, 6000.0, 30001.0})  // 3000/1 = 6000/2, 3000/2 = 6000/4: same shares
        for (int g : {8, 16, 32})
            for (int ranks : {1, 2, 3, 4}) {
                const double cells = double(g) * g * g, share = std::ceil(n / ranks);
                const double per_kick = 48 * share + 16 * cells, tape = 2 * per_kick + 32 * share;
                const std::string grid = std::to_string(g) + "x" + std::to_string(g) + "x" + std::to_string(g);
                benchmarks.push_back({{"name", "kick_memory/fused/float64/N_part:" + std::to_string(int(n)) + "/grid:" +
                                                   grid + "/N_kicks:2/ranks:" + std::to_string(ranks)},
                                      {"run_type", "iteration"},
                                      {"N_part", n},
                                      {"ranks", ranks},
                                      {"N_part_rank", share},
                                      {"N_cells", cells},
                                      {"N_kicks", 2},
                                      {"tape_bytes", per_kick},
                                      {"alloc_delta_bytes", per_kick},
                                      {"tape_bytes_total", tape},
                                      {"peak_bytes_total", tape + 100 * share + (ranks > 1 ? 372 : 300) * cells + 5000}});
            }
    return {{"context", {{"backend", "cpu"}, {"kind", "sctape-rank-sweep"}}}, {"benchmarks", benchmarks}};
}

}  // namespace

// Exact synthetic bytes: the fit's rounding is ~1e-16 relative; 1e-9 as above.
TEST_CASE("rank sweep: the per-rank law in ceil(N/P) and N_cells fitted exactly, bad rank data refused", "[fit][plan]") {
    const json coeffs = sctape::fit::fit_sweep(sctape::fit::parse_sweep(synthetic_rank_sweep()), {});
    const json* per_kick = find_fit(coeffs, "tape_bytes", "total");
    const json* fixed = find_fit(coeffs, "tape_fixed_bytes", "total");
    const json* peak = find_fit(coeffs, "peak_overhead_bytes", "particles");
    const json* peak_ranks = find_fit(coeffs, "peak_overhead_bytes", "ranks_particles");
    REQUIRE(per_kick);
    REQUIRE(fixed);
    REQUIRE(peak);
    REQUIRE(peak_ranks);
    CHECK((*per_kick)["alpha_part_bytes"].get<double>() == Approx(48).epsilon(1e-9));
    CHECK((*per_kick)["alpha_cells_bytes"].get<double>() == Approx(16).epsilon(1e-9));
    CHECK((*fixed)["alpha_part_bytes"].get<double>() == Approx(32).epsilon(1e-9));
    CHECK((*peak)["alpha_part_bytes"].get<double>() == Approx(100).epsilon(1e-9));
    CHECK((*peak)["alpha_cells_bytes"].get<double>() == Approx(300).epsilon(1e-9));
    CHECK((*peak)["alpha_0_bytes"].get<double>() == Approx(5000).epsilon(1e-6));
    // several ranks: fitted apart, their reduction buffers in the law
    CHECK((*peak_ranks)["alpha_part_bytes"].get<double>() == Approx(100).epsilon(1e-9));
    CHECK((*peak_ranks)["alpha_cells_bytes"].get<double>() == Approx(372).epsilon(1e-9));
    // COEFFS says it is per rank; the pairs that hold the same share at other ranks differ by nothing
    REQUIRE(coeffs.contains("per_rank"));
    CHECK(keys_of(coeffs["per_rank"]) == std::set<std::string>{"ranks", "N_part", "rank_dependence"});
    CHECK(coeffs["per_rank"]["ranks"] == json({1, 2, 3, 4}));
    const json& dependence = coeffs["per_rank"]["rank_dependence"][0];
    CHECK(keys_of(dependence) == std::set<std::string>{"strategy", "dtype", "same_share_pairs",
                                                       "max_tape_difference_bytes", "max_peak_difference_bytes", "note"});
    CHECK(dependence["same_share_pairs"] == 2 * 3);  // two shares held at two rank counts, on three grids
    CHECK(dependence["max_tape_difference_bytes"] == 0);
    CHECK(dependence["max_peak_difference_bytes"] == 72 * 32 * 32 * 32);  // the largest grid's buffers
    CHECK_THAT(sctape::fit::coefficient_table(coeffs), Contains("per MPI rank (ranks 1 2 3 4)"));
    // the model predicts a rank's peak at its share, far outside the fit
    const auto model = sctape::fit::memory_model(coeffs, "fused", "float64", 7);
    const auto one_rank = sctape::fit::memory_model(coeffs, "fused", "float64", 1);
    REQUIRE(model);
    REQUIRE(one_rank);
    const double share = std::ceil(1e6 / 7), cells = 64.0 * 64 * 64, kicks = 100;
    const double tape = kicks * (48 * share + 16 * cells) + 32 * share;
    const auto p = sctape::fit::predict(*model, {share, cells, kicks});
    CHECK(p.tape_bytes == tape);  // closed form: exact
    CHECK(p.peak_bytes == Approx(tape + 100 * share + 372 * cells + 5000).epsilon(1e-9));
    CHECK(sctape::fit::predict(*one_rank, {share, cells, kicks}).peak_bytes ==
          Approx(tape + 100 * share + 300 * cells + 5000).epsilon(1e-9));
    // a one-rank sweep has no per_rank section
    CHECK_FALSE(sctape::fit::fit_sweep(sctape::fit::parse_sweep(synthetic_sweep()), {}).contains("per_rank"));

    auto refused = [](json sweep, const std::string& message) {
        CHECK_THROWS_WITH(sctape::fit::parse_sweep(sweep), Contains(message));
    };
    json mixed = synthetic_rank_sweep();
    mixed["benchmarks"][2].erase("ranks");
    refused(mixed, "cannot be fitted as one");
    json share_wrong = synthetic_rank_sweep();
    share_wrong["benchmarks"][3]["N_part_rank"] = 1;
    refused(share_wrong, "N_part_rank");
    json fractional = synthetic_rank_sweep();
    fractional["benchmarks"][0]["ranks"] = 1.5;
    refused(fractional, "whole number");
    json no_share = synthetic_rank_sweep();
    no_share["benchmarks"][0].erase("N_part_rank");
    refused(no_share, "N_part_rank");
}
