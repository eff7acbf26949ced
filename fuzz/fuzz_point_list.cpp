// libFuzzer target: what `sctape fit` reads -> fit_document (a plain point
// list or a Google Benchmark sweep, then the fit). Any input must end in
// COEFFS or a FitError; anything else escaping, a crash, or a sanitizer
// report is a finding.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "coeffs.hpp"
#include "sweep.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const nlohmann::json doc = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return 0;  // read_json_file reports it as a FitError
    try {
        const nlohmann::json coeffs = sctape::fit::fit_document(doc, {});
        (void)coeffs.dump();  // what `sctape fit -o` writes
    } catch (const sctape::fit::FitError&) {
    }
    return 0;
}
