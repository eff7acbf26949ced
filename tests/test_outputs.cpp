// Hostile input and output targets [io], through the real binaries: JSON
// that nests 200 000 levels, repeats a key or hides bytes after a NUL; output
// paths that are directories, FIFOs, the input itself or each other; a full
// or closed standard output; a benchmark filter that matches nothing. Every
// case must exit 2 with the exact `error:` line naming the cause, and leave
// the directory exactly as it was (names and contents, no temporaries).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/configs.hpp"
#include "support/files.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kExitBadInput = 2;

using sctape::test::read_text;

fs::path scratch_dir(const std::string& name) { return sctape::test::scratch_dir("io_" + name); }

fs::path write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
    return path;
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// Every entry under `dir`, recursively: a regular file's contents, or its type.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
    std::map<std::string, std::string> entries;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        const std::string name = fs::relative(e.path(), dir).string();
        if (e.is_symlink()) entries[name] = "symlink to " + fs::read_symlink(e.path()).string();
        else if (e.is_regular_file()) entries[name] = read_text(e.path());
        else entries[name] = e.is_directory() ? "<directory>" : e.is_fifo() ? "<fifo>" : "<other>";
    }
    return entries;
}

struct Run {
    int exit_code = -1;
    std::string err;
};

// Runs `PROGRAM ARGS... STDOUT` (STDOUT: a redirection such as ">/dev/full"
// or ">&-"); stderr is captured outside the inspected directory.
Run run(const std::string& program, const std::vector<std::string>& args, const std::string& stdout_to,
        const std::string& env = "") {
    // one file per process: ctest runs the test cases in parallel
    const fs::path err = fs::path(SCTAPE_TEST_TMPDIR) / ("io_stderr_" + std::to_string(::getpid()) + ".txt");
    std::string command = env + " " + quote(program);
    for (const auto& a : args) command += " " + quote(a);
    command += " </dev/null " + stdout_to + " 2>" + quote(err.string());
    const int status = std::system(command.c_str());
    INFO("command: " << command);
    REQUIRE(WIFEXITED(status));
    return {WEXITSTATUS(status), read_text(err)};
}

Run sctape(const std::vector<std::string>& args, const std::string& stdout_to = ">/dev/null") {
    return run(SCTAPE_CLI_PATH, args, stdout_to);
}

// Runs `sctape ARGS` in `dir` and checks: exit 2, stderr exactly `error`
// plus a newline, and `dir` unchanged.
void expect_refused(const fs::path& dir, const std::vector<std::string>& args, const std::string& error,
                    const std::string& stdout_to = ">/dev/null") {
    const auto before = snapshot(dir);
    const Run r = sctape(args, stdout_to);
    CHECK(r.exit_code == kExitBadInput);
    CHECK(r.err == error + "\n");
    CHECK(snapshot(dir) == before);
}

json small_config() { return sctape::test::small_track_config(500); }

// The committed COEFFS of the default CPU sweep (results/ beside fit/).
std::string committed_coeffs() {
    return read_text(fs::path(SCTAPE_PLOT_PY).parent_path().parent_path() / "results" / "coeffs_cpu.json");
}

const char* kPoints = R"([{"N_part": 1000, "N_cells": 512, "bytes": 1e6},
                          {"N_part": 2000, "N_cells": 4096, "bytes": 3e6},
                          {"N_part": 4000, "N_cells": 512, "bytes": 5e6}])";

std::string deep(const std::string& before, const std::string& after) {
    return before + std::string(200000, '[') + std::string(200000, ']') + after;
}

}  // namespace

TEST_CASE("hostile JSON: every subcommand exits 2 naming the file and the cause, nothing written", "[io]") {
    const fs::path dir = scratch_dir("json");
    const std::string cfg = (dir / "config.json").string(), out = (dir / "out.json").string();
    const std::string nests = " nests arrays and objects deeper than 64 levels";
    SECTION("track: 200 000 nested '[' (overflowed the stack)") {
        write_text(cfg, deep("", ""));
        expect_refused(dir, {"track", cfg, "--out", out, "--dump-particles", (dir / "p").string(), "--quiet"},
                       "sctape track: error: config file '" + cfg + "'" + nests);
    }
    SECTION("track: a key twice (the last one silently won)") {
        write_text(cfg, small_config().dump().insert(1, "\"n_particles\": 7, "));
        expect_refused(dir, {"track", cfg, "--out", out, "--quiet"},
                       "sctape track: error: config file '" + cfg + "' has the key \"n_particles\" twice in one object");
    }
    SECTION("check: a baseline nested 200 000 deep (crashed)") {
        const auto coeffs = write_text(dir / "coeffs.json", committed_coeffs()).string();
        const auto baseline = write_text(dir / "baseline.json", deep(R"({"kind": "sctape-baseline", "fits": )", "}"));
        expect_refused(dir, {"check", baseline.string(), coeffs},
                       "sctape check: error: '" + baseline.string() + "'" + nests);
        expect_refused(dir, {"check", "--write-baseline", baseline.string(), out},
                       "sctape check: error: '" + baseline.string() + "'" + nests);
    }
    SECTION("fit: a point with \"bytes\" twice") {
        std::string points = kPoints;
        points.insert(points.find("\"bytes\""), "\"bytes\": 9e9, ");
        const auto sweep = write_text(dir / "points.json", points).string();
        expect_refused(dir, {"fit", sweep, "-o", out},
                       "sctape fit: error: '" + sweep + "' has the key \"bytes\" twice in one object");
    }
    SECTION("plan: bytes after a NUL byte (nlohmann stops reading there)") {
        const std::string text = committed_coeffs();
        const auto coeffs = write_text(dir / "coeffs.json", text + std::string(1, '\0') + "garbage").string();
        expect_refused(dir, {"plan", coeffs, "--n-part", "1000", "--grid", "8", "8", "8", "--kicks", "1"},
                       "sctape plan: error: '" + coeffs + "' is not valid JSON: a NUL byte at offset " +
                           std::to_string(text.size()));
    }
    SECTION("fit: a FIFO as input (blocked forever)") {
        const std::string fifo = (dir / "sweep.json").string();
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        expect_refused(dir, {"fit", fifo, "-o", out}, "sctape fit: error: cannot read '" + fifo + "' (not a regular file)");
    }
}

TEST_CASE("output targets: checked before any work, refused with the cause, nothing written", "[io]") {
    const fs::path dir = scratch_dir("targets");
    const std::string cfg = write_text(dir / "config.json", small_config().dump()).string();
    const std::string result = (dir / "result.json").string();
    auto path = [&](const char* name) { return (dir / name).string(); };
    SECTION("--out a directory with --dump-particles: no CSVs") {
        fs::create_directory(dir / "outdir");
        expect_refused(dir, {"track", cfg, "--out", path("outdir"), "--dump-particles", path("p"), "--quiet"},
                       "sctape track: error: --out '" + path("outdir") + "' is a directory, not a regular file");
    }
    SECTION("--out and --timeline the same file") {
        json reverse = small_config();
        reverse["strategy"] = "fused";
        write_text(cfg, reverse.dump());
        expect_refused(dir, {"track", cfg, "--out", result, "--timeline", result, "--quiet"},
                       "sctape track: error: --out '" + result + "' and --timeline '" + result + "' are the same file");
    }
    SECTION("--out PREFIX_initial.csv with --dump-particles PREFIX") {
        expect_refused(dir, {"track", cfg, "--out", path("p_initial.csv"), "--dump-particles", path("p"), "--quiet"},
                       "sctape track: error: --out '" + path("p_initial.csv") + "' and --dump-particles '" +
                           path("p_initial.csv") + "' are the same file");
    }
    SECTION("--out the input, by another spelling and by a hard link") {
        const std::string dotted = (dir / "." / "config.json").string();
        expect_refused(dir, {"track", cfg, "--out", dotted, "--quiet"},
                       "sctape track: error: --out '" + dotted + "' is the input '" + cfg + "': refusing to overwrite it");
        fs::create_hard_link(cfg, dir / "hard.json");
        expect_refused(dir, {"track", cfg, "--out", path("hard.json"), "--quiet"},
                       "sctape track: error: --out '" + path("hard.json") + "' is the input '" + cfg +
                           "': refusing to overwrite it");
    }
    SECTION("a FIFO at --out or at PREFIX_final.csv (was replaced by a file)") {
        REQUIRE(::mkfifo(path("fifo.json").c_str(), 0600) == 0);
        expect_refused(dir, {"track", cfg, "--out", path("fifo.json"), "--quiet"},
                       "sctape track: error: --out '" + path("fifo.json") + "' is a FIFO, not a regular file");
        REQUIRE(::mkfifo(path("p_final.csv").c_str(), 0600) == 0);
        expect_refused(dir, {"track", cfg, "--out", result, "--dump-particles", path("p"), "--quiet"},
                       "sctape track: error: --dump-particles '" + path("p_final.csv") + "' is a FIFO, not a regular file");
    }
    SECTION("fit -o its input; check --write-baseline over its input") {
        const std::string points = write_text(dir / "points.json", kPoints).string();
        expect_refused(dir, {"fit", points, "-o", points},
                       "sctape fit: error: --out '" + points + "' is the input '" + points + "': refusing to overwrite it");
        const std::string coeffs = write_text(dir / "coeffs.json", committed_coeffs()).string();
        expect_refused(dir, {"check", "--write-baseline", coeffs, coeffs},
                       "sctape check: error: BASELINE '" + coeffs + "' is the input '" + coeffs +
                           "': refusing to overwrite it");
    }
}

TEST_CASE("standard output full or closed: exit 2, the error on stderr, no file written", "[io]") {
    REQUIRE(fs::exists("/dev/full"));
    const fs::path dir = scratch_dir("stdout");
    const std::string cfg = write_text(dir / "config.json", small_config().dump()).string();
    const std::string points = write_text(dir / "points.json", kPoints).string();
    const std::string coeffs = write_text(dir / "coeffs.json", committed_coeffs()).string();
    const std::string full = " (No space left on device)", closed = " (Bad file descriptor)";
    const std::vector<std::string> plan = {"plan", coeffs, "--n-part", "1000", "--grid", "8", "8", "8", "--kicks", "1"};
    SECTION("track prints its RESULT there; its CSVs are not written either") {
        expect_refused(dir, {"track", cfg, "--dump-particles", (dir / "p").string(), "--quiet"},
                       "sctape track: error: cannot write to standard output" + full, ">/dev/full");
        expect_refused(dir, {"track", cfg, "--quiet"}, "sctape track: error: cannot write to standard output" + closed,
                       ">&-");
    }
    SECTION("fit prints its table there; -o is not written either") {
        expect_refused(dir, {"fit", points, "-o", (dir / "c.json").string()},
                       "sctape fit: error: cannot write to standard output" + full, ">/dev/full");
        expect_refused(dir, {"fit", points}, "sctape fit: error: cannot write to standard output" + closed, ">&-");
    }
    SECTION("check, check --write-baseline and plan") {
        expect_refused(dir, {"check", "--write-baseline", coeffs, (dir / "b.json").string()},
                       "sctape check: error: cannot write to standard output" + full, ">/dev/full");
        expect_refused(dir, {"check", coeffs, coeffs}, "sctape check: error: cannot write to standard output" + full,
                       ">/dev/full");
        expect_refused(dir, plan, "sctape plan: error: cannot write to standard output" + full, ">/dev/full");
        expect_refused(dir, plan, "sctape plan: error: cannot write to standard output" + closed, ">&-");
    }
    SECTION("--help and --version") {
        expect_refused(dir, {"track", "--help"}, "sctape track: error: cannot write to standard output" + full,
                       ">/dev/full");
        expect_refused(dir, {"--version"}, "sctape: error: cannot write to standard output" + full, ">/dev/full");
    }
}

TEST_CASE("sctape-bench: a filter that matches nothing leaves --benchmark_out as it was, exit 2", "[io][bench]") {
    const fs::path dir = scratch_dir("bench");
    const std::string out = write_text(dir / "sweep.json", "the previous sweep\n").string();
    const std::string last_line =
        "sctape-bench: error: no benchmark ran (does --benchmark_filter match any?); '" + out + "' left unchanged\n";
    const auto before = snapshot(dir);
    SECTION("--benchmark_out=PATH") {
        const Run r = run(SCTAPE_BENCH_PATH, {"--backend", "cpu", "--benchmark_filter=^no_such_benchmark$",
                                              "--benchmark_out=" + out}, ">/dev/null");
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Catch::Matchers::EndsWith(last_line));
    }
    SECTION("BENCHMARK_OUT in the environment") {
        const Run r = run(SCTAPE_BENCH_PATH, {"--backend", "cpu", "--benchmark_filter=^no_such_benchmark$"},
                          ">/dev/null", "BENCHMARK_OUT=" + quote(out));
        CHECK(r.exit_code == kExitBadInput);
        CHECK_THAT(r.err, Catch::Matchers::EndsWith(last_line));
    }
    CHECK(snapshot(dir) == before);
    CHECK(read_text(out) == "the previous sweep\n");
}
