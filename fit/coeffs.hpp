// coeffs.hpp — COEFFS.json, what `sctape fit` writes: the memory law fitted
// for every strategy × dtype × backend × measure × scope of a sweep, and the
// totals vs N_kicks. Keys (pinned by tests/test_fit.cpp):
//
//   fits[]:      strategy, dtype, backend, measure, scope, alpha_part_bytes,
//                alpha_part_stderr_bytes, alpha_cells_bytes, alpha_cells_stderr_bytes,
//                alpha_0_bytes, alpha_0_stderr_bytes, max_relative_residual,
//                linearity_p_value, n_points, note
//                (+ code, from a point list only)
//   kick_fits[]: strategy, dtype, backend, measure, N_part, N_cells, grid,
//                slope_bytes_per_kick, slope_stderr_bytes_per_kick, intercept_bytes,
//                intercept_stderr_bytes, max_relative_residual, linearity_p_value,
//                n_points, note
//
// measure: "tape_bytes" (logical), "alloc_delta_bytes" (allocator growth) or
// "bytes" (a point list's, which `plan` and `check` treat as tape bytes), all
// per kick; and two whole-run measures of a sweep, always
// fitted with alpha_0_bytes (the memory model of `plan`, memory_model.hpp):
// "tape_fixed_bytes" = tape_bytes_total - N_kicks * tape_bytes (what the tape
// keeps outside the kicks) and "peak_overhead_bytes" = peak_bytes_total -
// tape_bytes_total (the forward and backward working set above the tape),
// the larger of two laws: scopes "particles" and "grid", the phases where
// the peak is reached (the first has the larger alpha_part).
// scope: a substep, "drift", or "total". null = not fitted / not defined.
// Readers select rows by measure: schema 1 readers ignore the whole-run rows.
//
// A rank sweep (bench/rank_sweep.py: runs with "ranks", measured on rank 0)
// is fitted with N_part = rank 0's share, ceil(N_part / ranks): every law is
// then per rank (docs/mpi.md), and COEFFS gains "per_rank": {ranks (the
// counts swept), N_part (what it means), rank_dependence[]: per strategy and
// dtype, same_share_pairs, max_tape_difference_bytes and
// max_peak_difference_bytes, the largest differences between runs holding
// the same share at different rank counts (null without such pairs, and
// then `note` says so; note null otherwise)}, and its peak_overhead_bytes
// rows twice: scopes particles and grid fitted on the runs on one rank,
// ranks_particles and ranks_grid on those over several (reduction buffers).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "memory_law.hpp"
#include "sweep.hpp"

namespace sctape::fit {

constexpr int kCoeffsSchemaVersion = 1;

struct FitOptions {
    bool with_constant = false;  // fit α_0 too (the paper's Eq. 1 has none)
};

// COEFFS for a sweep; throws FitError (naming strategy/dtype/measure/scope)
// when a series cannot be fitted. Substep series that mix zero and positive
// bytes are kept with null coefficients and a note; a total cannot.
nlohmann::json fit_sweep(const Sweep& sweep, const FitOptions& options);

// COEFFS for a plain point list: one fit per label group, measure "bytes",
// with the group's "code" (null when not given), strategy ("input" when not
// given), dtype (null when not given) and scope ("total" when not given).
nlohmann::json fit_point_list(const std::vector<PointGroup>& groups, const FitOptions& options);

// Dispatches on the document's shape (object with "benchmarks", or a list).
nlohmann::json fit_document(const nlohmann::json& doc, const FitOptions& options);

// The coefficient table `sctape fit` prints.
std::string coefficient_table(const nlohmann::json& coeffs);

}  // namespace sctape::fit
