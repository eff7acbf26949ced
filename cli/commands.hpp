// commands.hpp — the subcommands of the `sctape` front end. Each takes the
// arguments after its name and returns the process exit code:
// 0 success, 2 bad input (message on stderr, no output file written).
#pragma once

#include <string>
#include <vector>

#include "subcommand.hpp"

namespace sctape::cli {


int track_command(const std::vector<std::string>& args);

}  // namespace sctape::cli
