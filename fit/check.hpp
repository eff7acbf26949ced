// check.hpp — the CI regression on the fitted tape coefficients. BASELINE
// holds tape-byte coefficients per strategy × dtype × scope, and per code for
// a point list's fits (measure "bytes") (backend-free: tape bytes are
// identical across backends by construction); COEFFS is what
// `sctape fit` wrote. A coefficient fails when it rose by more than
// kRelativeTolerance of the baseline, with an absolute slack of
// kAbsoluteSlackBytes so that near-zero coefficients (0 B per cell in fused)
// do not fail on rounding; the total fails when its law stops being linear
// (max relative residual above kMaxRelativeResidual).
//
//   auto report = sctape::fit::check_coefficients(baseline, coeffs, {});
//   std::cout << check_table(report); return report.passed() ? 0 : 1;
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "least_squares.hpp"

namespace sctape::fit {

constexpr int kBaselineSchemaVersion = 1;
constexpr double kRelativeTolerance = 0.01;   // 1% rise allowed
constexpr double kAbsoluteSlackBytes = 0.5;   // ... or 0.5 byte, whichever is larger
constexpr double kMaxRelativeResidual = 0.02; // the total's law must fit every point to 2%

struct CheckRow {
    std::string strategy, dtype, scope, quantity;  // quantity: alpha_part_bytes, ..., max_relative_residual
    double old_value = 0, new_value = 0;
    bool has_old = true, has_new = true;
    std::string status;  // "ok", "improved", "ROSE", "NONLINEAR", "MISSING"
    bool failed = false;
};

struct CheckReport {
    std::vector<CheckRow> rows;
    std::vector<std::string> notes;  // COEFFS fits absent from the baseline, ...
    bool passed() const;
};

struct CheckOptions {
    bool allow_missing = false;  // baseline entries absent from COEFFS do not fail
};

// Throws FitError on malformed input (not an object, no "fits", a baseline
// fitted with alpha_0 compared to COEFFS without, ...).
CheckReport check_coefficients(const nlohmann::json& baseline, const nlohmann::json& coeffs,
                               const CheckOptions& options);

// The baseline for COEFFS: its tape_bytes fits without backend and errors.
nlohmann::json baseline_from_coeffs(const nlohmann::json& coeffs);

// Old vs new as a table, failures marked, and the rules used.
std::string check_table(const CheckReport& report);

}  // namespace sctape::fit
