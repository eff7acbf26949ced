#include "core/communicator.hpp"

#include <algorithm>
#include <cstdlib>

namespace sctape {
namespace {

std::unique_ptr<Communicator>& installed() {
    static std::unique_ptr<Communicator> comm = std::make_unique<SerialCommunicator>();
    return comm;
}

}  // namespace

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
