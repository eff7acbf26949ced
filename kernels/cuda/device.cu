// device.cu — device probe, the tracked device allocator and its cross-check.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <sstream>

#include "cuda/device.hpp"
#include "cuda/device_alloc.cuh"
#include "cuda/launch.cuh"

namespace sctape::cuda {

namespace {
__global__ void probe_kernel(int* flag) { *flag = 42; }
}  // namespace

int use_device_of_local_rank() {
    int local_rank = -1;
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
        const char* v = std::getenv(name);
        char* end = nullptr;
        if (!v || !*v) continue;
        const long r = std::strtol(v, &end, 10);
        if (*end == '\0' && r >= 0 && r < std::numeric_limits<int>::max()) {
            local_rank = int(r);
            break;
        }
    }
    int count = 0;
    if (local_rank < 0 || cudaGetDeviceCount(&count) != cudaSuccess || count < 2) {
        cudaGetLastError();  // no device is no error here: the backend's probe reports it
        return -1;
    }
    const int device = local_rank % count;
    if (cudaSetDevice(device) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return device;
}

int probe_devices(std::string& description) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        description = std::string("CUDA runtime: ") + cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error
        return 0;
    }
    if (count == 0) {
        description = "CUDA runtime: no device";
        return 0;
    }
    int device = 0;  // the current one: 0 unless use_device_of_local_rank chose another
    cudaDeviceProp prop{};
    if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError();
        description = "CUDA runtime: device " + std::to_string(device) + " unreadable";
        return 0;
    }
    // A device whose context cannot be made, or that cannot run this build's
    // code (sm_80/sm_90 plus PTX), is no usable GPU either: run one tiny kernel.
    int* flag = nullptr;
    int value = 0;
    err = cudaMalloc(&flag, sizeof(int));
    if (err == cudaSuccess) {
        probe_kernel<<<1, 1>>>(flag);
        err = cudaGetLastError();
        if (err == cudaSuccess) err = cudaMemcpy(&value, flag, sizeof(int), cudaMemcpyDeviceToHost);
        cudaFree(flag);
        if (err == cudaSuccess && value != 42) err = cudaErrorUnknown;
    }
    if (err != cudaSuccess) {
        description = std::string(prop.name) + ": " + cudaGetErrorString(err);
        cudaGetLastError();
        return 0;
    }
    std::ostringstream d;
    d << prop.name << " (sm_" << prop.major << prop.minor << ", " << (prop.totalGlobalMem >> 20) << " MiB)";
    description = d.str();
    return count;
}

void check(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return;
    cudaGetLastError();  // clear non-sticky errors so the next call starts clean
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

namespace {
std::atomic<std::int64_t> waits{0};
std::atomic<int> max_blocks{0};
}  // namespace

std::int64_t host_waits() { return waits.load(); }

void wait(cudaStream_t stream, const char* what) {
    ++waits;
    check(cudaStreamSynchronize(stream), what);
}

void wait(cudaEvent_t event, const char* what) {
    ++waits;
    check(cudaEventSynchronize(event), what);
}

void set_block_limit(int blocks) { max_blocks.store(blocks > 0 ? blocks : 0); }

int block_limit() {
    const int b = max_blocks.load();
    return b > 0 ? b : kMaxBlocks;
}

MemoryTracker& device_memory() {
    static MemoryTracker tracker;
    return tracker;
}

namespace {

std::string mib(double bytes) {
    std::ostringstream s;
    s.precision(bytes >= 1024.0 * 1024.0 * 1024.0 ? 4 : 3);
    s << bytes / (1024.0 * 1024.0) << " MiB";
    return s.str();
}

// Whether the current device allocates from stream-ordered memory pools; on
// first use the default pool keeps freed memory cached (release threshold
// max), as PyTorch's caching allocator does.
bool uses_pool() {
    static std::once_flag once;
    static bool pools = false;
    std::call_once(once, [] {
        int device = 0, supported = 0;
        if (cudaGetDevice(&device) != cudaSuccess ||
            cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess) {
            cudaGetLastError();
            return;
        }
        pools = supported != 0;
        if (pools) {
            cudaMemPool_t pool;
            if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
                std::uint64_t threshold = std::numeric_limits<std::uint64_t>::max();
                cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
            }
            cudaGetLastError();
        }
    });
    return pools;
}

}  // namespace

void* device_allocate(std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    cudaError_t err = uses_pool() ? cudaMallocAsync(&p, bytes, stream) : cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        std::size_t free_bytes = 0, total_bytes = 0;
        const bool info = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
        cudaGetLastError();
        std::ostringstream msg;
        if (err == cudaErrorMemoryAllocation) msg << "out of GPU memory: ";
        else msg << "GPU allocation failed (" << cudaGetErrorString(err) << "): ";
        msg << "requested " << bytes << " bytes (" << mib(double(bytes)) << ")";
        if (info) msg << ", the device has " << mib(double(free_bytes)) << " free of " << mib(double(total_bytes));
        msg << ", sctape holds " << mib(double(device_memory().current_bytes()))
            << " (reduce n_particles or space_charge.grid)";
        throw std::runtime_error(msg.str());
    }
    device_memory().on_alloc(bytes);
    return p;
}

void device_free(void* p, std::size_t bytes, cudaStream_t stream) noexcept {
    if (!p) return;
    cudaError_t err = uses_pool() ? cudaFreeAsync(p, stream) : cudaFree(p);
    device_memory().on_free(bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        static std::atomic<bool> reported{false};
        if (!reported.exchange(true))
            std::fprintf(stderr, "sctape: CUDA error freeing device memory: %s\n", cudaGetErrorString(err));
    }
}

DeviceMemoryCheck check_device_memory() {
    DeviceMemoryCheck c;
    std::string why;
    c.tracked_bytes = device_memory().current_bytes();
    c.tracked_peak_bytes = device_memory().peak_bytes();
    if (probe_devices(why) == 0) {
        c.summary = "no usable GPU (" + why + ")";
        return c;
    }
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
        cudaGetLastError();
        c.summary = "cudaMemGetInfo failed";
        return c;
    }
    c.available = true;
    c.device_free_bytes = std::int64_t(free_bytes);
    c.device_total_bytes = std::int64_t(total_bytes);
    c.device_used_bytes = c.device_total_bytes - c.device_free_bytes;
    c.uses_pool = uses_pool();
    if (c.uses_pool) {
        int device = 0;
        cudaMemPool_t pool;
        std::uint64_t used = 0, reserved = 0;
        if (cudaGetDevice(&device) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess &&
            cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess &&
            cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess) {
            c.pool_used_bytes = std::int64_t(used);
            c.pool_reserved_bytes = std::int64_t(reserved);
        }
        cudaGetLastError();
        c.consistent = c.tracked_bytes <= c.pool_used_bytes && c.pool_used_bytes <= c.pool_reserved_bytes &&
                       c.pool_reserved_bytes <= c.device_used_bytes;
    } else {
        c.consistent = c.tracked_bytes <= c.device_used_bytes;
    }
    c.untracked_bytes = c.device_used_bytes - c.tracked_bytes;
    std::ostringstream s;
    s << "tracked " << mib(double(c.tracked_bytes)) << " (peak " << mib(double(c.tracked_peak_bytes)) << ")";
    if (c.uses_pool) s << ", pool used " << mib(double(c.pool_used_bytes)) << " reserved " << mib(double(c.pool_reserved_bytes));
    s << ", device used " << mib(double(c.device_used_bytes)) << " of " << mib(double(c.device_total_bytes))
      << (c.consistent ? "" : " (INCONSISTENT)");
    c.summary = s.str();
    return c;
}

void trim_device_pool() {
    if (!uses_pool()) return;
    int device = 0;
    cudaMemPool_t pool;
    if (cudaGetDevice(&device) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
        cudaDeviceSynchronize();
        cudaMemPoolTrimTo(pool, 0);
    }
    cudaGetLastError();
}

}  // namespace sctape::cuda
