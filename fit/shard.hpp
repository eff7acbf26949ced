// shard.hpp — what `sctape-bench --shard i/n` (bench/main.cpp) and
// `sctape merge` (merge.hpp) agree on: the spec's syntax, the partition of a
// sweep's cases into shards, and the context keys a shard's JSON carries.
//
//   const ShardSpec spec = parse_shard_spec("1/4");            // throws FitError on "4/4", "x", ...
//   const auto shards = partition_cases(work_per_case, spec.count);
//   for (std::size_t k : shards[spec.index]) register_case(k);  // ascending case indices
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace sctape::fit {

// Shard `index` of `count`, 0 <= index < count.
struct ShardSpec {
    int index = 0, count = 1;
};

// Parses "i/n": two decimal integers, nothing else, 0 <= i < n. Throws
// FitError naming the text and what is wrong with it.
ShardSpec parse_shard_spec(const std::string& text);

// "i/n".
std::string shard_name(const ShardSpec& spec);

// Splits the cases 0..work.size()-1 into `shards` sets whose summed work is
// close: longest work first (ties: the lower case index), each to the shard
// with the least work so far (ties: the lower shard). The result depends on
// `work` and `shards` alone, never on timing or the environment. Each set
// lists its case indices in ascending order (the order they run and the
// merged sweep's order). Throws FitError when shards < 1 or > the number of
// cases (a shard would be empty), or a work is not finite and > 0.
std::vector<std::vector<std::size_t>> partition_cases(const std::vector<double>& work, int shards);

// Identifies a sweep by its case names in order: "fnv1a64:<16 hex digits>" of
// the names joined by '\n'. Shards of one sweep carry the same id.
std::string sweep_id(const std::vector<std::string>& case_names);

// Case indices as "0,4,9" and back; parse throws FitError naming `what`.
std::string format_case_indices(const std::vector<std::size_t>& indices);
std::vector<std::size_t> parse_case_indices(const std::string& text, const std::string& what);

// Context keys of a shard's Google Benchmark JSON (all string values).
namespace shard_keys {
constexpr const char* kSchema = "shard_schema_version";  // kShardSchemaVersion
constexpr const char* kShard = "shard";                  // "i/n"
constexpr const char* kCaseIndices = "shard_case_indices";  // this shard's cases, in the whole sweep's order
constexpr const char* kSweepCases = "sweep_cases";          // cases in the whole sweep
constexpr const char* kSweepId = "sweep_id";                // sweep_id() of all the sweep's case names
constexpr const char* kSweepFilter = "sweep_filter";        // the --benchmark_filter that chose the cases
constexpr const char* kMergedShards = "merged_shards";      // in a merged sweep: how many shards
}  // namespace shard_keys

constexpr const char* kShardSchemaVersion = "1";

}  // namespace sctape::fit
