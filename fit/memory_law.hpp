// memory_law.hpp — the law being measured (docs/physics.md):
//
//     ΔM per kick ≈ α_part·N_part + α_cells·N_cells (+ α_0)
//     ΔM_total    ≈ slope·N_kicks + intercept
//
// fitted by relative-weighted least squares, each coefficient with its
// standard error, the largest relative residual, and an F-test p-value for
// "adding N_part·N_cells, N_part², N_cells² (resp. N_kicks²) to the affine
// law does not help": large p = the law is linear; small p = a nonlinear term
// is needed. (Deterministic byte counts have no noise: with few spare points
// even a tiny systematic misfit gives a small p; read it with max|res|.)
//
//   auto fit = sctape::fit::fit_memory_law(points, /*with_constant=*/false);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "least_squares.hpp"

namespace sctape::fit {

struct LawPoint {
    double n_part = 0, n_cells = 0, bytes = 0;  // bytes per kick
};

struct Coefficient {
    double value = 0;
    std::optional<double> stderr_;  // nullopt when n_points == unknowns
};

struct LawFit {
    Coefficient alpha_part, alpha_cells;
    std::optional<Coefficient> alpha_0;  // only when fitted with a constant
    double max_relative_residual = 0;
    std::optional<double> linearity_p_value;  // nullopt: not testable with these points
    int n_points = 0;
    std::string note;  // why something is reported as it is (zero series, untestable, ...)
};

// Throws FitError on: no points, non-finite or negative N, bytes <= 0 (unless
// every bytes is 0: then all coefficients are 0 and `note` says so), fewer than
// two distinct N_part or N_cells values, fewer points than unknowns, or a
// singular design (N_part proportional to N_cells, ...).
LawFit fit_memory_law(const std::vector<LawPoint>& points, bool with_constant);

// The design checks of fit_memory_law alone (whatever the bytes): throws
// FitError when these points cannot determine the law's coefficients.
void check_law_design(const std::vector<LawPoint>& points, bool with_constant);

// The larger of two affine laws, each fitted with a constant: a peak reached
// in one of two phases (particle-bound or grid-bound). `particles` has the
// larger alpha_part. Points go to the law that predicts more, refitted until
// the split is stable; with one phase only, both laws fit all points. Throws
// FitError as fit_memory_law(points, true) does.
struct LargerOfTwoFit {
    LawFit particles, grid;
};
LargerOfTwoFit fit_larger_of_two_laws(const std::vector<LawPoint>& points);

struct KickPoint {
    double n_kicks = 0, bytes = 0;  // bytes over the whole run
};

struct KickFit {
    Coefficient slope, intercept;  // bytes per kick, bytes
    double max_relative_residual = 0;
    std::optional<double> linearity_p_value;  // from adding N_kicks²
    int n_points = 0;
    std::string note;
};

// Throws FitError on fewer than two distinct N_kicks, non-finite input, or
// bytes <= 0 (unless every bytes is 0: slope and intercept 0 with a note).
KickFit fit_kick_scaling(const std::vector<KickPoint>& points);

}  // namespace sctape::fit
