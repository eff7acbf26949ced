// ranks.hpp — what `sctape track` does differently over MPI ranks
// (docs/mpi.md): only rank 0 prints and writes; particle outputs are
// gathered to it in global order; RESULT lists every rank's particles, tape
// and peak; and a rank that fails alone ends every rank. Without MPI (one
// serial rank) every function here is the identity or a no-op.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "ad/gradient.hpp"
#include "core/communicator.hpp"
#include "physics/beam.hpp"

namespace sctape::cli {

inline bool is_root_rank() { return communicator().rank() == 0; }

// The whole bunch on rank 0, in global particle order (others: their own share).
template <class T>
Beam<T> gather_beam(const Beam<T>& beam);
// d objective / d initial coordinates of every particle, on rank 0.
void gather_particle_gradient(GradientResult& result);

// RESULT's "mpi" section, gathered on rank 0 (docs/result-schema.md): the
// ranks, their particles and, in reverse mode, each rank's tape and peak.
nlohmann::json ranks_json(std::int64_t local_particles, const MemoryReport* memory);

// Runs `work`; a failure every rank reached together (CollectiveError) is
// rethrown, any other one on several ranks (out of memory, a failure the
// others cannot know of) is reported with the rank and ends every rank with
// exit code 2 (MPI_Abort), so none waits forever in a reduction.
template <class F>
auto on_every_rank(const char* command, F&& work) -> decltype(work());

[[noreturn]] void end_every_rank(const char* command, const std::string& message);

// Runs `setup` (the checks before the run) on every rank and agrees on its
// outcome: if it failed anywhere, every rank throws CollectiveError, rank 0's
// carrying the lowest failing rank's message (prefixed "rank k: " when k > 0),
// so one error is printed and no rank starts the run alone.
template <class F>
void agree_before_run(F&& setup);
// The lowest failing rank's message on rank 0 ("" where none failed); `mine` elsewhere.
std::string first_failure(const std::string& mine);

template <class F>
void agree_before_run(F&& setup) {
    if (communicator().size() == 1) return setup();
    std::string failure;
    try {
        setup();
    } catch (const std::bad_alloc&) {
        failure = "out of memory";
    } catch (const std::exception& e) {
        failure = e.what();
    }
    if (all_ranks(failure.empty())) return;
    throw CollectiveError(first_failure(failure));
}

template <class F>
auto on_every_rank(const char* command, F&& work) -> decltype(work()) {
    if (communicator().size() == 1) return work();
    try {
        return work();
    } catch (const CollectiveError&) {
        throw;
    } catch (const std::bad_alloc&) {
        end_every_rank(command, "out of memory");
    } catch (const std::exception& e) {
        end_every_rank(command, e.what());
    }
}

}  // namespace sctape::cli
