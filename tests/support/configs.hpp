// configs.hpp — the small, valid CONFIG the binary-running tests start from:
// a 1 mm cold uniform ball of 250 MeV electrons (1 nC, seed 3) through a 1 m
// drift in 2 slices, 8^3 grid, on the CPU with one thread. Tests change the
// keys they are about.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace sctape::test {

inline nlohmann::json small_track_config(std::int64_t n_particles) {
    return {{"kinetic_energy_eV", 250e6},
            {"bunch_charge_C", 1e-9},
            {"n_particles", n_particles},
            {"seed", 3},
            {"distribution",
             {{"type", "uniform_ellipsoid"}, {"radius_x_m", 1e-3}, {"radius_y_m", 1e-3}, {"radius_tau_m", 1e-3}}},
            {"lattice", nlohmann::json::array({{{"type", "drift"}, {"length_m", 1.0}, {"slices", 2}}})},
            {"space_charge", {{"enabled", true}, {"grid", {8, 8, 8}}}},
            {"backend", "cpu"},
            {"threads", 1}};
}

}  // namespace sctape::test
