// libFuzzer target: CONFIG.json text -> parse_config. Any input must end in a
// RunConfig or a ConfigError (or the choice parsers' std::invalid_argument);
// anything else escaping, a crash, or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;  // not JSON: load_config reports it before parse_config runs
    try {
        (void)sctape::parse_config(j);
    } catch (const sctape::ConfigError&) {
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
