// result.hpp — what `sctape track` writes: moments as JSON with units in the
// keys, particle CSVs, and files written atomically (a temporary file renamed
// into place) so a failed run never leaves a partial or corrupt output.
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

// Writes to PATH.tmp-<pid> and renames over PATH; throws std::runtime_error.
void write_file_atomically(const std::string& path, const std::string& content);
// Several files: every temporary is written before any is renamed, so a
// failure leaves none of them behind.
void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files);

// Bytes a tracking run allocates (particles, kick work arrays, grids, FFTs),
// and the memory the machine has available; used to refuse impossible runs.
// (double: a huge n_particles must not overflow the estimate)
double estimate_tracking_bytes(const RunConfig& config);
// What reverse mode adds (the tape and the adjoints), from the strategy's law; 0 without reverse mode.
double estimate_tape_bytes(const RunConfig& config);
double available_memory_bytes();

}  // namespace sctape
