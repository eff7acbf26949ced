// communicator.hpp — what the physics and the strategies need from a
// distributed run, and nothing of MPI: the ranks' count and index, in-place
// reductions over the ranks, and agreement on errors. The serial communicator
// (one rank, every reduction a no-op) is installed by default, so code that
// never installs another runs as before; the MPI one (core/mpi_communicator.hpp,
// built with SCTAPE_MPI) is installed by the command line.
//
// Particle decomposition: rank r of P owns particles [lo, hi) of the global
// set (particle_range); every rank holds the whole grid.
//
//   sctape::Communicator& comm = sctape::communicator();
//   comm.sum(rho.data(), cells);                   // every rank gets the total
//   sctape::check_on_all_ranks(ok, "non-finite");  // throws CollectiveError on every rank
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sctape {

// How a reduction reaches device memory when the MPI library cannot read it:
// the accelerator's layer implements it (cuda/device_staging.cuh, on the
// tracker's stream); core sees no CUDA.
class DeviceStaging {
public:
    virtual ~DeviceStaging() = default;
    // Every queued write to the device memory has finished (MPI reads it next).
    virtual void finish_writes() = 0;
    // Host memory of at least `bytes` (pinned on CUDA), kept for the next calls.
    virtual void* host_buffer(std::size_t bytes) = 0;
    // Blocking copies: when they return the destination holds the bytes.
    virtual void to_host(void* host, const void* device, std::size_t bytes) = 0;
    virtual void to_device(void* device, const void* host, std::size_t bytes) = 0;
};

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // true for an MPI run (even with one rank): the run's reductions follow
    // the distributed rules (fixed-point deposit for `reversible`).
    virtual bool distributed() const = 0;
    // In place; every rank receives the result.
    virtual void sum(double* values, std::int64_t count) = 0;
    virtual void sum(float* values, std::int64_t count) = 0;
    virtual void sum(std::int64_t* values, std::int64_t count) = 0;
    virtual void min(double* values, std::int64_t count) = 0;
    virtual void max(double* values, std::int64_t count) = 0;
    // Whether the reductions may be handed device memory (an MPI library that
    // is CUDA-aware at build and at run time); otherwise sum_device and its
    // kin stage the values through the host.
    virtual bool reads_device_memory() const { return false; }
    // In place over `count` values in device memory, every rank receiving the
    // result there. One rank: nothing happens (no copy, no wait). Otherwise
    // staging.finish_writes() first; then either the device pointer goes to
    // the reduction (reads_device_memory()), or the values are copied into
    // staging.host_buffer(), reduced there and copied back. On return the
    // device memory holds the result and no copy is pending.
    void sum_device(double* values, std::int64_t count, DeviceStaging& staging);
    void sum_device(float* values, std::int64_t count, DeviceStaging& staging);
    void sum_device(std::int64_t* values, std::int64_t count, DeviceStaging& staging);
    void min_device(double* values, std::int64_t count, DeviceStaging& staging);
    void max_device(double* values, std::int64_t count, DeviceStaging& staging);
    // Every rank's `values` (any count per rank) concatenated in rank order,
    // on rank 0; the other ranks receive an empty vector.
    virtual std::vector<double> gather(const double* values, std::int64_t count) = 0;
    // Ends every rank at once with `code` (a rank failed where the others cannot learn of it).
    [[noreturn]] virtual void abort(int code) = 0;
};

// One rank, nothing to reduce.
class SerialCommunicator final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    bool distributed() const override { return false; }
    void sum(double*, std::int64_t) override {}
    void sum(float*, std::int64_t) override {}
    void sum(std::int64_t*, std::int64_t) override {}
    void min(double*, std::int64_t) override {}
    void max(double*, std::int64_t) override {}
    std::vector<double> gather(const double* values, std::int64_t count) override {
        return std::vector<double>(values, values + count);
    }
    [[noreturn]] void abort(int code) override;
};

// The run's communicator (serial unless another was installed).
Communicator& communicator();
// Installs `comm` for the rest of the process (null: the serial one again).
void install_communicator(std::unique_ptr<Communicator> comm);

// A failure every rank reached together (its cause was reduced over the
// ranks), so every rank throws it and none is left waiting in a reduction.
class CollectiveError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// True on every rank when `ok` holds on every rank.
bool all_ranks(bool ok);
// Throws CollectiveError(message) on every rank unless `ok` holds on all of them.
void check_on_all_ranks(bool ok, const std::string& message);

// A term every rank computed alike from reduced (replicated) data, kept by
// rank 0 alone: the parameter adjoints are summed over the ranks at the end.
inline double counted_once(double value) { return communicator().rank() == 0 ? value : 0.0; }

// The global particles [begin, end) rank `rank` of `ranks` owns: contiguous
// blocks, the first n % ranks ranks one particle more.
struct ParticleRange {
    std::int64_t begin = 0, end = 0;
    std::int64_t size() const { return end - begin; }
};
ParticleRange particle_range(std::int64_t n, int rank, int ranks);
// This rank's share under the installed communicator.
ParticleRange local_particles(std::int64_t n);

}  // namespace sctape
