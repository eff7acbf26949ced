// subcommand.hpp — the frame every `sctape` subcommand shares: `--help` or
// `-h` anywhere prints its usage (exit 0); an exception is reported as
// "sctape NAME: error: ..." on standard error with exit 2 (bad input,
// nothing written); so is standard output that could not be written (a full
// disk, a closed descriptor); otherwise the body's own exit code.
//
//   int fit_command(const std::vector<std::string>& args) {
//       return run_subcommand("fit", kFitUsage, args, [&] { ...; return 0; });
//   }
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/communicator.hpp"

namespace sctape::cli {

constexpr int kExitBadInput = 2;

// Flushes std::cout and C's stdout (plan prints with printf) and throws when
// anything written to them was lost: a result that never arrived must not
// exit 0. Commands that also write files call it before committing them.
inline void check_stdout() {
    // a write that failed earlier left its cause in errno: keep it for the message
    if (std::cout.good() && !std::ferror(stdout)) errno = 0;
    std::cout.flush();
    const bool flushed = std::fflush(stdout) == 0;
    if (std::cout.good() && flushed && !std::ferror(stdout)) return;
    const int err = errno;
    throw std::runtime_error(std::string("cannot write to standard output") +
                             (err ? std::string(" (") + std::strerror(err) + ")" : ""));
}

template <class Body>
int run_subcommand(const char* name, const char* usage, const std::vector<std::string>& args, Body&& body) {
    try {
        for (const auto& a : args)
            if (a == "--help" || a == "-h") {
                std::cout << usage;
                check_stdout();
                return 0;
            }
        const int code = body();
        check_stdout();
        return code;
    } catch (const std::bad_alloc&) {
        if (communicator().rank() == 0) std::cerr << "sctape " << name << ": error: out of memory\n";
    } catch (const std::exception& e) {
        // over MPI ranks every rank reached it alike (see ranks.hpp): rank 0 tells
        if (communicator().rank() == 0) std::cerr << "sctape " << name << ": error: " << e.what() << "\n";
    }
    return kExitBadInput;
}

}  // namespace sctape::cli
