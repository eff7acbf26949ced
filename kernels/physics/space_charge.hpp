// space_charge.hpp — the 3D space-charge kick on the CPU, split into the eight
// substeps named in docs/physics.md: s_to_t, deposit, green, convolve, field,
// gather, push, t_to_s. Each substep is a public member so tests and the
// tape can drive them one by one; apply() runs them in order and times them.
//
//   sctape::GridSettings grid;              // 32^3, min/max extent, 5% padding
//   sctape::SpaceChargeKick<double> kick(grid, /*threads=*/2);
//   kick.apply(beam, /*ds_m=*/0.1);         // momenta change, positions do not
//   const auto& ex = kick.field()[0];       // -d(phi)/dx on the nodes, V/m
#pragma once

#include <array>
#include <complex>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>

#include "physics/beam.hpp"
#include "core/memory.hpp"

namespace sctape {

template <class T>
class HockneyConvolver;

enum class Substep { s_to_t, deposit, green, convolve, field, gather, push, t_to_s };
constexpr int kSubstepCount = 8;
const char* substep_name(Substep s);
constexpr std::array<Substep, kSubstepCount> kAllSubsteps = {
    Substep::s_to_t, Substep::deposit, Substep::green,  Substep::convolve,
    Substep::field,  Substep::gather,  Substep::push,   Substep::t_to_s};

enum class ExtentMode { minmax, sigma };

struct GridSettings {
    std::array<int, 3> shape = {32, 32, 32};  // nodes along x, y, z
    ExtentMode mode = ExtentMode::minmax;
    double padding = 0.05;                    // minmax: relative margin on each side
    std::array<double, 3> sigma_factor = {6.0, 6.0, 6.0};  // sigma: half-width in rms sizes
    // > 0: each cell size is rounded up to the next power of (1 + cell_quantum)
    // and the grid centred on the beam, so the geometry, and with it the
    // Green function, repeats while the beam's extent stays within one step
    // (0: the cell follows the extent exactly)
    double cell_quantum = 0;
};

// The cell size rounded up to the next power of (1 + quantum), quantum > 0:
// the same bits for every cell within one step.
double quantized_cell(double cell_m, double quantum);

// How origin and cell along one axis depend on the beam's extent: on its
// lowest and highest coordinate (minmax) or its mean and rms (sigma), in that
// order. The adjoint of grid_covering on every backend reads these.
struct ExtentJacobian {
    double origin[2];
    double cell[2];
};
ExtentJacobian extent_jacobian(const GridSettings& settings, int axis);

// The gradient of the IGF's corner lattice (the antiderivative of 1/r at the
// corners (i + 1/2) theta), one n0 x n1 x n2 array per axis (build_green).
using CornerGradient = std::array<HostArray<double>, 3>;

// Node grid origin + i*cell along each axis (x, y, lab z), i = 0..n-1.
struct GridGeometry {
    std::array<int, 3> n{};
    std::array<double, 3> origin_m{};
    std::array<double, 3> cell_m{};
    std::int64_t cells() const { return std::int64_t(n[0]) * n[1] * n[2]; }
    double cell_volume_m3() const { return cell_m[0] * cell_m[1] * cell_m[2]; }
};

// Adjoints of the grid geometry (origin and cell size per axis).
struct GeometryAdjoint {
    std::array<double, 3> origin_m{};
    std::array<double, 3> cell_m{};
};

// Grid covering the given fixed-time positions of this rank's particles and
// every other rank's (core/communicator.hpp: the extents are reduced over the
// ranks); throws std::runtime_error (CollectiveError on several ranks) on
// non-finite coordinates, a zero extent, or particles outside a sigma grid.
// exact (the deterministic mode, physics/exact_sums.hpp): a sigma grid's mean
// and rms from exact sums, the same bits for any split over ranks. A minmax
// grid's pass over the particles is shared by `threads` threads.
template <class T>
GridGeometry grid_covering(const GridSettings& settings, const T* const pos[3], std::int64_t n, bool exact = false,
                           int threads = 1);

// Reductions of one axis over the particles (min, max, sums over the finite
// ones), wherever they were computed (the CUDA backend reduces on the device).
struct AxisExtent {
    double lo = std::numeric_limits<double>::infinity();
    double hi = -std::numeric_limits<double>::infinity();
    double sum = 0;
    double sum2 = 0;
    std::int64_t non_finite = 0;

    void add(double u) {
        if (!std::isfinite(u)) {
            ++non_finite;
            return;
        }
        lo = std::min(lo, u);
        hi = std::max(hi, u);
        sum += u;
        sum2 += u * u;
    }
};
// The grid of grid_covering from its per-axis reductions (same checks, same messages).
GridGeometry geometry_from_extents(const GridSettings& settings, const AxisExtent extent[3], std::int64_t n);

// Whether SCTAPE_DETERMINISTIC_DEPOSIT asks for the fixed-point deposit (set,
// not empty, not "0"): read by the CPU kick and the GPU tracker alike.
bool deterministic_deposit_requested();

// The error of s_to_t for a particle without a real longitudinal momentum.
constexpr const char* kNonFinitePzMessage =
    "non-finite longitudinal momentum: a particle has non-finite px, py or delta, "
    "or a transverse momentum above its total momentum";

template <class T>
class SpaceChargeKick {
public:
    SpaceChargeKick(const GridSettings& settings, int threads);
    ~SpaceChargeKick();

    void apply(Beam<T>& beam, double ds_m);

    // The fixed-point deposit (grid_ops.hpp: deposit_cic_fixed): rho the same
    // bits for any thread count and any split over ranks. Off by default; on
    // when SCTAPE_DETERMINISTIC_DEPOSIT=1, or when set here. It turns on the
    // deterministic mode: a sigma grid's sums here, and every sum over
    // particles of the CPU backward pass, exact (physics/exact_sums.hpp).
    void set_fixed_point_deposit(bool on) { fixed_point_deposit_ = on; }
    bool fixed_point_deposit() const { return fixed_point_deposit_; }

    void s_to_t(const Beam<T>& beam);
    void deposit(const Beam<T>& beam);
    void green(const Beam<T>& beam);
    void convolve();
    void field();
    void gather(const Beam<T>& beam);
    void push(const Beam<T>& beam, double ds_m);
    void t_to_s(Beam<T>& beam);

    // State left by the last substeps (nodes indexed (i*ny + j)*nz + k).
    const GridGeometry& geometry() const { return geometry_; }
    const HostArray<T>& charge_density() const { return rho_; }   // C/m^3
    const HostArray<T>& potential() const { return phi_; }        // V
    const HostArray<T>& green_function() const { return green_doubled_; }  // IGF / (4 pi eps0), doubled grid
    // its real spectrum over the doubled grid's size (HockneyConvolver::green_spectrum)
    const HostArray<T>& green_spectrum() const { return green_spectrum_; }
    const std::array<HostArray<T>, 3>& field_on_grid() const { return e_grid_; }  // -grad phi, V/m
    const HostArray<T>& z() const { return z_; }                  // -beta0*tau, m
    const std::array<HostArray<T>, 3>& momentum_kick() const { return dp_; }  // over p0
    const std::array<HostArray<T>, 3>& field_at_particles() const { return e_part_; }  // V/m, after gather

    // The FFT convolution work space, for adjoints that run between kicks.
    HockneyConvolver<T>& convolver() { return *convolver_; }

    // Wall seconds accumulated per substep since construction.
    const std::array<double, kSubstepCount>& seconds() const { return seconds_; }
    // How often the Green function was built, by green() or for an adjoint
    // (hold_green): it is reused while the cell sizes and gamma repeat bit for bit.
    std::int64_t green_builds() const { return green_builds_; }
    // For adjoints, which run between kicks: makes the Green function held
    // (green_function, green_spectrum) that of this geometry and gamma,
    // building it only when they differ from the last one held; returns
    // whether it built. When it builds and `gradient` is given, that gets the
    // corner lattice's gradient too (build_green); otherwise it is cleared.
    bool hold_green(const GridGeometry& g, double gamma, CornerGradient* gradient = nullptr);
    // d(green_spectrum)/d(theta_z), theta_z = gamma hz the IGF's z cell, of the
    // Green function held: built on the first call after it changed and kept
    // with it. Only with extent.cell_quantum > 0, where the cells have no
    // derivative (extent_jacobian) and theta_z carries gamma's alone;
    // otherwise nullptr.
    const HostArray<T>* green_spectrum_z_derivative();

private:
    void prepare(std::int64_t n_particles);

    GridSettings settings_;
    int threads_;
    GridGeometry geometry_;
    HostArray<T> z_, pz_;
    std::array<HostArray<T>, 3> e_part_, dp_;
    HostArray<T> rho_, deposit_scratch_, phi_;
    bool fixed_point_deposit_ = false;
    HostArray<std::int64_t> fixed_scratch_, fixed_sum_;
    std::array<HostArray<T>, 3> e_grid_;
    HostArray<T> green_doubled_, green_spectrum_;
    // The IGF depends on the cell sizes and gamma only (the shape is fixed):
    // when both repeat bit for bit, the last one is reused as it is.
    std::array<double, 4> green_key_{};
    GridGeometry green_geometry_;  // the key's geometry (only its cells matter)
    bool green_valid_ = false;
    std::int64_t green_builds_ = 0;
    HostArray<T> green_z_derivative_;
    bool green_z_derivative_valid_ = false;
    std::unique_ptr<HockneyConvolver<T>> convolver_;
    std::array<double, kSubstepCount> seconds_{};
};

}  // namespace sctape
