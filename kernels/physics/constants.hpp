// constants.hpp — physical constants (CODATA 2018, SI) and particle species.
//
//   sctape::Species e = sctape::Species::electron();
//   double gamma = e.gamma(250e6);   // 250 MeV kinetic energy
#pragma once

#include <cmath>
#include <string>

namespace sctape {

constexpr double kSpeedOfLight_m_per_s = 299792458.0;
constexpr double kElementaryCharge_C = 1.602176634e-19;
constexpr double kVacuumPermittivity_F_per_m = 8.8541878128e-12;
constexpr double kElectronMass_eV = 510998.95000;
constexpr double kProtonMass_eV = 938272088.16;
constexpr double kClassicalElectronRadius_m = 2.8179403262e-15;
constexpr double kPi = 3.14159265358979323846;

// A particle species: rest energy and charge in units of e (signed).
struct Species {
    std::string name = "electron";
    double mass_eV = kElectronMass_eV;
    double charge_e = -1.0;

    static Species electron() { return {"electron", kElectronMass_eV, -1.0}; }
    static Species proton() { return {"proton", kProtonMass_eV, 1.0}; }
};

// Reference-particle kinematics derived from the species and kinetic energy.
struct Reference {
    double mass_eV = 0, kinetic_energy_eV = 0;
    double energy_eV = 0;  // total energy E0
    double gamma = 0, beta = 0;
    double p0c_eV = 0;     // reference momentum times c

    static Reference from_kinetic(double mass_eV, double kinetic_eV) {
        Reference r;
        r.mass_eV = mass_eV;
        r.kinetic_energy_eV = kinetic_eV;
        r.energy_eV = kinetic_eV + mass_eV;
        r.gamma = r.energy_eV / mass_eV;
        r.beta = std::sqrt(1.0 - 1.0 / (r.gamma * r.gamma));
        r.p0c_eV = std::sqrt(r.energy_eV * r.energy_eV - mass_eV * mass_eV);
        return r;
    }
    double beta_gamma() const { return beta * gamma; }
};

}  // namespace sctape
