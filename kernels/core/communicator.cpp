#include "core/communicator.hpp"

#include <algorithm>
#include <cstdlib>

namespace sctape {
namespace {

std::unique_ptr<Communicator>& installed() {
    static std::unique_ptr<Communicator> comm = std::make_unique<SerialCommunicator>();
    return comm;
}

// The staged or direct reduction of device memory (Communicator::sum_device).
template <class T, class Reduce>
void reduce_device(Communicator& comm, T* values, std::int64_t count, DeviceStaging& staging, Reduce reduce) {
    if (comm.size() == 1 || count <= 0) return;
    staging.finish_writes();
    if (comm.reads_device_memory()) {
        reduce(values, count);
        return;
    }
    const std::size_t bytes = std::size_t(count) * sizeof(T);
    T* host = static_cast<T*>(staging.host_buffer(bytes));
    staging.to_host(host, values, bytes);
    reduce(host, count);
    staging.to_device(values, host, bytes);
}

}  // namespace

void Communicator::sum_device(double* v, std::int64_t n, DeviceStaging& s) {
    reduce_device(*this, v, n, s, [this](double* h, std::int64_t c) { sum(h, c); });
}
void Communicator::sum_device(float* v, std::int64_t n, DeviceStaging& s) {
    reduce_device(*this, v, n, s, [this](float* h, std::int64_t c) { sum(h, c); });
}
void Communicator::sum_device(std::int64_t* v, std::int64_t n, DeviceStaging& s) {
    reduce_device(*this, v, n, s, [this](std::int64_t* h, std::int64_t c) { sum(h, c); });
}
void Communicator::min_device(double* v, std::int64_t n, DeviceStaging& s) {
    reduce_device(*this, v, n, s, [this](double* h, std::int64_t c) { min(h, c); });
}
void Communicator::max_device(double* v, std::int64_t n, DeviceStaging& s) {
    reduce_device(*this, v, n, s, [this](double* h, std::int64_t c) { max(h, c); });
}

void SerialCommunicator::abort(int code) { std::exit(code); }

Communicator& communicator() { return *installed(); }

void install_communicator(std::unique_ptr<Communicator> comm) {
    installed() = comm ? std::move(comm) : std::make_unique<SerialCommunicator>();
}

bool all_ranks(bool ok) {
    std::int64_t failed = ok ? 0 : 1;
    communicator().sum(&failed, 1);
    return failed == 0;
}

void check_on_all_ranks(bool ok, const std::string& message) {
    if (!all_ranks(ok)) throw CollectiveError(message);
}

ParticleRange particle_range(std::int64_t n, int rank, int ranks) {
    const std::int64_t base = n / ranks, extra = n % ranks;
    ParticleRange r;
    r.begin = rank * base + std::min<std::int64_t>(rank, extra);
    r.end = r.begin + base + (rank < extra ? 1 : 0);
    return r;
}

ParticleRange local_particles(std::int64_t n) {
    const Communicator& comm = communicator();
    return particle_range(n, comm.rank(), comm.size());
}

}  // namespace sctape
