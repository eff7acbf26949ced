#include "core/memory.hpp"

namespace sctape {

void MemoryTracker::update(std::int64_t delta) {
    std::int64_t now = current_.fetch_add(delta) + delta;
    std::int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    if (timeline_enabled_.load()) {
        double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        std::lock_guard<std::mutex> lock(timeline_mutex_);
        timeline_.push_back({t, now, scope_, backward_});
    }
}

void MemoryTracker::set_timeline(bool enabled) { timeline_enabled_.store(enabled); }

std::vector<MemoryEvent> MemoryTracker::timeline() const {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    return timeline_;
}

void MemoryTracker::clear_timeline() {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    timeline_.clear();
}

MemoryTracker& host_memory() {
    static MemoryTracker tracker;
    return tracker;
}

}  // namespace sctape
