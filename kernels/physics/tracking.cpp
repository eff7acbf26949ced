#include "physics/tracking.hpp"

#include <chrono>
#include <memory>

namespace sctape {

template <class T>
void drift(Beam<T>& beam, double length_m, int threads) {
    MemoryScope scope("drift");
    const auto& ref = beam.reference;
    const T l = T(length_m);
    const T l_tau = T(-length_m / (ref.beta_gamma() * ref.beta_gamma()));
    const std::int64_t n = beam.size();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t p = 0; p < n; ++p) {
        beam.x[p] += l * beam.px[p];
        beam.y[p] += l * beam.py[p];
        beam.tau[p] += l_tau * beam.delta[p];
    }
}

template <class T>
TrackReport track(Beam<T>& beam, const TrackSettings& settings, const Progress& progress) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    TrackReport report;
    std::unique_ptr<SpaceChargeKick<T>> kick;
    if (settings.space_charge) kick = std::make_unique<SpaceChargeKick<T>>(settings.grid, settings.threads);
    int total_slices = 0, done = 0;
    for (const Drift& d : settings.lattice) total_slices += d.slices;
    auto timed_drift = [&](double length) {
        auto t0 = clock::now();
        drift(beam, length, settings.threads);
        report.drift_seconds += std::chrono::duration<double>(clock::now() - t0).count();
    };
    for (const Drift& d : settings.lattice) {
        const double ds = d.length_m / d.slices;
        for (int s = 0; s < d.slices; ++s) {
            if (kick) {
                timed_drift(0.5 * ds);
                kick->apply(beam, ds);
                timed_drift(0.5 * ds);
                ++report.kicks;
            } else {
                timed_drift(ds);
            }
            if (progress) progress(++done, total_slices);
        }
    }
    if (kick) report.substep_seconds = kick->seconds();
    report.total_seconds = std::chrono::duration<double>(clock::now() - start).count();
    return report;
}

template void drift<float>(Beam<float>&, double, int);
template void drift<double>(Beam<double>&, double, int);
template TrackReport track<float>(Beam<float>&, const TrackSettings&, const Progress&);
template TrackReport track<double>(Beam<double>&, const TrackSettings&, const Progress&);

std::vector<std::size_t> slice_elements(const Lattice& lattice) {
    std::vector<std::size_t> out;
    for (std::size_t e = 0; e < lattice.size(); ++e) out.insert(out.end(), lattice[e].slices, e);
    return out;
}

}  // namespace sctape
