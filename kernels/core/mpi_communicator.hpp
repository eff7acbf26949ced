// mpi_communicator.hpp — the Communicator (core/communicator.hpp) over
// MPI_COMM_WORLD, built only with SCTAPE_MPI. MpiSession initialises MPI,
// installs the communicator and finalises MPI when it ends; no other file
// includes <mpi.h>.
//
//   int main(int argc, char** argv) {
//       sctape::MpiSession mpi(argc, argv);   // communicator() is now MPI's
//       ...
//   }
#pragma once

namespace sctape {

class MpiSession {
public:
    MpiSession(int& argc, char**& argv);
    ~MpiSession();
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
};

}  // namespace sctape
