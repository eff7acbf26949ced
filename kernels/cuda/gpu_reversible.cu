// gpu_reversible.cu — the fixed-point element maps and kick of reversible tracking
// on the device (gpu_reversible.hpp): grid-stride kernels around the
// SCTAPE_HD functions of fixed_point.hpp, plus the host glue.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/communicator.hpp"
#include "cuda/device_alloc.cuh"
#include "physics/fixed_point.hpp"
#include "cuda/gpu_reversible.hpp"
#include "cuda/launch.cuh"
#include "core/nvtx.hpp"

namespace sctape {
namespace cuda {
namespace {

// The device state: six int64 columns (x, y, tau, px, py, pz) and the
// position scales.
struct FixedColumns {
    std::int64_t* q[6];
    double scale[3];
};

// Bit c of *overflow: column c left the fixed-point range.
__device__ inline void add_checked(std::int64_t& column, double step, int sign, int bit, int* overflow) {
    if (!fixed_point_add(column, step, sign)) atomicOr(overflow, 1 << bit);
}

// The map's shears on each particle (fixed_point_map, as on the CPU).
__global__ void fixed_map_kernel(FixedColumns s, std::int64_t n, FixedPointMap map, double inv_beta0,
                                 double inv_bg0_sq, int sign, int* overflow) {
    SCTAPE_GRID_LOOP(p, n) {
        std::int64_t q[6];
        for (int c = 0; c < 6; ++c) q[c] = s.q[c][p];
        const int bits = fixed_point_map(map, q, s.scale, inv_beta0, inv_bg0_sq, sign);
        for (int c = 0; c < 6; ++c) s.q[c][p] = q[c];
        if (bits) atomicOr(overflow, bits);
    }
}

// P += sign Q(push_scale E / momentum scale).
template <class T>
__global__ void fixed_kick_kernel(FixedColumns s, const T* ex, const T* ey, const T* ez, std::int64_t n,
                                  double push_scale, int sign, int* overflow) {
    const T* e[3] = {ex, ey, ez};
    SCTAPE_GRID_LOOP(p, n) {
        for (int a = 0; a < 3; ++a) {
            const double inc = push_scale * double(e[a][p]);
            add_checked(s.q[kFixedPx + a][p], inc * (1.0 / kFixedMomentumScale), sign, kFixedPx + a, overflow);
        }
    }
}

// The kick's input: the positions of the state, zero momenta (the field
// depends on the positions only; the CPU tracker does the same).
template <class T>
__global__ void positions_kernel(FixedColumns s, std::int64_t n, T* x, T* px, T* y, T* py, T* tau, T* delta) {
    SCTAPE_GRID_LOOP(p, n) {
        x[p] = T(double(s.q[kFixedX][p]) * s.scale[0]);
        y[p] = T(double(s.q[kFixedY][p]) * s.scale[1]);
        tau[p] = T(double(s.q[kFixedTau][p]) * s.scale[2]);
        px[p] = py[p] = delta[p] = T(0);
    }
}

template <class T>
__global__ void coordinates_kernel(FixedColumns s, std::int64_t n, double inv_beta0, double inv_bg0_sq, T* x, T* px,
                                   T* y, T* py, T* tau, T* delta) {
    SCTAPE_GRID_LOOP(p, n) {
        const std::int64_t q[6] = {s.q[0][p], s.q[1][p], s.q[2][p], s.q[3][p], s.q[4][p], s.q[5][p]};
        T out[6];
        fixed_point_coordinates(q, s.scale[0], s.scale[1], s.scale[2], inv_beta0, inv_bg0_sq, out);
        x[p] = out[0];
        px[p] = out[1];
        y[p] = out[2];
        py[p] = out[3];
        tau[p] = out[4];
        delta[p] = out[5];
    }
}

}  // namespace
}  // namespace cuda

template <class T>
struct GpuReversible<T>::Impl {
    GpuTracker<T>& gpu;
    cudaStream_t stream;
    std::int64_t n;
    Reference reference;
    double charge_e;
    std::array<cuda::DeviceArray<std::int64_t>, 6> state;
    cuda::FixedColumns columns{};

    double inv_beta0() const { return 1.0 / reference.beta; }
    double inv_bg0_sq() const { return 1.0 / (reference.beta_gamma() * reference.beta_gamma()); }

    // Runs `work(overflow)` and throws if a column left the range: a 4-byte
    // flag allocated per call, so it never counts in the forward pass's ΔM.
    template <class Work>
    void checked(Work&& work) {
        cuda::DeviceArray<int> overflow(1, stream);
        cuda::check(cudaMemsetAsync(overflow.data(), 0, sizeof(int), stream), "cudaMemsetAsync");
        work(overflow.data());
        int bits = 0;
        cuda::check(cudaMemcpyAsync(&bits, overflow.data(), sizeof(int), cudaMemcpyDeviceToHost, stream),
                    "copy the overflow flag");
        cuda::wait(stream, "reversible step");
        gpu.synchronize();  // a kick's error (the CPU's message) before an overflow it may cause
        std::int64_t overflowed[6];  // per column, on how many MPI ranks (as the CPU's quantized_map)
        for (int c = 0; c < 6; ++c) overflowed[c] = (bits >> c) & 1;
        communicator().sum(overflowed, 6);
        static const char* names[6] = {"x", "y", "tau", "px", "py", "pz"};
        for (int c = 0; c < 6; ++c)
            if (overflowed[c] > 0) ReversibleSlices::overflow(names[c]);
    }
};

template <class T>
GpuReversible<T>::GpuReversible(const Beam<T>& beam, const TrackSettings& tracking, GpuTracker<T>& gpu)
    : ReversibleSlices(tracking, beam.reference.beta_gamma()) {
    if (tracking.space_charge && !gpu.options().deterministic_deposit)
        throw std::invalid_argument(
            "reversible tracking on the GPU needs deterministic deposit (the undo must recompute the field bit for bit)");
    const FixedPointBeam fixed = quantize_beam(beam);
    impl_.reset(new Impl{gpu, static_cast<cudaStream_t>(gpu.stream()), beam.size(), beam.reference,
                         beam.species.charge_e, {}, {}});
    Impl& g = *impl_;
    for (int c = 0; c < 6; ++c) {
        g.state[c].allocate(std::size_t(g.n), g.stream);
        if (g.n > 0)
            cuda::check(cudaMemcpyAsync(g.state[c].data(), fixed.state[c].data(), g.state[c].bytes(),
                                        cudaMemcpyHostToDevice, g.stream),
                        "copy the fixed-point state to the device");
        g.columns.q[c] = g.state[c].data();
    }
    for (int a = 0; a < 3; ++a) g.columns.scale[a] = fixed.scale[a];
    cuda::wait(g.stream, "copy the fixed-point state to the device");  // `fixed` is freed next
}

template <class T>
GpuReversible<T>::~GpuReversible() = default;

template <class T>
void GpuReversible<T>::quantized_map(const FixedPointMap& map, int sign) {
    Impl& g = *impl_;
    cuda::NvtxRange range("drift");
    MemoryScope scope("drift", cuda::device_memory());
    g.checked([&](int* overflow) {
        cuda::launch(g.stream, g.n, "fixed-point map", cuda::fixed_map_kernel, g.columns, g.n, map, g.inv_beta0(),
                     g.inv_bg0_sq(), sign, overflow);
    });
}

// The field of the tracker's kick at the state's positions, then the
// momenta's integer push (push and t_to_s of the float kick in one step).
template <class T>
void GpuReversible<T>::quantized_kick(double ds_m, int sign) {
    Impl& g = *impl_;
    const auto c = g.gpu.coordinates();
    cuda::launch(g.stream, g.n, "fixed-point positions", cuda::positions_kernel<T>, g.columns, g.n, c[0], c[1], c[2],
                 c[3], c[4], c[5]);
    const std::array<const T*, 3> e = g.gpu.field_at_particles();
    const Reference& ref = g.reference;
    const double push_scale = g.charge_e * ds_m / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV);
    cuda::NvtxRange range(substep_name(Substep::push));
    MemoryScope scope(substep_name(Substep::push), cuda::device_memory());
    g.checked([&](int* overflow) {
        cuda::launch(g.stream, g.n, "fixed-point push", cuda::fixed_kick_kernel<T>, g.columns, e[0], e[1], e[2], g.n,
                     push_scale, sign, overflow);
    });
}

template <class T>
void GpuReversible<T>::to_tracker() {
    Impl& g = *impl_;
    const auto c = g.gpu.coordinates();
    cuda::launch(g.stream, g.n, "fixed-point coordinates", cuda::coordinates_kernel<T>, g.columns, g.n, g.inv_beta0(),
                 g.inv_bg0_sq(), c[0], c[1], c[2], c[3], c[4], c[5]);
}

template <class T>
std::array<HostArray<std::int64_t>, 6> GpuReversible<T>::state() const {
    const Impl& g = *impl_;
    std::array<HostArray<std::int64_t>, 6> out;
    for (int c = 0; c < 6; ++c) {
        out[c].resize(std::size_t(g.n));
        if (g.n > 0)
            cuda::check(cudaMemcpyAsync(out[c].data(), g.state[c].data(), g.state[c].bytes(), cudaMemcpyDeviceToHost,
                                        g.stream),
                        "copy the fixed-point state to the host");
    }
    cuda::wait(g.stream, "copy the fixed-point state to the host");
    return out;
}

template <class T>
std::int64_t GpuReversible<T>::state_bytes() const {
    return 6 * impl_->n * std::int64_t(sizeof(std::int64_t));
}

template class GpuReversible<float>;
template class GpuReversible<double>;

}  // namespace sctape
