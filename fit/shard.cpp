#include "shard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>

#include "least_squares.hpp"

namespace sctape::fit {
namespace {

// A decimal integer of at most 9 digits (below 2^31), or -1.
long parse_small_natural(const std::string& text) {
    if (text.empty() || text.size() > 9) return -1;
    for (char c : text)
        if (c < '0' || c > '9') return -1;
    return std::stol(text);
}

}  // namespace

ShardSpec parse_shard_spec(const std::string& text) {
    const std::string quoted = "'" + text + "'";
    const auto slash = text.find('/');
    const long index = slash == std::string::npos ? -1 : parse_small_natural(text.substr(0, slash));
    const long count = slash == std::string::npos ? -1 : parse_small_natural(text.substr(slash + 1));
    if (index < 0 || count < 0)
        throw FitError(quoted + " is not i/n: expected two integers, the shard i and the number of shards n, as in 0/4");
    if (count < 1) throw FitError(quoted + ": the number of shards must be at least 1");
    if (index >= count)
        throw FitError(quoted + ": shards are numbered 0 to " + std::to_string(count - 1) + ", so " +
                       std::to_string(index) + " is not one of them");
    return {int(index), int(count)};
}

std::string shard_name(const ShardSpec& spec) { return std::to_string(spec.index) + "/" + std::to_string(spec.count); }

std::vector<std::vector<std::size_t>> partition_cases(const std::vector<double>& work, int shards) {
    if (shards < 1) throw FitError("the number of shards must be at least 1");
    if (std::size_t(shards) > work.size())
        throw FitError("the sweep has " + std::to_string(work.size()) + " cases, fewer than the " +
                       std::to_string(shards) + " shards asked for (a shard would be empty)");
    for (std::size_t k = 0; k < work.size(); ++k)
        if (!std::isfinite(work[k]) || !(work[k] > 0))
            throw FitError("case " + std::to_string(k) + " has work " + std::to_string(work[k]) + ": must be finite and > 0");
    std::vector<std::size_t> by_work(work.size());
    std::iota(by_work.begin(), by_work.end(), std::size_t{0});
    // stable: equal work keeps the lower index first
    std::stable_sort(by_work.begin(), by_work.end(), [&](std::size_t a, std::size_t b) { return work[a] > work[b]; });
    std::vector<std::vector<std::size_t>> sets(shards);
    std::vector<double> load(shards, 0.0);
    for (std::size_t k : by_work) {
        // min_element returns the first minimum: the lower shard on a tie
        const auto lightest = std::size_t(std::min_element(load.begin(), load.end()) - load.begin());
        sets[lightest].push_back(k);
        load[lightest] += work[k];
    }
    for (auto& set : sets) std::sort(set.begin(), set.end());
    return sets;
}

std::string sweep_id(const std::vector<std::string>& case_names) {
    std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bit
    auto add = [&](unsigned char byte) {
        hash ^= byte;
        hash *= 1099511628211ull;
    };
    for (std::size_t i = 0; i < case_names.size(); ++i) {
        if (i > 0) add('\n');
        for (unsigned char c : case_names[i]) add(c);
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    return std::string("fnv1a64:") + hex;
}

std::string format_case_indices(const std::vector<std::size_t>& indices) {
    std::string text;
    for (std::size_t k : indices) text += (text.empty() ? "" : ",") + std::to_string(k);
    return text;
}

std::vector<std::size_t> parse_case_indices(const std::string& text, const std::string& what) {
    std::vector<std::size_t> indices;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const long k = parse_small_natural(text.substr(start, comma - start));
        if (k < 0) throw FitError(what + " is not a comma-separated list of case numbers: \"" + text + "\"");
        indices.push_back(std::size_t(k));
        start = comma + 1;
    }
    return indices;
}

}  // namespace sctape::fit
