#include "check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

namespace sctape::fit {
namespace {

using nlohmann::json;
using Key = std::tuple<std::string, std::string, std::string, std::string>;  // code, strategy, dtype, scope

const std::vector<std::string> kCompared = {"alpha_part_bytes", "alpha_cells_bytes", "alpha_0_bytes"};

std::string text_or_dash(const json& v) { return v.is_string() ? v.get<std::string>() : "-"; }

const json& fits_of(const json& doc, const std::string& what) {
    if (!doc.is_object() || !doc.contains("fits") || !doc["fits"].is_array())
        throw FitError(what + ": expected an object with a \"fits\" list");
    return doc["fits"];
}

// Validates one fit entry's labels and compared numbers; returns its key.
Key key_of(const json& fit, const std::string& what) {
    if (!fit.is_object()) throw FitError(what + ": a \"fits\" entry is not an object");
    for (const char* label : {"strategy", "scope"})
        if (!fit.contains(label) || !fit[label].is_string())
            throw FitError(what + ": a \"fits\" entry has no string \"" + label + "\"");
    for (const char* label : {"dtype", "code"})
        if (fit.contains(label) && !fit[label].is_string() && !fit[label].is_null())
            throw FitError(what + ": \"" + label + "\" must be a string");
    for (const auto& q : kCompared)
        if (fit.contains(q) && !fit[q].is_number() && !fit[q].is_null())
            throw FitError(what + ": \"" + q + "\" must be a number or null");
    // `sctape fit` writes null coefficients only with a note saying why; an
    // unexplained null is how nlohmann::json writes a NaN
    if (what == "COEFFS" && !fit.value("note", json()).is_string())
        for (const char* q : {"alpha_part_bytes", "alpha_cells_bytes", "max_relative_residual"})
            if (!fit.value(q, json()).is_number())
                throw FitError(what + ": a \"fits\" entry (strategy " + text_or_dash(fit["strategy"]) + ", scope " +
                               text_or_dash(fit["scope"]) + ") has no number \"" + q + "\" and no note saying why");
    if (fit.contains("n_points") && !(fit["n_points"].is_number_integer() && fit["n_points"].get<std::int64_t>() >= 0))
        throw FitError(what + ": \"n_points\" must be a count, got " + fit["n_points"].dump());
    const json code = fit.value("code", json());
    return {code.is_string() ? code.get<std::string>() : "", fit["strategy"].get<std::string>(),
            text_or_dash(fit.value("dtype", json())), fit["scope"].get<std::string>()};
}

// "bytes" is what a point list from another code measured: its tape.
bool is_tape_fit(const json& fit) {
    return !fit.contains("measure") || fit["measure"] == "tape_bytes" || fit["measure"] == "bytes";
}

// "strategy fused, dtype float32, scope total", with "code X, " first when given.
std::string key_text(const Key& key) {
    const std::string code = std::get<0>(key).empty() ? "" : "code " + std::get<0>(key) + ", ";
    return code + "strategy " + std::get<1>(key) + ", dtype " + std::get<2>(key) + ", scope " + std::get<3>(key);
}

std::map<Key, json> baseline_entries(const json& baseline) {
    std::map<Key, json> out;
    for (const json& fit : fits_of(baseline, "BASELINE")) {
        const Key key = key_of(fit, "BASELINE");
        if (!is_tape_fit(fit)) continue;
        if (!out.emplace(key, fit).second)
            throw FitError("BASELINE: more than one entry for " + key_text(key));
    }
    if (out.empty()) throw FitError("BASELINE has no tape_bytes fits");
    return out;
}

double threshold(double old_value) { return std::max(kRelativeTolerance * std::fabs(old_value), kAbsoluteSlackBytes); }

CheckRow make_row(const Key& key, const std::string& quantity, double old_value) {
    CheckRow row;
    std::string code;
    std::tie(code, row.strategy, row.dtype, row.scope) = key;
    // the table has one label column for both: another code's strategy reads "code:strategy"
    if (!code.empty()) row.strategy = code + ":" + row.strategy;
    row.quantity = quantity;
    row.old_value = old_value;
    return row;
}

CheckRow compare(const Key& key, const std::string& quantity, double old_value, const json& new_value) {
    CheckRow row = make_row(key, quantity, old_value);
    if (!new_value.is_number()) {
        row.has_new = false;
        row.status = "MISSING";
        row.failed = true;
        return row;
    }
    row.new_value = new_value.get<double>();
    const double rise = row.new_value - old_value;
    row.failed = rise > threshold(old_value);
    row.status = row.failed ? "ROSE" : (-rise > threshold(old_value) ? "improved" : "ok");
    return row;
}

CheckRow missing_row(const Key& key, bool allow_missing) {
    CheckRow row = make_row(key, "(fit)", 0);
    row.has_old = row.has_new = false;
    row.status = allow_missing ? "missing (allowed)" : "MISSING";
    row.failed = !allow_missing;
    return row;
}

// The linear law must hold for each total, baseline or not; `old_fit` (may be
// null) only supplies the baseline's residual for the table.
CheckRow residual_row(const Key& key, const json& fit, const json& old_fit) {
    const json old_value = old_fit.is_object() ? old_fit.value("max_relative_residual", json()) : json();
    CheckRow row = make_row(key, "max_relative_residual", old_value.is_number() ? old_value.get<double>() : 0);
    row.has_old = old_value.is_number();
    const json& r = fit.value("max_relative_residual", json());
    if (!r.is_number()) {
        row.has_new = false;
        row.status = "MISSING";
        row.failed = true;
        return row;
    }
    row.new_value = r.get<double>();
    row.failed = row.new_value > kMaxRelativeResidual;
    row.status = row.failed ? "NONLINEAR" : "ok";
    return row;
}

void compare_fit(const Key& key, const json& old_fit, const json& new_fit, CheckReport& report) {
    for (const auto& q : kCompared) {
        const json& old_value = old_fit.value(q, json());
        if (!old_value.is_number()) continue;  // not fitted in the baseline: nothing to hold to
        const bool fitted = new_fit.value("alpha_part_bytes", json()).is_number();
        if (q == "alpha_0_bytes" && fitted && !new_fit.value(q, json()).is_number())
            throw FitError("BASELINE has alpha_0_bytes but COEFFS was fitted without a constant (run `sctape fit --constant`)");
        report.rows.push_back(compare(key, q, old_value.get<double>(), new_fit.value(q, json())));
    }
}

std::string format(double v, bool present) {
    if (!present) return "-";
    if (std::fabs(v) < 1e-9) return "0";  // rounding of an exact zero; the JSON keeps the value
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string change(const CheckRow& r) {
    if (!r.has_old || !r.has_new || r.quantity == "max_relative_residual") return "";
    if (r.old_value == 0) return r.new_value == 0 ? "0%" : "new";
    const double percent = (r.new_value - r.old_value) / std::fabs(r.old_value) * 100;
    // from a denormal or to 1e308 the ratio overflows: the table says "huge", never "inf%"
    if (!(std::fabs(percent) < 1e9)) return percent > 0 ? "+huge" : "-huge";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.2f%%", percent);
    return buf;
}

}  // namespace

bool CheckReport::passed() const {
    return std::none_of(rows.begin(), rows.end(), [](const CheckRow& r) { return r.failed; });
}

CheckReport check_coefficients(const json& baseline, const json& coeffs, const CheckOptions& options) {
    const std::map<Key, json> old_fits = baseline_entries(baseline);
    std::map<Key, std::vector<const json*>> new_fits;
    for (const json& fit : fits_of(coeffs, "COEFFS")) {
        const Key key = key_of(fit, "COEFFS");
        if (is_tape_fit(fit)) new_fits[key].push_back(&fit);
    }
    CheckReport report;
    for (const auto& [key, old_fit] : old_fits) {
        const auto it = new_fits.find(key);
        if (it == new_fits.end()) {
            report.rows.push_back(missing_row(key, options.allow_missing));
            continue;
        }
        for (const json* new_fit : it->second) compare_fit(key, old_fit, *new_fit, report);
    }
    for (const auto& [key, fits] : new_fits) {
        if (!old_fits.count(key))
            report.notes.push_back("not in the baseline: " + key_text(key));
        if (std::get<3>(key) != "total") continue;
        const auto old_fit = old_fits.find(key);
        for (const json* fit : fits)
            report.rows.push_back(residual_row(key, *fit, old_fit == old_fits.end() ? json() : old_fit->second));
    }
    return report;
}

json baseline_from_coeffs(const json& coeffs) {
    json fits = json::array();
    std::map<Key, bool> seen;
    for (const json& fit : fits_of(coeffs, "COEFFS")) {
        const Key key = key_of(fit, "COEFFS");
        if (!is_tape_fit(fit) || seen.count(key)) continue;  // tape bytes are the same on every backend
        seen[key] = true;
        json entry = {{"strategy", fit["strategy"]}, {"dtype", fit.value("dtype", json())}, {"scope", fit["scope"]},
                      {"measure", fit.value("measure", json("tape_bytes"))}};
        if (fit.contains("code")) entry["code"] = fit["code"];
        // only what COEFFS has: a key it lacks stays absent rather than becoming null
        for (const char* q : {"alpha_part_bytes", "alpha_cells_bytes", "alpha_0_bytes", "max_relative_residual",
                              "n_points", "note"})
            if (fit.contains(q)) entry[q] = fit[q];
        fits.push_back(entry);
    }
    if (fits.empty()) throw FitError("COEFFS has no tape_bytes fits to make a baseline from");
    return {{"schema_version", kBaselineSchemaVersion},
            {"kind", "sctape-baseline"},
            {"measure", "tape_bytes"},
            {"rules",
             {{"relative_tolerance", kRelativeTolerance},
              {"absolute_slack_bytes", kAbsoluteSlackBytes},
              {"max_relative_residual", kMaxRelativeResidual}}},
            {"sctape_version", coeffs.value("sctape_version", json())},
            {"context", coeffs.value("context", json::object())},
            {"fits", fits}};
}

std::string check_table(const CheckReport& report) {
    std::ostringstream out;
    char line[512];
    const char* fmt = "%-10s %-8s %-9s %-22s %14s %14s %9s  %s\n";
    std::snprintf(line, sizeof line, fmt, "strategy", "dtype", "scope", "quantity", "old", "new", "change", "status");
    out << line;
    for (const CheckRow& r : report.rows) {
        std::snprintf(line, sizeof line, fmt, r.strategy.c_str(), r.dtype.c_str(), r.scope.c_str(), r.quantity.c_str(),
                      format(r.old_value, r.has_old).c_str(), format(r.new_value, r.has_new).c_str(), change(r).c_str(),
                      r.status.c_str());
        out << line;
    }
    for (const auto& n : report.notes) out << "note: " << n << "\n";
    char rules[256];
    std::snprintf(rules, sizeof rules,
                  "rules: a coefficient fails when it rose by more than %g%% or %g byte (whichever is larger); "
                  "a total fails when its max relative residual exceeds %g%%.\n",
                  100 * kRelativeTolerance, kAbsoluteSlackBytes, 100 * kMaxRelativeResidual);
    out << rules;
    return out.str();
}

}  // namespace sctape::fit
