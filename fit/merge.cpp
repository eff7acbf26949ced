#include "merge.hpp"

#include <map>
#include <set>

#include "least_squares.hpp"
#include "shard.hpp"
#include "sweep.hpp"

namespace sctape::fit {
namespace {

using nlohmann::json;

// Context keys that describe the node or the moment of a run: shards run on
// different nodes at different times, and these may differ between them.
// Every other key describes the measurement and must match.
const std::set<std::string> kNodeKeys = {"date",     "host_name",  "executable",         "num_cpus",
                                         "mhz_per_cpu", "cpu_scaling_enabled", "caches", "load_avg",
                                         "library_build_type", "device", "gpu_probe", "kick_time_backend_reason"};

// Keys that differ between the shards of one sweep by design.
const std::set<std::string> kPerShardKeys = {shard_keys::kSchema, shard_keys::kShard, shard_keys::kCaseIndices};

struct Shard {
    const ShardDocument* file = nullptr;
    ShardSpec spec;
    std::size_t sweep_cases = 0;
    std::vector<std::size_t> cases;  // ascending; the j-th run is case cases[j]
};

std::string quoted(const ShardDocument& f) { return "'" + f.path + "'"; }

// The path of the first null in `value`, or "": Google Benchmark writes none,
// and a null copied into the sweep would read as a lost number.
std::string first_null(const json& value, const std::string& path) {
    if (value.is_null()) return path;
    if (value.is_object() || value.is_array())
        for (auto it = value.begin(); it != value.end(); ++it) {
            const std::string key = value.is_object() ? "." + it.key() : "[" + std::to_string(it - value.begin()) + "]";
            if (const std::string found = first_null(*it, path + key); !found.empty()) return found;
        }
    return "";
}

std::string context_string(const json& context, const char* key, const ShardDocument& f) {
    const auto it = context.find(key);
    if (it == context.end() || !it->is_string())
        throw FitError(quoted(f) + ": its context has no string \"" + key + "\" (not written by sctape-bench --shard?)");
    return it->get<std::string>();
}

void check_run(const json& run, std::size_t position, const Shard& s) {
    const std::string where = quoted(*s.file) + " (shard " + shard_name(s.spec) + ")";
    if (!run.is_object() || !run.contains("name") || !run["name"].is_string())
        throw FitError(where + ": benchmark entry " + std::to_string(position) + " has no \"name\"");
    const std::string name = run["name"].get<std::string>();
    if (name.rfind("kick_memory/", 0) != 0) throw FitError(where + ": '" + name + "' is not a kick_memory run");
    if (run.value("run_type", "iteration") != "iteration")
        throw FitError(where + ": '" + name + "' is an aggregate; merge takes single runs (no --benchmark_repetitions)");
    if (run.value("error_occurred", false))
        throw FitError(where + ": case '" + name + "' failed (" + run.value("error_message", std::string("no message")) +
                       "): run shard " + shard_name(s.spec) + " again");
}

Shard read_shard(const ShardDocument& f) {
    const json& doc = f.doc;
    if (!doc.is_object() || !doc.contains("context") || !doc["context"].is_object() || !doc.contains("benchmarks") ||
        !doc["benchmarks"].is_array())
        throw FitError(quoted(f) + " is not a Google Benchmark JSON with \"context\" and \"benchmarks\"");
    const json& context = doc["context"];
    if (!context.contains(shard_keys::kSchema))
        throw FitError(quoted(f) + " is not a shard: its context has no \"" + std::string(shard_keys::kSchema) +
                       "\" (write shards with sctape-bench --shard i/n)");
    const std::string schema = context_string(context, shard_keys::kSchema, f);
    if (schema != kShardSchemaVersion)
        throw FitError(quoted(f) + " has " + shard_keys::kSchema + " \"" + schema + "\"; this sctape merges version " +
                       kShardSchemaVersion);
    Shard s;
    s.file = &f;
    try {
        s.spec = parse_shard_spec(context_string(context, shard_keys::kShard, f));
        const auto total = parse_case_indices(context_string(context, shard_keys::kSweepCases, f), shard_keys::kSweepCases);
        if (total.size() != 1) throw FitError(std::string(shard_keys::kSweepCases) + " is not one number");
        s.sweep_cases = total[0];
        s.cases = parse_case_indices(context_string(context, shard_keys::kCaseIndices, f), shard_keys::kCaseIndices);
        context_string(context, shard_keys::kSweepId, f);
    } catch (const FitError& e) {
        const std::string what = e.what();
        throw FitError(what.rfind(quoted(f), 0) == 0 ? what : quoted(f) + ": " + what);
    }
    for (std::size_t j = 0; j < s.cases.size(); ++j)
        if (s.cases[j] >= s.sweep_cases || (j > 0 && s.cases[j] <= s.cases[j - 1]))
            throw FitError(quoted(f) + ": " + shard_keys::kCaseIndices + " must rise and stay below " +
                           shard_keys::kSweepCases + " = " + std::to_string(s.sweep_cases));
    const json& runs = doc["benchmarks"];
    for (std::size_t j = 0; j < runs.size(); ++j) check_run(runs[j], j, s);
    if (const std::string path = first_null(doc, ""); !path.empty())
        throw FitError(quoted(f) + " has null at " + path.substr(1) + " (sctape-bench writes none)");
    try {
        parse_sweep(doc);  // what `sctape fit` would refuse in the merged sweep, refused here with the file's name
    } catch (const FitError& e) {
        throw FitError(quoted(f) + ": " + e.what());
    }
    if (runs.size() != s.cases.size())
        throw FitError(quoted(f) + " (shard " + shard_name(s.spec) + ") holds " + std::to_string(runs.size()) +
                       " runs for its " + std::to_string(s.cases.size()) + " cases: " +
                       (runs.size() < s.cases.size() ? "missing cases (was the run cut short?)" : "extra runs"));
    return s;
}

std::string shown(const json& context, const std::string& key) {
    return context.contains(key) ? context[key].dump() : "absent";
}

// `s` and the first shard `ref` come from one sweep.
void check_same_sweep(const Shard& s, const Shard& ref) {
    const std::string pair = quoted(*s.file) + " and " + quoted(*ref.file);
    if (s.spec.count != ref.spec.count)
        throw FitError(pair + " are not shards of one sweep: shard " + shard_name(s.spec) + " and shard " +
                       shard_name(ref.spec));
    const json& a = s.file->doc["context"];
    const json& b = ref.file->doc["context"];
    std::set<std::string> keys;
    for (const auto& [key, value] : a.items()) keys.insert(key);
    for (const auto& [key, value] : b.items()) keys.insert(key);
    for (const std::string& key : keys) {
        if (kNodeKeys.count(key) || kPerShardKeys.count(key)) continue;
        if (!a.contains(key) || !b.contains(key) || a[key] != b[key])
            throw FitError(pair + " are not shards of one sweep: context \"" + key + "\" is " + shown(a, key) + " in " +
                           quoted(*s.file) + " but " + shown(b, key) + " in " + quoted(*ref.file));
    }
}

// Every case of the sweep in exactly one shard; throws naming what is missing or doubled.
void check_coverage(const std::vector<Shard>& shards) {
    const Shard& ref = shards.front();
    std::vector<const Shard*> by_index(ref.spec.count, nullptr);
    for (const Shard& s : shards) {
        if (by_index[s.spec.index])
            throw FitError(quoted(*s.file) + " and " + quoted(*by_index[s.spec.index]->file) + " are both shard " +
                           shard_name(s.spec) + ": overlapping cases");
        by_index[s.spec.index] = &s;
    }
    std::string missing;
    for (int i = 0; i < ref.spec.count; ++i)
        if (!by_index[i]) missing += (missing.empty() ? "" : ", ") + shard_name({i, ref.spec.count});
    if (!missing.empty())
        throw FitError("missing cases: no file given for shard " + missing + " of the sweep " +
                       ref.file->doc["context"].value(shard_keys::kSweepId, std::string()));
    std::vector<const Shard*> owner(ref.sweep_cases, nullptr);
    for (const Shard& s : shards)
        for (std::size_t k : s.cases) {
            if (owner[k])
                throw FitError("case " + std::to_string(k) + " is in both " + quoted(*owner[k]->file) + " and " +
                               quoted(*s.file) + ": overlapping cases");
            owner[k] = &s;
        }
    for (std::size_t k = 0; k < owner.size(); ++k)
        if (!owner[k]) throw FitError("missing cases: case " + std::to_string(k) + " of the sweep is in no shard given");
}

// The context of the merged sweep (see merge.hpp).
json merged_context(const std::vector<const Shard*>& by_index) {
    json context = by_index.front()->file->doc["context"];
    for (const std::string& key : kPerShardKeys) context.erase(key);
    for (const std::string& key : kNodeKeys) {
        json values = json::array();
        bool differ = false;
        for (const Shard* s : by_index) {
            const json& c = s->file->doc["context"];
            // "absent", not null: merge itself refuses nulls in what it reads
            values.push_back(c.contains(key) ? c[key] : json("absent"));
            differ = differ || values.back() != values.front();
        }
        if (differ) context[key] = values;
    }
    context[shard_keys::kMergedShards] = std::to_string(by_index.size());
    return context;
}

}  // namespace

json merge_shards(const std::vector<ShardDocument>& files) {
    if (files.empty()) throw FitError("no shard given");
    std::vector<Shard> shards;
    for (const ShardDocument& f : files) shards.push_back(read_shard(f));
    for (const Shard& s : shards) check_same_sweep(s, shards.front());
    check_coverage(shards);

    std::vector<const Shard*> by_index(shards.front().spec.count);
    for (const Shard& s : shards) by_index[s.spec.index] = &s;
    std::vector<json> runs(shards.front().sweep_cases);
    std::map<std::string, const Shard*> names;
    for (const Shard& s : shards)
        for (std::size_t j = 0; j < s.cases.size(); ++j) {
            json run = s.file->doc["benchmarks"][j];
            const std::string name = run["name"].get<std::string>();
            if (const auto [it, fresh] = names.emplace(name, &s); !fresh)
                throw FitError("'" + name + "' is in both " + quoted(*it->second->file) + " and " + quoted(*s.file) +
                               ": overlapping cases");
            run["family_index"] = s.cases[j];
            run["per_family_instance_index"] = 0;
            runs[s.cases[j]] = std::move(run);
        }
    std::vector<std::string> ordered_names;
    for (const json& run : runs) ordered_names.push_back(run["name"].get<std::string>());
    const std::string id = shards.front().file->doc["context"].value(shard_keys::kSweepId, std::string());
    if (sweep_id(ordered_names) != id)
        throw FitError("the merged cases' names give " + sweep_id(ordered_names) + ", not the shards' " +
                       shard_keys::kSweepId + " " + id + ": a shard was edited or its runs are out of order");
    return {{"context", merged_context(by_index)}, {"benchmarks", runs}};
}

}  // namespace sctape::fit
