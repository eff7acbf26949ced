// `sctape plan`: the memory a gradient run will keep, predicted from fitted
// coefficients before the run is launched, per strategy, against a budget.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fit_commands.hpp"
#include "subcommand.hpp"

namespace sctape::cli {
namespace {

const char* kPlanUsage =
    "usage: sctape plan COEFFS.json --n-part N --grid NX NY NZ --kicks K\n"
    "                   [--dtype float32|float64] [--strategy NAME] [--memory-GiB M]\n"
    "\n"
    "Predicts the tape bytes of a gradient run from the per-kick law fitted by\n"
    "`sctape fit` (measure tape_bytes, or bytes from a labelled point list; scope total):\n"
    "    tape = N_kicks * (alpha_part * N_part + alpha_cells * N_cells [+ alpha_0])\n"
    "for every strategy in COEFFS (or one), and with --memory-GiB says whether it\n"
    "fits. The tape is what reverse mode adds to a forward run's working set;\n"
    "checkpoint with `snapshots` and reversible keep a number of states that does\n"
    "not grow with N_kicks (see README), not covered by this per-kick law.\n"
    "Exit codes: 0 printed, 1 nothing fits the budget, 2 bad input.\n";

struct PlanArgs {
    std::string coeffs, dtype = "float32", strategy;
    double n_part = 0, kicks = 0, budget_gib = 0;
    double grid[3] = {0, 0, 0};
};

double positive_number(const std::string& text, const std::string& flag) {
    std::size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || !std::isfinite(v) || !(v > 0))
        throw std::invalid_argument(flag + " needs a positive number, got '" + text + "'");
    return v;
}

PlanArgs parse(const std::vector<std::string>& args) {
    PlanArgs p;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto next = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
            return args[++i];
        };
        if (a == "--n-part") p.n_part = positive_number(next(), a);
        else if (a == "--kicks") p.kicks = positive_number(next(), a);
        else if (a == "--memory-GiB") p.budget_gib = positive_number(next(), a);
        else if (a == "--dtype") p.dtype = next();
        else if (a == "--strategy") p.strategy = next();
        else if (a == "--grid")
            for (double& g : p.grid) g = positive_number(next(), a);
        else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option '" + a + "'");
        else if (p.coeffs.empty()) p.coeffs = a;
        else throw std::invalid_argument("unexpected argument '" + a + "'");
    }
    if (p.coeffs.empty()) throw std::invalid_argument("missing COEFFS.json");
    if (p.n_part <= 0 || p.kicks <= 0 || p.grid[2] <= 0)
        throw std::invalid_argument("--n-part, --grid NX NY NZ and --kicks are required");
    if (p.dtype != "float32" && p.dtype != "float64") throw std::invalid_argument("--dtype must be float32 or float64");
    return p;
}

nlohmann::json read_coeffs(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument("cannot read '" + path + "'");
    try {
        nlohmann::json j = nlohmann::json::parse(in);
        if (!j.contains("fits") || !j["fits"].is_array()) throw std::invalid_argument("'" + path + "' has no \"fits\" list");
        return j;
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument("'" + path + "' is not valid JSON: " + e.what());
    }
}

double number_or_zero(const nlohmann::json& v) { return v.is_number() ? v.get<double>() : 0.0; }

std::string text(const nlohmann::json& f, const char* key) {
    const auto it = f.find(key);
    return it != f.end() && it->is_string() ? it->get<std::string>() : "";
}

// A total tape law: sctape's own (tape_bytes) or another code's point list (bytes).
bool is_total_tape_fit(const nlohmann::json& f) {
    const std::string measure = text(f, "measure");
    return f.is_object() && (measure == "tape_bytes" || measure == "bytes") && text(f, "scope") == "total";
}

// Why nothing matched: a point list without "dtype" labels fits, but for no dtype.
std::string no_fit_message(const nlohmann::json& fits, const PlanArgs& p) {
    std::string msg = "no tape_bytes/total fit for dtype " + p.dtype +
                      (p.strategy.empty() ? "" : " and strategy " + p.strategy) + " in '" + p.coeffs + "'";
    for (const auto& f : fits)
        if (is_total_tape_fit(f) && f.value("dtype", nlohmann::json()).is_null())
            return msg + " (it has fits without a dtype: label each point of the list with \"dtype\")";
    return msg;
}

struct PlanRow {
    std::string label;
    double a_part = 0, a_cells = 0, per_kick = 0, total = 0;
};

double number_at(const nlohmann::json& f, const char* key) { return number_or_zero(f.value(key, nlohmann::json())); }

// The prediction of every matching fit; a hostile COEFFS (huge or negative
// coefficients) is bad input, never an "inf" or negative row printed with exit 0.
std::vector<PlanRow> predict(const nlohmann::json& fits, const PlanArgs& p) {
    const double cells = p.grid[0] * p.grid[1] * p.grid[2];
    std::vector<PlanRow> rows;
    for (const auto& f : fits) {
        if (!is_total_tape_fit(f) || text(f, "dtype") != p.dtype) continue;
        const std::string strategy = text(f, "strategy");
        if (!p.strategy.empty() && strategy != p.strategy) continue;
        if (!f.value("alpha_part_bytes", nlohmann::json()).is_number() ||
            !f.value("alpha_cells_bytes", nlohmann::json()).is_number())
            continue;
        PlanRow r{text(f, "code").empty() ? strategy : text(f, "code") + ":" + strategy,
                  number_at(f, "alpha_part_bytes"), number_at(f, "alpha_cells_bytes")};
        r.per_kick = r.a_part * p.n_part + r.a_cells * cells + number_at(f, "alpha_0_bytes");
        r.total = r.per_kick * p.kicks;
        if (!std::isfinite(r.total) || r.total < 0)
            throw std::invalid_argument("the fit for " + r.label + " predicts " + std::to_string(r.total) +
                                        " bytes: its coefficients in '" + p.coeffs + "' are not usable");
        rows.push_back(r);
    }
    if (rows.empty()) throw std::invalid_argument(no_fit_message(fits, p));
    return rows;
}

}  // namespace

int plan_command(const std::vector<std::string>& argv) {
    return run_subcommand("plan", kPlanUsage, argv, [&] {
        const PlanArgs p = parse(argv);
        const std::vector<PlanRow> rows = predict(read_coeffs(p.coeffs)["fits"], p);
        std::printf("%-12s %-8s %14s %14s %16s %s\n", "strategy", "dtype", "per kick [MiB]", "tape [GiB]",
                    "alpha_part/cells", p.budget_gib > 0 ? "fits" : "");
        int fitting = 0;
        for (const PlanRow& r : rows) {
            const bool fits = p.budget_gib > 0 && r.total <= p.budget_gib * double(1ull << 30);
            fitting += fits;
            std::printf("%-12s %-8s %14.1f %14.3f %8.1f/%-7.1f %s\n", r.label.c_str(), p.dtype.c_str(),
                        r.per_kick / double(1 << 20), r.total / double(1ull << 30), r.a_part, r.a_cells,
                        p.budget_gib > 0 ? (fits ? "yes" : "no") : "");
        }
        return p.budget_gib > 0 && fitting == 0 ? 1 : 0;
    });
}

}  // namespace sctape::cli
