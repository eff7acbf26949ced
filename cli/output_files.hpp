// output_files.hpp — how every subcommand writes files. Two steps, so that
// bad input or a failed run writes nothing:
//   1. check_output_targets, before any work: each output is absent or a
//      regular file (a FIFO, device or directory is refused rather than
//      replaced), in an existing directory, named once, and not an input.
//   2. StagedFiles: each output goes to PATH.tmp-<pid> (created exclusively)
//      and is renamed into place only by commit(), after everything else,
//      standard output included, succeeded; temporaries not committed are
//      removed.
//
//   check_output_targets({{"--out", out}}, {config_path});
//   StagedFiles files;
//   files.stage(out, text);          // throws, nothing left behind
//   check_stdout();                  // subcommand.hpp
//   files.commit();
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sctape {

struct OutputTarget {
    std::string option;  // the option that names it, for messages: "--out"
    std::string path;
};

// Throws std::runtime_error naming the option, the path and the cause.
void check_output_targets(const std::vector<OutputTarget>& outputs, const std::vector<std::string>& inputs);

class StagedFiles {
public:
    StagedFiles() = default;
    StagedFiles(const StagedFiles&) = delete;
    StagedFiles& operator=(const StagedFiles&) = delete;
    ~StagedFiles();

    // Writes `content` to the temporary of `path`; on failure removes every
    // temporary staged so far and throws std::runtime_error.
    void stage(const std::string& path, const std::string& content);
    // Renames every temporary over its path.
    void commit();

private:
    std::vector<std::pair<std::string, std::string>> staged_;  // temporary, final path
    void discard() noexcept;
};

// One call: stage every file, then commit.
void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files);
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace sctape
