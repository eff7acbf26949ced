// The contract of Communicator::sum_device / min_device / max_device
// (core/communicator.hpp) over real MPI ranks, with host memory standing in
// for device memory: a recording DeviceStaging checks that the writes are
// finished before anything reads the values, that a library which cannot read
// device memory gets them through the staging buffer and that the result is
// copied back, and that one rank does nothing. This tests the staging logic;
// it is no test of CUDA (no GPU here): the CUDA staging (cuda/device_staging.cuh)
// runs in scripts/gpu-checks.sh's mpi_cuda stage.
//
//   mpirun --oversubscribe -n 2 sctape_device_staging_tests     (ctest: device_staging_contract_*)
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/communicator.hpp"
#include "core/mpi_communicator.hpp"

namespace {

// A DeviceStaging over host memory that records its calls in order.
class RecordingStaging final : public sctape::DeviceStaging {
public:
    std::vector<std::string> calls;
    std::vector<unsigned char> buffer;
    const void* last_source = nullptr;

    void finish_writes() override { calls.push_back("finish_writes"); }
    void* host_buffer(std::size_t bytes) override {
        calls.push_back("host_buffer");
        if (buffer.size() < bytes) buffer.resize(bytes);
        return buffer.data();
    }
    void to_host(void* host, const void* device, std::size_t bytes) override {
        calls.push_back("to_host");
        last_source = device;
        std::memcpy(host, device, bytes);
    }
    void to_device(void* device, const void* host, std::size_t bytes) override {
        calls.push_back("to_device");
        std::memcpy(device, host, bytes);
    }
};

// The calls a reduction of `count` > 0 values makes on `ranks` ranks.
std::vector<std::string> expected_calls(const sctape::Communicator& comm) {
    if (comm.size() == 1) return {};
    if (comm.reads_device_memory()) return {"finish_writes"};  // the pointer goes to MPI itself
    return {"finish_writes", "host_buffer", "to_host", "to_device"};
}

}  // namespace

TEST_CASE("sum_device: every rank gets the sum, staged in the documented order", "[mpi][staging]") {
    sctape::Communicator& comm = sctape::communicator();
    const int r = comm.rank(), p = comm.size();
    INFO("ranks " << p << ", device pointers to MPI: " << comm.reads_device_memory());
    const std::int64_t n = 1000;
    RecordingStaging staging;

    std::vector<double> d(n);
    for (std::int64_t i = 0; i < n; ++i) d[i] = 0.25 * double(i) + double(r);  // quarters: exact sums
    comm.sum_device(d.data(), n, staging);
    for (std::int64_t i = 0; i < n; ++i) REQUIRE(d[i] == 0.25 * double(i) * p + double(p * (p - 1) / 2));
    CHECK(staging.calls == expected_calls(comm));
    if (!staging.calls.empty() && !comm.reads_device_memory()) CHECK(staging.last_source == d.data());

    staging.calls.clear();
    std::vector<float> f(n);
    for (std::int64_t i = 0; i < n; ++i) f[i] = float(i % 7) + 0.5f * float(r);  // small halves: exact in float
    comm.sum_device(f.data(), n, staging);
    for (std::int64_t i = 0; i < n; ++i) REQUIRE(f[i] == float(i % 7) * float(p) + 0.5f * float(p * (p - 1) / 2));
    CHECK(staging.calls == expected_calls(comm));

    staging.calls.clear();
    std::vector<std::int64_t> q(n);  // the fixed-point deposit's integers, beyond 2^53 and negative
    for (std::int64_t i = 0; i < n; ++i) q[i] = (std::int64_t(1) << 60) / 8 + i - 3 * r;
    comm.sum_device(q.data(), n, staging);
    for (std::int64_t i = 0; i < n; ++i)
        REQUIRE(q[i] == std::int64_t(p) * ((std::int64_t(1) << 60) / 8 + i) - 3 * std::int64_t(p) * (p - 1) / 2);
    CHECK(staging.calls == expected_calls(comm));
}

TEST_CASE("min_device and max_device: every rank gets the extremes", "[mpi][staging]") {
    sctape::Communicator& comm = sctape::communicator();
    const int r = comm.rank(), p = comm.size();
    RecordingStaging staging;
    double lo[3] = {-1.0 - r, 2.0 + r, 0.5}, hi[3] = {-1.0 - r, 2.0 + r, 0.5};
    comm.min_device(lo, 3, staging);
    comm.max_device(hi, 3, staging);
    CHECK(lo[0] == -1.0 - (p - 1));
    CHECK(lo[1] == 2.0);
    CHECK(lo[2] == 0.5);
    CHECK(hi[0] == -1.0);
    CHECK(hi[1] == 2.0 + (p - 1));
    CHECK(hi[2] == 0.5);
    std::vector<std::string> twice = expected_calls(comm);
    const std::vector<std::string> once = twice;
    twice.insert(twice.end(), once.begin(), once.end());
    CHECK(staging.calls == twice);
}

TEST_CASE("no values or one rank: no staging call and nothing changed", "[mpi][staging]") {
    RecordingStaging staging;
    double v[2] = {1.5, -2.5};
    sctape::communicator().sum_device(v, 0, staging);
    CHECK(staging.calls.empty());
    sctape::SerialCommunicator serial;
    serial.sum_device(v, 2, staging);
    serial.min_device(v, 2, staging);
    CHECK(staging.calls.empty());
    CHECK(v[0] == 1.5);
    CHECK(v[1] == -2.5);
}

TEST_CASE("Debian's Open MPI has no CUDA support: device buffers are staged", "[mpi][staging]") {
    // MPIX_CUDA_AWARE_SUPPORT is 0 in Debian's mpi-ext.h and MPIX_Query_cuda_support()
    // answers 0; SCTAPE_MPI_STAGE_DEVICE=1 forces staging with any MPI.
    if (std::getenv("SCTAPE_EXPECT_CUDA_AWARE_MPI")) {
        CHECK(sctape::communicator().reads_device_memory());
    } else {
        CHECK_FALSE(sctape::communicator().reads_device_memory());
    }
}

int main(int argc, char** argv) {
    sctape::MpiSession mpi(argc, argv);
    return Catch::Session().run(argc, argv);
}
