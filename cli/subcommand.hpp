// subcommand.hpp — the frame every `sctape` subcommand shares: `--help` or
// `-h` anywhere prints its usage (exit 0); an exception is reported as
// "sctape NAME: error: ..." on standard error with exit 2 (bad input,
// nothing written); otherwise the body's own exit code.
//
//   int fit_command(const std::vector<std::string>& args) {
//       return run_subcommand("fit", kFitUsage, args, [&] { ...; return 0; });
//   }
#pragma once

#include <iostream>
#include <new>
#include <string>
#include <vector>

namespace sctape::cli {

constexpr int kExitBadInput = 2;

template <class Body>
int run_subcommand(const char* name, const char* usage, const std::vector<std::string>& args, Body&& body) {
    for (const auto& a : args)
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            return 0;
        }
    try {
        return body();
    } catch (const std::bad_alloc&) {
        std::cerr << "sctape " << name << ": error: out of memory\n";
    } catch (const std::exception& e) {
        std::cerr << "sctape " << name << ": error: " << e.what() << "\n";
    }
    return kExitBadInput;
}

}  // namespace sctape::cli
