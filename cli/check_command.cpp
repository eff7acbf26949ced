// `sctape check`: the CI regression on the fitted tape coefficients.
#include <iostream>
#include <string>
#include <vector>

#include "check.hpp"
#include "fit_commands.hpp"
#include "subcommand.hpp"
#include "result.hpp"
#include "sweep.hpp"

namespace sctape::cli {
namespace {

constexpr int kExitRegression = 1;

const char* kCheckUsage =
    "usage: sctape check BASELINE.json COEFFS.json [--allow-missing]\n"
    "       sctape check --write-baseline COEFFS.json BASELINE.json\n"
    "\n"
    "Compares the tape-byte coefficients in COEFFS.json (from `sctape fit`) with\n"
    "a baseline, per strategy x dtype x scope, and prints old vs new.\n"
    "Fails (exit 1) when\n"
    "  - alpha_part, alpha_cells (or alpha_0) rose by more than 1% of the\n"
    "    baseline, or by more than 0.5 byte for near-zero coefficients\n"
    "    (the larger of the two is allowed),\n"
    "  - the total's linear law broke: max relative residual above 2%,\n"
    "  - a baseline entry is missing from COEFFS (unless --allow-missing).\n"
    "Decreases pass and are marked 'improved' (update the baseline to keep them).\n"
    "\n"
    "  --write-baseline COEFFS.json BASELINE.json\n"
    "        write a baseline from COEFFS: its tape_bytes fits, without backend\n"
    "        (tape bytes are the same on every backend)\n"
    "\n"
    "Exit codes: 0 pass, 1 regression, 2 bad input (nothing written).\n";

int write_baseline(const std::vector<std::string>& args) {
    if (args.size() != 3) throw fit::FitError("--write-baseline takes COEFFS.json BASELINE.json");
    check_output_targets({{"BASELINE", args[2]}}, {args[1]});
    const nlohmann::json baseline = fit::baseline_from_coeffs(fit::read_json_file(args[1]));
    StagedFiles staged;
    staged.stage(args[2], baseline.dump(2) + "\n");
    std::cout << "wrote " << args[2] << " (" << baseline["fits"].size() << " tape_bytes fits)\n";
    check_stdout();
    staged.commit();
    return 0;
}

int check(const std::vector<std::string>& args) {
    fit::CheckOptions options;
    std::vector<std::string> files;
    for (const auto& a : args) {
        if (a == "--allow-missing") options.allow_missing = true;
        else if (!a.empty() && a[0] == '-') throw fit::FitError("unknown option '" + a + "'");
        else files.push_back(a);
    }
    if (files.size() != 2) throw fit::FitError("expected BASELINE.json COEFFS.json");
    const fit::CheckReport report =
        fit::check_coefficients(fit::read_json_file(files[0]), fit::read_json_file(files[1]), options);
    std::cout << fit::check_table(report);
    std::cout << (report.passed() ? "sctape check: passed\n" : "sctape check: FAILED\n");
    return report.passed() ? 0 : kExitRegression;
}

}  // namespace

int check_command(const std::vector<std::string>& argv) {
    return run_subcommand("check", kCheckUsage, argv, [&] {
        if (!argv.empty() && argv[0] == "--write-baseline") return write_baseline(argv);
        return check(argv);
    });
}

}  // namespace sctape::cli
