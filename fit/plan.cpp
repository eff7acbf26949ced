#include "plan.hpp"

#include <cmath>

namespace sctape::fit {

extern const char* const kMeasuredCoeffsJson;  // generated from results/coeffs_cpu.json (CMakeLists.txt)

namespace {

bool finite_number(const nlohmann::json& fit, const char* key) {
    const auto it = fit.find(key);
    return it != fit.end() && it->is_number() && std::isfinite(it->get<double>());
}

}  // namespace

std::vector<TapeLaw> tape_laws(const nlohmann::json& coeffs, const std::string& dtype, const std::string& strategy) {
    std::vector<TapeLaw> laws;
    const auto fits = coeffs.find("fits");
    if (fits == coeffs.end() || !fits->is_array()) return laws;
    for (const auto& f : *fits) {
        if (!f.is_object() || f.value("measure", "") != "tape_bytes" || f.value("scope", "") != "total" ||
            f.value("dtype", "") != dtype)
            continue;
        if (!strategy.empty() && f.value("strategy", "") != strategy) continue;
        if (!finite_number(f, "alpha_part_bytes") || !finite_number(f, "alpha_cells_bytes")) continue;
        TapeLaw law{f.value("strategy", ""), dtype, f["alpha_part_bytes"].get<double>(),
                    f["alpha_cells_bytes"].get<double>(), 0.0};
        if (finite_number(f, "alpha_0_bytes")) law.alpha_0 = f["alpha_0_bytes"].get<double>();
        laws.push_back(law);
    }
    return laws;
}

const nlohmann::json& measured_coeffs() {
    static const nlohmann::json coeffs = nlohmann::json::parse(kMeasuredCoeffsJson);
    return coeffs;
}

}  // namespace sctape::fit
