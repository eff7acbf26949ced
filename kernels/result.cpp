#include "result.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

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

void write_file_atomically(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("cannot write '" + path + "' (cannot create '" + tmp + "')");
        out << content;
        out.flush();
        if (!out) {
            out.close();
            std::remove(tmp.c_str());
            throw std::runtime_error("writing '" + path + "' failed (disk full?)");
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot move the output into place at '" + path + "'");
    }
}

std::int64_t estimate_tracking_bytes(const RunConfig& c) {
    const std::int64_t word = c.dtype == Dtype::float32 ? 4 : 8;
    const std::int64_t n = c.beam.n_particles;
    // 6 coordinates + 6 reference-sample columns (float64) + kick work arrays
    std::int64_t bytes = 6 * n * word + 6 * n * 8;
    if (c.tracking.space_charge) {
        const auto& s = c.tracking.grid.shape;
        const std::int64_t cells = std::int64_t(s[0]) * s[1] * s[2];
        bytes += 8 * n * word;                                        // z, pz, E and dP at particles
        bytes += (5 + c.tracking.threads) * cells * word + cells * 8;  // rho, phi, E, deposit scratch, IGF
        bytes += 2 * 8 * cells * word + 2 * 8 * cells * 2 * word;     // doubled grids and spectra
    }
    return bytes;
}

std::int64_t available_memory_bytes() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::int64_t value;
    std::string unit;
    while (meminfo >> key >> value >> unit)
        if (key == "MemAvailable:") return value * 1024;
    return static_cast<std::int64_t>(::sysconf(_SC_AVPHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE);
}

template std::string particles_csv<float>(const Beam<float>&);
template std::string particles_csv<double>(const Beam<double>&);

}  // namespace sctape
