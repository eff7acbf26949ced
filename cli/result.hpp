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
// TIMELINE files: 2 since forward-only runs and the kick markers (`mode`, `kicks`).
constexpr int kTimelineSchemaVersion = 2;

nlohmann::json moments_json(const Moments& m);

// RESULT sections of a reverse-mode run: "objective", "gradients", "memory".
nlohmann::json gradient_json(const GradientResult& r, const GradientRequest& request);
nlohmann::json memory_json(const MemoryReport& m);
// What a TIMELINE file says about its run, besides the tracker's records.
struct TimelineRun {
    bool reverse_mode = false;
    Strategy strategy = Strategy::fused;  // reverse mode only
    Dtype dtype = Dtype::float64;
    bool device_memory = false;           // whose allocator: the device's or the host's
    std::int64_t start_bytes = 0;         // the allocator's level before the run
    double origin_s = 0;                  // the tracker's clock at the start of the run
};
// The allocator's timeline (docs/result-schema.md, TIMELINE): the events and
// kick markers `tracker` recorded, bytes above start_bytes, times from origin_s.
nlohmann::json timeline_json(const MemoryTracker& tracker, const TimelineRun& run);

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
