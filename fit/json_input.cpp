#include "json_input.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

namespace sctape {
namespace {

using nlohmann::json;

// A SAX pass that builds nothing and stops at the first problem; the DOM is
// built by a second, ordinary parse only once this pass accepted the text.
class StrictChecker : public nlohmann::json_sax<json> {
public:
    std::string error;  // "" until a problem is found

    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override {
        keys_.emplace_back();
        return enter();
    }
    bool key(string_t& k) override {
        return keys_.back().insert(k).second || refuse("has the key \"" + k + "\" twice in one object");
    }
    bool end_object() override {
        keys_.pop_back();
        return leave();
    }
    bool start_array(std::size_t) override { return enter(); }
    bool end_array() override { return leave(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        return refuse(std::string("is not valid JSON: ") + e.what());
    }

private:
    std::vector<std::set<std::string>> keys_;  // the keys seen, per open object
    int depth_ = 0;

    bool enter() {
        return ++depth_ <= kMaxJsonDepth ||
               refuse("nests arrays and objects deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    bool leave() {
        --depth_;
        return true;
    }
    bool refuse(const std::string& why) {
        error = why;
        return false;
    }
};

}  // namespace

json parse_json_input(const std::string& text, const std::string& label) {
    // nlohmann's lexer reads a NUL byte as the end of input, so "[1]\0garbage"
    // would pass; JSON text never holds a raw NUL.
    if (const auto nul = text.find('\0'); nul != std::string::npos)
        throw JsonInputError(label + " is not valid JSON: a NUL byte at offset " + std::to_string(nul));
    StrictChecker checker;
    if (!json::sax_parse(text, &checker) || !checker.error.empty())
        throw JsonInputError(label + " " + (checker.error.empty() ? "is not valid JSON" : checker.error));
    return json::parse(text);
}

json read_json_input(const std::string& path, const std::string& kind) {
    const std::string label = (kind.empty() ? "" : kind + " ") + "'" + path + "'";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        const bool exists = std::filesystem::exists(path, ec);
        throw JsonInputError("cannot read " + label + (exists ? " (not a regular file)" : " (no such file)"));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in.is_open()) throw JsonInputError("cannot read " + label);
    const std::string text(std::istreambuf_iterator<char>(in), {});
    return parse_json_input(text, label);
}

}  // namespace sctape
