// sctape-bench — Google Benchmark's flags plus `--backend cpu|cuda|auto`
// (default auto), which picks where `kick_time` and `kick_memory` run (on the
// GPU, kick_memory sweeps the strategies the CUDA backend has, fused and
// checkpoint, in device bytes). Exit 2 when the requested backend is not
// available, or when --benchmark_filter matches no benchmark.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "kick_time.hpp"

namespace {

const char* kUsage =
    "usage: sctape-bench [--backend cpu|cuda|auto] [Google Benchmark flags]\n"
    "\n"
    "  kick_memory/...   reverse-mode memory sweep on the chosen backend; SCTAPE_BENCH_QUICK=1 for the CI\n"
    "                    subset, SCTAPE_BENCH_LONG=1 for 10/100/1000-kick lattices\n"
    "  kick_time/...     forward kick time per substep on the chosen backend\n"
    "\n"
    "Typical: --benchmark_filter=kick_memory --benchmark_out=SWEEP.json --benchmark_out_format=json\n"
    "\n";

// Removes `--backend X` / `--backend=X` from argv and returns X ("auto" if absent).
std::string take_backend(int& argc, char** argv) {
    std::string value = "auto";
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) value = argv[++i];
        else if (std::strncmp(argv[i], "--backend=", 10) == 0) value = argv[i] + 10;
        else argv[out++] = argv[i];
    }
    argc = out;
    return value;
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
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) std::cout << kUsage;
    const std::string requested = take_backend(argc, argv);
    sctape::Backend backend;
    std::string why;
    try {
        backend = sctape::resolve_backend(sctape::kBackendNames.parse(requested, "--backend"), why);
    } catch (const std::exception& e) {
        std::cerr << "sctape-bench: error: " << e.what() << "\n";
        return 2;
    }
    register_kick_time(backend);
    register_kick_memory(backend);
    benchmark::AddCustomContext("kick_time_backend", sctape::backend_name(backend));
    benchmark::AddCustomContext("kick_time_backend_reason", why);
    std::vector<char*> args(argv, argv + argc);
    std::string out_flag;
    const std::string out = redirect_benchmark_out(args, out_flag);
    int args_count = int(args.size());
    args.push_back(nullptr);
    benchmark::Initialize(&args_count, args.data());
    if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 2;
    const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return finish_benchmark_out(out, ran);
}
