// config.hpp — the run configuration (CONFIG.json of `sctape track`), parsed
// strictly: unknown or missing keys, wrong types, non-positive sizes, NaN or
// infinite numbers and grids under 2 nodes are ConfigErrors naming the key.
//
//   sctape::RunConfig cfg = sctape::load_config("beam.json");   // throws ConfigError
//   cfg.beam.n_particles;  cfg.tracking.lattice;  cfg.dtype;
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/backend.hpp"
#include "physics/beam.hpp"
#include "ad/gradient.hpp"
#include "physics/tracking.hpp"

namespace sctape {

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class Dtype { float32, float64 };
inline constexpr NameList<Dtype, 2> kDtypeNames{{"float32", "float64"}};
inline const char* dtype_name(Dtype d) { return kDtypeNames.name(d); }

struct RunConfig {
    nlohmann::json source;  // the configuration as given, echoed into results
    BeamParameters beam;
    TrackSettings tracking;
    Dtype dtype = Dtype::float64;
    Backend backend = Backend::automatic;
    // Reverse mode: on when the config has `strategy` or `gradients`.
    bool differentiate = false;
    GradientRequest gradient;
};

RunConfig parse_config(const nlohmann::json& j);
RunConfig load_config(const std::string& path);

}  // namespace sctape
