#include "ad/tape.hpp"

#include <chrono>

namespace sctape {

void Tape::record(std::vector<SavedBuffer> saved, std::function<void()> backward) {
    by_scope_[scope_].entries += 1;
    for (const SavedBuffer& b : saved) {
        Holding& h = held_[b.owner.get()];
        if (h.count++ == 0) {
            h.scope = scope_;
            h.bytes = b.bytes;
            TapeScopeBytes& row = by_scope_[scope_];
            row.buffers += 1;
            row.bytes += b.bytes;
            total_bytes_ += b.bytes;
        }
    }
    entries_.push_back({scope_, std::move(saved), std::move(backward)});
}

void Tape::release(const Entry& e) {
    by_scope_[e.scope].entries -= 1;
    for (const SavedBuffer& b : e.saved) {
        auto it = held_.find(b.owner.get());
        if (--it->second.count == 0) {
            TapeScopeBytes& row = by_scope_[it->second.scope];
            row.buffers -= 1;
            row.bytes -= it->second.bytes;
            total_bytes_ -= it->second.bytes;
            held_.erase(it);
        }
    }
}

void Tape::backward() {
    const bool was_backward = host_memory().backward();
    host_memory().set_backward(true);
    while (!entries_.empty()) {
        Entry e = std::move(entries_.back());
        entries_.pop_back();
        {
            MemoryScope scope(e.scope);
            const auto start = std::chrono::steady_clock::now();
            if (e.backward) e.backward();
            backward_seconds_[e.scope] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        release(e);
    }  // e's buffers are freed here unless something else still holds them
    host_memory().set_backward(was_backward);
}

}  // namespace sctape
