// memory.hpp — the tracking allocator: every buffer of the tracking comes from
// here, so the suite knows current and peak bytes and, optionally, a timeline
// of allocation events tagged with the substep scope that made them. It is the
// analogue of torch.cuda.memory_allocated() and PyTorch's memory profiler.
//
//   sctape::HostArray<double> rho(n_cells);        // counted
//   auto& mem = sctape::host_memory();
//   std::int64_t before = mem.current_bytes();
//   { sctape::MemoryScope scope("deposit"); ... }   // events tagged "deposit"
//   std::int64_t peak = mem.peak_bytes();
//   { sctape::KickMark mark; kick(...); }         // a kick's start and end on the timeline
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace sctape {

struct MemoryEvent {
    double time_s;              // since the tracker was created
    std::int64_t current_bytes; // after the event
    std::string scope;          // substep active when it happened
    bool backward;              // recorded during a backward pass
};

// One evaluation of the space-charge kick, as a timeline marker.
struct KickEvent {
    double start_s, end_s;  // same clock as MemoryEvent::time_s
    bool backward;          // evaluated during a backward pass (a recomputation)
};

class MemoryTracker {
public:
    MemoryTracker();  // registers itself for KickMark
    ~MemoryTracker();
    MemoryTracker(const MemoryTracker&) = delete;
    MemoryTracker& operator=(const MemoryTracker&) = delete;

    void on_alloc(std::size_t bytes) {
        allocations_.fetch_add(1);
        allocated_bytes_.fetch_add(static_cast<std::int64_t>(bytes));
        update(static_cast<std::int64_t>(bytes));
    }
    void on_free(std::size_t bytes) { update(-static_cast<std::int64_t>(bytes)); }

    std::int64_t current_bytes() const { return current_.load(); }
    // Cumulative since creation: number of allocations and bytes allocated.
    std::int64_t allocations() const { return allocations_.load(); }
    std::int64_t allocated_bytes() const { return allocated_bytes_.load(); }
    std::int64_t peak_bytes() const { return peak_.load(); }
    // Restart peak tracking from the current level (e.g. before one kick).
    void reset_peak() { peak_.store(current_.load()); }

    void set_timeline(bool enabled);
    bool timeline_enabled() const { return timeline_enabled_.load(); }
    std::vector<MemoryEvent> timeline() const;
    // The kicks that ran while the timeline was on; cleared with it.
    std::vector<KickEvent> kicks() const;
    void clear_timeline();
    void add_kick(double start_s, double end_s);
    double seconds_since_start() const;

    // Scope and direction tags for the timeline; MemoryScope sets them.
    const char* scope() const { return scope_; }
    void set_scope(const char* scope) { scope_ = scope; }
    bool backward() const { return backward_; }
    void set_backward(bool backward) { backward_ = backward; }

private:
    void update(std::int64_t delta);

    std::atomic<std::int64_t> current_{0};
    std::atomic<std::int64_t> peak_{0};
    std::atomic<std::int64_t> allocations_{0};
    std::atomic<std::int64_t> allocated_bytes_{0};
    std::atomic<bool> timeline_enabled_{false};
    mutable std::mutex timeline_mutex_;
    std::vector<MemoryEvent> timeline_;
    std::vector<KickEvent> kicks_;
    const char* scope_ = "none";
    bool backward_ = false;
    std::chrono::steady_clock::time_point start_;
};

// The tracker for host memory (the CUDA backend has its own).
MemoryTracker& host_memory();

// RAII: marks one kick on the timeline of every tracker recording one. The
// kick's code does not know which allocator (host or device) the run counts,
// so the mark goes to whichever timeline is on; with none on it costs nothing.
class KickMark {
public:
    KickMark();
    ~KickMark();
    KickMark(const KickMark&) = delete;
    KickMark& operator=(const KickMark&) = delete;

private:
    std::vector<std::pair<MemoryTracker*, double>> started_;  // tracker, start time
};

// RAII: tags allocation events with a scope name for its lifetime.
class MemoryScope {
public:
    explicit MemoryScope(const char* name, MemoryTracker& tracker = host_memory())
        : tracker_(tracker), previous_(tracker.scope()) { tracker_.set_scope(name); }
    ~MemoryScope() { tracker_.set_scope(previous_); }
    MemoryScope(const MemoryScope&) = delete;
    MemoryScope& operator=(const MemoryScope&) = delete;

private:
    MemoryTracker& tracker_;
    const char* previous_;
};

// 64-byte aligned (SIMD and FFTW friendly) allocator that reports to host_memory().
template <class T>
struct TrackedAllocator {
    using value_type = T;
    static constexpr std::size_t kAlignment = 64;

    TrackedAllocator() = default;
    template <class U>
    TrackedAllocator(const TrackedAllocator<U>&) {}

    T* allocate(std::size_t n) {
        std::size_t bytes = n * sizeof(T);
        std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
        void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
        if (!p) throw std::bad_alloc();
        host_memory().on_alloc(bytes);
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) {
        host_memory().on_free(n * sizeof(T));
        std::free(p);
    }
    template <class U>
    bool operator==(const TrackedAllocator<U>&) const { return true; }
    template <class U>
    bool operator!=(const TrackedAllocator<U>&) const { return false; }
};

template <class T>
using HostArray = std::vector<T, TrackedAllocator<T>>;

// For a program's main: asks the C library to keep freed blocks for reuse
// rather than hand them back to the system. Backward passes free and allocate
// the same sizes at every kick, and every fresh page costs a fault and a
// zero fill (13% of the reversible backward at 10^5 particles on 32^3). The
// tracker's counts do not change; the process keeps its peak resident.
void keep_freed_host_memory();

}  // namespace sctape
