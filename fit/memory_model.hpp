// memory_model.hpp — the memory of a whole gradient run, predicted per
// strategy and dtype for (N_part, N_cells, N_kicks [, snapshots s]) before it
// is launched: the tape after the forward pass (tape_bytes_total of the
// sweep) and the allocator's peak above its start (peak_bytes_total).
//
//     tape = kept(K)    · per_kick(N, C) + fixed(N, C)
//     peak = at_peak(K) · per_kick(N, C) + fixed(N, C) + overhead(N, C)
//
// kept = at_peak = K, except with binomial checkpointing: kept = the states
// on the forward pass's spine, at_peak = the most states held at once (<= s).
// per_kick and fixed are the closed forms of docs/tape-accounting.md for
// fused, checkpoint and reversible, and COEFFS's fits (measures tape_bytes and
// tape_fixed_bytes) for autograd or any other strategy; overhead is always
// fitted: the larger of the peak_overhead_bytes laws (a particle-bound and a
// grid-bound phase; binomial uses checkpoint's).
//
//   const auto model = sctape::fit::memory_model(coeffs, "checkpoint", "float64");
//   const auto p = sctape::fit::predict(*model, {1e5, 32768, 1000, 10});   // s = 10
//   p.tape_bytes, p.peak_bytes;   // peak_bytes is NaN when COEFFS has no overhead fit
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sctape::fit {

// bytes = part · N_part + cells · N_cells + constant
struct LinearLaw {
    double part = 0, cells = 0, constant = 0;
    double at(double n_part, double n_cells) const { return part * n_part + cells * n_cells + constant; }
};

struct RunCase {
    RunCase(double part, double cells, double kicks, int snapshot_count = 0, std::vector<bool> maps = {})
        : n_part(part), n_cells(cells), n_kicks(kicks), snapshots(snapshot_count), map_cell(std::move(maps)) {}
    double n_part = 0, n_cells = 0, n_kicks = 0;
    int snapshots = 0;  // > 0: binomial checkpointing (checkpoint only)
    // The lattice's slices, one flag per slice, true where the element's map
    // is not a drift (a quadrupole or constant focusing), repeated cyclically
    // to n_kicks; empty: drifts only, as in the sweep.
    std::vector<bool> map_cell;
};

struct MemoryModel {
    std::string strategy, dtype;
    LinearLaw per_kick, fixed;
    std::vector<LinearLaw> overhead;  // the larger of these laws; none: COEFFS has no peak_overhead_bytes fit
    bool exact_tape = false;            // per_kick and fixed are closed forms, not fits
    double word_bytes = 0;              // 4 or 8 (closed forms)
};

// States a checkpoint run keeps: after the forward pass, and at most at once.
struct CheckpointStates {
    std::int64_t after_forward = 0, at_peak = 0;
};
// Every kick's state (snapshots 0), or binomial checkpointing's
// (kernels/ad/checkpoint_reverser.hpp, replayed without running it).
CheckpointStates checkpoint_states(std::int64_t n_kicks, int snapshots);

struct MemoryPrediction {
    double tape_bytes = 0, peak_bytes = 0;  // peak_bytes NaN when the model has no overhead
    // tape and peak NaN: the run's lattice has maps whose tape the model does
    // not know (autograd's, fitted on drifts only)
};

// Throws std::invalid_argument for binomial checkpointing beyond this many
// kicks (replaying its schedule would take too long).
double overhead_bytes(const MemoryModel& model, const RunCase& run);
constexpr double kMaxBinomialKicks = 1e7;
MemoryPrediction predict(const MemoryModel& model, const RunCase& run);

// The closed-form tape of fused, checkpoint and reversible (bytes per word w
// from dtype); nullopt for other strategies.
std::optional<MemoryModel> exact_tape_model(const std::string& strategy, const std::string& dtype);

// The model of `strategy` ("binomial" reads as checkpoint) and dtype from
// COEFFS: nullopt when its tape is not closed-form and COEFFS has no
// tape_bytes and tape_fixed_bytes fits for it. For a run over `ranks` > 1,
// the peak_overhead_bytes laws fitted on runs over several ranks (scopes
// ranks_particles and ranks_grid, from a rank sweep) where COEFFS has them.
constexpr const char* kSeveralRanksScope = "ranks_";
std::optional<MemoryModel> memory_model(const nlohmann::json& coeffs, const std::string& strategy,
                                        const std::string& dtype, int ranks = 1);

}  // namespace sctape::fit
