// kick_time.hpp — registers the forward-kick timing benchmarks for a backend.
#pragma once

#include <cstdint>

#include "backend.hpp"
#include "beam.hpp"

void register_kick_time(sctape::Backend backend);

// The benchmarks' beam: electrons at 250 MeV, 1 nC, a uniform sphere of 1 mm
// (rest frame), N particles.
sctape::BeamParameters kick_beam(std::int64_t n_particles);
