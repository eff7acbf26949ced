#include "core/mpi_communicator.hpp"

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI's MPIX_CUDA_AWARE_SUPPORT and MPIX_Query_cuda_support
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <memory>
#include <vector>

#include "core/communicator.hpp"

namespace sctape {
namespace {

// Counts above INT_MAX would need MPI 4's large-count calls: split them.
constexpr std::int64_t kChunk = std::int64_t(1) << 30;

template <class T>
void allreduce(T* values, std::int64_t count, MPI_Datatype type, MPI_Op op) {
    for (std::int64_t done = 0; done < count; done += kChunk) {
        const int n = int(std::min(kChunk, count - done));
        MPI_Allreduce(MPI_IN_PLACE, values + done, n, type, op, MPI_COMM_WORLD);
    }
}

// Device pointers go to MPI only when the library was built CUDA-aware (its
// header says so) and is so at run time (MPIX_Query_cuda_support, which a
// library built without CUDA answers 0), and SCTAPE_MPI_STAGE_DEVICE does not
// ask for host staging. Debian's Open MPI 4.1.4: built without, so staged.
bool mpi_reads_device_memory() {
    const char* stage = std::getenv("SCTAPE_MPI_STAGE_DEVICE");
    if (stage && *stage && std::strcmp(stage, "0") != 0) return false;
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    return MPIX_Query_cuda_support() == 1;
#else
    return false;
#endif
}

class MpiCommunicator final : public Communicator {
public:
    MpiCommunicator() : device_aware_(mpi_reads_device_memory()) {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    bool reads_device_memory() const override { return device_aware_; }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    bool distributed() const override { return true; }
    void sum(double* v, std::int64_t n) override { allreduce(v, n, MPI_DOUBLE, MPI_SUM); }
    void sum(float* v, std::int64_t n) override { allreduce(v, n, MPI_FLOAT, MPI_SUM); }
    void sum(std::int64_t* v, std::int64_t n) override { allreduce(v, n, MPI_INT64_T, MPI_SUM); }
    void min(double* v, std::int64_t n) override { allreduce(v, n, MPI_DOUBLE, MPI_MIN); }
    void max(double* v, std::int64_t n) override { allreduce(v, n, MPI_DOUBLE, MPI_MAX); }
    std::vector<double> gather(const double* values, std::int64_t count) override {
        // MPI's counts and offsets are int: every rank learns the total first,
        // so that all refuse together rather than some waiting in the gather
        std::int64_t all = count;
        allreduce(&all, 1, MPI_INT64_T, MPI_SUM);
        if (all > std::numeric_limits<int>::max())
            throw std::runtime_error("cannot gather " + std::to_string(all) +
                                     " values per column on rank 0 (at most 2^31 - 1): too many particles to dump");
        int mine = int(count);
        std::vector<int> counts(rank_ == 0 ? size_ : 0), offsets(counts.size());
        MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
        std::int64_t total = 0;
        for (std::size_t r = 0; r < counts.size(); ++r) {
            offsets[r] = int(total);
            total += counts[r];
        }
        std::vector<double> out(static_cast<std::size_t>(total));
        MPI_Gatherv(values, mine, MPI_DOUBLE, out.data(), counts.data(), offsets.data(), MPI_DOUBLE, 0, MPI_COMM_WORLD);
        return out;
    }
    [[noreturn]] void abort(int code) override {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);  // MPI_Abort does not return; this satisfies [[noreturn]]
    }

private:
    bool device_aware_ = false;
    int rank_ = 0, size_ = 1;
};

}  // namespace

MpiSession::MpiSession(int& argc, char**& argv) {
    MPI_Init(&argc, &argv);
    install_communicator(std::make_unique<MpiCommunicator>());
}

MpiSession::~MpiSession() {
    install_communicator(nullptr);
    MPI_Finalize();
}

}  // namespace sctape
