// plan.hpp — the tape a gradient run will keep, predicted from COEFFS (the
// JSON `sctape fit` writes) before the run is launched: the per-kick law
// (measure tape_bytes, scope total) of each strategy and dtype. `sctape plan`
// prints it; `sctape track` checks it against the memory available, with the
// laws of the committed default sweep (measured_coeffs()).
//
//   for (const auto& law : sctape::fit::tape_laws(coeffs, "float32"))
//       law.per_kick_bytes(1e6, 64.0 * 64 * 64);   // bytes one more kick adds
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sctape::fit {

struct TapeLaw {
    std::string strategy, dtype;
    std::string code;  // another code's label (point lists), empty for sctape's own
    std::string label() const { return code.empty() ? strategy : code + ":" + strategy; }
    double alpha_part = 0, alpha_cells = 0, alpha_0 = 0;  // bytes per particle, per cell, per kick
    double per_kick_bytes(double n_part, double n_cells) const {
        return alpha_part * n_part + alpha_cells * n_cells + alpha_0;
    }
};

// The per-kick tape laws in COEFFS for `dtype` (and `strategy` unless empty),
// in file order: sctape's own (measure tape_bytes) and other codes' point
// lists (measure bytes), scope total. Fits without a finite alpha_part and
// alpha_cells are skipped.
std::vector<TapeLaw> tape_laws(const nlohmann::json& coeffs, const std::string& dtype,
                               const std::string& strategy = "");

// results/coeffs_cpu.json as it was when sctape was built.
const nlohmann::json& measured_coeffs();

}  // namespace sctape::fit
