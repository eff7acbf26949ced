// json_input.hpp — the one reader of every JSON file sctape takes as input
// (CONFIG of `track`; SWEEP, point lists, COEFFS and BASELINE of `fit`,
// `check` and `plan`). Beyond JSON's grammar it refuses what would crash or
// silently mislead the code that walks the document:
//   - nesting deeper than kMaxJsonDepth (nlohmann::json copies and compares
//     recursively: 200 000 nested '[' overflowed the stack),
//   - a key twice in one object (nlohmann keeps the last one silently),
//   - anything after the value, a NUL byte included (nlohmann stops there),
//   - files that are not regular files (a FIFO blocks, /dev/zero never ends).
// (A number outside double's range, 1e400, is already a parse error.)
//
//   nlohmann::json j = sctape::read_json_input("sweep.json", "");            // "'sweep.json' ..."
//   nlohmann::json c = sctape::read_json_input("beam.json", "config file");  // "config file 'beam.json' ..."
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace sctape {

constexpr int kMaxJsonDepth = 64;

class JsonInputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses `text`; errors read "LABEL is not valid JSON: ...", "LABEL nests ...".
nlohmann::json parse_json_input(const std::string& text, const std::string& label);

// Reads and parses the regular file `path`. The label in messages is
// "KIND 'PATH'" ("'PATH'" when kind is empty); throws JsonInputError.
nlohmann::json read_json_input(const std::string& path, const std::string& kind);

}  // namespace sctape
