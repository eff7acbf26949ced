// merge.hpp — `sctape merge`: the shards of one sweep (`sctape-bench --shard
// i/n`, shard.hpp) put back into the sweep an unsharded run writes: every
// case once, in the unsharded order, so `sctape fit` reads it unchanged and
// fits exactly the same coefficients.
//
//   nlohmann::json sweep = merge_shards({{"s0.json", doc0}, {"s1.json", doc1}});
//
// Refused, with a FitError that names the file and the cause: a file that is
// not a shard (no shard_schema_version in its context) or of another shard
// schema; shards of different sweeps (a different sweep_id, number of shards,
// or any context value that describes the measurement); the same shard or
// case twice (overlap); a shard not given, or a shard holding fewer runs than
// its cases (missing cases); a run that failed or is an aggregate.
//
// The merged context is the shards' context without the per-shard keys, with
// merged_shards = n; a key that describes the node or the moment of a run
// (host_name, date, device, num_cpus, ...) and differs between shards becomes
// the list of its values, shard 0 first. Each run's family_index becomes its
// case number in the sweep.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sctape::fit {

struct ShardDocument {
    std::string path;  // for messages
    nlohmann::json doc;
};

nlohmann::json merge_shards(const std::vector<ShardDocument>& shards);

}  // namespace sctape::fit
