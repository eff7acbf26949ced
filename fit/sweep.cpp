#include "sweep.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "json_input.hpp"

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

// A run over ranks: the law sees rank 0's share, which must be the largest
// one (core/communicator.hpp's split), or the fit would mix up its points.
void read_rank_share(const json& b, const std::string& name, SweepEntry& e) {
    e.ranks = required_number(b, "ranks", name);
    if (!(e.ranks >= 1 && e.ranks <= 1e9 && e.ranks == std::floor(e.ranks)))
        throw FitError("sweep entry '" + name + "' has ranks = " + b["ranks"].dump() + ": must be a whole number from 1 to 10^9");
    const double share = required_number(b, "N_part_rank", name);
    if (e.n_part != std::floor(e.n_part) || share != std::ceil(e.n_part / e.ranks))
        throw FitError("sweep entry '" + name + "' has N_part_rank = " + b["N_part_rank"].dump() +
                       ": rank 0 holds ceil(N_part / ranks) of N_part = " + b["N_part"].dump() + " particles");
    e.n_part = share;
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
    if (b.contains("ranks")) read_rank_share(b, name, e);
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

const std::vector<std::string> kPointKeys = {"N_part", "N_cells", "N_kicks", "bytes",
                                            "code",   "strategy", "dtype", "scope"};

// Unknown keys are typos until proven otherwise: "n_kicks" read as absent
// would divide nothing and give a coefficient N_kicks times too large.
void reject_unknown_keys(const json& p, const std::string& where) {
    for (const auto& [key, value] : p.items())
        if (std::find(kPointKeys.begin(), kPointKeys.end(), key) == kPointKeys.end()) {
            std::string known;
            for (const auto& k : kPointKeys) known += (known.empty() ? "" : ", ") + k;
            throw FitError(where + " has unknown key \"" + key + "\" (known: " + known + ")");
        }
}

double point_number(const json& p, const std::string& key, const std::string& where) {
    if (!p.contains(key) || !p[key].is_number()) throw FitError(where + " has no number \"" + key + "\"");
    const double v = p[key].get<double>();
    // JSON has no NaN, but 1e999 parses as infinity
    if (!std::isfinite(v)) throw FitError(where + " has " + key + " = " + p[key].dump() + ": must be finite");
    return v;
}

std::string point_label(const json& p, const std::string& key, const std::string& where) {
    if (!p.contains(key)) return "";
    if (!p[key].is_string() || p[key].get<std::string>().empty())
        throw FitError(where + ": \"" + key + "\" must be a non-empty string, got " + p[key].dump());
    return p[key].get<std::string>();
}

double point_kicks(const json& p, const std::string& where) {
    if (!p.contains("N_kicks")) return 1.0;
    const double kicks = point_number(p, "N_kicks", where);
    if (!(kicks >= 1) || kicks != std::floor(kicks))
        throw FitError(where + " has N_kicks = " + p["N_kicks"].dump() + ": must be an integer >= 1");
    return kicks;
}

void add_point(std::vector<PointGroup>& groups, const json& p, const std::string& where) {
    if (!p.is_object()) throw FitError(where + " is not an object");
    reject_unknown_keys(p, where);
    PointGroup key{point_label(p, "code", where), point_label(p, "strategy", where), point_label(p, "dtype", where),
                   point_label(p, "scope", where), {}};
    const double n_part = point_number(p, "N_part", where), n_cells = point_number(p, "N_cells", where);
    const double bytes = point_number(p, "bytes", where), kicks = point_kicks(p, where);
    // no zero-series leniency here: a measured list with bytes <= 0 is an input error
    if (!(bytes > 0)) throw FitError(where + " has bytes = " + p["bytes"].dump() + ": relative weights need bytes > 0");
    auto same = [&](const PointGroup& g) {
        return g.code == key.code && g.strategy == key.strategy && g.dtype == key.dtype && g.scope == key.scope;
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) it = groups.insert(groups.end(), key);
    it->points.push_back({n_part, n_cells, bytes / kicks});
}

// A series (code, strategy, scope) whose points name a dtype for some and
// not for others mixes float32 and float64 bytes in one fit, or splits one
// dtype's points over two fits: either way the coefficients would be wrong.
void check_dtypes_not_mixed(const json& doc) {
    std::map<std::string, std::pair<std::size_t, bool>> first;  // series -> first point, has dtype
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const json& p = doc[i];
        const std::string series = p.value("code", "") + "\x1f" + p.value("strategy", "") + "\x1f" + p.value("scope", "");
        const bool has = p.contains("dtype");
        const auto [it, inserted] = first.emplace(series, std::make_pair(i, has));
        if (!inserted && it->second.second != has)
            throw FitError("point " + std::to_string(i) + (has ? " has" : " has no") + " \"dtype\" but point " +
                           std::to_string(it->second.first) + " of the same code/strategy/scope " +
                           (has ? "has none" : "has one") + ": mixed dtypes in one group");
    }
}

// One law per sweep: rank 0's share of a rank sweep, or the whole bunch.
void require_ranks_everywhere_or_nowhere(Sweep& sweep) {
    const auto has_ranks = [](const SweepEntry& e) { return e.counters.count("ranks") > 0; };
    const auto with = std::find_if(sweep.entries.begin(), sweep.entries.end(), has_ranks);
    const auto without = std::find_if_not(sweep.entries.begin(), sweep.entries.end(), has_ranks);
    if (with != sweep.entries.end() && without != sweep.entries.end())
        throw FitError("sweep entry '" + with->name + "' has \"ranks\" and '" + without->name +
                       "' has none: a rank sweep and a one-rank sweep cannot be fitted as one");
    sweep.per_rank = with != sweep.entries.end();
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
        if (sweep.context.contains("shard"))  // fit/shard.hpp: a shard alone is part of a sweep
            sweep.notes.push_back("this is shard " + sweep.context["shard"].dump() +
                                  " of a sharded sweep: the fit sees only its cases (`sctape merge` the shards first)");
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
    require_ranks_everywhere_or_nowhere(sweep);
    return sweep;
}

std::vector<PointGroup> parse_point_list(const json& doc) {
    if (!doc.is_array()) throw FitError("expected a JSON list of {\"N_part\", \"N_cells\", \"N_kicks\", \"bytes\"}");
    if (doc.empty()) throw FitError("empty list: no points to fit");
    std::vector<PointGroup> groups;
    for (std::size_t i = 0; i < doc.size(); ++i) add_point(groups, doc[i], "point " + std::to_string(i));
    check_dtypes_not_mixed(doc);
    return groups;
}

}  // namespace sctape::fit
