// tape.hpp — the reverse-mode tape. Each forward operation records the
// buffers its backward needs and its backward function; backward() runs the
// entries in reverse order and releases each entry's buffers as it goes.
//
// tape_bytes() counts the distinct buffers held (a buffer saved by several
// entries counts once), attributed to the scope active when it was first
// saved: the eight substeps, "drift", "beam" and "objective". Scalars that a
// backward closure captures (grid geometry, constants: O(1) per entry) are
// not buffers and are not counted; entries() reports how many there are.
//
//   sctape::Tape tape;
//   auto rho = std::make_shared<const sctape::HostArray<double>>(...);
//   {
//       sctape::TapeScope scope(tape, "deposit");
//       tape.record({tape.save(rho)}, [rho] { /* adjoint using *rho */ });
//   }
//   tape.tape_bytes();          // rho's bytes
//   tape.backward();            // runs the closure, frees rho
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/memory.hpp"

namespace sctape {

// A buffer kept alive by the tape, with its size in bytes.
struct SavedBuffer {
    std::shared_ptr<const void> owner;
    std::int64_t bytes = 0;
};

// One row of the per-scope report (CoDiPack's shape).
struct TapeScopeBytes {
    std::int64_t entries = 0;  // entries recorded in the scope
    std::int64_t buffers = 0;  // distinct buffers first saved in the scope
    std::int64_t bytes = 0;    // their bytes
};

class Tape {
public:
    template <class T>
    static SavedBuffer save(std::shared_ptr<const HostArray<T>> buffer) {
        const auto bytes = static_cast<std::int64_t>(buffer->size() * sizeof(T));
        return {std::move(buffer), bytes};
    }

    void record(std::vector<SavedBuffer> saved, std::function<void()> backward);
    // Runs every entry's backward, last first, releasing buffers as it goes.
    void backward();

    std::int64_t tape_bytes() const { return total_bytes_; }
    std::int64_t entries() const { return static_cast<std::int64_t>(entries_.size()); }
    bool empty() const { return entries_.empty(); }
    // Current holdings per scope; entry counts are of entries still held.
    const std::map<std::string, TapeScopeBytes>& by_scope() const { return by_scope_; }
    // Wall time backward() spent in each scope's entries, in seconds.
    const std::map<std::string, double>& backward_seconds_by_scope() const { return backward_seconds_; }

    const char* scope() const { return scope_; }
    void set_scope(const char* scope) { scope_ = scope; }

private:
    struct Entry {
        const char* scope;
        std::vector<SavedBuffer> saved;
        std::function<void()> backward;
    };
    struct Holding {
        std::int64_t count = 0;
        std::string scope;
        std::int64_t bytes = 0;
    };
    void release(const Entry& e);

    std::vector<Entry> entries_;
    std::unordered_map<const void*, Holding> held_;
    std::map<std::string, TapeScopeBytes> by_scope_;
    std::map<std::string, double> backward_seconds_;
    std::int64_t total_bytes_ = 0;
    const char* scope_ = "none";
};

// RAII: sets the tape's scope and tags allocator events with the same name.
class TapeScope {
public:
    TapeScope(Tape& tape, const char* name) : tape_(tape), previous_(tape.scope()), memory_(name) {
        tape_.set_scope(name);
    }
    ~TapeScope() { tape_.set_scope(previous_); }
    TapeScope(const TapeScope&) = delete;
    TapeScope& operator=(const TapeScope&) = delete;

private:
    Tape& tape_;
    const char* previous_;
    MemoryScope memory_;
};

}  // namespace sctape
