#include "physics/tracking.hpp"

#include <chrono>
#include <stdexcept>
#include <memory>

namespace sctape {

template <class T>
void apply_element_map(Beam<T>& beam, const ElementMap& map, int threads) {
    MemoryScope scope("drift");  // the maps' scope keeps the schema's name
    const std::int64_t n = beam.size();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t p = 0; p < n; ++p)
        apply_map_particle(map, beam.x[p], beam.px[p], beam.y[p], beam.py[p], beam.tau[p], beam.delta[p]);
}

template <class T>
TrackReport track(Beam<T>& beam, const TrackSettings& settings, const Progress& progress) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    TrackReport report;
    std::unique_ptr<SpaceChargeKick<T>> kick;
    if (settings.space_charge) kick = std::make_unique<SpaceChargeKick<T>>(settings.grid, settings.threads);
    const std::vector<std::size_t> elements = slice_elements(settings.lattice);
    const int total_slices = static_cast<int>(elements.size());
    auto timed_map = [&](std::size_t element, double fraction) {
        auto t0 = clock::now();
        apply_element_map(beam, element_map(settings.lattice[element], fraction, beam.reference.beta_gamma()),
                          settings.threads);
        report.drift_seconds += std::chrono::duration<double>(clock::now() - t0).count();
    };
    auto apply_kick = [&](std::size_t, double ds) {
        kick->apply(beam, ds);
        ++report.kicks;
    };
    for (int done = 0; done < total_slices; ++done) {
        strang_slice(settings, elements[done], timed_map, apply_kick);
        if (progress) progress(done + 1, total_slices);
    }
    if (kick) report.substep_seconds = kick->seconds();
    report.total_seconds = std::chrono::duration<double>(clock::now() - start).count();
    return report;
}

template void apply_element_map<float>(Beam<float>&, const ElementMap&, int);
template void apply_element_map<double>(Beam<double>&, const ElementMap&, int);
template TrackReport track<float>(Beam<float>&, const TrackSettings&, const Progress&);
template TrackReport track<double>(Beam<double>&, const TrackSettings&, const Progress&);

std::vector<std::size_t> slice_elements(const Lattice& lattice) {
    for (const Element& d : lattice)
        if (d.slices < 1) throw std::invalid_argument("a lattice element needs at least one slice");
    std::vector<std::size_t> out;
    for (std::size_t e = 0; e < lattice.size(); ++e) out.insert(out.end(), lattice[e].slices, e);
    return out;
}

}  // namespace sctape
