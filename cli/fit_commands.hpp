// fit_commands.hpp — the `sctape fit`, `check`, `plan` and `merge` subcommands
// (the scaling suite). Each takes the arguments after its name and returns the
// exit code: 0 success, 1 a regression (check only), 2 bad input (message on
// stderr, nothing written).
#pragma once

#include <string>
#include <vector>

namespace sctape::cli {

int fit_command(const std::vector<std::string>& args);
int check_command(const std::vector<std::string>& args);
int plan_command(const std::vector<std::string>& args);
int merge_command(const std::vector<std::string>& args);  // merge_command.cpp

}  // namespace sctape::cli
