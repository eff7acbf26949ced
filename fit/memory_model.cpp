#include "memory_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <vector>

#include "ad/checkpoint.hpp"

namespace sctape::fit {
namespace {

double word_bytes(const std::string& dtype) { return dtype == "float64" ? 8.0 : 4.0; }

bool finite_number(const nlohmann::json& fit, const char* key) {
    const auto it = fit.find(key);
    return it != fit.end() && it->is_number() && std::isfinite(it->get<double>());
}

// The laws of sctape's fits of this strategy, dtype and measure whose scope
// `wanted` accepts, with finite coefficients (alpha_0 counts as 0 when null).
template <class ScopeFilter>
std::vector<LinearLaw> fitted_laws(const nlohmann::json& coeffs, const std::string& strategy, const std::string& dtype,
                                   const std::string& measure, ScopeFilter wanted) {
    std::vector<LinearLaw> laws;
    const auto fits = coeffs.find("fits");
    if (fits == coeffs.end() || !fits->is_array()) return laws;
    for (const auto& f : *fits) {
        const nlohmann::json scope = f.is_object() ? f.value("scope", nlohmann::json()) : nlohmann::json();
        if (!f.is_object() || f.value("strategy", nlohmann::json()) != strategy ||
            f.value("dtype", nlohmann::json()) != dtype || f.value("measure", nlohmann::json()) != measure ||
            !wanted(scope.is_string() ? scope.get<std::string>() : std::string()) ||
            f.value("code", nlohmann::json()).is_string())
            continue;
        if (!finite_number(f, "alpha_part_bytes") || !finite_number(f, "alpha_cells_bytes")) continue;
        LinearLaw law{f["alpha_part_bytes"].get<double>(), f["alpha_cells_bytes"].get<double>(), 0.0};
        if (finite_number(f, "alpha_0_bytes")) law.constant = f["alpha_0_bytes"].get<double>();
        laws.push_back(law);
    }
    return laws;
}

std::optional<LinearLaw> fitted_law(const nlohmann::json& coeffs, const std::string& strategy,
                                    const std::string& dtype, const std::string& measure) {
    const auto laws = fitted_laws(coeffs, strategy, dtype, measure, [](const std::string& s) { return s == "total"; });
    if (laws.empty()) return std::nullopt;
    return laws.front();
}

// The most states a reversal of n steps with `slots` states holds besides
// the one it starts from: Reverser::reverse holds a state at the split m and
// reverses [m, n) with one slot less, then reverses [0, m) with the same
// slots (walked here as a loop, so the recursion is only `slots` deep).
// It depends only on n and slots: memoized.
std::int64_t extra_states(std::int64_t n, int slots, std::map<std::pair<std::int64_t, int>, std::int64_t>& memo) {
    if (n <= 1 || slots <= 1) return 0;
    const auto key = std::make_pair(n, slots);
    if (const auto it = memo.find(key); it != memo.end()) return it->second;
    std::int64_t held = 0;
    for (std::int64_t rest = n; rest > 1;) {
        const std::int64_t m = binomial_split(0, rest, slots);
        held = std::max(held, 1 + extra_states(rest - m, slots - 1, memo));
        rest = m;
    }
    return memo[key] = held;
}

}  // namespace

CheckpointStates checkpoint_states(std::int64_t n_kicks, int snapshots) {
    if (snapshots <= 0) return {n_kicks, n_kicks};
    const std::vector<std::int64_t> spine = checkpoint_spine(n_kicks, snapshots);
    // backward runs the spine's entries last first, each reversing its
    // segment while the states before it (and its own) are still held
    std::map<std::pair<std::int64_t, int>, std::int64_t> memo;
    std::int64_t at_peak = 0;
    for (std::size_t k = 0; k < spine.size(); ++k) {
        const std::int64_t end = k + 1 < spine.size() ? spine[k + 1] : n_kicks;
        const int slots = snapshots - static_cast<int>(k);
        at_peak = std::max(at_peak, static_cast<std::int64_t>(k + 1) + extra_states(end - spine[k], slots, memo));
    }
    return {static_cast<std::int64_t>(spine.size()), at_peak};
}

double overhead_bytes(const MemoryModel& model, const RunCase& run) {
    double bytes = -std::numeric_limits<double>::infinity();
    for (const LinearLaw& law : model.overhead) bytes = std::max(bytes, law.at(run.n_part, run.n_cells));
    return bytes;
}

namespace {

bool has_maps(const RunCase& run) {
    return std::find(run.map_cell.begin(), run.map_cell.end(), true) != run.map_cell.end();
}

// fused's tape over a lattice with element maps, in words per particle
// (docs/tape-accounting.md, "Lattices with element maps"): per slice the
// kick's 3 input positions and the second map's inputs (a drift's 3 momenta,
// another map's 6 columns), the first map's 3 input positions when it is not
// a drift, and its 3 input momenta unless the slice before ended in a drift
// (which leaves them as it saved them); after the last slice the objective's
// 2 columns, its momentum shared when that slice ended in a drift.
double fused_particle_words(const std::vector<bool>& cell, std::int64_t n_kicks) {
    double words = 0;
    bool previous_map = true;  // the first slice shares nothing
    for (std::int64_t i = 0; i < n_kicks; ++i) {
        const bool map = cell[std::size_t(i % std::int64_t(cell.size()))];
        words += 3 + (map ? 6 : 3) + (map ? 3 : 0) + (previous_map ? 3 : 0);
        previous_map = map;
    }
    return words + (previous_map ? 2 : 1);
}

}  // namespace

MemoryPrediction predict(const MemoryModel& model, const RunCase& run) {
    double kept = run.n_kicks, at_peak = run.n_kicks;
    if (model.strategy == "checkpoint" && run.snapshots > 0) {
        if (!(run.n_kicks >= 1 && run.n_kicks <= kMaxBinomialKicks))
            throw std::invalid_argument("binomial checkpointing is predicted for 1 to 10^7 kicks");
        const CheckpointStates states = checkpoint_states(std::llround(run.n_kicks), run.snapshots);
        kept = double(states.after_forward);
        at_peak = double(states.at_peak);
    }
    const double per_kick = model.per_kick.at(run.n_part, run.n_cells);
    const double fixed = model.fixed.at(run.n_part, run.n_cells);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    MemoryPrediction p;
    p.tape_bytes = kept * per_kick + fixed;
    double overhead = model.overhead.empty() ? nan : overhead_bytes(model, run);
    if (has_maps(run)) {
        if (!model.exact_tape) return {nan, nan};
        if (model.strategy == "fused") {
            if (!(run.n_kicks >= 1 && run.n_kicks <= kMaxBinomialKicks))
                throw std::invalid_argument("a lattice with element maps is predicted for 1 to 10^7 kicks");
            p.tape_bytes = model.word_bytes * (run.n_part * fused_particle_words(run.map_cell, std::llround(run.n_kicks)) +
                                               2 * run.n_cells * run.n_kicks);
            return {p.tape_bytes, p.tape_bytes + overhead};
        }
        // checkpoint re-records one slice at a time: a slice with a map keeps
        // 6 words per particle more than the drift slice the overhead was fitted on
        if (model.strategy == "checkpoint") overhead += 6 * model.word_bytes * run.n_part;
    }
    p.peak_bytes = at_peak * per_kick + fixed + overhead;
    return p;
}

std::optional<MemoryModel> exact_tape_model(const std::string& strategy, const std::string& dtype) {
    const double w = word_bytes(dtype);
    MemoryModel m{strategy, dtype, {}, {}, {}, true, w};
    if (strategy == "fused") {  // the kick's input coordinates, rho and phi; the last momenta and the objective's columns
        m.per_kick = {6 * w, 2 * w, 0};
        m.fixed = {4 * w, 0, 0};
    } else if (strategy == "checkpoint") {  // each slice's input state; the objective's two columns
        m.per_kick = {6 * w, 0, 0};
        m.fixed = {2 * w, 0, 0};
    } else if (strategy == "reversible") {  // the final int64 state (48 B) and the objective's columns
        m.fixed = {48 + 2 * w, 0, 0};
    } else {
        return std::nullopt;
    }
    return m;
}

std::optional<MemoryModel> memory_model(const nlohmann::json& coeffs, const std::string& strategy,
                                        const std::string& dtype, int ranks) {
    const std::string name = strategy == "binomial" ? "checkpoint" : strategy;
    std::optional<MemoryModel> model = exact_tape_model(name, dtype);
    if (!model) {
        const auto per_kick = fitted_law(coeffs, name, dtype, "tape_bytes");
        const auto fixed = fitted_law(coeffs, name, dtype, "tape_fixed_bytes");
        if (!per_kick || !fixed) return std::nullopt;
        model = MemoryModel{name, dtype, *per_kick, *fixed, {}, false, word_bytes(dtype)};
    }
    // a rank sweep's fit has laws for several ranks (scopes ranks_*), which
    // hold what one rank does not (reduction buffers): used from 2 ranks on
    auto several = [](const std::string& scope) { return scope.rfind(kSeveralRanksScope, 0) == 0; };
    auto one = [&](const std::string& scope) { return !several(scope); };
    if (ranks > 1) model->overhead = fitted_laws(coeffs, name, dtype, "peak_overhead_bytes", several);
    if (model->overhead.empty()) model->overhead = fitted_laws(coeffs, name, dtype, "peak_overhead_bytes", one);
    return model;
}

}  // namespace sctape::fit
