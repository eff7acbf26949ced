// The strict JSON reader [json-input] (fit/json_input.hpp) in process: the
// exact message for each class of hostile input, and that the limits do not
// refuse what is fine (depth 64, one key in two objects). test_outputs.cpp
// runs the same classes through every subcommand of the binary.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "json_input.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// n nested arrays around 1: "[[[1]]]" for n = 3.
std::string nested_arrays(int n) { return std::string(n, '[') + "1" + std::string(n, ']'); }

// The JsonInputError parse_json_input throws for `text`, or "" when it parses.
std::string parse_error(const std::string& text) {
    try {
        sctape::parse_json_input(text, "'in.json'");
    } catch (const sctape::JsonInputError& e) {
        return e.what();
    }
    return "";
}

std::string read_error(const std::string& path) {
    try {
        sctape::read_json_input(path, "config file");
    } catch (const sctape::JsonInputError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("json input: nesting up to 64 levels parses, deeper is refused by name", "[json-input]") {
    CHECK(sctape::parse_json_input(nested_arrays(64), "'in.json'").dump() == nested_arrays(64));
    const std::string too_deep = "'in.json' nests arrays and objects deeper than 64 levels";
    CHECK(parse_error(nested_arrays(65)) == too_deep);
    // 200 000 levels overflowed the stack of `sctape track` and `sctape check` (a recursive copy)
    CHECK(parse_error(std::string(200000, '[') + std::string(200000, ']')) == too_deep);
    std::string objects;
    for (int i = 0; i < 65; ++i) objects += "{\"a\":";
    CHECK(parse_error(objects + "1" + std::string(65, '}')) == too_deep);
}

TEST_CASE("json input: a key twice in one object is refused; in two objects it is fine", "[json-input]") {
    CHECK(parse_error(R"({"n_particles": 1, "n_particles": 2})") ==
          "'in.json' has the key \"n_particles\" twice in one object");
    CHECK(parse_error(R"([{"a": {"b": 1, "c": 2, "b": 3}}])") == "'in.json' has the key \"b\" twice in one object");
    const json ok = sctape::parse_json_input(R"({"a": {"k": 1}, "b": {"k": 2}, "k": 3})", "'in.json'");
    CHECK(ok.at("a").at("k") == 1);
    CHECK(ok.at("b").at("k") == 2);
    CHECK(ok.at("k") == 3);
}

TEST_CASE("json input: bytes after the value, a NUL byte, overflowing numbers, empty text", "[json-input]") {
    using Catch::Matchers::StartsWith;
    using Catch::Matchers::Contains;
    CHECK_THAT(parse_error("[1, 2] x"), StartsWith("'in.json' is not valid JSON: ") && Contains("end of input"));
    // nlohmann's lexer takes a NUL byte for the end of input: the garbage after it went unseen
    CHECK(parse_error(std::string("[1, 2]\0garbage", 14)) == "'in.json' is not valid JSON: a NUL byte at offset 6");
    CHECK_THAT(parse_error("[1e400]"), StartsWith("'in.json' is not valid JSON: ") && Contains("1e400"));
    CHECK_THAT(parse_error(""), StartsWith("'in.json' is not valid JSON: "));
}

TEST_CASE("json input: only regular files are read; the label names the kind and path", "[json-input]") {
    const fs::path dir = fs::path(SCTAPE_TEST_TMPDIR) / "json_input";
    fs::remove_all(dir);
    fs::create_directories(dir / "a_directory");
    const std::string missing = (dir / "missing.json").string(), directory = (dir / "a_directory").string();
    CHECK(read_error(missing) == "cannot read config file '" + missing + "' (no such file)");
    CHECK(read_error(directory) == "cannot read config file '" + directory + "' (not a regular file)");
    // /dev/zero never ends: it is refused before a byte is read
    CHECK(read_error("/dev/zero") == "cannot read config file '/dev/zero' (not a regular file)");
    std::ofstream(dir / "dup.json") << R"({"a": 1, "a": 2})";
    CHECK(read_error((dir / "dup.json").string()) ==
          "config file '" + (dir / "dup.json").string() + "' has the key \"a\" twice in one object");
}
