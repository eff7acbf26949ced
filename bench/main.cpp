// sctape-bench — Google Benchmark's flags plus `--backend cpu|cuda|auto`
// (default auto), which picks where `kick_time` and `kick_memory` run (on the
// GPU, kick_memory sweeps the strategies the CUDA backend has, fused and
// checkpoint, in device bytes), and `--shard i/n`, which runs shard i of a
// deterministic partition of the kick_memory runs (fit/shard.hpp; `sctape
// merge` joins the shards). Exit 2 when the requested backend is not
// available, --shard is malformed, or --benchmark_filter matches no benchmark.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/memory.hpp"
#include "kick_time.hpp"
#include "least_squares.hpp"
#include "shard.hpp"

namespace {

const char* kUsage =
    "usage: sctape-bench [--backend cpu|cuda|auto] [--shard i/n] [Google Benchmark flags]\n"
    "\n"
    "  kick_memory/...   reverse-mode memory sweep on the chosen backend; SCTAPE_BENCH_QUICK=1 for the CI\n"
    "                    subset, SCTAPE_BENCH_LONG=1 for 10/100/1000-kick lattices\n"
    "  kick_time/...     forward kick time per substep on the chosen backend\n"
    "\n"
    "  --shard i/n       run only shard i (0 <= i < n) of the kick_memory runs --benchmark_filter\n"
    "                    selects, split into n shards of similar work by a fixed rule (no kick_time);\n"
    "                    `sctape merge` joins the shards' JSON into the whole sweep\n"
    "\n"
    "Typical: --benchmark_filter=kick_memory --benchmark_out=SWEEP.json --benchmark_out_format=json\n"
    "\n";

// Removes `--NAME X` / `--NAME=X` from argv; returns X, "" when absent.
// Throws std::runtime_error when the option has no value or comes twice.
std::string take_option(int& argc, char** argv, const std::string& name) {
    const std::string flag = "--" + name, prefix = flag + "=";
    std::string value;
    bool seen = false;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a != flag && a.rfind(prefix, 0) != 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (seen) throw std::runtime_error(flag + " given twice");
        if (a == flag && i + 1 >= argc) throw std::runtime_error(flag + " needs a value");
        value = a == flag ? argv[++i] : a.substr(prefix.size());
        if (value.empty()) throw std::runtime_error(flag + " needs a value");
        seen = true;
    }
    argc = out;
    return value;
}

// Google Benchmark's rule for --benchmark_filter (1.7, benchmark_register.cc):
// "" and "all" select every run, a leading '-' selects the runs that do not
// match, the rest is a POSIX extended regular expression searched in the name.
std::vector<std::size_t> select_by_filter(const std::vector<KickMemoryRun>& runs, std::string filter) {
    const bool negative = !filter.empty() && filter[0] == '-';
    if (negative) filter.erase(0, 1);
    if (filter.empty() || filter == "all") filter = ".";
    std::regex pattern;
    try {
        pattern = std::regex(filter, std::regex::extended);
    } catch (const std::regex_error& e) {
        throw std::runtime_error("--benchmark_filter '" + filter + "' is not a regular expression: " + e.what());
    }
    std::vector<std::size_t> selected;
    for (std::size_t k = 0; k < runs.size(); ++k)
        if (std::regex_search(runs[k].name, pattern) != negative) selected.push_back(k);
    return selected;
}

// Registers shard `spec` of the kick_memory runs the filter selects, and the
// context keys `sctape merge` checks (fit/shard.hpp). Throws on a filter that
// selects nothing or more shards than runs.
void register_shard(const std::vector<KickMemoryRun>& runs, const sctape::fit::ShardSpec& spec) {
    namespace keys = sctape::fit::shard_keys;
    const std::string filter = benchmark::GetBenchmarkFilter();
    const std::vector<std::size_t> selected = select_by_filter(runs, filter);
    if (selected.empty())
        throw std::runtime_error("--benchmark_filter '" + filter + "' selects no kick_memory run to shard");
    std::vector<double> work;
    std::vector<std::string> names;
    for (std::size_t k : selected) {
        work.push_back(runs[k].work);
        names.push_back(runs[k].name);
    }
    const std::vector<std::size_t> mine = sctape::fit::partition_cases(work, spec.count)[spec.index];
    for (std::size_t k : mine) runs[selected[k]].register_run();
    const std::string id = sctape::fit::sweep_id(names);
    benchmark::AddCustomContext(keys::kSchema, sctape::fit::kShardSchemaVersion);
    benchmark::AddCustomContext(keys::kShard, sctape::fit::shard_name(spec));
    benchmark::AddCustomContext(keys::kCaseIndices, sctape::fit::format_case_indices(mine));
    benchmark::AddCustomContext(keys::kSweepCases, std::to_string(selected.size()));
    benchmark::AddCustomContext(keys::kSweepId, id);
    benchmark::AddCustomContext(keys::kSweepFilter, filter);
    // the filter chose the sweep; the shard's own runs all run
    benchmark::SetBenchmarkFilter("all");
    std::cerr << "sctape-bench: shard " << sctape::fit::shard_name(spec) << ": " << mine.size() << " of the sweep's "
              << selected.size() << " kick_memory runs (sweep " << id << ")\n";
}

// Google Benchmark opens --benchmark_out, truncating it, before it looks for
// a benchmark that matches the filter, so a filter that matched nothing
// emptied an existing sweep. The output (--benchmark_out=PATH, or the
// BENCHMARK_OUT variable Google Benchmark read before main) goes to
// PATH.tmp-<pid> instead, through a last --benchmark_out flag appended to
// `args`; finish_benchmark_out renames it only when benchmarks wrote to it.
// Returns PATH, "" without an output file.
std::string redirect_benchmark_out(std::vector<char*>& args, std::string& flag_storage) {
    const char* env = std::getenv("BENCHMARK_OUT");
    std::string target = env ? env : "";
    const std::string flag = "--benchmark_out=";
    for (char* a : args)
        if (std::strncmp(a, flag.c_str(), flag.size()) == 0) target = a + flag.size();  // the last one wins
    if (target.empty()) return target;
    flag_storage = flag + target + ".tmp-" + std::to_string(::getpid());
    args.push_back(flag_storage.data());
    return target;
}

// Exit code after the run: 2 when nothing matched (the target untouched).
int finish_benchmark_out(const std::string& target, std::size_t ran) {
    const std::string temporary = target + ".tmp-" + std::to_string(::getpid());
    std::error_code ec;
    // --benchmark_list_tests runs nothing and writes nothing: keep the target too
    const bool wrote = !target.empty() && ran > 0 && std::filesystem::file_size(temporary, ec) > 0 && !ec;
    if (wrote && std::rename(temporary.c_str(), target.c_str()) != 0) {
        std::cerr << "sctape-bench: error: cannot move the output into place at '" << target << "'\n";
        ran = 0;
    }
    if (!target.empty() && !wrote) std::remove(temporary.c_str());
    if (ran == 0) {
        std::cerr << "sctape-bench: error: no benchmark ran (does --benchmark_filter match any?)"
                  << (target.empty() ? "" : "; '" + target + "' left unchanged") << "\n";
        return 2;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    sctape::keep_freed_host_memory();
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) std::cout << kUsage;
    sctape::Backend backend;
    std::string why, shard;
    try {
        shard = take_option(argc, argv, "shard");
        if (!shard.empty()) sctape::fit::parse_shard_spec(shard);  // bad input before any work
        const std::string requested = take_option(argc, argv, "backend");
        backend = sctape::resolve_backend(
            sctape::kBackendNames.parse(requested.empty() ? "auto" : requested, "--backend"), why);
    } catch (const sctape::fit::FitError& e) {
        std::cerr << "sctape-bench: error: --shard " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "sctape-bench: error: " << e.what() << "\n";
        return 2;
    }
    std::vector<char*> args(argv, argv + argc);
    std::string out_flag;
    const std::string out = redirect_benchmark_out(args, out_flag);
    int args_count = int(args.size());
    args.push_back(nullptr);
    benchmark::Initialize(&args_count, args.data());
    if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 2;
    if (shard.empty()) register_kick_time(backend);  // kick_time is timing on one node: never sharded
    const std::vector<KickMemoryRun> runs = plan_kick_memory(backend);
    if (shard.empty()) {
        for (const KickMemoryRun& run : runs) run.register_run();
    } else {
        try {
            register_shard(runs, sctape::fit::parse_shard_spec(shard));
        } catch (const std::exception& e) {
            std::cerr << "sctape-bench: error: --shard " << shard << ": " << e.what() << "\n";
            return 2;
        }
    }
    benchmark::AddCustomContext("kick_time_backend", sctape::backend_name(backend));
    benchmark::AddCustomContext("kick_time_backend_reason", why);
    const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return finish_benchmark_out(out, ran);
}
