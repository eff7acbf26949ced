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

void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
    std::vector<std::string> temporaries;
    auto discard = [&] {
        for (const auto& t : temporaries) std::remove(t.c_str());
    };
    for (const auto& [path, content] : files) {
        const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) {
            discard();
            throw std::runtime_error("cannot write '" + path + "' (cannot create '" + tmp + "')");
        }
        temporaries.push_back(tmp);
        out << content;
        out.flush();
        if (!out) {
            out.close();
            discard();
            throw std::runtime_error("writing '" + path + "' failed (disk full?)");
        }
    }
    for (std::size_t i = 0; i < files.size(); ++i)
        if (std::rename(temporaries[i].c_str(), files[i].first.c_str()) != 0) {
            discard();
            throw std::runtime_error("cannot move the output into place at '" + files[i].first + "'");
        }
}

void write_file_atomically(const std::string& path, const std::string& content) {
    write_files_atomically({{path, content}});
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
