// kick_time.hpp — registers the benchmarks for a backend: forward-kick timing
// and the reverse-mode memory sweep.
#pragma once

#include <cstdint>

#include "core/backend.hpp"
#include "physics/beam.hpp"

void register_kick_time(sctape::Backend backend);

// The reverse-mode sweep (kick_memory.cpp): the CPU strategies, or on the
// GPU those the CUDA backend has, with device bytes.
void register_kick_memory(sctape::Backend backend);

// The benchmarks' beam: electrons at 250 MeV, 1 nC, a uniform sphere of 1 mm
// (rest frame), N particles.
sctape::BeamParameters kick_beam(std::int64_t n_particles);
