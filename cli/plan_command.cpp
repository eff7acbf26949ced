// `sctape plan`: the memory a gradient run will keep, predicted from fitted
// coefficients before the run is launched, per strategy, against a budget.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fit_commands.hpp"
#include "memory_model.hpp"
#include "plan.hpp"
#include "sweep.hpp"
#include "config.hpp"
#include "subcommand.hpp"

namespace sctape::cli {
namespace {

const char* kPlanUsage =
    "usage: sctape plan COEFFS.json --n-part N --grid NX NY NZ --kicks K\n"
    "                   [--dtype float32|float64] [--strategy NAME] [--snapshots S] [--memory-GiB M]\n"
    "                   [--lattice CONFIG.json] [--ranks P|auto]\n"
    "       sctape plan COEFFS.json --against RUNS.json [--snapshots S] [--tolerance T] [--lattice CONFIG.json]\n"
    "\n"
    "Predicts, for every strategy in COEFFS (or one), the tape a gradient run keeps\n"
    "after its forward pass and the allocator's peak during the run\n"
    "(docs/tape-accounting.md, \"Predicting a run's memory\"):\n"
    "    tape = kept * per_kick(N_part, N_cells) + fixed(N_part, N_cells)\n"
    "    peak = held * per_kick + fixed + overhead(N_part, N_cells)\n"
    "per_kick and fixed are exact for fused, checkpoint and reversible and fitted\n"
    "by `sctape fit` for autograd (measures tape_bytes, tape_fixed_bytes); overhead\n"
    "is fitted (peak_overhead_bytes: the larger of two laws). kept = held = N_kicks, except binomial\n"
    "checkpointing (--snapshots S adds a `binomial` row: checkpoint with S states).\n"
    "Fits of other codes (point lists) give N_kicks * per-kick law and no peak.\n"
    "--memory-GiB compares the peak (the tape where no peak is known) with M GiB.\n"
    "--lattice CONFIG.json: the slices of CONFIG's lattice, repeated to N_kicks,\n"
    "instead of drifts: fused tapes a quadrupole's or constant focusing's maps in\n"
    "full (exact), checkpoint re-records such a slice in backward; autograd's\n"
    "map tape is not modelled (printed as -). Without it: drifts, as in the sweep.\n"
    "--ranks P: per MPI rank (docs/mpi.md): each rank holds ceil(N/P) particles and\n"
    "the whole grid, per_kick = alpha_part*ceil(N/P) + alpha_cells*N_cells (the reductions\n"
    "are in place: no buffer on the tape); adds each rank's tape and peak in bytes.\n"
    "With COEFFS fitted to a rank sweep (bench/rank_sweep.py; its \"per_rank\" section)\n"
    "the peak is the per-rank law fitted over ranks (for P > 1 the laws fitted on\n"
    "several ranks, scopes ranks_*, with their reduction buffers); with a one-rank\n"
    "COEFFS, the one-rank fit at ceil(N/P) (the MPI build's own grids not seen).\n"
    "--ranks auto with --memory-GiB M: the fewest ranks whose per-rank peak fits M\n"
    "(- where none does: the grid alone exceeds M). autograd's rank 0 tape is its\n"
    "one-rank tape at ceil(N/P) (its reductions save nothing more): its fitted law\n"
    "there, from a COEFFS that has one (a rank sweep has none: exit 2).\n"
    "--against RUNS.json (a kick_memory Google Benchmark JSON of sctape-bench, or a\n"
    "rank sweep: then per rank, at rank 0's share)\n"
    "prints each run's measured and predicted tape_bytes_total and peak_bytes_total\n"
    "with their relative errors; --snapshots S is the binomial runs' snapshots;\n"
    "--tolerance T (default 0.02) is the largest relative error that passes.\n"
    "Exit codes: 0 printed (and every run within T), 1 nothing fits the budget or a\n"
    "run is beyond T, 2 bad input.\n";

struct PlanArgs {
    std::string coeffs, dtype = "float32", strategy, against, lattice;
    std::vector<bool> map_cell;  // from --lattice
    double n_part = 0, kicks = 0, budget_gib = 0, tolerance = 0.02;
    double ranks = 1;         // --ranks P; n_part stays the bunch's
    bool ranks_given = false;  // --ranks: the per-rank table
    bool ranks_auto = false;   // --ranks auto
    double grid[3] = {0, 0, 0};
    int snapshots = 0;
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

// Binomial checkpointing's schedule is replayed state by state: a few thousand at most.
constexpr double kMaxSnapshots = 10000;

int snapshot_count(const std::string& text) {
    const double v = positive_number(text, "--snapshots");
    if (v != std::floor(v) || v > kMaxSnapshots)
        throw std::invalid_argument("--snapshots needs a whole number from 1 to 10000, got '" + text + "'");
    return static_cast<int>(v);
}

int rank_count(const std::string& text) {
    const double v = positive_number(text, "--ranks");
    if (v != std::floor(v) || v > 1e9)
        throw std::invalid_argument("--ranks needs a whole number from 1 to 10^9 or \"auto\", got '" + text + "'");
    return static_cast<int>(v);
}

void check_args(const PlanArgs& p) {
    if (p.coeffs.empty()) throw std::invalid_argument("missing COEFFS.json");
    if (p.dtype != "float32" && p.dtype != "float64") throw std::invalid_argument("--dtype must be float32 or float64");
    if (!p.against.empty()) {
        if (p.n_part > 0 || p.kicks > 0 || p.grid[2] > 0 || p.budget_gib > 0 || p.ranks_given)
            throw std::invalid_argument(
                "--against takes its cases from RUNS.json: drop --n-part, --grid, --kicks, --memory-GiB and --ranks");
        return;
    }
    if (p.n_part <= 0 || p.kicks <= 0 || p.grid[2] <= 0)
        throw std::invalid_argument("--n-part, --grid NX NY NZ and --kicks are required (or --against RUNS.json)");
    if (p.ranks_auto && p.budget_gib <= 0) throw std::invalid_argument("--ranks auto needs --memory-GiB M");
    if (p.ranks > p.n_part) throw std::invalid_argument("--ranks: more ranks than particles (--n-part)");
    if (p.strategy == "binomial" && p.snapshots == 0)
        throw std::invalid_argument("--strategy binomial needs --snapshots S");
    if (p.snapshots > 0 && p.kicks > fit::kMaxBinomialKicks)
        throw std::invalid_argument("--snapshots: binomial checkpointing is predicted for at most 10^7 kicks");
}

// One flag per slice of CONFIG's lattice: true where its element is not a drift.
std::vector<bool> map_cell(const std::string& config_path) {
    const RunConfig config = load_config(config_path);
    const Lattice& lattice = config.tracking.lattice;
    std::vector<bool> cell;
    for (std::size_t element : slice_elements(lattice)) cell.push_back(lattice[element].kind != ElementKind::drift);
    return cell;
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
        else if (a == "--tolerance") p.tolerance = positive_number(next(), a);
        else if (a == "--snapshots") p.snapshots = snapshot_count(next());
        else if (a == "--dtype") p.dtype = next();
        else if (a == "--strategy") p.strategy = next();
        else if (a == "--against") p.against = next();
        else if (a == "--ranks") {
            const std::string& v = next();
            p.ranks_given = true;
            p.ranks_auto = v == "auto";
            if (!p.ranks_auto) p.ranks = rank_count(v);
        }
        else if (a == "--lattice") p.lattice = next();
        else if (a == "--grid")
            for (double& g : p.grid) g = positive_number(next(), a);
        else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option '" + a + "'");
        else if (p.coeffs.empty()) p.coeffs = a;
        else throw std::invalid_argument("unexpected argument '" + a + "'");
    }
    check_args(p);
    if (!p.lattice.empty()) p.map_cell = map_cell(p.lattice);
    return p;
}

// A COEFFS fitted to a rank sweep names the rank counts it saw (coeffs.hpp).
void check_per_rank_section(const nlohmann::json& coeffs, const std::string& path) {
    if (!coeffs.contains("per_rank")) return;
    const nlohmann::json& ranks = coeffs["per_rank"].is_object() ? coeffs["per_rank"].value("ranks", nlohmann::json())
                                                                   : nlohmann::json();
    bool ok = ranks.is_array() && !ranks.empty();
    for (const auto& r : ranks)
        ok = ok && r.is_number() && r.get<double>() >= 1 && r.get<double>() == std::floor(r.get<double>());
    if (!ok)
        throw std::invalid_argument("'" + path + "': \"per_rank\" needs \"ranks\", a list of whole numbers >= 1");
}

nlohmann::json read_coeffs(const std::string& path) {
    nlohmann::json j = fit::read_json_file(path);
    if (!j.is_object() || !j.contains("fits") || !j["fits"].is_array())
        throw std::invalid_argument("'" + path + "' has no \"fits\" list");
    check_per_rank_section(j, path);
    return j;
}

// Which law gives a rank's peak: the one fitted over ranks, or the one-rank fit.
std::string rank_law_source(const nlohmann::json& coeffs) {
    if (!coeffs.contains("per_rank")) return "the one-rank fit at ceil(N_part / ranks)";
    std::string counts;
    for (const auto& r : coeffs["per_rank"]["ranks"]) counts += (counts.empty() ? "" : ", ") + r.dump();
    return "the per-rank law fitted over ranks " + counts;
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
    std::string label;
    double per_kick = 0, tape = 0, peak = NAN;  // peak NaN: not predicted
    double ranks = 1;                           // per rank with ranks > 1 (NaN: no count fits)
};

// The particles of the largest rank's share (core/communicator.hpp's split).
double particles_per_rank(double n_part, double ranks) { return std::ceil(n_part / ranks); }

// A hostile COEFFS (huge or negative coefficients) or sizes that overflow are
// bad input, never an "inf" or negative row printed with exit 0.
void check_bytes(double bytes, const std::string& what, const PlanArgs& p) {
    if (std::isinf(bytes))
        throw std::invalid_argument("the " + what + " overflows: --n-part, --grid and --kicks are too large");
    if (!std::isfinite(bytes) || bytes < 0)
        throw std::invalid_argument("the " + what + " is predicted as " + std::to_string(bytes) +
                                    " bytes: the coefficients in '" + p.coeffs + "' are not usable");
}

// sctape's own strategies from the memory model; other codes' point lists
// (or a strategy COEFFS has no whole-run fits for) as N_kicks x per-kick law.
PlanRow predict_row(const nlohmann::json& coeffs, const fit::TapeLaw& law, const std::string& label,
                    int snapshots, const PlanArgs& p, double ranks) {
    const double cells = p.grid[0] * p.grid[1] * p.grid[2];
    const double n = particles_per_rank(p.n_part, ranks);
    PlanRow r{label, law.per_kick_bytes(n, cells), 0.0, NAN, ranks};
    r.tape = r.per_kick * p.kicks;
    const int rank_count = ranks > 1 ? 2 : 1;  // the model tells one rank from several
    const auto model = law.code.empty() ? fit::memory_model(coeffs, law.strategy, p.dtype, rank_count) : std::nullopt;
    if (model) {
        const fit::MemoryPrediction m = fit::predict(*model, {n, cells, p.kicks, snapshots, p.map_cell});
        r.per_kick = model->per_kick.at(n, cells);
        r.tape = m.tape_bytes;
        r.peak = m.peak_bytes;
        if (std::isnan(r.tape)) return r;  // the lattice's maps are not modelled for it
        // fused's tape per kick depends on the lattice's maps: their mean over the run
        if (!p.map_cell.empty() && model->strategy == "fused") r.per_kick = r.tape / p.kicks;
    }
    check_bytes(r.tape, label + " tape", p);
    check_bytes(r.per_kick, label + " tape per kick", p);
    if (!std::isnan(r.peak)) check_bytes(r.peak, label + " peak", p);
    return r;
}

// What the budget must hold: the peak, or the tape where no peak is known.
double needed_bytes(const PlanRow& r) { return std::isnan(r.peak) ? r.tape : r.peak; }

// The row at the fewest ranks whose per-rank need fits the budget (the need
// falls as the ranks grow: bisection), or at one rank per particle with
// ranks NaN when even that does not fit.
PlanRow fewest_ranks(const nlohmann::json& coeffs, const fit::TapeLaw& law, const std::string& label, int snapshots,
                     const PlanArgs& p) {
    const double budget = p.budget_gib * double(1ull << 30);
    auto row = [&](double ranks) { return predict_row(coeffs, law, label, snapshots, p, ranks); };
    PlanRow most = row(p.n_part);
    if (std::isnan(most.tape) || needed_bytes(most) > budget) {
        most.ranks = NAN;
        return most;
    }
    double lo = 1, hi = p.n_part;  // the answer is in [lo, hi]; hi fits
    if (needed_bytes(row(lo)) <= budget) return row(lo);
    while (hi - lo > 1) {
        const double mid = std::floor((lo + hi) / 2);
        (needed_bytes(row(mid)) <= budget ? hi : lo) = mid;
    }
    return row(hi);
}

// One row per law in COEFFS, and binomial after checkpoint with --snapshots.
std::vector<PlanRow> predict(const nlohmann::json& coeffs, const PlanArgs& p) {
    std::vector<PlanRow> rows;
    auto wanted = [&](const std::string& label) { return p.strategy.empty() || p.strategy == label; };
    auto add = [&](const fit::TapeLaw& law, const std::string& label, int snapshots) {
        rows.push_back(p.ranks_auto ? fewest_ranks(coeffs, law, label, snapshots, p)
                                    : predict_row(coeffs, law, label, snapshots, p, p.ranks));
    };
    for (const fit::TapeLaw& law : fit::tape_laws(coeffs, p.dtype)) {
        if (wanted(law.label())) add(law, law.label(), 0);
        if (law.code.empty() && law.strategy == "checkpoint" && p.snapshots > 0 && wanted("binomial"))
            add(law, "binomial", p.snapshots);
    }
    if (rows.empty() && p.ranks_given && p.strategy == "autograd")
        throw std::invalid_argument("--ranks: '" + p.coeffs + "' has no autograd law for dtype " + p.dtype +
                                    " (a rank sweep, bench/rank_sweep.py, runs fused, checkpoint and reversible): "
                                    "use a one-rank COEFFS with one, such as results/coeffs_cpu.json (docs/mpi.md)");
    if (rows.empty()) throw std::invalid_argument(no_fit_message(coeffs["fits"], p));
    return rows;
}

std::string gib(double bytes) {
    if (std::isnan(bytes)) return "-";
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", bytes / double(1ull << 30));
    return text;
}

// Per rank: the ranks, each rank's tape in bytes (exact for the hand-written
// strategies) and GiB, and its peak.
int print_rank_plan(const std::vector<PlanRow>& rows, const PlanArgs& p, const std::string& law) {
    const bool budget = p.budget_gib > 0;
    std::printf("per MPI rank: ceil(N_part / ranks) particles and the whole grid; peak from %s (docs/mpi.md)\n",
                law.c_str());
    std::printf("%-18s %-8s %8s %14s %18s %18s %12s %12s %s\n", "strategy", "dtype", "ranks", "per kick [MiB]",
                "tape/rank [B]", "peak/rank [B]", "tape [GiB]", "peak [GiB]", budget ? "fits" : "");
    int fitting = 0;
    bool none_fits = false;
    for (const PlanRow& r : rows) {
        const bool found = !std::isnan(r.ranks) && !std::isnan(r.tape);
        none_fits |= !found;
        const bool fits = budget && found && needed_bytes(r) <= p.budget_gib * double(1ull << 30);
        fitting += fits;
        char ranks[32] = "-", tape[32] = "-", peak[32] = "-";
        if (found) {
            std::snprintf(ranks, sizeof ranks, "%.0f", r.ranks);
            std::snprintf(tape, sizeof tape, "%.0f", r.tape);
            if (!std::isnan(r.peak)) std::snprintf(peak, sizeof peak, "%.0f", r.peak);
        }
        std::printf("%-18s %-8s %8s %14.1f %18s %18s %12s %12s %s\n", r.label.c_str(), p.dtype.c_str(), ranks,
                    r.per_kick / double(1 << 20), tape, peak, found ? gib(r.tape).c_str() : "-",
                    found ? gib(r.peak).c_str() : "-", budget ? (fits ? "yes" : "no") : "");
    }
    if (none_fits) std::printf("ranks -: no count fits (with one particle per rank, the grid's part alone exceeds the budget)\n");
    if (p.snapshots > 0) std::printf("binomial: checkpoint with %d snapshots\n", p.snapshots);
    return budget && fitting == 0 ? 1 : 0;
}

int print_plan(const std::vector<PlanRow>& rows, const PlanArgs& p, const nlohmann::json& coeffs) {
    if (p.ranks_given) return print_rank_plan(rows, p, rank_law_source(coeffs));
    if (coeffs.contains("per_rank")) std::printf("COEFFS is per MPI rank: these rows are for one rank holding the whole bunch\n");
    const bool budget = p.budget_gib > 0;
    std::printf("%-18s %-8s %14s %12s %12s %s\n", "strategy", "dtype", "per kick [MiB]", "tape [GiB]", "peak [GiB]",
                budget ? "fits" : "");
    int fitting = 0;
    bool peak_missing = false, unmodelled = false;
    for (const PlanRow& r : rows) {
        if (std::isnan(r.tape)) {
            unmodelled = true;
            std::printf("%-18s %-8s %14s %12s %12s %s\n", r.label.c_str(), p.dtype.c_str(), "-", "-", "-",
                        budget ? "-" : "");
            continue;
        }
        // the budget must hold the peak; where no peak is known, at least the tape
        const double needed = std::isnan(r.peak) ? r.tape : r.peak;
        peak_missing |= std::isnan(r.peak);
        const bool fits = budget && needed <= p.budget_gib * double(1ull << 30);
        fitting += fits;
        std::printf("%-18s %-8s %14.1f %12s %12s %s\n", r.label.c_str(), p.dtype.c_str(), r.per_kick / double(1 << 20),
                    gib(r.tape).c_str(), gib(r.peak).c_str(), budget ? (fits ? "yes" : "no") : "");
    }
    if (unmodelled) std::printf("-: the tape of this lattice's element maps is not modelled for it (fitted on drifts)\n");
    if (p.snapshots > 0) std::printf("binomial: checkpoint with %d snapshots\n", p.snapshots);
    if (peak_missing)
        std::printf("peak -: COEFFS has no peak_overhead_bytes fit for it%s\n",
                    budget ? " (the budget is compared with the tape)" : "");
    return budget && fitting == 0 ? 1 : 0;
}

// ------------------------------------------------------------ --against

struct RunCheck {
    std::string name;
    double tape = 0, predicted_tape = 0, peak = 0, predicted_peak = 0;
};

double relative_error(double predicted, double measured) {
    if (measured == 0) return predicted == 0 ? 0.0 : INFINITY;
    return (predicted - measured) / measured;
}

double counter(const fit::SweepEntry& e, const char* name) {
    const auto it = e.counters.find(name);
    if (it == e.counters.end()) throw std::invalid_argument("run '" + e.name + "' has no " + name);
    return it->second;
}

RunCheck check_run(const nlohmann::json& coeffs, const fit::SweepEntry& e, const PlanArgs& p) {
    const bool binomial = e.strategy == "binomial";
    if (binomial && p.snapshots == 0)
        throw std::invalid_argument("run '" + e.name + "' is binomial checkpointing: give its --snapshots S");
    const auto model = fit::memory_model(coeffs, e.strategy, e.dtype, e.ranks > 1 ? 2 : 1);
    if (!model)
        throw std::invalid_argument("'" + p.coeffs + "' has no memory model for " + e.strategy + "/" + e.dtype +
                                    " (tape_bytes and tape_fixed_bytes fits)");
    if (model->overhead.empty())
        throw std::invalid_argument("'" + p.coeffs + "' has no peak_overhead_bytes fit for " + model->strategy + "/" +
                                    e.dtype + ": regenerate it with `sctape fit`");
    const fit::MemoryPrediction m =
        fit::predict(*model, {e.n_part, e.n_cells, e.n_kicks, binomial ? p.snapshots : 0, p.map_cell});
    return {e.name, counter(e, "tape_bytes_total"), m.tape_bytes, counter(e, "peak_bytes_total"), m.peak_bytes};
}

// The run's name without Google Benchmark's "/iterations:1" and the prefix.
std::string short_name(std::string name) {
    const std::string prefix = "kick_memory/";
    if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
    if (const auto at = name.find("/iterations:"); at != std::string::npos) name.erase(at);
    return name;
}

int check_against(const nlohmann::json& coeffs, const PlanArgs& p) {
    const fit::Sweep runs = fit::parse_sweep(fit::read_json_file(p.against));
    if (runs.per_rank) std::printf("per MPI rank: rank 0's share of each run; peak from %s\n", rank_law_source(coeffs).c_str());
    std::vector<RunCheck> checks;
    for (const fit::SweepEntry& e : runs.entries) checks.push_back(check_run(coeffs, e, p));
    std::printf("%-58s %13s %13s %8s %13s %13s %8s\n", "run", "tape [B]", "predicted", "error", "peak [B]",
                "predicted", "error");
    int beyond = 0, unmodelled = 0;
    double worst = 0;
    for (const RunCheck& c : checks) {
        if (std::isnan(c.predicted_tape)) {  // reported, neither passed nor failed
            ++unmodelled;
            std::printf("%-58s %13.0f %13s %8s %13.0f %13s %8s not modelled\n", short_name(c.name).c_str(), c.tape, "-",
                        "", c.peak, "-", "");
            continue;
        }
        const double tape_error = relative_error(c.predicted_tape, c.tape);
        const double peak_error = relative_error(c.predicted_peak, c.peak);
        const bool ok = std::fabs(tape_error) <= p.tolerance && std::fabs(peak_error) <= p.tolerance;
        beyond += !ok;
        worst = std::max({worst, std::fabs(tape_error), std::fabs(peak_error)});
        std::printf("%-58s %13.0f %13.0f %+7.3f%% %13.0f %13.0f %+7.3f%% %s\n", short_name(c.name).c_str(), c.tape,
                    c.predicted_tape, 100 * tape_error, c.peak, c.predicted_peak, 100 * peak_error,
                    ok ? "ok" : "BEYOND");
    }
    std::printf("%zu runs, largest |error| %.3f%%, %d beyond the tolerance %.3g%%", checks.size(), 100 * worst,
                beyond, 100 * p.tolerance);
    if (unmodelled > 0) std::printf(", %d not modelled (autograd's element-map tape)", unmodelled);
    std::printf("\n");
    return beyond > 0 ? 1 : 0;
}

}  // namespace

int plan_command(const std::vector<std::string>& argv) {
    return run_subcommand("plan", kPlanUsage, argv, [&] {
        const PlanArgs p = parse(argv);
        const nlohmann::json coeffs = read_coeffs(p.coeffs);
        if (!p.against.empty()) return check_against(coeffs, p);
        return print_plan(predict(coeffs, p), p, coeffs);
    });
}

}  // namespace sctape::cli
