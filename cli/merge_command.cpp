// `sctape merge`: the shards of a sweep (`sctape-bench --shard i/n`) merged into one SWEEP.json.
#include <iostream>
#include <string>
#include <vector>

#include "fit_commands.hpp"
#include "least_squares.hpp"
#include "merge.hpp"
#include "output_files.hpp"
#include "shard.hpp"
#include "subcommand.hpp"
#include "sweep.hpp"

namespace sctape::cli {
namespace {

const char* kMergeUsage =
    "usage: sctape merge SHARD.json... -o SWEEP.json\n"
    "\n"
    "Merges the shards of one kick_memory sweep, each written by\n"
    "    sctape-bench --shard i/n --benchmark_out=SHARD.json --benchmark_out_format=json\n"
    "into the sweep an unsharded run writes: every case once, in the unsharded\n"
    "order, so `sctape fit SWEEP.json` fits the same coefficients. Prints one\n"
    "line: shards, cases and the sweep's id.\n"
    "\n"
    "  -o, --out SWEEP.json  the merged sweep (required; written atomically)\n"
    "\n"
    "Refused with exit code 2, nothing written, and an error naming the file and\n"
    "the cause: a file that is not a shard (its context has no\n"
    "shard_schema_version) or of another shard schema; shards of different sweeps\n"
    "(another sweep_id or number of shards, or a context value that describes the\n"
    "measurement: backend, sctape_version, lattice, ...); the same shard or case\n"
    "twice; a shard not given, or one holding fewer runs than its cases; a run\n"
    "that failed or is an aggregate. Context values that describe the node or the\n"
    "time (host_name, date, device, num_cpus, ...) may differ; where they do, the\n"
    "merged context lists them per shard.\n";

struct MergeArgs {
    std::vector<std::string> shards;
    std::string out;
};

MergeArgs parse_args(const std::vector<std::string>& args) {
    MergeArgs m;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-o" || a == "--out") {
            if (i + 1 >= args.size() || args[i + 1].empty()) throw fit::FitError(a + " needs a value");
            if (!m.out.empty()) throw fit::FitError(a + " given twice");
            m.out = args[++i];
        } else if (!a.empty() && a[0] == '-') {
            throw fit::FitError("unknown option '" + a + "'");
        } else {
            m.shards.push_back(a);
        }
    }
    if (m.shards.empty()) throw fit::FitError("missing SHARD.json (one or more shards to merge)");
    if (m.out.empty()) throw fit::FitError("missing -o SWEEP.json (where the merged sweep goes)");
    return m;
}

}  // namespace

int merge_command(const std::vector<std::string>& argv) {
    return run_subcommand("merge", kMergeUsage, argv, [&] {
        const MergeArgs args = parse_args(argv);
        check_output_targets({{"--out", args.out}}, args.shards);
        std::vector<fit::ShardDocument> shards;
        for (const std::string& path : args.shards) shards.push_back({path, fit::read_json_file(path)});
        const nlohmann::json sweep = fit::merge_shards(shards);
        StagedFiles staged;
        staged.stage(args.out, sweep.dump(2) + "\n");
        const nlohmann::json& context = sweep["context"];
        std::cout << "merged " << shards.size() << " shards: " << sweep["benchmarks"].size() << " cases of sweep "
                  << context.value(fit::shard_keys::kSweepId, std::string()) << " -> " << args.out << "\n";
        check_stdout();  // the summary line is part of the result
        staged.commit();
        return 0;
    });
}

}  // namespace sctape::cli
