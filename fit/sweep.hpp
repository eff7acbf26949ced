// sweep.hpp — reading what `sctape fit` fits: a Google Benchmark JSON from the
// kick_memory sweep (bench/kick_memory.cpp), or a plain JSON list of
// {"N_part", "N_cells", "N_kicks", "bytes"} points measured elsewhere, each
// optionally labelled with "code", "strategy", "dtype" and "scope".
//
//   nlohmann::json doc = sctape::fit::read_json_file("sweep.json");
//   sctape::fit::Sweep s = sctape::fit::parse_sweep(doc);
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "memory_law.hpp"

namespace sctape::fit {

// One kick_memory/<strategy>/<dtype>/N_part:<n>/grid:<g>/N_kicks:<k> run.
// A run over MPI ranks (bench/rank_sweep.py: counters "ranks" and
// "N_part_rank", name ending /ranks:<P>) was measured on rank 0, the largest
// share: n_part is then its particles, ceil(N_part / ranks), the law's
// variable (docs/mpi.md); the bunch's stays in counters["N_part"].
struct SweepEntry {
    std::string name, strategy, dtype, grid;  // grid as in the name, e.g. "16x16x16"
    double n_part = 0, n_cells = 0, n_kicks = 0;
    double ranks = 1;                        // 1 without ranks
    std::map<std::string, double> counters;  // every numeric field of the entry
};

struct Sweep {
    nlohmann::json context = nlohmann::json::object();  // the benchmark context, scalar values only
    std::string backend = "unknown";                    // context.backend
    std::vector<SweepEntry> entries;                    // unique names, first occurrence
    std::vector<std::string> notes;                     // entries skipped and why
    bool per_rank = false;  // every entry has "ranks": a rank sweep (none may lack it)
};

// Reads and parses a JSON file; FitError names the file and the problem.
nlohmann::json read_json_file(const std::string& path);

// A Google Benchmark document (object with "benchmarks"). Skips aggregates,
// errored runs, other benchmarks and repeated names (noted); throws FitError
// when no kick_memory run remains or an entry lacks N_part/N_cells/N_kicks;
// for a rank sweep, also when some entries have "ranks" and others not, or
// when ranks is not a whole number >= 1 or N_part_rank is not ceil(N_part / ranks).
Sweep parse_sweep(const nlohmann::json& doc);

// The points of a plain list that share all four labels ("" = not given),
// fitted on their own.
struct PointGroup {
    std::string code, strategy, dtype, scope;
    std::vector<LawPoint> points;
};

// A plain list of points, grouped by labels in order of first appearance.
// "N_kicks" defaults to 1 and "bytes" is the growth over all N_kicks kicks,
// so each point becomes bytes/N_kicks per kick. Throws FitError naming the
// point index on an unknown key (a typo such as "n_kicks" must not silently
// become N_kicks = 1), a missing or non-finite number, a label that is not a
// non-empty string, or mixed dtypes: points with and without "dtype" in one
// code/strategy/scope series.
std::vector<PointGroup> parse_point_list(const nlohmann::json& doc);

}  // namespace sctape::fit
