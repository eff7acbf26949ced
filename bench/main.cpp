// sctape-bench — Google Benchmark's flags plus `--backend cpu|cuda|auto`
// (default auto), which picks where `kick_time` and `kick_memory` run (on the
// GPU, kick_memory sweeps the strategies the CUDA backend has, fused and
// checkpoint, in device bytes). Exit 2 when the requested backend is not available.
#include <benchmark/benchmark.h>

#include <cstring>
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
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
