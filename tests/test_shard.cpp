// Sharded sweeps: `sctape-bench --shard i/n` (the partition, fit/shard.hpp)
// and `sctape merge` (fit/merge.hpp). Unit tests of the spec, the partition
// and the merge's refusals on small synthetic shards, then the real binaries:
// three shards of the quick sweep's fused runs, merged, fit to the same
// coefficients as the unsharded run, bit for bit (tape bytes are
// deterministic, and the merged runs are in the unsharded order, so the least
// squares add the same numbers in the same order).
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "least_squares.hpp"
#include "merge.hpp"
#include "shard.hpp"
#include "support/files.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Catch::Matchers::Contains;
using sctape::fit::FitError;
using sctape::fit::ShardDocument;

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const FitError& e) {
        return e.what();
    }
    return "(no error)";
}

// ------------------------------------------------------------ synthetic shards

const std::vector<std::string> kNames = {"kick_memory/fused/float32/N_part:1000/grid:8x8x8/N_kicks:2/iterations:1",
                                         "kick_memory/fused/float32/N_part:1000/grid:16x16x16/N_kicks:2/iterations:1",
                                         "kick_memory/fused/float64/N_part:1000/grid:8x8x8/N_kicks:2/iterations:1",
                                         "kick_memory/fused/float64/N_part:1000/grid:16x16x16/N_kicks:2/iterations:1",
                                         "kick_memory/checkpoint/float32/N_part:1000/grid:8x8x8/N_kicks:2/iterations:1"};

// Shard `index` of `count` over kNames, as sctape-bench writes it (cases
// dealt round-robin here: merge takes any partition the shards declare).
json synthetic_shard(int index, int count) {
    json context = {{"shard_schema_version", "1"},
                    {"shard", std::to_string(index) + "/" + std::to_string(count)},
                    {"sweep_cases", std::to_string(kNames.size())},
                    {"sweep_id", sctape::fit::sweep_id(kNames)},
                    {"sweep_filter", "kick_memory"},
                    {"backend", "cpu"},
                    {"sctape_version", "0.1.0"},
                    {"host_name", "node" + std::to_string(index)},
                    {"num_cpus", 2}};
    json runs = json::array();
    std::vector<std::size_t> mine;
    for (std::size_t k = index; k < kNames.size(); k += count) {
        mine.push_back(k);
        runs.push_back({{"name", kNames[k]}, {"run_type", "iteration"}, {"family_index", runs.size()},
                        {"N_part", 1000}, {"N_cells", 512}, {"N_kicks", 2}, {"tape_bytes", 1000.0 + k}});
    }
    context["shard_case_indices"] = sctape::fit::format_case_indices(mine);
    return {{"context", context}, {"benchmarks", runs}};
}

std::vector<ShardDocument> synthetic_shards(int count) {
    std::vector<ShardDocument> shards;
    for (int i = 0; i < count; ++i) shards.push_back({"s" + std::to_string(i) + ".json", synthetic_shard(i, count)});
    return shards;
}

std::string merge_error(const std::vector<ShardDocument>& shards) {
    return error_of([&] { sctape::fit::merge_shards(shards); });
}

// ------------------------------------------------------------ the binaries

struct Run {
    int exit_code = -1;
    std::string out, err;
};

Run run_shell(const std::string& command, const fs::path& io) {
    const std::string full = command + " >'" + (io / "stdout").string() + "' 2>'" + (io / "stderr").string() + "'";
    const int status = std::system(full.c_str());
    Run r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = sctape::test::read_text(io / "stdout");
    r.err = sctape::test::read_text(io / "stderr");
    return r;
}

const std::string kBench = std::string("SCTAPE_BENCH_QUICK=1 '") + SCTAPE_BENCH_PATH + "' --backend cpu";
const std::string kCli = std::string("'") + SCTAPE_CLI_PATH + "'";

}  // namespace

TEST_CASE("shard spec i/n: two integers, 0 <= i < n", "[shard]") {
    const auto spec = sctape::fit::parse_shard_spec("3/4");
    CHECK(spec.index == 3);
    CHECK(spec.count == 4);
    CHECK(sctape::fit::shard_name(spec) == "3/4");
    CHECK(sctape::fit::parse_shard_spec("0/1").count == 1);
    CHECK_THAT(error_of([] { sctape::fit::parse_shard_spec("0/0"); }), Contains("at least 1"));
    CHECK_THAT(error_of([] { sctape::fit::parse_shard_spec("3/2"); }), Contains("numbered 0 to 1"));
    CHECK_THAT(error_of([] { sctape::fit::parse_shard_spec("2/2"); }), Contains("numbered 0 to 1"));
    for (const char* bad : {"x", "", "1/", "/2", "-1/2", "1/-2", "1/2/3", " 1/2", "1/2 ", "1.0/2", "+1/2", "1e1/20",
                            "1234567890/2000000000"})
        CHECK_THAT(error_of([&] { sctape::fit::parse_shard_spec(bad); }), Contains("is not i/n"));
}

TEST_CASE("partition: every case in exactly one shard, balanced, fixed by work and n alone", "[shard]") {
    SECTION("a worked example: longest first, each to the lightest shard") {
        // 5 -> s0; 4 -> s1; 3 -> s1 (4 < 5); 3 -> s0 (5 < 7); 2 -> s1 (7 < 8); 1 -> s0 (8 < 9)
        const auto sets = sctape::fit::partition_cases({5, 4, 3, 3, 2, 1}, 2);
        CHECK(sets == std::vector<std::vector<std::size_t>>{{0, 3, 5}, {1, 2, 4}});
    }
    SECTION("any n from 1 to the number of cases") {
        std::vector<double> work;
        for (int k = 0; k < 66; ++k) work.push_back(double((k * 7919) % 101 + 1) * (k % 3 == 0 ? 1000 : 1));
        const double largest = *std::max_element(work.begin(), work.end());
        for (int n = 1; n <= int(work.size()); ++n) {
            INFO("n = " << n);
            const auto sets = sctape::fit::partition_cases(work, n);
            REQUIRE(sets.size() == std::size_t(n));
            CHECK(sets == sctape::fit::partition_cases(work, n));  // deterministic
            std::vector<int> seen(work.size(), 0);
            double lightest = 1e300, heaviest = 0;
            for (const auto& set : sets) {
                CHECK_FALSE(set.empty());
                CHECK(std::is_sorted(set.begin(), set.end()));
                double load = 0;
                for (std::size_t k : set) {
                    ++seen[k];
                    load += work[k];
                }
                lightest = std::min(lightest, load);
                heaviest = std::max(heaviest, load);
            }
            CHECK(std::count(seen.begin(), seen.end(), 1) == long(work.size()));
            // greedy's bound: the heaviest shard exceeds the lightest by at most one case
            CHECK(heaviest - lightest <= largest);
        }
    }
    SECTION("more shards than cases, or none, is an error") {
        CHECK_THAT(error_of([] { sctape::fit::partition_cases({1, 2, 3}, 4); }), Contains("fewer than the 4 shards"));
        CHECK_THAT(error_of([] { sctape::fit::partition_cases({1, 2, 3}, 0); }), Contains("at least 1"));
        CHECK_THAT(error_of([] { sctape::fit::partition_cases({1, 0, 3}, 2); }), Contains("must be finite and > 0"));
    }
}

TEST_CASE("sweep id: FNV-1a 64 of the names joined by newlines", "[shard]") {
    // the FNV-1a 64 reference values of "" and "a" (the offset basis, and the published test vector)
    CHECK(sctape::fit::sweep_id({}) == "fnv1a64:cbf29ce484222325");
    CHECK(sctape::fit::sweep_id({"a"}) == "fnv1a64:af63dc4c8601ec8c");
    CHECK(sctape::fit::sweep_id({"a", "b"}) != sctape::fit::sweep_id({"b", "a"}));
    CHECK(sctape::fit::parse_case_indices("0,4,9", "x") == std::vector<std::size_t>{0, 4, 9});
    CHECK(sctape::fit::format_case_indices({0, 4, 9}) == "0,4,9");
    for (const char* bad : {"", "1,", ",1", "1,,2", "a", "1;2", "-1"})
        CHECK_THAT(error_of([&] { sctape::fit::parse_case_indices(bad, "shard_case_indices"); }),
                   Contains("shard_case_indices is not"));
}

TEST_CASE("merge: the shards back in the sweep's order; node keys may differ", "[shard]") {
    for (int count : {1, 2, 3, 5}) {
        INFO(count << " shards");
        auto shards = synthetic_shards(count);
        std::reverse(shards.begin(), shards.end());  // the files' order does not matter
        const json merged = sctape::fit::merge_shards(shards);
        REQUIRE(merged["benchmarks"].size() == kNames.size());
        for (std::size_t k = 0; k < kNames.size(); ++k) {
            CHECK(merged["benchmarks"][k]["name"] == kNames[k]);
            CHECK(merged["benchmarks"][k]["family_index"] == k);
            CHECK(merged["benchmarks"][k]["tape_bytes"] == 1000.0 + k);
        }
        const json& context = merged["context"];
        CHECK(context["merged_shards"] == std::to_string(count));
        CHECK(context["sweep_id"] == sctape::fit::sweep_id(kNames));
        for (const char* per_shard : {"shard", "shard_case_indices", "shard_schema_version"})
            CHECK_FALSE(context.contains(per_shard));
        CHECK(context["num_cpus"] == 2);  // equal everywhere: kept as it is
        if (count == 1) CHECK(context["host_name"] == "node0");
        else CHECK(context["host_name"].size() == std::size_t(count));  // differs: one value per shard, shard 0 first
        if (count > 1) CHECK(context["host_name"][1] == "node1");
    }
}

TEST_CASE("merge refuses what is not one whole sweep, naming the file and the cause", "[shard]") {
    auto shards = synthetic_shards(3);
    SECTION("a shard missing") {
        shards.erase(shards.begin() + 1);
        CHECK_THAT(merge_error(shards), Contains("missing cases") && Contains("shard 1/3"));
    }
    SECTION("a shard twice") {
        shards.push_back({"again.json", synthetic_shard(2, 3)});
        CHECK_THAT(merge_error(shards), Contains("'again.json'") && Contains("'s2.json'") && Contains("both shard 2/3") &&
                                            Contains("overlapping"));
    }
    SECTION("a shard of another split of the sweep") {
        shards[2] = {"other.json", synthetic_shard(1, 2)};
        CHECK_THAT(merge_error(shards), Contains("'other.json'") && Contains("not shards of one sweep"));
    }
    SECTION("a shard of another sweep") {
        shards[1].doc["context"]["sweep_id"] = "fnv1a64:0000000000000000";
        CHECK_THAT(merge_error(shards), Contains("'s1.json'") && Contains("\"sweep_id\""));
    }
    SECTION("a context value that describes the measurement differs") {
        shards[2].doc["context"]["backend"] = "cuda";
        CHECK_THAT(merge_error(shards), Contains("'s2.json'") && Contains("\"backend\" is \"cuda\""));
        shards[2].doc["context"].erase("backend");
        CHECK_THAT(merge_error(shards), Contains("\"backend\" is absent"));
    }
    SECTION("not a shard: an unsharded sweep, another schema") {
        shards[0].doc["context"].erase("shard_schema_version");
        CHECK_THAT(merge_error(shards), Contains("'s0.json' is not a shard"));
        shards[0].doc["context"]["shard_schema_version"] = "2";
        CHECK_THAT(merge_error(shards), Contains("'s0.json' has shard_schema_version \"2\""));
        shards[0].doc = json::array();
        CHECK_THAT(merge_error(shards), Contains("'s0.json' is not a Google Benchmark JSON"));
    }
    SECTION("a shard cut short, a failed run, an aggregate, a foreign run") {
        auto& runs = shards[1].doc["benchmarks"];
        SECTION("cut short") {
            runs.erase(runs.size() - 1);
            CHECK_THAT(merge_error(shards), Contains("'s1.json' (shard 1/3) holds 1 runs for its 2 cases: missing"));
        }
        SECTION("failed") {
            runs[0]["error_occurred"] = true;
            runs[0]["error_message"] = "out of memory";
            CHECK_THAT(merge_error(shards), Contains("'s1.json'") && Contains("failed (out of memory)"));
        }
        SECTION("aggregate") {
            runs[0]["run_type"] = "aggregate";
            CHECK_THAT(merge_error(shards), Contains("is an aggregate"));
        }
        SECTION("foreign") {
            runs[0]["name"] = "kick_time/float32/N_part:100000/grid:32/threads:1/real_time";
            CHECK_THAT(merge_error(shards), Contains("is not a kick_memory run"));
        }
        SECTION("renamed: the names no longer give the sweep id") {
            runs[0]["name"] = "kick_memory/fused/float32/N_part:7/grid:8x8x8/N_kicks:2/iterations:1";
            CHECK_THAT(merge_error(shards), Contains("a shard was edited"));
        }
        SECTION("a case claimed by two shards") {
            shards[2].doc["context"]["shard_case_indices"] = "1";  // case 1 is shard 1's
            CHECK_THAT(merge_error(shards), Contains("case 1 is in both"));
        }
        SECTION("bad bookkeeping") {
            shards[1].doc["context"]["shard_case_indices"] = "4,1";
            CHECK_THAT(merge_error(shards), Contains("must rise"));
            shards[1].doc["context"]["shard_case_indices"] = "1,9";
            CHECK_THAT(merge_error(shards), Contains("below sweep_cases = 5"));
            shards[1].doc["context"]["shard"] = "1/x";
            CHECK_THAT(merge_error(shards), Contains("'s1.json': '1/x' is not i/n"));
        }
    }
}

TEST_CASE("sctape-bench --shard: bad specs exit 2 before any work, with nothing written", "[shard][bench]") {
    const fs::path dir = sctape::test::scratch_dir("shard_bad_specs");
    const fs::path out = dir / "shard.json";
    for (const char* spec : {"0/0", "3/2", "x", "''", "1/2/3", "-1/2", "500/1000"}) {
        INFO("--shard " << spec);
        const Run r = run_shell(kBench + " --shard " + std::string(spec) + " --benchmark_filter=kick_memory '--benchmark_out=" +
                                    out.string() + "' --benchmark_out_format=json",
                                dir);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Contains("sctape-bench: error: --shard"));
        CHECK_FALSE(fs::exists(out));
    }
    const Run none = run_shell(kBench + " --shard 0/2 --benchmark_filter=kick_time", dir);
    CHECK(none.exit_code == 2);
    CHECK_THAT(none.err, Contains("selects no kick_memory run"));
    const Run twice = run_shell(kBench + " --shard 0/2 --shard=1/2", dir);
    CHECK(twice.exit_code == 2);
    CHECK_THAT(twice.err, Contains("--shard given twice"));
    const Run many = run_shell(kBench + " --shard 0/1000 --benchmark_filter=kick_memory", dir);
    CHECK(many.exit_code == 2);
    CHECK_THAT(many.err, Contains("fewer than the 1000 shards"));
}

TEST_CASE("three shards of a sweep, merged, fit exactly as the unsharded sweep", "[shard][bench]") {
    const fs::path dir = sctape::test::scratch_dir("shard_merge_fit");
    const std::string filter = " '--benchmark_filter=kick_memory/fused/'";
    auto bench = [&](const std::string& extra, const fs::path& out) {
        const Run r = run_shell(kBench + filter + extra + " '--benchmark_out=" + out.string() +
                                    "' --benchmark_out_format=json",
                                dir);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    };
    bench("", dir / "whole.json");
    std::vector<std::string> shard_files;
    for (int i = 0; i < 3; ++i) {
        shard_files.push_back((dir / ("shard" + std::to_string(i) + ".json")).string());
        bench(" --shard " + std::to_string(i) + "/3", shard_files.back());
    }
    const json whole = json::parse(sctape::test::read_text(dir / "whole.json"));
    std::vector<std::string> names;
    for (const json& run : whole["benchmarks"]) names.push_back(run["name"]);
    REQUIRE(names.size() == 16);  // fused: 8 quick cases x 2 dtypes

    SECTION("the shards partition the sweep, and carry its id") {
        std::multiset<std::string> sharded;
        for (const std::string& file : shard_files) {
            const json shard = json::parse(sctape::test::read_text(file));
            CHECK(shard["context"]["sweep_id"] == sctape::fit::sweep_id(names));
            CHECK(shard["context"]["sweep_cases"] == "16");
            CHECK(shard["context"]["sweep_filter"] == "kick_memory/fused/");
            CHECK(shard["benchmarks"].size() >= 1);
            for (const json& run : shard["benchmarks"]) sharded.insert(run["name"].get<std::string>());
        }
        CHECK(sharded == std::multiset<std::string>(names.begin(), names.end()));
    }
    SECTION("merged: the unsharded order, the same bytes, the same fit") {
        std::string shards;
        for (auto it = shard_files.rbegin(); it != shard_files.rend(); ++it) shards += " '" + *it + "'";
        const Run merge = run_shell(kCli + " merge" + shards + " -o '" + (dir / "merged.json").string() + "'", dir);
        INFO(merge.err);
        REQUIRE(merge.exit_code == 0);
        CHECK_THAT(merge.out, Contains("merged 3 shards: 16 cases of sweep " + sctape::fit::sweep_id(names)));
        const json merged = json::parse(sctape::test::read_text(dir / "merged.json"));
        REQUIRE(merged["benchmarks"].size() == names.size());
        for (std::size_t k = 0; k < names.size(); ++k) {
            INFO(names[k]);
            const json& a = merged["benchmarks"][k];
            const json& b = whole["benchmarks"][k];
            CHECK(a["name"] == b["name"]);
            for (const char* deterministic : {"tape_bytes", "tape_bytes_total", "alloc_delta_bytes", "peak_bytes_total"})
                CHECK(a[deterministic] == b[deterministic]);  // exact: bytes are deterministic
        }
        for (const char* sweep : {"whole", "merged"}) {
            const Run fit = run_shell(kCli + " fit '" + (dir / (std::string(sweep) + ".json")).string() + "' -o '" +
                                          (dir / (std::string(sweep) + "_coeffs.json")).string() + "'",
                                      dir);
            INFO(fit.err);
            REQUIRE(fit.exit_code == 0);
        }
        const json a = json::parse(sctape::test::read_text(dir / "whole_coeffs.json"));
        const json b = json::parse(sctape::test::read_text(dir / "merged_coeffs.json"));
        REQUIRE(a["fits"].size() > 0);
        REQUIRE(a["kick_fits"].size() > 0);
        CHECK(a["fits"] == b["fits"]);  // every coefficient, error and residual, bit for bit
        CHECK(a["kick_fits"] == b["kick_fits"]);
        CHECK(a["notes"] == b["notes"]);
    }
    SECTION("merge refuses a missing or doubled shard, exit 2, no file written") {
        const fs::path out = dir / "refused.json";
        const Run missing =
            run_shell(kCli + " merge '" + shard_files[0] + "' '" + shard_files[2] + "' -o '" + out.string() + "'", dir);
        CHECK(missing.exit_code == 2);
        CHECK_THAT(missing.err, Contains("sctape merge: error: missing cases: no file given for shard 1/3"));
        const Run doubled = run_shell(kCli + " merge '" + shard_files[0] + "' '" + shard_files[1] + "' '" +
                                          shard_files[2] + "' '" + shard_files[1] + "' -o '" + out.string() + "'",
                                      dir);
        CHECK(doubled.exit_code == 2);
        CHECK_THAT(doubled.err, Contains("both shard 1/3"));
        const Run unsharded =
            run_shell(kCli + " merge '" + (dir / "whole.json").string() + "' -o '" + out.string() + "'", dir);
        CHECK(unsharded.exit_code == 2);
        CHECK_THAT(unsharded.err, Contains("whole.json' is not a shard"));
        CHECK_FALSE(fs::exists(out));
        // one shard alone fits (here the only one, 0/1), with a note that it is a shard
        bench(" --shard 0/1", dir / "all_in_one.json");
        const Run fit_one = run_shell(kCli + " fit '" + (dir / "all_in_one.json").string() + "'", dir);
        CHECK(fit_one.exit_code == 0);
        CHECK_THAT(fit_one.err, Contains("note: this is shard \"0/1\" of a sharded sweep"));
    }
}

TEST_CASE("sctape merge: usage and bad arguments", "[shard]") {
    const fs::path dir = sctape::test::scratch_dir("merge_usage");
    const Run help = run_shell(kCli + " merge --help", dir);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, Contains("usage: sctape merge SHARD.json... -o SWEEP.json"));
    CHECK(run_shell(kCli + " merge", dir).exit_code == 2);
    const Run no_out = run_shell(kCli + " merge a.json", dir);
    CHECK(no_out.exit_code == 2);
    CHECK_THAT(no_out.err, Contains("missing -o SWEEP.json"));
    const Run absent = run_shell(kCli + " merge '" + (dir / "absent.json").string() + "' -o '" +
                                     (dir / "out.json").string() + "'",
                                 dir);
    CHECK(absent.exit_code == 2);
    CHECK_THAT(absent.err, Contains("absent.json' (no such file)"));
    CHECK_FALSE(fs::exists(dir / "out.json"));
    const Run unknown = run_shell(kCli + " merge a.json -o b.json --frobnicate", dir);
    CHECK_THAT(unknown.err, Contains("unknown option '--frobnicate'"));
}
