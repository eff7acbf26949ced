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
    "`sctape fit` (measure tape_bytes, scope total):\n"
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

// The number at `key`, or `fallback` when it is absent or not a number.
// (operator[] on a const json with a missing key is undefined behaviour: it
// read past the end of the object.)
double number_at(const nlohmann::json& f, const char* key, double fallback) {
    const auto it = f.find(key);
    return it != f.end() && it->is_number() ? it->get<double>() : fallback;
}

struct PlanRow {
    std::string strategy;
    double a_part = 0, a_cells = 0, a_0 = 0, per_kick = 0, total = 0;
};

// Every number printed must be finite: a coefficient that is not (1e400 in
// the JSON reads as infinity) or a product that overflows is bad input.
void check_finite(const PlanRow& r, const std::string& coeffs) {
    if (!std::isfinite(r.a_part) || !std::isfinite(r.a_cells) || !std::isfinite(r.a_0))
        throw std::invalid_argument("the " + r.strategy + " fit in '" + coeffs +
                                    "' has a non-finite alpha_part_bytes, alpha_cells_bytes or alpha_0_bytes");
    if (!std::isfinite(r.per_kick) || !std::isfinite(r.total))
        throw std::invalid_argument("the " + r.strategy + " tape overflows: --n-part, --grid and --kicks are too large");
}

// The rows of `fits` that match the request, every number checked.
std::vector<PlanRow> plan_rows(const PlanArgs& p, const nlohmann::json& coeffs) {
    const double cells = p.grid[0] * p.grid[1] * p.grid[2];
    std::vector<PlanRow> rows;
    for (const auto& f : coeffs.at("fits")) {
        if (!f.is_object() || f.value("measure", "") != "tape_bytes" || f.value("scope", "") != "total" ||
            f.value("dtype", "") != p.dtype)
            continue;
        PlanRow r;
        r.strategy = f.value("strategy", "");
        if (!p.strategy.empty() && r.strategy != p.strategy) continue;
        r.a_part = number_at(f, "alpha_part_bytes", NAN);
        r.a_cells = number_at(f, "alpha_cells_bytes", NAN);
        if (std::isnan(r.a_part) || std::isnan(r.a_cells)) continue;  // absent: not a fit of this law
        r.a_0 = number_at(f, "alpha_0_bytes", 0.0);
        r.per_kick = r.a_part * p.n_part + r.a_cells * cells + r.a_0;
        r.total = r.per_kick * p.kicks;
        check_finite(r, p.coeffs);
        rows.push_back(r);
    }
    return rows;
}

}  // namespace

int plan_command(const std::vector<std::string>& argv) {
    return run_subcommand("plan", kPlanUsage, argv, [&] {
        const PlanArgs p = parse(argv);
        const nlohmann::json coeffs = read_coeffs(p.coeffs);
        const std::vector<PlanRow> rows = plan_rows(p, coeffs);  // checked before anything is printed
        int shown = 0, fitting = 0;
        if (!rows.empty())
            std::printf("%-12s %-8s %14s %14s %16s %s\n", "strategy", "dtype", "per kick [MiB]", "tape [GiB]",
                        "alpha_part/cells", p.budget_gib > 0 ? "fits" : "");
        for (const PlanRow& r : rows) {
            const bool fits = p.budget_gib > 0 && r.total <= p.budget_gib * double(1ull << 30);
            fitting += fits;
            ++shown;
            std::printf("%-12s %-8s %14.1f %14.3f %8.1f/%-7.1f %s\n", r.strategy.c_str(), p.dtype.c_str(),
                        r.per_kick / double(1 << 20), r.total / double(1ull << 30), r.a_part, r.a_cells,
                        p.budget_gib > 0 ? (fits ? "yes" : "no") : "");
        }
        if (shown == 0) throw std::invalid_argument("no tape_bytes/total fit for dtype " + p.dtype +
                                                    (p.strategy.empty() ? "" : " and strategy " + p.strategy) +
                                                    " in '" + p.coeffs + "'");
        return p.budget_gib > 0 && fitting == 0 ? 1 : 0;
    });
}

}  // namespace sctape::cli
