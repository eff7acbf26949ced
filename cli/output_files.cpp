#include "output_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace sctape {
namespace {

namespace fs = std::filesystem;

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

const char* type_name(fs::file_type t) {
    switch (t) {
        case fs::file_type::directory: return "a directory";
        case fs::file_type::fifo: return "a FIFO";
        case fs::file_type::character: return "a character device";
        case fs::file_type::block: return "a block device";
        case fs::file_type::socket: return "a socket";
        default: return "not a regular file";
    }
}

// An absent path or a regular file (through symlinks), in an existing directory.
void check_writable_target(const OutputTarget& o) {
    std::error_code ec;
    const fs::file_status st = fs::status(o.path, ec);
    if (fs::exists(st) && !fs::is_regular_file(st))
        throw std::runtime_error(o.option + " " + in_quotes(o.path) + " is " + type_name(st.type()) +
                                 ", not a regular file");
    if (fs::path(o.path).filename().empty())
        throw std::runtime_error(o.option + " " + in_quotes(o.path) + " names a directory, not a file");
    const fs::path dir = fs::absolute(o.path, ec).parent_path();
    if (!fs::is_directory(dir, ec))
        throw std::runtime_error("cannot write " + o.option + " " + in_quotes(o.path) + ": " + in_quotes(dir.string()) +
                                 " is not an existing directory");
}

// Whether a and b name one file: the same path once symlinks and "." are
// resolved, or (both existing) the same inode, as hard links are.
bool same_file(const std::string& a, const std::string& b) {
    std::error_code ec1, ec2;
    const fs::path ca = fs::weakly_canonical(fs::absolute(a), ec1), cb = fs::weakly_canonical(fs::absolute(b), ec2);
    if (!ec1 && !ec2 && ca == cb) return true;
    std::error_code ec;
    return fs::equivalent(a, b, ec) && !ec;
}

void check_distinct(const std::vector<OutputTarget>& outputs, const std::vector<std::string>& inputs) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        for (const std::string& input : inputs)
            if (same_file(outputs[i].path, input))
                throw std::runtime_error(outputs[i].option + " " + in_quotes(outputs[i].path) +
                                         " is the input " + in_quotes(input) + ": refusing to overwrite it");
        for (std::size_t j = 0; j < i; ++j)
            if (same_file(outputs[i].path, outputs[j].path))
                throw std::runtime_error(outputs[j].option + " " + in_quotes(outputs[j].path) + " and " +
                                         outputs[i].option + " " + in_quotes(outputs[i].path) + " are the same file");
    }
}

// Writes all of `content` to the new file `tmp`; returns 0 or the errno.
int write_new_file(const std::string& tmp, const std::string& content) {
    // O_EXCL: never write through whatever (a symlink, a FIFO) already sits at the temporary's name
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    const char* p = content.data();
    std::size_t left = content.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : EIO;
            ::close(fd);
            return err;
        }
        p += n;
        left -= std::size_t(n);
    }
    return ::close(fd) == 0 ? 0 : errno;  // NFS and quotas may report ENOSPC only here
}

}  // namespace

void check_output_targets(const std::vector<OutputTarget>& outputs, const std::vector<std::string>& inputs) {
    for (const OutputTarget& o : outputs) check_writable_target(o);
    check_distinct(outputs, inputs);
}

StagedFiles::~StagedFiles() { discard(); }

void StagedFiles::stage(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    const int err = write_new_file(tmp, content);
    if (err == 0) {
        staged_.emplace_back(tmp, path);
        return;
    }
    if (err != EEXIST) ::unlink(tmp.c_str());  // a partial temporary is ours; an existing one is not
    discard();
    throw std::runtime_error("cannot write " + in_quotes(path) + " (writing " + in_quotes(tmp) +
                             " failed: " + std::strerror(err) + ")");
}

void StagedFiles::commit() {
    for (auto it = staged_.begin(); it != staged_.end(); it = staged_.erase(it))
        if (std::rename(it->first.c_str(), it->second.c_str()) != 0) {
            const int err = errno;
            discard();
            throw std::runtime_error("cannot move the output into place at " + in_quotes(it->second) + ": " +
                                     std::strerror(err));
        }
}

void StagedFiles::discard() noexcept {
    for (const auto& staged : staged_) ::unlink(staged.first.c_str());
    staged_.clear();
}

void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
    StagedFiles staged;
    for (const auto& [path, content] : files) staged.stage(path, content);
    staged.commit();
}

void write_file_atomically(const std::string& path, const std::string& content) {
    write_files_atomically({{path, content}});
}

}  // namespace sctape
