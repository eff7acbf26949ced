// gradient.hpp — reverse-mode gradients of a beam objective through the
// tracking, with the memory the tape keeps, for each differentiation strategy.
//
//   sctape::GradientRequest req;              // strategy fused, objective sigma_x
//   req.gradients = {"bunch_charge_C", "lattice.0.length_m"};
//   sctape::GradientResult r = sctape::compute_gradient<double>(beam_params, track_settings, req);
//   r.objective;  r.gradients["bunch_charge_C"];  r.memory.tape_bytes_by_scope["deposit"];
//
// Differentiable inputs (names as in CONFIG): bunch_charge_C,
// kinetic_energy_eV, distribution.<size key> (radius_x_m ... or sigma_x_m ...),
// distribution.sigma_px / sigma_py / sigma_delta, lattice.<i>.length_m, and
// the initial particle coordinates (GradientResult::particle_gradient).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/names.hpp"
#include "physics/beam.hpp"
#include "ad/tape.hpp"
#include "physics/parameter_adjoints.hpp"
#include "physics/tracking.hpp"

namespace sctape {

enum class Strategy { autograd, fused, checkpoint, reversible };
enum class Objective { sigma_x, sigma_y, sigma_tau, emittance_x, emittance_y, emittance_tau, sigma_px, sigma_py, sigma_delta };
inline constexpr NameList<Strategy, 4> kStrategyNames{{"autograd", "fused", "checkpoint", "reversible"}};
inline constexpr NameList<Objective, 9> kObjectiveNames{{"sigma_x", "sigma_y", "sigma_tau", "emittance_x", "emittance_y",
                                                          "emittance_tau", "sigma_px", "sigma_py", "sigma_delta"}};

inline const char* strategy_name(Strategy s) { return kStrategyNames.name(s); }
inline const char* objective_name(Objective o) { return kObjectiveNames.name(o); }
// Both throw std::invalid_argument naming the choices.
inline Strategy parse_strategy(const std::string& name) { return kStrategyNames.parse(name, "strategy"); }
inline Objective parse_objective(const std::string& name) { return kObjectiveNames.parse(name, "objective"); }

struct GradientRequest {
    Strategy strategy = Strategy::fused;
    Objective objective = Objective::sigma_x;
    std::vector<std::string> gradients;  // names; empty: none reported
    // checkpoint only: 0 keeps every kick's input state; s > 0 keeps at most
    // s states (binomial checkpointing across the kicks).
    int snapshots = 0;
    // cpu, or cuda (fused, checkpoint, reversible; the run's device memory is
    // reported). Resolve "auto" with resolve_backend() first.
    Backend backend = Backend::cpu;
};

// The names that may be asked for, for this beam and lattice.
std::vector<std::string> gradient_names(const BeamParameters& beam, const Lattice& lattice);

// Tape bytes and allocator growth, measured during the forward pass.
struct MemoryReport {
    std::map<std::string, std::int64_t> tape_bytes_by_scope;     // at the end of the forward pass
    std::map<std::string, std::int64_t> allocator_delta_by_scope;  // summed over the forward pass
    std::int64_t tape_bytes = 0;         // total at the end of the forward pass
    std::int64_t tape_entries = 0;
    std::int64_t peak_bytes = 0;         // allocator peak during forward + backward, above the start
    std::int64_t bytes_after_backward = 0;  // allocator current minus start, after backward (0 expected)
    int kicks = 0;
    // checkpoint and reversible: most beam states held at once, and most
    // untaped re-evaluations of one step during backward
    int max_states_held = 0;
    int max_recomputations = 0;
    // What the last slice of the lattice added: the steady cost of one more
    // kick (the first slice also pays for state the next one shares).
    std::map<std::string, std::int64_t> last_slice_tape_bytes_by_scope;
    std::map<std::string, std::int64_t> last_slice_allocator_delta_by_scope;
    std::int64_t last_slice_tape_bytes = 0;
    std::int64_t last_slice_allocator_delta = 0;
};

// Snapshots of the tape and the allocator between slices of the forward
// pass: mark() before the first slice and after each, finish() at the end.
class SliceMarks {
public:
    explicit SliceMarks(const MemoryTracker& memory = host_memory()) : memory_(memory) {}
    void mark(const Tape& tape, const MemoryReport& report);
    void finish(MemoryReport& report) const;

private:
    struct Mark {
        std::map<std::string, std::int64_t> tape_by_scope, delta_by_scope;
        std::int64_t tape = 0, current = 0;
    };
    const MemoryTracker& memory_;
    Mark previous_, last_;
};

struct GradientResult {
    double objective = 0;
    std::map<std::string, double> gradients;  // the requested names
    // d objective / d initial coordinates, columns x, px, y, py, tau, delta.
    std::array<std::vector<double>, 6> particle_gradient;
    MemoryReport memory;
    double forward_seconds = 0, backward_seconds = 0;
    // The backward's wall time per tape scope (strategies with a tape; on a
    // device, the time to enqueue each scope's work, not to run it).
    std::map<std::string, double> backward_seconds_by_scope;
    // The run's sums over particles were exact (the deterministic mode,
    // physics/exact_sums.hpp): sums over particle_gradient should be too.
    bool exact_sums = false;
};

template <class T>
GradientResult compute_gradient(const BeamParameters& beam, const TrackSettings& tracking,
                                const GradientRequest& request);

// --- pieces shared by the strategies -------------------------------------

// The (position, momentum) columns an objective reads: 0..5 in x, px, y, py, tau, delta order.
std::array<int, 2> objective_columns(Objective objective);

// Objective value of a beam, and its adjoint: accumulates d/d(u) and d/d(p)
// for the objective's columns and returns d/d(beta0 gamma0) (rank 0's share).
// exact (the deterministic mode, physics/exact_sums.hpp): the moments' sums
// exact, the same bits for any split over ranks.
template <class T>
double objective_value(const Beam<T>& beam, Objective objective, bool exact = false);
template <class T>
double objective_adjoint(Objective objective, const HostArray<T>& u, const HostArray<T>& p, double beta_gamma,
                         HostArray<T>& u_adj, HostArray<T>& p_adj, bool exact = false);

// The end of every backward pass: d objective / d initial coordinates into
// `particle_gradient`, and through the seeded reference sample the adjoints
// of the distribution's sizes and momentum spreads (this rank's share; exact:
// the exact total on rank 0).
template <class T>
void beam_adjoint(const BeamParameters& beam, const std::array<HostArray<T>, 6>& coordinate_adjoint,
                  std::array<std::vector<double>, 6>& particle_gradient, ParameterAdjoints& adj, bool exact = false);

// Fills `result.gradients` with the requested names (throws std::invalid_argument on unknown ones).
void report_gradients(const BeamParameters& beam, const Lattice& lattice, const ParameterAdjoints& adj,
                      const std::vector<std::string>& names, GradientResult& result);

}  // namespace sctape
