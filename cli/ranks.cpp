#include "ranks.hpp"

#include <cstdlib>
#include <iostream>
#include <vector>

namespace sctape::cli {

template <class T>
Beam<T> gather_beam(const Beam<T>& beam) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return beam;
    Beam<T> all = beam;
    const auto mine = beam.columns();
    const auto out = all.columns();
    for (int c = 0; c < 6; ++c) {
        const std::vector<double> values(mine[c]->begin(), mine[c]->end());  // exact for float and double
        const std::vector<double> gathered = comm.gather(values.data(), std::int64_t(values.size()));
        out[c]->resize(gathered.size());
        for (std::size_t i = 0; i < gathered.size(); ++i) (*out[c])[i] = T(gathered[i]);
    }
    return all;
}

void gather_particle_gradient(GradientResult& result) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return;
    for (auto& column : result.particle_gradient)
        column = comm.gather(column.data(), std::int64_t(column.size()));
}

nlohmann::json ranks_json(std::int64_t local_particles, const MemoryReport* memory) {
    Communicator& comm = communicator();
    // every value below 2^53: exact as doubles
    std::vector<double> mine = {double(local_particles)};
    if (memory) {
        mine.push_back(double(memory->tape_bytes));
        mine.push_back(double(memory->peak_bytes));
    }
    const std::vector<double> all = comm.gather(mine.data(), std::int64_t(mine.size()));
    if (!is_root_rank()) return nullptr;
    const std::size_t fields = mine.size();
    auto column = [&](std::size_t f) {
        nlohmann::json values = nlohmann::json::array();
        for (std::size_t r = 0; r < all.size() / fields; ++r) values.push_back(std::int64_t(all[r * fields + f]));
        return values;
    };
    nlohmann::json out = {{"ranks", comm.size()}, {"particles_per_rank", column(0)}};
    if (memory) {
        out["tape_bytes_per_rank"] = column(1);
        out["peak_bytes_per_rank"] = column(2);
    }
    return out;
}

std::string first_failure(const std::string& mine) {
    Communicator& comm = communicator();
    // each failing rank sends (rank, length, characters), as doubles (exact)
    std::vector<double> record;
    if (!mine.empty()) {
        record = {double(comm.rank()), double(mine.size())};
        for (unsigned char c : mine) record.push_back(double(c));
    }
    const std::vector<double> all = comm.gather(record.data(), std::int64_t(record.size()));
    if (!is_root_rank()) return mine;
    if (all.size() < 2) return "";
    const int rank = int(all[0]);
    std::string message;
    for (std::size_t i = 0; i < std::size_t(all[1]); ++i) message.push_back(char(int(all[2 + i])));
    return rank == 0 ? message : "rank " + std::to_string(rank) + ": " + message;
}

void end_every_rank(const char* command, const std::string& message) {
    Communicator& comm = communicator();
    std::cerr << "sctape " << command << ": error on rank " << comm.rank() << " of " << comm.size() << ": " << message
              << " (ending every rank, nothing written)\n";
    std::cerr.flush();
    comm.abort(2);
    std::_Exit(2);  // not reached: abort ends the process
}

template Beam<float> gather_beam<float>(const Beam<float>&);
template Beam<double> gather_beam<double>(const Beam<double>&);

}  // namespace sctape::cli
