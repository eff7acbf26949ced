// sctape-bench's JSON [bench]: `sctape fit` (fit/sweep.cpp) reads the
// kick_memory entries by name and counter, so one small case is run through
// the real binary (SCTAPE_BENCH_PATH) and its counter names and tape bytes
// are pinned; so are kick_time's counter names (one short 32^3 run) and
// gradient_time's (one small case) with its ratios. Tape bytes are deterministic (same run, same bytes): they are
// asserted exactly.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "physics/space_charge.hpp"
#include "sweep.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The case: fused, float32, 1000 particles, an 8^3 grid, 2 kicks (~10 ms).
const std::string kCase = "kick_memory/fused/float32/N_part:1000/grid:8x8x8/N_kicks:2";
constexpr std::int64_t kParticles = 1000, kCells = 8 * 8 * 8, kKicks = 2;
constexpr std::int64_t kWord = 4;  // bytes of a float32

// What the fused tape gains per kick (kernels/ad/engine.hpp record_slice, cpu_engine.cpp record_kick;
// docs/tape-accounting.md), w = 4 bytes, N = 1000 particles, C = 512 cells. The
// per-kick counters are the growth of the last slice; a buffer counts once,
// in the scope that saved it first, and the slice's first half-drift saves
// the momenta the previous slice's second half-drift already saved:
//   drift     px, py, delta after the kick (second half-drift)    3 N w = 12000
//   s_to_t    tau, px, py, delta: only tau is new                   N w =  4000
//   deposit   x, y, tau: x and y are new                          2 N w =  8000
//   convolve  rho, one word per cell                                C w =  2048
//   gather    phi, one word per cell (x, y, tau already saved)     C w =  2048
//   t_to_s    px, py, delta before the kick, already saved              0
//   green, field, push: recomputed in backward, nothing saved            0
//   checkpoint, reversible: scopes of the other strategies               0
constexpr std::int64_t kTapeDrift = 3 * kParticles * kWord, kTapeStoT = kParticles * kWord,
                       kTapeDeposit = 2 * kParticles * kWord, kTapeConvolve = kCells * kWord,
                       kTapeGather = kCells * kWord;
// (6 N + 2 C) w = 28096
constexpr std::int64_t kTapePerKick = kTapeDrift + kTapeStoT + kTapeDeposit + kTapeConvolve + kTapeGather;
// K (6 N + 2 C) w + 4 N w = 72192: besides the kicks, the first half-drift's
// initial px, py, delta (3 N w) and the objective sigma_x's x column (N w).
constexpr std::int64_t kTapeTotal = kKicks * kTapePerKick + 4 * kParticles * kWord;

// What kick_memory.cpp writes to state.counters, and nothing else.
const std::set<std::string> kCounters = {
    "tape_bytes", "tape_bytes_total", "alloc_delta_bytes", "peak_bytes_total", "forward_ms", "backward_ms",
    "N_part", "N_cells", "N_kicks", "max_states_held", "max_recomputations", "forward_working_set_bytes",
    "tape_drift_bytes", "tape_checkpoint_bytes", "tape_reversible_bytes", "tape_s_to_t_bytes",
    "tape_deposit_bytes", "tape_green_bytes", "tape_convolve_bytes", "tape_field_bytes", "tape_gather_bytes",
    "tape_push_bytes", "tape_t_to_s_bytes", "alloc_drift_bytes", "alloc_checkpoint_bytes",
    "alloc_reversible_bytes", "alloc_s_to_t_bytes", "alloc_deposit_bytes", "alloc_green_bytes",
    "alloc_convolve_bytes", "alloc_field_bytes", "alloc_gather_bytes", "alloc_push_bytes", "alloc_t_to_s_bytes"};

// What kick_time.cpp writes to state.counters on the CPU, and nothing else.
const std::set<std::string> kKickTimeCounters = {
    "s_to_t_ms", "deposit_ms", "green_ms", "convolve_ms", "field_ms", "gather_ms", "push_ms", "t_to_s_ms",
    "N_part", "N_cells", "kick_ms", "fft_floor_ms", "kick_over_fft_floor", "green_uncached_ms"};

// The fields Google Benchmark (1.7) itself writes for one iteration run with a
// MemoryManager; a newer release that adds one shows up below as an
// unexpected counter, to be added here.
const std::set<std::string> kGoogleBenchmarkFields = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "allocs_per_iter", "max_bytes_used", "total_allocated_bytes", "net_heap_growth"};

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs sctape-bench on the cases `filter` matches (SCTAPE_BENCH_QUICK=1, the
// CI subset, holds kCase) with `extra` arguments and returns the parsed JSON.
json run_bench(const std::string& name, const std::string& filter, const std::string& extra) {
    const fs::path dir = fs::path(SCTAPE_TEST_TMPDIR) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path out = dir / "bench.json", log = dir / "bench.log";
    const std::string command = "SCTAPE_BENCH_QUICK=1 '" + std::string(SCTAPE_BENCH_PATH) +
                                "' --backend cpu '--benchmark_filter=" + filter + "' " + extra +
                                " '--benchmark_out=" + out.string() + "' --benchmark_out_format=json >'" +
                                log.string() + "' 2>&1";
    const int status = std::system(command.c_str());
    INFO("command: " << command << "\noutput:\n" << read_text(log));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    json doc;
    REQUIRE_NOTHROW(doc = json::parse(read_text(out)));
    return doc;
}

// kCase alone (an anchored filter).
json run_bench_case() { return run_bench("bench_json", "^" + kCase + "/iterations:1$", ""); }

// The one entry a run of the benchmark `name` (anchored) gives, named so and without an error.
json run_one_entry(const std::string& dir, const std::string& name, const std::string& extra) {
    const json doc = run_bench(dir, "^" + name + "$", extra);
    REQUIRE(doc.at("benchmarks").size() == 1);
    const json entry = doc.at("benchmarks").at(0);
    CHECK(entry.at("name") == name);
    CHECK_FALSE(entry.contains("error_occurred"));
    return entry;
}

// The names in `a` that are not in `b`, comma-separated ("" when none).
std::string names_missing_from(const std::set<std::string>& a, const std::set<std::string>& b) {
    std::string list;
    for (const auto& name : a)
        if (!b.count(name)) list += (list.empty() ? "" : ", ") + name;
    return list;
}

// Every counter is in the entry, and the entry has no other field besides
// Google Benchmark's own.
void check_counter_names(const json& entry, const std::set<std::string>& counters = kCounters) {
    std::set<std::string> names;
    for (const auto& [key, value] : entry.items())
        if (!kGoogleBenchmarkFields.count(key)) names.insert(key);
    CHECK(names_missing_from(counters, names) == "");
    CHECK(names_missing_from(names, counters) == "");  // unexpected counters
}

void check_exact(const json& entry, const std::string& counter, std::int64_t expected) {
    INFO("counter " << counter);
    REQUIRE(entry.contains(counter));
    REQUIRE(entry.at(counter).is_number());
    CHECK(entry.at(counter).get<double>() == double(expected));  // integers below 2^53: exact in a double
}

}  // namespace

TEST_CASE("sctape-bench kick_memory JSON: counter names and exact fused tape bytes", "[bench]") {
    const json doc = run_bench_case();
    REQUIRE(doc.at("benchmarks").size() == 1);  // the filter matched exactly one case
    const json& entry = doc.at("benchmarks").at(0);
    CHECK(entry.at("name") == kCase + "/iterations:1");
    CHECK(entry.at("run_type") == "iteration");
    CHECK_FALSE(entry.contains("error_occurred"));
    check_counter_names(entry);
    CHECK(doc.at("context").at("backend") == "cpu");
    CHECK(doc.at("context").at("memory_space") == "host (host_memory)");

    SECTION("sizes and bookkeeping") {
        check_exact(entry, "N_part", kParticles);
        check_exact(entry, "N_cells", kCells);
        check_exact(entry, "N_kicks", kKicks);
        check_exact(entry, "max_states_held", 0);  // fused keeps no checkpoint states
        check_exact(entry, "max_recomputations", 0);
    }
    SECTION("tape bytes per kick, per scope, and over the run") {
        check_exact(entry, "tape_drift_bytes", kTapeDrift);
        check_exact(entry, "tape_s_to_t_bytes", kTapeStoT);
        check_exact(entry, "tape_deposit_bytes", kTapeDeposit);
        check_exact(entry, "tape_convolve_bytes", kTapeConvolve);
        check_exact(entry, "tape_gather_bytes", kTapeGather);
        for (const char* zero : {"green", "field", "push", "t_to_s", "checkpoint", "reversible"})
            check_exact(entry, std::string("tape_") + zero + "_bytes", 0);
        check_exact(entry, "tape_bytes", kTapePerKick);
        check_exact(entry, "tape_bytes_total", kTapeTotal);
    }
    SECTION("measured, not pinned: times positive, the peak holds the whole tape") {
        for (const char* timing : {"forward_ms", "backward_ms"}) {
            INFO(timing);
            CHECK(std::isfinite(entry.at(timing).get<double>()));
            CHECK(entry.at(timing).get<double>() > 0);
        }
        CHECK(entry.at("peak_bytes_total").get<double>() >= double(kTapeTotal));
        CHECK(entry.at("forward_working_set_bytes").get<double>() > 0);
    }
    SECTION("sctape fit reads the entry as the case it is") {
        const sctape::fit::Sweep sweep = sctape::fit::parse_sweep(doc);
        CHECK(sweep.backend == "cpu");
        REQUIRE(sweep.entries.size() == 1);
        const sctape::fit::SweepEntry& e = sweep.entries[0];
        CHECK(e.strategy == "fused");
        CHECK(e.dtype == "float32");
        CHECK(e.grid == "8x8x8");
        CHECK(e.n_part == kParticles);
        CHECK(e.n_cells == kCells);
        CHECK(e.n_kicks == kKicks);
        CHECK(e.counters.at("tape_bytes") == double(kTapePerKick));
    }
}

TEST_CASE("sctape-bench kick_time JSON: counter names, the FFT floor and its ratio", "[bench]") {
    const std::string name = "kick_time/float32/N_part:100000/grid:32/threads:1/real_time";
    const json entry = run_one_entry("bench_json_kick_time", name, "--benchmark_min_time=0.01");
    check_counter_names(entry, kKickTimeCounters);
    for (const auto& counter : kKickTimeCounters) {
        INFO(counter);
        CHECK(std::isfinite(entry.at(counter).get<double>()));
        CHECK(entry.at(counter).get<double>() >= 0);
    }
    const double kick = entry.at("kick_ms").get<double>(), floor = entry.at("fft_floor_ms").get<double>();
    CHECK(floor > 0);
    CHECK(entry.at("kick_over_fft_floor").get<double>() == Approx(kick / floor));
}

TEST_CASE("sctape-bench gradient_time JSON: counter names, the ratios and the per-scope backward", "[bench]") {
    // SCTAPE_BENCH_QUICK=1: 2000 particles on 8^3, 10 kicks
    const std::string name = "gradient_time/fused/N_part:2000/grid:8/cell_quantum_permille:0/iterations:1/real_time";
    const json entry = run_one_entry("bench_json_gradient_time", name, "");
    // the fused tape's scopes (kick substeps, drift, beam, objective)
    std::set<std::string> counters = {"plain_forward_ms", "forward_ms", "backward_ms", "gradient_over_plain",
                                      "gradient_over_own_forward", "kicks", "repeats", "backward_beam_ms",
                                      "backward_drift_ms", "backward_objective_ms"};
    for (sctape::Substep s : sctape::kAllSubsteps) counters.insert("backward_" + std::string(sctape::substep_name(s)) + "_ms");
    check_counter_names(entry, counters);
    for (const auto& counter : counters) {
        INFO(counter);
        CHECK(std::isfinite(entry.at(counter).get<double>()));
        CHECK(entry.at(counter).get<double>() >= 0);
    }
    const double plain = entry.at("plain_forward_ms").get<double>(), forward = entry.at("forward_ms").get<double>(),
                 backward = entry.at("backward_ms").get<double>();
    CHECK(plain > 0);
    CHECK(entry.at("gradient_over_plain").get<double>() == Approx((forward + backward) / plain));
    CHECK(entry.at("gradient_over_own_forward").get<double>() == Approx((forward + backward) / forward));
    // each counter is the fastest of the repeats, so the scopes' fastest times add
    // up to at most the fastest whole backward (the scopes partition it)
    double scopes = 0;
    for (const auto& counter : counters)
        if (counter.rfind("backward_", 0) == 0 && counter != "backward_ms") scopes += entry.at(counter).get<double>();
    CHECK(scopes <= backward * (1 + 1e-12));
    CHECK(entry.at("kicks").get<double>() == 10);
}
