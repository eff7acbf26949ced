// ranges.hpp — the range in which sctape's physics is valid, checked in one
// place (docs/physics.md, "Validated ranges"): validate_run before a run
// (the configuration against the model's assumptions), check_result before
// its files are written (every number finite, the beam still paraxial).
// A result that would be meaningless is a ConfigError naming the key or the
// cause; one that is meaningful but outside the tested range is a warning,
// returned for the caller to print.
//
//   for (const auto& w : sctape::validate_run(config)) std::cerr << "warning: " << w << "\n";
//   sctape::check_result(result);   // throws ConfigError; returns warnings
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config.hpp"

namespace sctape {

// Paraxial momenta: the linear drift x += L px drops the factor
// 1/sqrt(1 - p_perp^2), a relative error p_perp^2 / 2 (0.045% at 0.03, 4.5%
// at 0.3); the same holds for delta in tau -= L delta / (beta0 gamma0)^2.
constexpr double kParaxialWarning = 0.03, kParaxialError = 0.3;
// Rest-frame bunch aspect ratio: fields are validated against closed forms up
// to 1e4 (gamma 10..1e4 on a round bunch); the IGF's corner differences lose
// about log10(A) digits more per axis beyond, nothing useful is left at 1e6.
constexpr double kAspectWarning = 1e4, kAspectError = 1e6;
// Lengths whose cubes and squared products stay finite and normal in float64.
constexpr double kMinLength_m = 1e-90, kMaxLength_m = 1e90;
// beta0^2 = 1 - 1/gamma0^2 rounds with an absolute error of 2^-53: below
// K/mc^2 = 1e-10 its relative error passes 1e-6 (and beta0 is 0 near 1e-16).
constexpr double kMinKineticOverRest = 1e-10;
// float32 keeps a change of pz (~1) only above its unit roundoff 2^-24.
constexpr double kFloat32Roundoff = 0x1.0p-24;
// Under 4 kept bits (the largest kick within 16 u) sigma_delta was 8.5% off
// float64 for the 1 nC, 1 mm ball at gamma0 1000, 2e-4 at 490 (4.6 bits).
constexpr double kFloat32WarningBits = 4;

// Throws ConfigError for a run outside the physics' range; may cap `threads`
// at the hardware's count. Returns the warnings.
std::vector<std::string> validate_run(RunConfig& config, int hardware_threads);

// Every number of the RESULT finite (NaN and infinity are a ConfigError
// naming the value and, where known, the cause), and the final beam within
// the paraxial range. The particle CSVs hold the beams and gradients whose
// moments and rms are in the RESULT, so they are finite when it is.
std::vector<std::string> check_result(const nlohmann::json& result, double gamma0);

}  // namespace sctape
