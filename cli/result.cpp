#include "result.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "physics/exact_sums.hpp"
#include "plan.hpp"

namespace sctape {

nlohmann::json moments_json(const Moments& m) {
    return {
        {"mean", {{"x_m", m.mean[0]}, {"px", m.mean[1]}, {"y_m", m.mean[2]}, {"py", m.mean[3]},
                  {"tau_m", m.mean[4]}, {"delta", m.mean[5]}}},
        {"rms", {{"sigma_x_m", m.rms[0]}, {"sigma_px", m.rms[1]}, {"sigma_y_m", m.rms[2]},
                 {"sigma_py", m.rms[3]}, {"sigma_tau_m", m.rms[4]}, {"sigma_delta", m.rms[5]}}},
        {"normalized_emittance_m",
         {{"x", m.normalized_emittance_m[0]}, {"y", m.normalized_emittance_m[1]}, {"tau", m.normalized_emittance_m[2]}}},
    };
}

nlohmann::json memory_json(const MemoryReport& m) {
    return {
        {"kicks", m.kicks},
        {"tape_bytes", m.tape_bytes},
        {"tape_entries", m.tape_entries},
        {"tape_bytes_by_scope", m.tape_bytes_by_scope},
        {"allocator_delta_bytes_by_scope", m.allocator_delta_by_scope},
        // the growth of the last slice: the steady cost of one more kick
        {"tape_bytes_per_kick", m.last_slice_tape_bytes},
        {"tape_bytes_per_kick_by_scope", m.last_slice_tape_bytes_by_scope},
        {"allocator_delta_bytes_per_kick", m.last_slice_allocator_delta},
        {"peak_bytes", m.peak_bytes},
        {"bytes_after_backward", m.bytes_after_backward},
        {"max_states_held", m.max_states_held},
        {"max_recomputations", m.max_recomputations},
    };
}

nlohmann::json gradient_json(const GradientResult& r, const GradientRequest& request) {
    nlohmann::json rms = nlohmann::json::object();
    static const char* names[6] = {"x_m", "px", "y_m", "py", "tau_m", "delta"};
    // over every rank's particles (each rank holds its share)
    std::int64_t n = std::int64_t(r.particle_gradient[0].size());
    communicator().sum(&n, 1);
    for (int c = 0; c < 6; ++c) {
        const std::vector<double>& g = r.particle_gradient[c];
        ParticleSums<1> sum2(r.exact_sums);
        sum2.add_particles(std::int64_t(g.size()), [&](std::int64_t p, double* s) { s[0] += g[p] * g[p]; });
        rms[names[c]] = n ? std::sqrt(sum2.over_all_ranks()[0] / double(n)) : 0.0;
    }
    return {
        {"strategy", strategy_name(request.strategy)},
        {"objective", {{"name", objective_name(request.objective)}, {"value", r.objective}}},
        {"gradients", r.gradients},
        {"particle_gradient_rms", rms},
        {"timing",
         {{"forward_s", r.forward_seconds},
          {"backward_s", r.backward_seconds},
          {"backward_s_by_scope", r.backward_seconds_by_scope}}},
        {"memory", memory_json(r.memory)},
    };
}

namespace {

// Kicks in time order, numbered from 0 within their pass (forward or backward).
nlohmann::json kicks_json(const std::vector<KickEvent>& kicks, double origin_s) {
    nlohmann::json list = nlohmann::json::array();
    int forward = 0, backward = 0;
    for (const KickEvent& k : kicks)
        list.push_back({{"index", k.backward ? backward++ : forward++},
                        {"start_s", k.start_s - origin_s},
                        {"end_s", k.end_s - origin_s},
                        {"backward", k.backward}});
    return list;
}

}  // namespace

nlohmann::json timeline_json(const MemoryTracker& tracker, const TimelineRun& run) {
    nlohmann::json events = nlohmann::json::array();
    for (const MemoryEvent& e : tracker.timeline())
        events.push_back({{"time_s", e.time_s - run.origin_s},
                          {"current_bytes", e.current_bytes - run.start_bytes},
                          {"scope", e.scope},
                          {"backward", e.backward}});
    return {{"schema_version", kTimelineSchemaVersion},
            {"sctape_version", SCTAPE_VERSION},
            {"mode", run.reverse_mode ? "reverse" : "forward"},
            {"strategy", run.reverse_mode ? nlohmann::json(strategy_name(run.strategy)) : nlohmann::json()},
            {"dtype", dtype_name(run.dtype)},
            {"memory_space", run.device_memory ? "device" : "host"},
            {"note", "current_bytes above the level before the run; time_s, start_s, end_s from the start of the run"},
            {"events", events},
            {"kicks", kicks_json(tracker.kicks(), run.origin_s)}};
}

std::string particle_gradient_csv(const GradientResult& r) {
    std::ostringstream out;
    out << std::setprecision(17) << "x,px,y,py,tau,delta\n";
    for (std::size_t i = 0; i < r.particle_gradient[0].size(); ++i)
        for (int c = 0; c < 6; ++c) out << r.particle_gradient[c][i] << (c < 5 ? ',' : '\n');
    return out.str();
}

template <class T>
std::string particles_csv(const Beam<T>& beam) {
    std::ostringstream out;
    out << std::setprecision(std::numeric_limits<T>::max_digits10);
    out << "x,px,y,py,tau,delta\n";
    for (std::int64_t i = 0; i < beam.size(); ++i)
        out << beam.x[i] << ',' << beam.px[i] << ',' << beam.y[i] << ',' << beam.py[i] << ',' << beam.tau[i] << ','
            << beam.delta[i] << '\n';
    return out.str();
}

double estimate_tracking_bytes(const RunConfig& c) {
    const double word = c.dtype == Dtype::float32 ? 4 : 8;
    const double n = static_cast<double>(c.beam.n_particles);
    // 6 coordinates + 6 reference-sample columns (float64) + kick work arrays
    double bytes = 6 * n * word + 6 * n * 8;
    if (c.tracking.space_charge) {
        const auto& s = c.tracking.grid.shape;
        const double cells = double(s[0]) * s[1] * s[2];
        bytes += 8 * n * word;                                        // z, pz, E and dP at particles
        bytes += (5 + c.tracking.threads) * cells * word + cells * 8;  // rho, phi, E, deposit scratch, IGF
        bytes += 2 * 8 * cells * word + 2 * 8 * cells * 2 * word;     // doubled grids and spectra
    }
    return bytes;
}

double estimate_tape_bytes(const RunConfig& c) {
    if (!c.differentiate) return 0;
    const double word = c.dtype == Dtype::float32 ? 4 : 8;
    const double n = static_cast<double>(c.beam.n_particles);
    const auto& s = c.tracking.grid.shape;
    const double cells = c.tracking.space_charge ? double(s[0]) * s[1] * s[2] : 0.0;
    double kicks = 0, focusing_slices = 0;
    for (const Element& d : c.tracking.lattice) {
        kicks += d.slices;
        if (d.kind != ElementKind::drift) focusing_slices += d.slices;
    }
    // the per-kick law measured by the committed default sweep
    const auto laws = fit::tape_laws(fit::measured_coeffs(), dtype_name(c.dtype), strategy_name(c.gradient.strategy));
    if (laws.empty())
        throw std::logic_error(std::string("results/coeffs_cpu.json has no tape law for ") +
                               strategy_name(c.gradient.strategy) + " " + dtype_name(c.dtype));
    const double per_kick = std::max(0.0, laws.front().per_kick_bytes(n, cells));
    // binomial checkpointing holds at most `snapshots` states, whatever the kicks
    if (c.gradient.strategy == Strategy::checkpoint && c.gradient.snapshots > 0)
        kicks = std::min(kicks, double(c.gradient.snapshots));
    // the law is measured on drifts, whose maps keep only the momenta; a
    // quadrupole's or constant focusing's maps keep all six input columns: at
    // most 9 more words per particle per slice for fused (docs/tape-accounting.md,
    // "Lattices with element maps"), 8.3 measured for autograd; bounded here
    // by 12 (checkpoint and reversible tape no maps)
    const bool tapes_maps = c.gradient.strategy == Strategy::fused || c.gradient.strategy == Strategy::autograd;
    const double map_bytes = tapes_maps ? focusing_slices * 12 * n * word : 0.0;
    // plus the adjoint arrays and one fixed-point or snapshot state
    return kicks * per_kick + map_bytes + 12 * n * word + 6 * n * 8;
}

double available_memory_bytes() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::int64_t value;
    std::string unit;
    while (meminfo >> key >> value >> unit)
        if (key == "MemAvailable:") return double(value) * 1024;
    return double(::sysconf(_SC_AVPHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
}

template std::string particles_csv<float>(const Beam<float>&);
template std::string particles_csv<double>(const Beam<double>&);

}  // namespace sctape
