#include "sweep.hpp"

#include "json_input.hpp"

#include <cmath>
#include <set>
#include <sstream>

namespace sctape::fit {
namespace {

using nlohmann::json;

const char* kPrefix = "kick_memory/";

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::stringstream in(s);
    for (std::string part; std::getline(in, part, sep);) parts.push_back(part);
    return parts;
}

// The value after "key:" among the name's segments, or "" when absent.
std::string segment_value(const std::vector<std::string>& segments, const std::string& key) {
    for (const auto& s : segments)
        if (s.rfind(key + ":", 0) == 0) return s.substr(key.size() + 1);
    return "";
}

double required_number(const json& entry, const std::string& key, const std::string& name) {
    const auto it = entry.find(key);
    if (it == entry.end() || !it->is_number())
        throw FitError("sweep entry '" + name + "' has no numeric counter '" + key + "'");
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < 0) throw FitError("sweep entry '" + name + "' has " + key + " = " + it->dump());
    return v;
}

SweepEntry parse_entry(const json& b, const std::string& name) {
    const auto segments = split(name, '/');
    if (segments.size() < 3 || segments[1].empty() || segments[2].empty())
        throw FitError("sweep entry '" + name + "': expected kick_memory/<strategy>/<dtype>/...");
    SweepEntry e;
    e.name = name;
    e.strategy = segments[1];
    e.dtype = segments[2];
    e.n_part = required_number(b, "N_part", name);
    e.n_cells = required_number(b, "N_cells", name);
    e.n_kicks = required_number(b, "N_kicks", name);
    e.grid = segment_value(segments, "grid");
    if (e.grid.empty()) e.grid = std::to_string(static_cast<long long>(e.n_cells));
    for (const auto& [key, value] : b.items())
        if (value.is_number()) e.counters[key] = value.get<double>();
    return e;
}

// Why an entry of the benchmarks list is not a measurement to fit, or "".
std::string skip_reason(const json& b) {
    if (b.value("run_type", "iteration") != "iteration") return "aggregate";
    if (b.value("error_occurred", false)) return "error: " + b.value("error_message", std::string("unknown"));
    return "";
}

json scalar_context(const json& context) {
    json out = json::object();
    for (const auto& [key, value] : context.items())
        if (value.is_primitive()) out[key] = value;
    return out;
}

}  // namespace

json read_json_file(const std::string& path) {
    try {
        return read_json_input(path, "");
    } catch (const JsonInputError& e) {
        throw FitError(e.what());
    }
}

Sweep parse_sweep(const json& doc) {
    if (!doc.is_object() || !doc.contains("benchmarks") || !doc["benchmarks"].is_array())
        throw FitError("not a Google Benchmark JSON: expected an object with a \"benchmarks\" list");
    Sweep sweep;
    if (doc.contains("context") && doc["context"].is_object()) {
        sweep.context = scalar_context(doc["context"]);
        sweep.backend = sweep.context.value("backend", std::string("unknown"));
    }
    std::set<std::string> seen;
    for (const json& b : doc["benchmarks"]) {
        if (!b.is_object() || !b.contains("name") || !b["name"].is_string())
            throw FitError("a \"benchmarks\" entry has no \"name\"");
        const std::string name = b["name"].get<std::string>();
        if (name.rfind(kPrefix, 0) != 0) continue;
        if (const std::string why = skip_reason(b); !why.empty()) {
            sweep.notes.push_back("skipped '" + name + "' (" + why + ")");
            continue;
        }
        if (!seen.insert(name).second) {
            sweep.notes.push_back("'" + name + "' appears more than once: kept the first");
            continue;
        }
        sweep.entries.push_back(parse_entry(b, name));
    }
    if (sweep.entries.empty()) throw FitError("empty sweep: no kick_memory measurements in \"benchmarks\"");
    return sweep;
}

std::vector<LawPoint> parse_point_list(const json& doc) {
    if (!doc.is_array()) throw FitError("expected a JSON list of {\"N_part\", \"N_cells\", \"N_kicks\", \"bytes\"}");
    if (doc.empty()) throw FitError("empty list: no points to fit");
    std::vector<LawPoint> points;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const json& p = doc[i];
        const std::string where = "point " + std::to_string(i);
        if (!p.is_object()) throw FitError(where + " is not an object");
        for (const char* key : {"N_part", "N_cells", "bytes"})
            if (!p.contains(key) || !p[key].is_number()) throw FitError(where + " has no number \"" + key + "\"");
        if (p.contains("N_kicks") && !p["N_kicks"].is_number()) throw FitError(where + ": \"N_kicks\" is not a number");
        const double kicks = p.contains("N_kicks") ? p["N_kicks"].get<double>() : 1.0;
        if (!(std::isfinite(kicks) && kicks >= 1))
            throw FitError(where + " has N_kicks = " + p["N_kicks"].dump() + ": must be >= 1");
        // no zero-series leniency here: a measured list with bytes <= 0 is an input error
        if (!(p["bytes"].get<double>() > 0))
            throw FitError(where + " has bytes = " + p["bytes"].dump() + ": relative weights need bytes > 0");
        points.push_back({p["N_part"].get<double>(), p["N_cells"].get<double>(), p["bytes"].get<double>() / kicks});
    }
    return points;
}

}  // namespace sctape::fit
