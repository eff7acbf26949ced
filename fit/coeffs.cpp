#include "coeffs.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "memory_model.hpp"

namespace sctape::fit {
namespace {

using nlohmann::json;

const std::vector<std::string> kSubsteps = {"s_to_t", "deposit", "green", "convolve", "field",
                                            "gather", "push",    "t_to_s", "drift"};

struct Measure {
    std::string name, prefix, total_counter;  // per-scope counter: <prefix><scope>_bytes
};
const std::vector<Measure> kMeasures = {{"tape_bytes", "tape_", "tape_bytes"},
                                        {"alloc_delta_bytes", "alloc_", "alloc_delta_bytes"}};
// Totals over the whole run, fitted against N_kicks.
const std::vector<std::string> kKickMeasures = {"tape_bytes_total", "peak_bytes_total"};

const char* kLaw =
    "bytes per kick = alpha_part_bytes*N_part + alpha_cells_bytes*N_cells [+ alpha_0_bytes]; "
    "whole run: tape_fixed_bytes = alpha_part_bytes*N_part + alpha_cells_bytes*N_cells + alpha_0_bytes, "
    "peak_overhead_bytes = the larger of its two rows' laws (scopes particles, grid); "
    "totals = slope_bytes_per_kick*N_kicks + intercept_bytes";
const char* kWeighting = "relative: minimize sum(((A*x - y)/y)^2) (memory-scaling paper, App. D)";

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json law_fit_json(const LawFit& f) {
    return {{"alpha_part_bytes", f.alpha_part.value},
            {"alpha_part_stderr_bytes", optional_json(f.alpha_part.stderr_)},
            {"alpha_cells_bytes", f.alpha_cells.value},
            {"alpha_cells_stderr_bytes", optional_json(f.alpha_cells.stderr_)},
            {"alpha_0_bytes", f.alpha_0 ? json(f.alpha_0->value) : json(nullptr)},
            {"alpha_0_stderr_bytes", f.alpha_0 ? optional_json(f.alpha_0->stderr_) : json(nullptr)},
            {"max_relative_residual", f.max_relative_residual},
            {"linearity_p_value", optional_json(f.linearity_p_value)},
            {"n_points", f.n_points},
            {"note", f.note.empty() ? json(nullptr) : json(f.note)}};
}

// A series reported but not fitted (a substep with some zero bytes, ...).
json unfitted_json(int n_points, const std::string& why) {
    return {{"alpha_part_bytes", nullptr},  {"alpha_part_stderr_bytes", nullptr},
            {"alpha_cells_bytes", nullptr}, {"alpha_cells_stderr_bytes", nullptr},
            {"alpha_0_bytes", nullptr},     {"alpha_0_stderr_bytes", nullptr},
            {"max_relative_residual", nullptr}, {"linearity_p_value", nullptr},
            {"n_points", n_points},         {"note", why}};
}

json labels(const std::string& strategy, const json& dtype, const json& backend, const std::string& measure,
            const std::string& scope) {
    return {{"strategy", strategy}, {"dtype", dtype}, {"backend", backend}, {"measure", measure}, {"scope", scope}};
}

json document(const json& context, const FitOptions& options, json fits, json kick_fits, json notes) {
    return {{"schema_version", kCoeffsSchemaVersion},
            {"kind", "sctape-coeffs"},
            {"sctape_version", SCTAPE_VERSION},
            {"law", kLaw},
            {"weighting", kWeighting},
            {"with_constant", options.with_constant},
            {"context", context},
            {"fits", std::move(fits)},
            {"kick_fits", std::move(kick_fits)},
            {"notes", std::move(notes)}};
}

// Strategies and dtypes in order of first appearance.
std::vector<std::pair<std::string, std::string>> groups(const Sweep& sweep) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : sweep.entries)
        if (std::find(out.begin(), out.end(), std::make_pair(e.strategy, e.dtype)) == out.end())
            out.emplace_back(e.strategy, e.dtype);
    return out;
}

std::vector<const SweepEntry*> select(const Sweep& sweep, const std::string& strategy, const std::string& dtype) {
    std::vector<const SweepEntry*> out;
    for (const auto& e : sweep.entries)
        if (e.strategy == strategy && e.dtype == dtype) out.push_back(&e);
    return out;
}

// The substeps and drift first, then other scopes the counters name, then "total".
std::vector<std::string> scopes(const std::vector<const SweepEntry*>& entries, const Measure& m) {
    std::set<std::string> found;
    const std::string suffix = "_bytes";
    for (const auto* e : entries)
        for (const auto& [key, value] : e->counters)
            if (key.rfind(m.prefix, 0) == 0 && key.size() > m.prefix.size() + suffix.size() &&
                key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0 && key != m.total_counter)
                found.insert(key.substr(m.prefix.size(), key.size() - m.prefix.size() - suffix.size()));
    std::vector<std::string> out;
    for (const auto& s : kSubsteps)
        if (found.erase(s)) out.push_back(s);
    out.insert(out.end(), found.begin(), found.end());
    out.push_back("total");
    return out;
}

std::string counter_name(const Measure& m, const std::string& scope) {
    return scope == "total" ? m.total_counter : m.prefix + scope + "_bytes";
}

// One scope's fit; nullopt-like null json when the counter is absent from every entry.
json fit_scope(const std::vector<const SweepEntry*>& entries, const Measure& m, const std::string& scope,
               const FitOptions& options) {
    const std::string counter = counter_name(m, scope);
    std::vector<LawPoint> points;
    for (const auto* e : entries) {
        const auto it = e->counters.find(counter);
        if (it == e->counters.end()) continue;
        points.push_back({e->n_part, e->n_cells, it->second});
    }
    if (points.empty()) {
        if (scope == "total") throw FitError("no entry has the counter '" + counter + "'");
        return nullptr;
    }
    const int n = static_cast<int>(points.size());
    if (points.size() < entries.size()) {
        if (scope == "total") throw FitError("'" + counter + "' is missing from some entries");
        return unfitted_json(n, "'" + counter + "' is missing from some entries: not fitted");
    }
    const bool all_zero = std::all_of(points.begin(), points.end(), [](const LawPoint& p) { return p.bytes == 0; });
    const bool any_nonpositive =
        std::any_of(points.begin(), points.end(), [](const LawPoint& p) { return !(p.bytes > 0); });
    if (scope != "total" && any_nonpositive && !all_zero)
        return unfitted_json(n, "some bytes are <= 0 and others not: not fitted (relative weights need bytes > 0)");
    return law_fit_json(fit_memory_law(points, options.with_constant));
}

json kick_fit_json(const KickFit& f) {
    return {{"slope_bytes_per_kick", f.slope.value},
            {"slope_stderr_bytes_per_kick", optional_json(f.slope.stderr_)},
            {"intercept_bytes", f.intercept.value},
            {"intercept_stderr_bytes", optional_json(f.intercept.stderr_)},
            {"max_relative_residual", f.max_relative_residual},
            {"linearity_p_value", optional_json(f.linearity_p_value)},
            {"n_points", f.n_points},
            {"note", f.note.empty() ? json(nullptr) : json(f.note)}};
}

// Entries with the same N_part and grid and at least two N_kicks form a kick series.
std::map<std::pair<double, std::string>, std::vector<const SweepEntry*>> kick_series(
    const std::vector<const SweepEntry*>& entries) {
    std::map<std::pair<double, std::string>, std::vector<const SweepEntry*>> series;
    for (const auto* e : entries) series[{e->n_part, e->grid}].push_back(e);
    for (auto it = series.begin(); it != series.end();) {
        std::set<double> kicks;
        for (const auto* e : it->second) kicks.insert(e->n_kicks);
        it = kicks.size() < 2 ? series.erase(it) : std::next(it);
    }
    return series;
}

void add_kick_fits(const std::vector<const SweepEntry*>& entries, const json& base, json& out) {
    for (const auto& [key, series] : kick_series(entries))
        for (const auto& measure : kKickMeasures) {
            std::vector<KickPoint> points;
            for (const auto* e : series)
                if (e->counters.count(measure)) points.push_back({e->n_kicks, e->counters.at(measure)});
            if (points.size() < series.size()) continue;  // counter not measured
            json fit = base;
            fit["measure"] = measure;
            fit["N_part"] = key.first;
            fit["N_cells"] = series.front()->n_cells;
            fit["grid"] = key.second;
            try {
                fit.update(kick_fit_json(fit_kick_scaling(points)));
            } catch (const FitError& e) {  // some totals <= 0: reported, not fitted
                fit.update(kick_fit_json(KickFit{}));
                for (const char* k : {"slope_bytes_per_kick", "slope_stderr_bytes_per_kick", "intercept_bytes",
                                      "intercept_stderr_bytes", "max_relative_residual"})
                    fit[k] = nullptr;
                fit["n_points"] = points.size();
                fit["note"] = std::string("not fitted: ") + e.what();
            }
            out.push_back(fit);
        }
}

std::string series_label(const std::string& strategy, const std::string& dtype, const std::string& measure,
                         const std::string& scope) {
    return "strategy " + strategy + ", dtype " + dtype + ", measure " + measure + ", scope " + scope;
}

// Whole-run measures derived from the totals of the per-kick law's runs, for
// the memory model (memory_model.hpp), both fitted with a constant (a few
// scalars, FFT plans): what the tape keeps besides the kicks, one law; and
// what the peak adds to the tape (the forward and backward working set), the
// larger of two laws, because the peak is reached in a particle-bound or a
// grid-bound phase (one affine law misses it by up to 12% in the default sweep).
double tape_fixed_bytes(const SweepEntry& e) {
    return e.counters.at("tape_bytes_total") - e.n_kicks * e.counters.at("tape_bytes");
}
double peak_overhead_bytes(const SweepEntry& e) {
    return e.counters.at("peak_bytes_total") - e.counters.at("tape_bytes_total");
}

bool has_totals(const SweepEntry& e) {
    return e.counters.count("tape_bytes") && e.counters.count("tape_bytes_total") && e.counters.count("peak_bytes_total");
}

std::vector<LawPoint> derived_points(const std::vector<const SweepEntry*>& entries, double (*bytes)(const SweepEntry&)) {
    std::vector<LawPoint> points;
    for (const auto* e : entries) points.push_back({e->n_part, e->n_cells, bytes(*e)});
    return points;
}

// Rows of measure tape_fixed_bytes (scope total) and peak_overhead_bytes
// (scopes particles and grid); none when some run lacks the totals (an older
// sweep), rows with a note when the bytes cannot be fitted.
void add_derived_fits(const Sweep& sweep, const std::string& strategy, const std::string& dtype,
                      const std::vector<const SweepEntry*>& law_entries, json& fits) {
    if (!std::all_of(law_entries.begin(), law_entries.end(), [](const SweepEntry* e) { return has_totals(*e); })) return;
    const int n = static_cast<int>(law_entries.size());
    auto add = [&](const std::string& measure, const std::string& scope, const json& fit) {
        json row = labels(strategy, dtype, sweep.backend, measure, scope);
        row.update(fit);
        fits.push_back(row);
    };
    try {
        add("tape_fixed_bytes", "total", law_fit_json(fit_memory_law(derived_points(law_entries, tape_fixed_bytes), true)));
    } catch (const FitError& e) {
        add("tape_fixed_bytes", "total", unfitted_json(n, std::string("not fitted: ") + e.what()));
    }
    auto add_overhead = [&](const std::vector<const SweepEntry*>& entries, const std::string& prefix) {
        if (entries.empty()) return;
        try {
            const LargerOfTwoFit f = fit_larger_of_two_laws(derived_points(entries, peak_overhead_bytes));
            add("peak_overhead_bytes", prefix + "particles", law_fit_json(f.particles));
            add("peak_overhead_bytes", prefix + "grid", law_fit_json(f.grid));
        } catch (const FitError& e) {
            for (const char* scope : {"particles", "grid"})
                add("peak_overhead_bytes", prefix + scope,
                    unfitted_json(int(entries.size()), std::string("not fitted: ") + e.what()));
        }
    };
    if (!sweep.per_rank) return add_overhead(law_entries, "");
    // Over several ranks a rank may hold what one rank does not (the buffers
    // of its reductions): the peak of one rank and of several, fitted apart.
    std::vector<const SweepEntry*> one, several;
    for (const auto* e : law_entries) (e->ranks == 1 ? one : several).push_back(e);
    add_overhead(one, "");
    add_overhead(several, kSeveralRanksScope);
}

void add_law_fits(const Sweep& sweep, const std::string& strategy, const std::string& dtype,
                  const std::vector<const SweepEntry*>& law_entries, const FitOptions& options, json& fits) {
    for (const Measure& m : kMeasures)
        for (const std::string& scope : scopes(law_entries, m)) {
            json fit;
            try {
                fit = fit_scope(law_entries, m, scope, options);
            } catch (const FitError& e) {
                throw FitError(series_label(strategy, dtype, m.name, scope) + ": " + e.what());
            }
            if (fit.is_null()) continue;
            json row = labels(strategy, dtype, sweep.backend, m.name, scope);
            row.update(fit);
            fits.push_back(row);
        }
}

std::string format_number(const json& v, const char* fmt = "%.4g") {
    if (!v.is_number()) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v.get<double>());
    return buf;
}

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : "-"; }

// Coefficients of a few 1e-16 bytes are the rounding of an exact zero: the
// table shows 0 (COEFFS keeps the fitted value).
constexpr double kPrintedZeroBytes = 1e-9;

std::string with_stderr(const json& value, const json& err) {
    if (!value.is_number()) return "-";
    const json shown = std::fabs(value.get<double>()) < kPrintedZeroBytes ? json(0) : value;
    return format_number(shown) + (err.is_number() ? " +- " + format_number(err, "%.2g") : "");
}

// Each distinct note once, with the series it applies to.
std::string grouped_notes(const json& rows, bool kick) {
    std::vector<std::pair<std::string, std::vector<std::string>>> groups;
    for (const json& r : rows) {
        if (!r.value("note", json()).is_string()) continue;
        const std::string note = r["note"].get<std::string>();
        std::string label = text(r["strategy"]) + "/" + text(r["dtype"]) + "/" + text(r["measure"]);
        if (!kick) label += "/" + text(r["scope"]);
        auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == note; });
        if (it == groups.end()) groups.push_back({note, {label}});
        else it->second.push_back(label);
    }
    // the table is for people: a few series per note, all of them are in COEFFS.json
    constexpr std::size_t kShown = 6;
    std::string out;
    for (const auto& [note, labels] : groups) {
        out += "note: " + note + ":";
        for (std::size_t i = 0; i < std::min(labels.size(), kShown); ++i) out += " " + labels[i];
        if (labels.size() > kShown) out += " and " + std::to_string(labels.size() - kShown) + " more (see COEFFS.json)";
        out += "\n";
    }
    return out;
}


// The runs that give the per-kick law: those with the N_kicks most runs share
// (the N_part x grid sweep; its per-kick counters are the last kick's growth).
std::vector<const SweepEntry*> law_runs(const std::vector<const SweepEntry*>& entries) {
    std::map<double, int> count;
    for (const auto* e : entries) ++count[e->n_kicks];
    double kicks = 0;
    int best = 0;
    for (const auto& [k, c] : count)
        if (c > best) {
            best = c;
            kicks = k;
        }
    std::vector<const SweepEntry*> out;
    for (const auto* e : entries)
        if (e->n_kicks == kicks) out.push_back(e);
    return out;
}

// Why the law runs of a group cannot give the per-kick law, or "".
// (A strategy run only in the N_kicks sweep, like binomial, has one run per N_kicks.)
std::string law_design_problem(const std::vector<const SweepEntry*>& law_entries, const FitOptions& options) {
    if (law_entries.empty()) return "no runs";
    std::vector<LawPoint> design;
    for (const auto* e : law_entries) design.push_back({e->n_part, e->n_cells, 0});
    try {
        check_law_design(design, options.with_constant);
    } catch (const FitError& e) {
        return e.what();
    }
    return "";
}

// "code X, strategy Y, dtype Z, scope W" for the labels a group has.
std::string point_group_label(const PointGroup& g) {
    std::string out;
    for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"code", g.code},
                                      {"strategy", g.strategy}, {"dtype", g.dtype}, {"scope", g.scope}})
        if (!value.empty()) out += (out.empty() ? "" : ", ") + std::string(name) + " " + value;
    return "points " + (out.empty() ? std::string("without labels") : "with " + out);
}

// A rank sweep's runs that hold the same share (particles per rank, grid,
// kicks) at different rank counts: their largest difference in tape and peak
// is what a law in ceil(N_part / ranks) and N_cells cannot see (buffers that
// grow with the ranks, such as reduction buffers); 0 when there is none.
json rank_dependence(const std::vector<const SweepEntry*>& entries, const std::string& strategy,
                     const std::string& dtype) {
    std::map<std::tuple<double, std::string, double>, std::vector<const SweepEntry*>> same_share;
    for (const auto* e : entries)
        if (has_totals(*e)) same_share[{e->n_part, e->grid, e->n_kicks}].push_back(e);
    int pairs = 0;
    double tape = 0, peak = 0;
    for (const auto& group : same_share) {
        const std::vector<const SweepEntry*>& runs = group.second;  // a lambda may not capture a structured binding (C++17)
        for (std::size_t i = 0; i < runs.size(); ++i)
            for (std::size_t j = i + 1; j < runs.size(); ++j) {
                if (runs[i]->ranks == runs[j]->ranks) continue;
                ++pairs;
                auto difference = [&](const char* counter) {
                    return std::fabs(runs[i]->counters.at(counter) - runs[j]->counters.at(counter));
                };
                tape = std::max(tape, difference("tape_bytes_total"));
                peak = std::max(peak, difference("peak_bytes_total"));
            }
    }
    return {{"strategy", strategy},
            {"dtype", dtype},
            {"same_share_pairs", pairs},
            {"max_tape_difference_bytes", pairs ? json(tape) : json(nullptr)},
            {"max_peak_difference_bytes", pairs ? json(peak) : json(nullptr)},
            {"note", pairs ? json(nullptr)
                           : json("no two runs hold the same share at different rank counts: not measured")}};
}

// COEFFS's "per_rank" section of a rank sweep (docs/mpi.md).
json per_rank_section(const Sweep& sweep) {
    std::set<double> counts;
    for (const auto& e : sweep.entries) counts.insert(e.ranks);
    json dependence = json::array();
    for (const auto& [strategy, dtype] : groups(sweep))
        dependence.push_back(rank_dependence(select(sweep, strategy, dtype), strategy, dtype));
    return {{"ranks", json(std::vector<std::int64_t>(counts.begin(), counts.end()))},
            {"N_part", "the particles on one rank: ceil(N_part / ranks), rank 0's share (the largest); the grid "
                       "is whole on every rank"},
            {"rank_dependence", std::move(dependence)}};
}

}  // namespace

json fit_sweep(const Sweep& sweep, const FitOptions& options) {
    json fits = json::array(), kick_fits = json::array(), notes = json(sweep.notes);
    std::vector<std::string> unfitted;
    for (const auto& [strategy, dtype] : groups(sweep)) {
        const auto entries = select(sweep, strategy, dtype);
        const std::vector<const SweepEntry*> law_entries = law_runs(entries);
        const std::string group = "strategy " + strategy + ", dtype " + dtype;
        if (const std::string problem = law_design_problem(law_entries, options); problem.empty()) {
            add_law_fits(sweep, strategy, dtype, law_entries, options, fits);
            add_derived_fits(sweep, strategy, dtype, law_entries, fits);
        } else {
            notes.push_back(group + ": no per-kick law fitted (" + problem + ")");
            unfitted.push_back(group + ": " + problem);
        }
        add_kick_fits(entries, labels(strategy, dtype, sweep.backend, "", ""), kick_fits);
    }
    // A sweep that gives no fit at all is bad input, not an empty result.
    if (fits.empty() && kick_fits.empty()) {
        std::string why;
        for (const auto& u : unfitted) why += (why.empty() ? "" : "; ") + u;
        throw FitError("nothing to fit: " + why);
    }
    for (auto& k : kick_fits) k.erase("scope");
    json doc = document(sweep.context, options, std::move(fits), std::move(kick_fits), std::move(notes));
    if (sweep.per_rank) doc["per_rank"] = per_rank_section(sweep);
    return doc;
}

json fit_point_list(const std::vector<PointGroup>& groups, const FitOptions& options) {
    json fits = json::array();
    for (const PointGroup& g : groups) {
        auto or_null = [](const std::string& label) { return label.empty() ? json(nullptr) : json(label); };
        json row = labels(g.strategy.empty() ? "input" : g.strategy, or_null(g.dtype), nullptr, "bytes",
                          g.scope.empty() ? "total" : g.scope);
        row["code"] = or_null(g.code);
        try {
            row.update(law_fit_json(fit_memory_law(g.points, options.with_constant)));
        } catch (const FitError& e) {
            throw FitError(point_group_label(g) + ": " + e.what());
        }
        fits.push_back(row);
    }
    return document(json::object(), options, std::move(fits), json::array(), json::array());
}

json fit_document(const json& doc, const FitOptions& options) {
    if (doc.is_array()) return fit_point_list(parse_point_list(doc), options);
    return fit_sweep(parse_sweep(doc), options);
}

namespace {

// The per-rank header and, after the table, how much the same share differs across ranks.
std::string per_rank_lines(const json& coeffs, bool header) {
    if (!coeffs.contains("per_rank")) return "";
    const json& section = coeffs["per_rank"];
    std::string out;
    if (header) {
        out = "per MPI rank (ranks";
        for (const json& r : section["ranks"]) out += " " + format_number(r, "%.0f");
        return out + "): N_part is " + text(section["N_part"]) + "\n";
    }
    for (const json& d : section["rank_dependence"]) {
        out += "same share at other ranks, " + text(d["strategy"]) + "/" + text(d["dtype"]) + ": ";
        if (d["same_share_pairs"] == 0) {
            out += "no pairs in the sweep\n";
            continue;
        }
        out += std::to_string(d["same_share_pairs"].get<int>()) + " pairs, tape differs by at most " +
               format_number(d["max_tape_difference_bytes"], "%.0f") + " B, peak by " +
               format_number(d["max_peak_difference_bytes"], "%.0f") + " B\n";
    }
    return out;
}

}  // namespace

std::string coefficient_table(const json& coeffs) {
    std::ostringstream out;
    out << per_rank_lines(coeffs, true);
    char line[512];
    const char* row_format = "%-10s %-8s %-18s %-9s %24s %24s %18s %9s %9s %4s\n";
    std::snprintf(line, sizeof line, row_format, "strategy", "dtype", "measure", "scope", "alpha_part [B]",
                  "alpha_cells [B]", "alpha_0 [B]", "max|res|", "p(linear)", "n");
    out << line;
    for (const json& f : coeffs.at("fits")) {
        std::snprintf(line, sizeof line, row_format, text(f["strategy"]).c_str(), text(f["dtype"]).c_str(),
                      text(f["measure"]).c_str(), text(f["scope"]).c_str(),
                      with_stderr(f["alpha_part_bytes"], f["alpha_part_stderr_bytes"]).c_str(),
                      with_stderr(f["alpha_cells_bytes"], f["alpha_cells_stderr_bytes"]).c_str(),
                      with_stderr(f["alpha_0_bytes"], f["alpha_0_stderr_bytes"]).c_str(),
                      format_number(f["max_relative_residual"], "%.2e").c_str(),
                      format_number(f["linearity_p_value"], "%.3g").c_str(), std::to_string(f.value("n_points", 0)).c_str());
        out << line;
    }
    out << grouped_notes(coeffs.at("fits"), false);
    out << per_rank_lines(coeffs, false);
    const json& kicks = coeffs.at("kick_fits");
    if (!kicks.empty()) {
        const char* kick_format = "%-10s %-8s %-18s %10s %-10s %24s %24s %9s %9s %4s\n";
        std::snprintf(line, sizeof line, kick_format, "strategy", "dtype", "measure vs N_kicks", "N_part", "grid",
                      "slope [B/kick]", "intercept [B]", "max|res|", "p(linear)", "n");
        out << "\n" << line;
        for (const json& k : kicks) {
            std::snprintf(line, sizeof line, kick_format, text(k["strategy"]).c_str(), text(k["dtype"]).c_str(),
                          text(k["measure"]).c_str(), format_number(k["N_part"], "%.0f").c_str(),
                          text(k["grid"]).c_str(),
                          with_stderr(k["slope_bytes_per_kick"], k["slope_stderr_bytes_per_kick"]).c_str(),
                          with_stderr(k["intercept_bytes"], k["intercept_stderr_bytes"]).c_str(),
                          format_number(k["max_relative_residual"], "%.2e").c_str(),
                          format_number(k["linearity_p_value"], "%.3g").c_str(),
                          std::to_string(k.value("n_points", 0)).c_str());
            out << line;
        }
        out << grouped_notes(kicks, true);
    }
    return out.str();
}

}  // namespace sctape::fit
