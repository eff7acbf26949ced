// files.hpp — scratch folders and file contents for the tests that run the
// binaries (each test case gets its own folder under the build's tests/tmp).
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sctape::test {

// An empty folder SCTAPE_TEST_TMPDIR/NAME (removed first if present).
inline std::filesystem::path scratch_dir(const std::string& name) {
    const std::filesystem::path dir = std::filesystem::path(SCTAPE_TEST_TMPDIR) / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

inline std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace sctape::test
