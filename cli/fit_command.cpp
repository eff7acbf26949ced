// `sctape fit`: the memory law fitted to a sweep, written as COEFFS.json.
#include <iostream>
#include <string>
#include <vector>

#include "coeffs.hpp"
#include "fit_commands.hpp"
#include "subcommand.hpp"
#include "result.hpp"

namespace sctape::cli {
namespace {


const char* kFitUsage =
    "usage: sctape fit SWEEP.json [-o COEFFS.json] [--constant]\n"
    "\n"
    "Fits the memory law per space-charge kick,\n"
    "    bytes = alpha_part*N_part + alpha_cells*N_cells [+ alpha_0]\n"
    "by relative-weighted least squares (minimize sum(((A*x - y)/y)^2), the\n"
    "memory-scaling paper's App. D) to every strategy x dtype x measure x scope\n"
    "of a kick_memory sweep (Google Benchmark JSON from sctape-bench), and the\n"
    "totals vs N_kicks. Prints a coefficient table.\n"
    "\n"
    "  -o, --out COEFFS.json  also write the coefficients as JSON (atomically)\n"
    "  --constant             fit a constant alpha_0 as well\n"
    "\n"
    "Each coefficient comes with its standard error; max|res| is the largest\n"
    "relative residual; p(linear) is the F-test p-value for adding\n"
    "N_part*N_cells, N_part^2 and N_cells^2 to the law with a constant\n"
    "(large: the law is linear; '-' when the points cannot test it).\n"
    "Measures: tape_bytes (what the tape keeps) and alloc_delta_bytes (what the\n"
    "allocator grew by); scopes: the eight substeps, drift, total. A substep\n"
    "whose bytes are all 0 is reported with coefficients 0 and a note.\n"
    "\n"
    "A rank sweep (bench/rank_sweep.py: runs over MPI ranks with counters ranks and\n"
    "N_part_rank, measured on rank 0) is fitted per rank: N_part in every law is\n"
    "rank 0's share, ceil(N_part/ranks); COEFFS gains a \"per_rank\" section (the\n"
    "ranks, and how much runs holding the same share at other ranks differ), which\n"
    "`sctape plan --ranks` uses. Every run has ranks, or none (docs/mpi.md).\n"
    "\n"
    "SWEEP.json may instead be a list of points measured elsewhere:\n"
    "    [{\"N_part\": 1000, \"N_cells\": 32768, \"N_kicks\": 1, \"bytes\": 4.2e7}, ...]\n"
    "(bytes over N_kicks kicks; N_kicks defaults to 1), giving one fit.\n"
    "\n"
    "Bad input (unreadable or malformed file, empty sweep, fewer points than\n"
    "unknowns, a singular design, bytes <= 0) exits with code 2 and writes nothing.\n";

struct FitArgs {
    std::string sweep, out;
    fit::FitOptions options;
};

FitArgs parse_args(const std::vector<std::string>& args) {
    FitArgs f;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-o" || a == "--out") {
            if (i + 1 >= args.size() || args[i + 1].empty()) throw fit::FitError(a + " needs a value");
            f.out = args[++i];
        } else if (a == "--constant") {
            f.options.with_constant = true;
        } else if (!a.empty() && a[0] == '-') {
            throw fit::FitError("unknown option '" + a + "'");
        } else if (f.sweep.empty()) {
            f.sweep = a;
        } else {
            throw fit::FitError("unexpected argument '" + a + "'");
        }
    }
    if (f.sweep.empty()) throw fit::FitError("missing SWEEP.json");
    return f;
}

}  // namespace

int fit_command(const std::vector<std::string>& argv) {
    return run_subcommand("fit", kFitUsage, argv, [&] {
        const FitArgs args = parse_args(argv);
        if (!args.out.empty()) check_output_targets({{"--out", args.out}}, {args.sweep});
        const nlohmann::json coeffs = fit::fit_document(fit::read_json_file(args.sweep), args.options);
        StagedFiles staged;
        if (!args.out.empty()) staged.stage(args.out, coeffs.dump(2) + "\n");
        std::cout << fit::coefficient_table(coeffs);
        check_stdout();  // the table is the result too: COEFFS only once it was printed
        staged.commit();
        for (const auto& note : coeffs["notes"]) std::cerr << "sctape fit: note: " << note.get<std::string>() << "\n";
        return 0;
    });
}

}  // namespace sctape::cli
