// kick_time.hpp — registers the benchmarks for a backend: forward-kick timing
// and the reverse-mode memory sweep.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "physics/beam.hpp"

void register_kick_time(sctape::Backend backend);
// The cost of a gradient against the plain forward tracking (gradient_time.cpp; CPU).
void register_gradient_time();

// One run of the reverse-mode sweep, planned but not yet registered with
// Google Benchmark.
struct KickMemoryRun {
    std::string name;  // as Google Benchmark names it (".../iterations:1"), for --benchmark_filter
    double work;       // estimated time in arbitrary units (kick_memory.cpp): what balances shards
    std::function<void()> register_run;
};

// The reverse-mode sweep (kick_memory.cpp) in run order: the CPU strategies,
// or on the GPU those the CUDA backend has, with device bytes. Registers the
// sweep's memory manager and context; the runs are registered by the caller
// (all of them, or one shard's).
std::vector<KickMemoryRun> plan_kick_memory(sctape::Backend backend);

// The benchmarks' beam: electrons at 250 MeV, 1 nC, a uniform sphere of 1 mm
// (rest frame), N particles.
sctape::BeamParameters kick_beam(std::int64_t n_particles);
