// `sctape plan`: the memory a gradient run will keep, predicted from fitted
// coefficients before the run is launched, per strategy, against a budget.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fit_commands.hpp"
#include "plan.hpp"
#include "sweep.hpp"
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
    nlohmann::json j = fit::read_json_file(path);
    if (!j.is_object() || !j.contains("fits") || !j["fits"].is_array())
        throw std::invalid_argument("'" + path + "' has no \"fits\" list");
    return j;
}

// Why nothing matched: a point list without "dtype" labels fits, but for no dtype.
std::string no_fit_message(const nlohmann::json& fits, const PlanArgs& p) {
    std::string msg = "no tape_bytes/total fit for dtype " + p.dtype +
                      (p.strategy.empty() ? "" : " and strategy " + p.strategy) + " in '" + p.coeffs + "'";
    for (const auto& f : fits)
        if (f.is_object() && f.value("scope", nlohmann::json()) == "total" && f.value("dtype", nlohmann::json()).is_null())
            return msg + " (it has fits without a dtype: label each point of the list with \"dtype\")";
    return msg;
}

struct PlanRow {
    fit::TapeLaw law;
    double per_kick = 0, total = 0;
};

// The prediction of every matching law (fit::tape_laws keeps only finite
// coefficients), checked before anything is printed: a hostile COEFFS (huge
// or negative coefficients) or sizes that overflow are bad input, never an
// "inf" or negative row printed with exit 0.
std::vector<PlanRow> predict(const nlohmann::json& coeffs, const PlanArgs& p) {
    const double cells = p.grid[0] * p.grid[1] * p.grid[2];
    std::vector<PlanRow> rows;
    for (const fit::TapeLaw& law : fit::tape_laws(coeffs, p.dtype, p.strategy)) {
        PlanRow r{law, law.per_kick_bytes(p.n_part, cells), 0.0};
        r.total = r.per_kick * p.kicks;
        if (std::isinf(r.per_kick) || std::isinf(r.total))
            throw std::invalid_argument("the " + law.label() + " tape overflows: --n-part, --grid and --kicks are too large");
        if (!std::isfinite(r.total) || r.total < 0)
            throw std::invalid_argument("the fit for " + law.label() + " predicts " + std::to_string(r.total) +
                                        " bytes: its coefficients in '" + p.coeffs + "' are not usable");
        rows.push_back(r);
    }
    if (rows.empty()) throw std::invalid_argument(no_fit_message(coeffs["fits"], p));
    return rows;
}

}  // namespace

int plan_command(const std::vector<std::string>& argv) {
    return run_subcommand("plan", kPlanUsage, argv, [&] {
        const PlanArgs p = parse(argv);
        const std::vector<PlanRow> rows = predict(read_coeffs(p.coeffs), p);
        std::printf("%-12s %-8s %14s %14s %16s %s\n", "strategy", "dtype", "per kick [MiB]", "tape [GiB]",
                    "alpha_part/cells", p.budget_gib > 0 ? "fits" : "");
        int fitting = 0;
        for (const PlanRow& r : rows) {
            const bool fits = p.budget_gib > 0 && r.total <= p.budget_gib * double(1ull << 30);
            fitting += fits;
            std::printf("%-12s %-8s %14.1f %14.3f %8.1f/%-7.1f %s\n", r.law.label().c_str(), p.dtype.c_str(),
                        r.per_kick / double(1 << 20), r.total / double(1ull << 30), r.law.alpha_part, r.law.alpha_cells,
                        p.budget_gib > 0 ? (fits ? "yes" : "no") : "");
        }
        return p.budget_gib > 0 && fitting == 0 ? 1 : 0;
    });
}

}  // namespace sctape::cli
