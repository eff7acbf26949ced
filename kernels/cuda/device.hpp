// device.hpp — host-callable queries of the CUDA runtime and the device
// memory accounting (no CUDA types here, so host-only code can include it).
//
//   std::string why;
//   if (sctape::cuda::probe_devices(why) > 0) { ... }      // any CUDA error: 0
//   auto& mem = sctape::cuda::device_memory();               // MemoryTracker of device bytes
//   sctape::cuda::DeviceMemoryCheck c = sctape::cuda::check_device_memory();
//   c.consistent;  c.untracked_bytes;                        // vs. the pool and cudaMemGetInfo
//   std::int64_t w = sctape::cuda::host_waits();             // synchronisations so far
#pragma once

#include <cstdint>
#include <string>

#include "core/memory.hpp"

namespace sctape::cuda {

// Number of usable devices (0 on any error); `description` names device 0 or the error.
int probe_devices(std::string& description);

// Over MPI ranks on a node with several visible GPUs: makes device
// (node-local rank mod count) current, the node-local rank as the launcher
// gives it (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or SLURM_LOCALID).
// Call before any other CUDA work of the process. Returns the device made
// current, or -1 when the runtime's choice stands (at most one device
// visible, no local rank in the environment, or an error).
int use_device_of_local_rank();

// Every device buffer of the CUDA backend is allocated through one allocator
// (cudaMallocAsync on the caller's stream from the device's default memory
// pool, or cudaMalloc where pools are unsupported) that reports to this
// tracker: current and peak bytes and, when enabled, the timeline tagged
// with the active MemoryScope(name, device_memory()). The analogue of
// torch.cuda.memory_allocated(). An allocation the device cannot satisfy
// throws std::runtime_error naming the requested size and what was free.
MemoryTracker& device_memory();

// The tracker cross-checked against the memory pool and cudaMemGetInfo.
struct DeviceMemoryCheck {
    bool available = false;             // false without a usable GPU (other fields 0)
    std::int64_t tracked_bytes = 0;     // device_memory().current_bytes()
    std::int64_t tracked_peak_bytes = 0;
    std::int64_t pool_used_bytes = 0;   // pool attribute UsedMemCurrent (allocations live in the pool)
    std::int64_t pool_reserved_bytes = 0;  // pool attribute ReservedMemCurrent (held from the driver)
    std::int64_t device_free_bytes = 0;    // cudaMemGetInfo
    std::int64_t device_total_bytes = 0;
    std::int64_t device_used_bytes = 0;    // total - free (all processes, contexts, cuFFT plans, ...)
    std::int64_t untracked_bytes = 0;      // device_used - tracked: context, FFT plans, other processes
    bool uses_pool = false;
    // tracked <= pool used <= pool reserved <= device used (pool mode), or
    // tracked <= device used (plain cudaMalloc mode)
    bool consistent = false;
    std::string summary;  // one line for logs
};
DeviceMemoryCheck check_device_memory();

// Returns cached, unused pool memory to the driver (cudaMemPoolTrimTo 0).
void trim_device_pool();

// The host's waits on the device (stream and event synchronisations) the
// CUDA backend made since the process started: tests and the benchmark count
// them per kick (a kick makes none; docs/gpu.md).
std::int64_t host_waits();

// The most blocks one grid-stride launch uses (default 65536, so one pass
// covers 2^24 elements). Tests lower it so that a small beam needs several
// grid-stride passes; 0 restores the default. Set it only between runs.
void set_block_limit(int blocks);

}  // namespace sctape::cuda
