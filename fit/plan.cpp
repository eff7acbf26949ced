#include "plan.hpp"

#include <cmath>

namespace sctape::fit {

extern const char* const kMeasuredCoeffsJson;  // generated from results/coeffs_cpu.json (CMakeLists.txt)

namespace {

std::string text(const nlohmann::json& fit, const char* key) {
    const auto it = fit.find(key);
    return it != fit.end() && it->is_string() ? it->get<std::string>() : "";
}

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
        if (!f.is_object()) continue;
        const std::string measure = text(f, "measure");
        if ((measure != "tape_bytes" && measure != "bytes") || text(f, "scope") != "total" || text(f, "dtype") != dtype)
            continue;
        if (!strategy.empty() && text(f, "strategy") != strategy) continue;
        if (!finite_number(f, "alpha_part_bytes") || !finite_number(f, "alpha_cells_bytes")) continue;
        TapeLaw law{text(f, "strategy"), dtype, text(f, "code"), f["alpha_part_bytes"].get<double>(),
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
