#include "core/memory.hpp"

#include <algorithm>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace sctape {
namespace {

// Every live tracker, for KickMark. Never destroyed, so that trackers that
// are static objects themselves can unregister at exit in any order.
struct Registry {
    std::mutex mutex;
    std::vector<MemoryTracker*> trackers;
};

Registry& registry() {
    static Registry* r = new Registry;
    return *r;
}

}  // namespace

MemoryTracker::MemoryTracker() : start_(std::chrono::steady_clock::now()) {
    std::lock_guard<std::mutex> lock(registry().mutex);
    registry().trackers.push_back(this);
}

MemoryTracker::~MemoryTracker() {
    std::lock_guard<std::mutex> lock(registry().mutex);
    auto& list = registry().trackers;
    list.erase(std::remove(list.begin(), list.end(), this), list.end());
}

double MemoryTracker::seconds_since_start() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void MemoryTracker::update(std::int64_t delta) {
    std::int64_t now = current_.fetch_add(delta) + delta;
    std::int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    if (timeline_enabled_.load()) {
        const double t = seconds_since_start();
        std::lock_guard<std::mutex> lock(timeline_mutex_);
        timeline_.push_back({t, now, scope_, backward_});
    }
}

void MemoryTracker::set_timeline(bool enabled) { timeline_enabled_.store(enabled); }

std::vector<MemoryEvent> MemoryTracker::timeline() const {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    return timeline_;
}

std::vector<KickEvent> MemoryTracker::kicks() const {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    return kicks_;
}

void MemoryTracker::clear_timeline() {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    timeline_.clear();
    kicks_.clear();
}

void MemoryTracker::add_kick(double start_s, double end_s) {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    kicks_.push_back({start_s, end_s, backward_});
}

KickMark::KickMark() {
    std::lock_guard<std::mutex> lock(registry().mutex);
    for (MemoryTracker* t : registry().trackers)
        if (t->timeline_enabled()) started_.emplace_back(t, t->seconds_since_start());
}

KickMark::~KickMark() {
    // a tracker in started_ is one of the process's static trackers: still alive
    for (const auto& [tracker, start_s] : started_) tracker->add_kick(start_s, tracker->seconds_since_start());
}

MemoryTracker& host_memory() {
    static MemoryTracker tracker;
    return tracker;
}

void keep_freed_host_memory() {
#ifdef __GLIBC__
    // blocks up to glibc's largest threshold (32 MiB) come from the heap,
    // whose top is never trimmed; larger ones are still mapped and unmapped
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, -1);
#endif
}

}  // namespace sctape
