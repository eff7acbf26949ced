// result.hpp — what `sctape track` writes: moments as JSON with units in the
// keys, particle CSVs; the files are written by output_files.hpp (checked up
// front, a temporary renamed into place) so a failed run leaves nothing behind.
//
//   nlohmann::json m = sctape::moments_json(sctape::compute_moments(beam));
//   sctape::write_file_atomically("result.json", m.dump(2));
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "physics/beam.hpp"
#include "config.hpp"
#include "output_files.hpp"

namespace sctape {

constexpr int kResultSchemaVersion = 1;

nlohmann::json moments_json(const Moments& m);

// RESULT sections of a reverse-mode run: "objective", "gradients", "memory".
nlohmann::json gradient_json(const GradientResult& r, const GradientRequest& request);
nlohmann::json memory_json(const MemoryReport& m);
// The allocator's timeline: {"schema_version", "strategy", "dtype", "events": [{time_s, current_bytes, scope, backward}]}.
// current_bytes are relative to `start_bytes` (the level before the run).
nlohmann::json timeline_json(const std::vector<MemoryEvent>& events, const GradientRequest& request, Dtype dtype,
                             std::int64_t start_bytes);

template <class T>
std::string particles_csv(const Beam<T>& beam);
// d objective / d initial coordinates, same columns as particles_csv.
std::string particle_gradient_csv(const GradientResult& r);

// Bytes a tracking run allocates (particles, kick work arrays, grids, FFTs),
// and the memory the machine has available; used to refuse impossible runs.
// (double: a huge n_particles must not overflow the estimate)
double estimate_tracking_bytes(const RunConfig& config);
// What reverse mode adds (the tape and the adjoints), from the strategy's law; 0 without reverse mode.
double estimate_tape_bytes(const RunConfig& config);
double available_memory_bytes();

}  // namespace sctape
