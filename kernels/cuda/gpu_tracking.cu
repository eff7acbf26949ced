// gpu_tracking.cu — the space-charge kick and the tracking on a CUDA device.
// Kernels are thin grid-stride loops around the SCTAPE_HD bodies of
// kick_math.hpp and physics/kick_bodies.hpp; this file holds only launch glue, the
// cuFFT plan cache and the host orchestration (gpu_tracking.hpp).
#include <cuda_runtime.h>
#include <cufft.h>
#include <math_constants.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "physics/constants.hpp"
#include "cuda/backward_kernels.cuh"
#include "cuda/cufft_plans.cuh"
#include "cuda/device_alloc.cuh"
#include "cuda/launch.cuh"
#include "cuda/gpu_tracking.hpp"
#include "physics/kick_bodies.hpp"
#include "physics/kick_math.hpp"
#include "core/nvtx.hpp"

namespace sctape {
namespace cuda {
using namespace bodies;  // the per-element bodies (physics/) the kernels run
namespace {

// ---------------------------------------------------------------- kernels

template <class T>
__global__ void map_kernel(T* x, T* px, T* y, T* py, T* tau, T* delta, std::int64_t n, ElementMap map) {
    SCTAPE_GRID_LOOP(p, n) {
        apply_map_particle(map, x[p], px[p], y[p], py[p], tau[p], delta[p]);
    }
}

template <class T>
__global__ void s_to_t_kernel(const T* px, const T* py, const T* tau, const T* delta, std::int64_t n, T beta0,
                              T inv_beta0, T inv_bg2, T* z, T* pz, int* non_finite) {
    SCTAPE_GRID_LOOP(p, n) {
        T zp, pzp;
        s_to_t_particle(px[p], py[p], tau[p], delta[p], beta0, inv_beta0, inv_bg2, zp, pzp);
        z[p] = zp;
        pz[p] = pzp;
        if (!isfinite(pzp)) atomicAdd(non_finite, 1);
    }
}

// Per-axis reduction for the grid geometry: min, max, sum, sum of squares of
// the finite coordinates and the count of non-finite ones. Fixed launch shape
// and tree order, so the sums are reproducible run to run.
struct ExtentAcc {
    double lo, hi, sum, sum2;
    unsigned long long non_finite;
};

__device__ inline void combine(ExtentAcc& a, const ExtentAcc& b) {
    a.lo = fmin(a.lo, b.lo);
    a.hi = fmax(a.hi, b.hi);
    a.sum += b.sum;
    a.sum2 += b.sum2;
    a.non_finite += b.non_finite;
}

__device__ inline void block_reduce(ExtentAcc* s) {
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w >>= 1) {
        if (int(threadIdx.x) < w) combine(s[threadIdx.x], s[threadIdx.x + w]);
        __syncthreads();
    }
}

template <class T>
__global__ void extent_partials(const T* x, const T* y, const T* z, std::int64_t n, ExtentAcc* partials) {
    __shared__ ExtentAcc s[kThreads];
    const T* u = blockIdx.y == 0 ? x : (blockIdx.y == 1 ? y : z);
    ExtentAcc acc{CUDART_INF, -CUDART_INF, 0.0, 0.0, 0ull};
    SCTAPE_GRID_LOOP(p, n) {
        const double v = u[p];
        if (isfinite(v)) {
            acc.lo = fmin(acc.lo, v);
            acc.hi = fmax(acc.hi, v);
            acc.sum += v;
            acc.sum2 += v * v;
        } else {
            ++acc.non_finite;
        }
    }
    s[threadIdx.x] = acc;
    block_reduce(s);
    if (threadIdx.x == 0) partials[std::int64_t(blockIdx.y) * gridDim.x + blockIdx.x] = s[0];
}

__global__ void extent_final(const ExtentAcc* partials, int blocks, ExtentAcc* out) {
    __shared__ ExtentAcc s[kThreads];
    ExtentAcc acc{CUDART_INF, -CUDART_INF, 0.0, 0.0, 0ull};
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) combine(acc, partials[std::int64_t(blockIdx.x) * blocks + b]);
    s[threadIdx.x] = acc;
    block_reduce(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// Per-axis extents of (x, y, z) into out[0..2], via kExtentBlocks partials per axis.
template <class T>
void launch_extents(cudaStream_t stream, const T* x, const T* y, const T* z, std::int64_t n, ExtentAcc* partials,
                    ExtentAcc* out) {
    const int blocks = int(std::min<std::int64_t>(std::max<std::int64_t>((n + kThreads - 1) / kThreads, 1),
                                                  kExtentBlocks));
    extent_partials<T><<<dim3(unsigned(blocks), 3), kThreads, 0, stream>>>(x, y, z, n, partials);
    check_launch("extents");
    extent_final<<<3, kThreads, 0, stream>>>(partials, blocks, out);
    check_launch("extents");
}

AxisExtent axis_extent(const ExtentAcc& e) {
    AxisExtent a;
    a.lo = e.lo;
    a.hi = e.hi;
    a.sum = e.sum;
    a.sum2 = e.sum2;
    a.non_finite = std::int64_t(e.non_finite);
    return a;
}

template <class T>
__global__ void deposit_atomic_kernel(CicGrid<T> g, const T* x, const T* y, const T* z, std::int64_t n, T* acc) {
    SCTAPE_GRID_LOOP(p, n) {
        const CicPoint<T> c = cic_point(g, x[p], y[p], z[p]);
        for (int m = 0; m < 8; ++m) atomicAdd(acc + c.base + cic_offset(g, m), c.w[m]);
    }
}

template <class T>
__global__ void deposit_fixed_kernel(CicGrid<T> g, const T* x, const T* y, const T* z, std::int64_t n, double one,
                                     unsigned long long* acc) {
    SCTAPE_GRID_LOOP(p, n) {
        const CicPoint<T> c = cic_point(g, x[p], y[p], z[p]);
        for (int m = 0; m < 8; ++m)
            atomicAdd(acc + c.base + cic_offset(g, m), static_cast<unsigned long long>(to_fixed_point(c.w[m], one)));
    }
}

template <class T>
__global__ void scale_kernel(const T* sum, std::int64_t cells, T scale, T* rho) {
    SCTAPE_GRID_LOOP(c, cells) rho[c] = sum[c] * scale;
}

template <class T>
__global__ void scale_fixed_kernel(const unsigned long long* sum, std::int64_t cells, double inv_one, T scale, T* rho) {
    SCTAPE_GRID_LOOP(c, cells) rho[c] = T(double(static_cast<long long>(sum[c])) * inv_one) * scale;
}

__global__ void green_corner_kernel(std::int64_t cells, int ny, int nz, double hx, double hy, double hz,
                                    double* corner) {
    SCTAPE_GRID_LOOP(c, cells) corner[c] = green_corner(c, ny, nz, hx, hy, hz);
}

__global__ void corner_difference_kernel(const double* in, std::int64_t cells, std::int64_t stride, int len,
                                         double* out) {
    SCTAPE_GRID_LOOP(c, cells) out[c] = corner_difference(in, c, stride, len);
}

template <class T>
__global__ void green_mirror_kernel(const double* corner, std::int64_t doubled, int nx, int ny, int nz, double coulomb,
                                    T* green) {
    SCTAPE_GRID_LOOP(d, doubled) green[d] = T(green_mirror(corner, d, nx, ny, nz, coulomb));
}

template <class T>
__global__ void pad_kernel(const T* cells, std::int64_t doubled, int nx, int ny, int nz, T* out) {
    SCTAPE_GRID_LOOP(d, doubled) out[d] = pad_value(cells, d, nx, ny, nz);
}

// spectra as interleaved (re, im) pairs, the layout of cufftComplex / cufftDoubleComplex
template <class T>
__global__ void spectrum_product_kernel(T* a, const T* b, std::int64_t modes, T norm) {
    SCTAPE_GRID_LOOP(c, modes) {
        T re = a[2 * c], im = a[2 * c + 1];
        spectrum_product(re, im, b[2 * c], b[2 * c + 1], norm);
        a[2 * c] = re;
        a[2 * c + 1] = im;
    }
}

template <class T>
__global__ void crop_kernel(const T* doubled, std::int64_t cells, int ny, int nz, T* out) {
    SCTAPE_GRID_LOOP(c, cells) out[c] = doubled[crop_index(c, ny, nz)];
}

template <class T>
__global__ void field_kernel(const T* phi, std::int64_t cells, std::int64_t stride, int len, T inv_h, T inv_2h, T* e) {
    SCTAPE_GRID_LOOP(c, cells) e[c] = field_component(phi, c, stride, len, inv_h, inv_2h);
}

template <class T>
__global__ void gather_kernel(CicGrid<T> g, const T* x, const T* y, const T* z, std::int64_t n, const T* ex,
                              const T* ey, const T* ez, T* out_x, T* out_y, T* out_z) {
    SCTAPE_GRID_LOOP(p, n) {
        const CicPoint<T> c = cic_point(g, x[p], y[p], z[p]);
        out_x[p] = cic_gather(g, c, ex);
        out_y[p] = cic_gather(g, c, ey);
        out_z[p] = cic_gather(g, c, ez);
    }
}

template <class T>
__global__ void push_kernel(const T* ex, const T* ey, const T* ez, std::int64_t n, T scale, T* dx, T* dy, T* dz) {
    SCTAPE_GRID_LOOP(p, n) {
        dx[p] = scale * ex[p];
        dy[p] = scale * ey[p];
        dz[p] = scale * ez[p];
    }
}

template <class T>
__global__ void t_to_s_kernel(T* px, T* py, T* delta, const T* pz, const T* dpx, const T* dpy, const T* dpz,
                              std::int64_t n, T inv_beta0, T inv_bg2) {
    SCTAPE_GRID_LOOP(p, n) {
        const T px_old = px[p], py_old = py[p], pz_old = pz[p];
        const T px_new = px_old + dpx[p], py_new = py_old + dpy[p], pz_new = pz_old + dpz[p];
        delta[p] = t_to_s_delta(delta[p], px_old, py_old, pz_old, px_new, py_new, pz_new, inv_beta0, inv_bg2);
        px[p] = px_new;
        py[p] = py_new;
    }
}


// ---------------------------------------------------------------- host glue

// Owns a non-blocking stream; declared first in Impl so that it outlives the
// device arrays whose stream-ordered frees it carries.
struct StreamHolder {
    cudaStream_t stream = nullptr;
    StreamHolder() { check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"); }
    ~StreamHolder() {
        if (!stream) return;
        cudaStreamSynchronize(stream);
        cudaStreamDestroy(stream);
        cudaGetLastError();
    }
    StreamHolder(const StreamHolder&) = delete;
    StreamHolder& operator=(const StreamHolder&) = delete;
};

// Start/stop events for the eight substeps and the drift.
struct EventSet {
    static constexpr int kSlots = kSubstepCount + 1;
    cudaEvent_t start[kSlots] = {}, stop[kSlots] = {};
    EventSet() {
        for (int i = 0; i < kSlots; ++i) {
            check(cudaEventCreate(&start[i]), "cudaEventCreate");
            check(cudaEventCreate(&stop[i]), "cudaEventCreate");
        }
    }
    ~EventSet() {
        for (int i = 0; i < kSlots; ++i) {
            if (start[i]) cudaEventDestroy(start[i]);
            if (stop[i]) cudaEventDestroy(stop[i]);
        }
    }
    EventSet(const EventSet&) = delete;
    EventSet& operator=(const EventSet&) = delete;
    double elapsed_s(int slot) const {
        float ms = 0;
        check(cudaEventSynchronize(stop[slot]), "cudaEventSynchronize");
        check(cudaEventElapsedTime(&ms, start[slot], stop[slot]), "cudaEventElapsedTime");
        return 1e-3 * ms;
    }
};

constexpr double kCoulomb = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);

}  // namespace
}  // namespace cuda

GpuOptions GpuOptions::from_environment() {
    GpuOptions o;
    const char* v = std::getenv("SCTAPE_DETERMINISTIC_DEPOSIT");
    o.deterministic_deposit = v && *v && std::strcmp(v, "0") != 0;
    return o;
}

template <class T>
struct GpuTracker<T>::Impl {
    cuda::StreamHolder holder;  // first: destroyed last
    cuda::EventSet events;
    cudaStream_t stream;

    GpuOptions options;
    bool space_charge;
    GridSettings settings;
    std::int64_t n;
    Species species;
    Reference reference;
    double bunch_charge_C;

    std::array<cuda::DeviceArray<T>, 6> coord;  // x, px, y, py, tau, delta
    // kick buffers
    cuda::DeviceArray<T> z, pz;
    std::array<cuda::DeviceArray<T>, 3> e_part, dp, e_grid;
    cuda::DeviceArray<T> rho, phi, sum;
    cuda::DeviceArray<unsigned long long> sum_fixed;
    cuda::DeviceArray<T> green_doubled, work, spec_a, spec_b;
    cuda::DeviceArray<unsigned char> fft_work;
    cuda::DeviceArray<cuda::ExtentAcc> partials, extents;
    cuda::DeviceArray<int> non_finite;
    cuda::PlanPair plans;
    std::array<int, 3> doubled{};
    std::int64_t cells = 0, doubled_size = 0, modes = 0;

    // reverse mode, allocated by set_adjoint (the backward pass's workspace)
    std::array<cuda::DeviceArray<T>, 6> adj;
    cuda::DeviceArray<T> z_adj, pz_adj, phi_adj, rho_adj;
    std::array<cuda::DeviceArray<T>, 3> e_grid_adj;
    cuda::DeviceArray<double> sum_partials;
    cuda::DeviceArray<long long> first_index;

    GridGeometry geometry;
    bodies::CicGrid<T> cic{};
    bool has_grid = false;
    std::array<double, kSubstepCount> seconds{};
    double drift_seconds = 0;
    bool drift_pending = false;

    Impl(const Beam<T>& beam, bool sc, const GridSettings& grid, const GpuOptions& opt)
        : stream(holder.stream), options(opt), space_charge(sc), settings(grid), n(beam.size()),
          species(beam.species), reference(beam.reference), bunch_charge_C(beam.bunch_charge_C) {
        {
            MemoryScope scope("beam", cuda::device_memory());
            const std::array<const HostArray<T>*, 6> host = beam.columns();
            for (int c = 0; c < 6; ++c) {
                coord[c].allocate(std::size_t(n), stream);
                if (n > 0)
                    cuda::check(cudaMemcpyAsync(coord[c].data(), host[c]->data(), std::size_t(n) * sizeof(T),
                                                cudaMemcpyHostToDevice, stream),
                                "copy the beam to the device");
            }
        }
        if (!space_charge) return;
        static const char* axis_name[3] = {"x", "y", "z"};
        for (int a = 0; a < 3; ++a)
            if (settings.shape[a] < 2)
                throw std::runtime_error(std::string("grid needs at least 2 nodes along ") + axis_name[a]);
        const auto& s = settings.shape;
        cells = std::int64_t(s[0]) * s[1] * s[2];
        doubled = {2 * s[0], 2 * s[1], 2 * s[2]};
        doubled_size = std::int64_t(doubled[0]) * doubled[1] * doubled[2];
        modes = std::int64_t(doubled[0]) * doubled[1] * (doubled[2] / 2 + 1);
        MemoryScope scope("kick", cuda::device_memory());
        const std::size_t np = std::size_t(n);
        z.allocate(np, stream);
        pz.allocate(np, stream);
        for (int a = 0; a < 3; ++a) {
            e_part[a].allocate(np, stream);
            dp[a].allocate(np, stream);
            e_grid[a].allocate(std::size_t(cells), stream);
        }
        rho.allocate(std::size_t(cells), stream);
        phi.allocate(std::size_t(cells), stream);
        if (options.deterministic_deposit) sum_fixed.allocate(std::size_t(cells), stream);
        else sum.allocate(std::size_t(cells), stream);
        green_doubled.allocate(std::size_t(doubled_size), stream);
        work.allocate(std::size_t(doubled_size), stream);
        spec_a.allocate(std::size_t(2 * modes), stream);
        spec_b.allocate(std::size_t(2 * modes), stream);
        partials.allocate(std::size_t(3 * cuda::kExtentBlocks), stream);
        extents.allocate(3, stream);
        non_finite.allocate(1, stream);
        plans = cuda::cached_plans(doubled, sizeof(T) == sizeof(double));
        fft_work.allocate(plans.work_bytes, stream);
    }

    // Runs one substep between its events, inside its NVTX range and memory scope.
    template <class Work>
    void substep(Substep s, Work&& work_fn) {
        const int slot = static_cast<int>(s);
        cuda::NvtxRange range(substep_name(s));
        MemoryScope scope(substep_name(s), cuda::device_memory());
        cuda::check(cudaEventRecord(events.start[slot], stream), "cudaEventRecord");
        work_fn();
        cuda::check(cudaEventRecord(events.stop[slot], stream), "cudaEventRecord");
    }

    void flush_drift_timing() {
        if (!drift_pending) return;
        drift_pending = false;
        drift_seconds += events.elapsed_s(kSubstepCount);
    }

    // scope and NVTX range "drift": the element maps keep the schema's name
    void map(const ElementMap& map) {
        cuda::NvtxRange range("drift");
        MemoryScope scope("drift", cuda::device_memory());
        flush_drift_timing();
        cuda::check(cudaEventRecord(events.start[kSubstepCount], stream), "cudaEventRecord");
        cuda::launch(stream, n, "map", cuda::map_kernel<T>, coord[0].data(), coord[1].data(), coord[2].data(),
                     coord[3].data(), coord[4].data(), coord[5].data(), n, map);
        cuda::check(cudaEventRecord(events.stop[kSubstepCount], stream), "cudaEventRecord");
        drift_pending = true;
    }

    void fft(bool forward, cufftHandle plan, T* in, T* out) {
        cuda::exec_fft<T>(forward, plan, in, out, stream, fft_work.data());
    }

    // z and pz from the coordinates (flagging non-finite pz).
    void run_s_to_t(const T* px, const T* py, const T* tau, const T* delta) {
        const double bg = reference.beta_gamma();
        cuda::check(cudaMemsetAsync(non_finite.data(), 0, sizeof(int), stream), "cudaMemsetAsync");
        cuda::launch(stream, n, "s_to_t", cuda::s_to_t_kernel<T>, px, py, tau, delta, n, T(reference.beta),
                     T(1.0 / reference.beta), T(1.0 / (bg * bg)), z.data(), pz.data(), non_finite.data());
    }

    // e_grid = -grad phi on `geometry`.
    void run_field(const T* potential) {
        const auto& s = settings.shape;
        const std::int64_t stride[3] = {std::int64_t(s[1]) * s[2], s[2], 1};
        for (int a = 0; a < 3; ++a)
            cuda::launch(stream, cells, "field", cuda::field_kernel<T>, potential, cells, stride[a], s[a],
                         T(1.0 / geometry.cell_m[a]), T(0.5 / geometry.cell_m[a]), e_grid[a].data());
    }

    // e_part = e_grid at the particles (x, y, z).
    void run_gather(const T* x, const T* y) {
        cuda::launch(stream, n, "gather", cuda::gather_kernel<T>, cic, x, y, (const T*)z.data(), n,
                     (const T*)e_grid[0].data(), (const T*)e_grid[1].data(), (const T*)e_grid[2].data(),
                     e_part[0].data(), e_part[1].data(), e_part[2].data());
    }

    // Per-axis min, max, sum, sum of squares of (x, y, z) into `extents`.
    void launch_extents(const T* x, const T* y, const T* zz) {
        cuda::launch_extents(stream, x, y, zz, n, partials.data(), extents.data());
    }

    // The IGF of `geometry` into green_doubled: float64 corner lattice,
    // differenced along x, y, z, mirrored, cast (build_green on the CPU).
    void build_green() {
        const int nx = settings.shape[0], ny = settings.shape[1], nz = settings.shape[2];
        cuda::DeviceArray<double> a(std::size_t(cells), stream), b(std::size_t(cells), stream);
        const double hx = geometry.cell_m[0], hy = geometry.cell_m[1], hz = reference.gamma * geometry.cell_m[2];
        cuda::launch(stream, cells, "green (corners)", cuda::green_corner_kernel, cells, ny, nz, hx, hy, hz, a.data());
        const std::int64_t stride[3] = {std::int64_t(ny) * nz, nz, 1};
        cuda::DeviceArray<double>* src = &a;
        cuda::DeviceArray<double>* dst = &b;
        for (int ax = 0; ax < 3; ++ax) {
            cuda::launch(stream, cells, "green (differences)", cuda::corner_difference_kernel,
                         (const double*)src->data(), cells, stride[ax], settings.shape[ax], dst->data());
            std::swap(src, dst);
        }
        cuda::launch(stream, doubled_size, "green (mirror)", cuda::green_mirror_kernel<T>, (const double*)src->data(),
                     doubled_size, nx, ny, nz, cuda::kCoulomb, green_doubled.data());
    }

    // Substeps s_to_t ... gather at the current coordinates: rho, phi, the
    // geometry and e_part as the kick leaves them, before push and t_to_s.
    void compute_field() {
        if (!space_charge) throw std::logic_error("GpuTracker: tracker built without space charge");
        const T* x = coord[0].data();
        const T* y = coord[2].data();
        const int nx = settings.shape[0], ny = settings.shape[1], nz = settings.shape[2];

        substep(Substep::s_to_t,
                [&] { run_s_to_t(coord[1].data(), coord[3].data(), coord[4].data(), coord[5].data()); });

        substep(Substep::deposit, [&] {
            // grid geometry: per-axis reductions on the device, formulas and checks on the host
            launch_extents(x, y, z.data());
            cuda::ExtentAcc host_ext[3];
            int host_bad = 0;
            cuda::check(cudaMemcpyAsync(host_ext, extents.data(), sizeof(host_ext), cudaMemcpyDeviceToHost, stream),
                        "copy the extents");
            cuda::check(cudaMemcpyAsync(&host_bad, non_finite.data(), sizeof(int), cudaMemcpyDeviceToHost, stream),
                        "copy the s_to_t flag");
            cuda::check(cudaStreamSynchronize(stream), "s_to_t / extents");
            if (host_bad > 0) throw std::runtime_error(kNonFinitePzMessage);
            AxisExtent ext[3];
            for (int a = 0; a < 3; ++a) ext[a] = cuda::axis_extent(host_ext[a]);
            geometry = geometry_from_extents(settings, ext, n);
            cic = bodies::cic_grid<T>(geometry);
            has_grid = true;
            const T scale = T(macro_charge_C() / geometry.cell_volume_m3());
            if (options.deterministic_deposit) {
                const int bits = bodies::fixed_point_bits(n);
                cuda::check(cudaMemsetAsync(sum_fixed.data(), 0, sum_fixed.bytes(), stream), "cudaMemsetAsync");
                cuda::launch(stream, n, "deposit", cuda::deposit_fixed_kernel<T>, cic, x, y, (const T*)z.data(), n,
                             std::ldexp(1.0, bits), sum_fixed.data());
                cuda::launch(stream, cells, "deposit (scale)", cuda::scale_fixed_kernel<T>,
                             (const unsigned long long*)sum_fixed.data(), cells, std::ldexp(1.0, -bits), scale,
                             rho.data());
            } else {
                cuda::check(cudaMemsetAsync(sum.data(), 0, sum.bytes(), stream), "cudaMemsetAsync");
                cuda::launch(stream, n, "deposit", cuda::deposit_atomic_kernel<T>, cic, x, y, (const T*)z.data(), n,
                             sum.data());
                cuda::launch(stream, cells, "deposit (scale)", cuda::scale_kernel<T>, (const T*)sum.data(), cells,
                             scale, rho.data());
            }
        });

        substep(Substep::green, [&] { build_green(); });

        substep(Substep::convolve, [&] {
            cuda::launch(stream, doubled_size, "convolve (pad)", cuda::pad_kernel<T>, (const T*)rho.data(),
                         doubled_size, nx, ny, nz, work.data());
            fft(true, plans.r2c, work.data(), spec_a.data());
            fft(true, plans.r2c, green_doubled.data(), spec_b.data());
            const T norm = T(1.0 / double(doubled_size));
            cuda::launch(stream, modes, "convolve (product)", cuda::spectrum_product_kernel<T>, spec_a.data(),
                         (const T*)spec_b.data(), modes, norm);
            fft(false, plans.c2r, spec_a.data(), work.data());
            cuda::launch(stream, cells, "convolve (crop)", cuda::crop_kernel<T>, (const T*)work.data(), cells, ny, nz,
                         phi.data());
        });

        substep(Substep::field, [&] { run_field(phi.data()); });
        substep(Substep::gather, [&] { run_gather(x, y); });
    }

    void add_substep_seconds(int first, int last) {
        for (int s = first; s <= last; ++s) seconds[s] += events.elapsed_s(s);
    }

    void kick(double ds_m) {
        const Reference& ref = reference;
        const double bg = ref.beta_gamma();
        const T inv_beta0 = T(1.0 / ref.beta), inv_bg2 = T(1.0 / (bg * bg));
        T* px = coord[1].data();
        T* py = coord[3].data();
        T* delta = coord[5].data();

        compute_field();

        substep(Substep::push, [&] {
            // dP/p0 = charge_e * E * ds / (beta0 gamma0^2 p0c[eV]) (SpaceChargeKick::push)
            const T scale = T(species.charge_e * ds_m / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV));
            cuda::launch(stream, n, "push", cuda::push_kernel<T>, (const T*)e_part[0].data(),
                         (const T*)e_part[1].data(), (const T*)e_part[2].data(), n, scale, dp[0].data(),
                         dp[1].data(), dp[2].data());
        });

        substep(Substep::t_to_s, [&] {
            cuda::launch(stream, n, "t_to_s", cuda::t_to_s_kernel<T>, px, py, delta, (const T*)pz.data(),
                         (const T*)dp[0].data(), (const T*)dp[1].data(), (const T*)dp[2].data(), n, inv_beta0,
                         inv_bg2);
        });

        add_substep_seconds(0, kSubstepCount - 1);
    }

    double macro_charge_C() const {
        return bunch_charge_C * (species.charge_e < 0 ? -1.0 : 1.0) / static_cast<double>(n);
    }

    std::vector<T> to_host(const cuda::DeviceArray<T>& a) const {
        std::vector<T> out(a.size());
        if (!out.empty())
            cuda::check(cudaMemcpyAsync(out.data(), a.data(), a.bytes(), cudaMemcpyDeviceToHost, stream),
                        "copy to the host");
        cuda::check(cudaStreamSynchronize(stream), "copy to the host");
        return out;
    }
};


// ---------------------------------------------------------------- reverse mode

template <class T>
struct GpuAdjoint {
    using Impl = typename GpuTracker<T>::Impl;

    static DeviceColumn<T> copy_of(Impl& g, const T* src, std::int64_t count) {
        auto copy = std::make_shared<cuda::DeviceArray<T>>(std::size_t(count), g.stream);
        if (count > 0)
            cuda::check(cudaMemcpyAsync(copy->data(), src, std::size_t(count) * sizeof(T), cudaMemcpyDeviceToDevice,
                                        g.stream),
                        "snapshot a device buffer");
        DeviceColumn<T> c;
        c.data = copy->data();
        c.size = count;
        c.owner = std::move(copy);
        return c;
    }

    static cuda::AdjointColumns<T> columns(Impl& g) {
        cuda::AdjointColumns<T> A;
        for (int c = 0; c < 6; ++c) A.a[c] = g.adj[c].data();
        return A;
    }

    // Sums the K partial sums of the last sum kernel over n elements, in block order.
    template <int K>
    static std::array<double, K> sums(Impl& g, std::int64_t n) {
        const unsigned blocks = cuda::sum_blocks(n);
        std::vector<double> host(std::size_t(K) * blocks);
        cuda::check(cudaMemcpyAsync(host.data(), g.sum_partials.data(), host.size() * sizeof(double),
                                    cudaMemcpyDeviceToHost, g.stream),
                    "copy the adjoint sums");
        cuda::check(cudaStreamSynchronize(g.stream), "adjoint sums");
        std::array<double, K> out{};
        for (int k = 0; k < K; ++k)
            for (unsigned b = 0; b < blocks; ++b) out[k] += host[std::size_t(k) * blocks + b];
        return out;
    }

    static void zero(Impl& g, cuda::DeviceArray<T>& a) {
        cuda::check(cudaMemsetAsync(a.data(), 0, a.bytes(), g.stream), "cudaMemsetAsync");
    }

    static void map(Impl& g, const std::array<DeviceColumn<T>, 6>& in, const Lattice& lattice, std::size_t element,
                    double fraction, ParameterAdjoints& params) {
        cuda::NvtxRange range("drift");
        MemoryScope scope("drift", cuda::device_memory());
        const Element& e = lattice[element];
        const ElementMap m = element_map(e, fraction, g.reference.beta_gamma());
        cuda::launch_sums(g.stream, g.n, "map adjoint", cuda::map_adjoint_kernel<T>, in[0].data, in[1].data,
                          in[2].data, in[3].data, in[4].data, in[5].data, columns(g), g.n, m, g.sum_partials.data());
        const auto s = sums<12>(g, g.n);
        add_map_adjoint(params, g.reference, e, element, fraction, s.data());
    }

    // Substep adjoint inside its NVTX range and device memory scope.
    template <class Work>
    static void substep(Substep sub, Work&& work) {
        cuda::NvtxRange range(substep_name(sub));
        MemoryScope scope(substep_name(sub), cuda::device_memory());
        work();
    }

    static void kick(Impl& g, const GpuKickSaved<T>& saved, double ds_m, std::size_t element, int slices,
                     ParameterAdjoints& params) {
        if (!g.space_charge) throw std::logic_error("GpuTracker::kick_adjoint: tracker built without space charge");
        const Reference& ref = g.reference;
        const double bg = ref.beta_gamma();
        const T beta0 = T(ref.beta), inv_beta0 = T(1.0 / ref.beta), inv_bg2 = T(1.0 / (bg * bg));
        const std::int64_t n = g.n, cells = g.cells;
        const T* x = saved.input[0].data;
        const T* px = saved.input[1].data;
        const T* y = saved.input[2].data;
        const T* py = saved.input[3].data;
        const T* tau = saved.input[4].data;
        const T* delta = saved.input[5].data;
        const auto& shape = g.settings.shape;
        const std::int64_t stride[3] = {std::int64_t(shape[1]) * shape[2], shape[2], 1};
        const cuda::AdjointColumns<T> A = columns(g);
        double* partials = g.sum_partials.data();
        g.geometry = saved.geometry;
        g.cic = bodies::cic_grid<T>(g.geometry);
        g.has_grid = true;
        const GridGeometry& geo = g.geometry;
        GeometryAdjoint geo_adj;

        // z, pz, the field on the grid and at the particles, from the saved data
        g.run_s_to_t(px, py, tau, delta);
        g.run_field(saved.phi.data);
        g.run_gather(x, y);

        const T push_scale = T(g.species.charge_e * ds_m / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV));
        substep(Substep::t_to_s, [&] {
            cuda::launch_sums(g.stream, n, "t_to_s adjoint", cuda::t_to_s_adjoint_kernel<T>, px, py,
                              (const T*)g.pz.data(), (const T*)g.e_part[0].data(), (const T*)g.e_part[1].data(),
                              (const T*)g.e_part[2].data(), n, push_scale, inv_bg2, A, g.pz_adj.data(),
                              g.dp[0].data(), g.dp[1].data(), g.dp[2].data(), partials);
            const auto s = sums<2>(g, n);
            add_inv_beta_adjoint(params, ref, s[0]);
            add_inv_bg_sq_adjoint(params, ref, s[1]);
        });
        substep(Substep::push, [&] {
            cuda::launch_sums(g.stream, n, "push adjoint", cuda::push_adjoint_kernel<T>, (const T*)g.e_part[0].data(),
                              (const T*)g.e_part[1].data(), (const T*)g.e_part[2].data(), n, push_scale,
                              g.dp[0].data(), g.dp[1].data(), g.dp[2].data(), partials);
            add_push_scale_adjoint(params, ref, element, ds_m, slices, sums<1>(g, n)[0] * double(push_scale));
        });
        substep(Substep::gather, [&] {
            for (auto& e : g.e_grid_adj) zero(g, e);
            cuda::launch_sums(g.stream, n, "gather adjoint", cuda::gather_adjoint_kernel<T>, g.cic, x, y,
                              (const T*)g.z.data(), n, (const T*)g.e_grid[0].data(), (const T*)g.e_grid[1].data(),
                              (const T*)g.e_grid[2].data(), (const T*)g.dp[0].data(), (const T*)g.dp[1].data(),
                              (const T*)g.dp[2].data(), g.e_grid_adj[0].data(), g.e_grid_adj[1].data(),
                              g.e_grid_adj[2].data(), A.a[0], A.a[2], g.z_adj.data(), partials);
            const auto s = sums<6>(g, n);
            for (int a = 0; a < 3; ++a) {
                geo_adj.origin_m[a] += s[a];
                geo_adj.cell_m[a] += s[3 + a];
            }
        });
        substep(Substep::field, [&] {
            zero(g, g.phi_adj);
            for (int a = 0; a < 3; ++a) {
                cuda::launch_sums(g.stream, cells, "field adjoint", cuda::field_adjoint_kernel<T>,
                                  (const T*)g.e_grid[a].data(), (const T*)g.e_grid_adj[a].data(), cells, stride[a],
                                  shape[a], T(1.0 / geo.cell_m[a]), T(0.5 / geo.cell_m[a]), geo.cell_m[a],
                                  g.phi_adj.data(), partials);
                geo_adj.cell_m[a] += sums<1>(g, cells)[0];
            }
        });
        substep(Substep::convolve, [&] { convolve(g, saved.rho.data); });
        substep(Substep::green, [&] { green(g, geo_adj, params); });
        substep(Substep::deposit, [&] {
            const T scale = T(g.macro_charge_C() / geo.cell_volume_m3());
            cuda::launch_sums(g.stream, n, "deposit adjoint", cuda::deposit_adjoint_kernel<T>, g.cic, x, y,
                              (const T*)g.z.data(), n, (const T*)g.rho_adj.data(), scale, A.a[0], A.a[2],
                              g.z_adj.data(), partials);
            const auto s = sums<7>(g, n);
            for (int a = 0; a < 3; ++a) {
                geo_adj.origin_m[a] += s[1 + a];
                geo_adj.cell_m[a] += s[4 + a];
            }
            // scale = +-Q / (N hx hy hz)
            const double v = s[0] * double(scale);
            params.bunch_charge_C += v / g.bunch_charge_C;
            for (int a = 0; a < 3; ++a) geo_adj.cell_m[a] -= v / geo.cell_m[a];
            grid_covering(g, x, y, geo_adj);
        });
        substep(Substep::s_to_t, [&] {
            cuda::launch_sums(g.stream, n, "s_to_t adjoint", cuda::s_to_t_adjoint_kernel<T>, px, py, tau, delta,
                              (const T*)g.pz.data(), (const T*)g.z_adj.data(), (const T*)g.pz_adj.data(), n, beta0,
                              inv_beta0, A, partials);
            const auto s = sums<3>(g, n);
            params.reference.beta += s[0];
            add_inv_beta_adjoint(params, ref, s[1]);
            add_inv_bg_sq_adjoint(params, ref, s[2]);
        });
    }

    // rho_adj = crop(pad(phi_adj) correlated with the IGF); green_doubled
    // becomes the IGF's adjoint, pad(phi_adj) correlated with pad(rho)
    // (HockneyConvolver::convolve_adjoint).
    static void convolve(Impl& g, const T* rho) {
        const int nx = g.settings.shape[0], ny = g.settings.shape[1], nz = g.settings.shape[2];
        const T norm = T(1.0 / double(g.doubled_size));
        g.build_green();
        cuda::launch(g.stream, g.doubled_size, "convolve adjoint (pad)", cuda::pad_kernel<T>,
                     (const T*)g.phi_adj.data(), g.doubled_size, nx, ny, nz, g.work.data());
        g.fft(true, g.plans.r2c, g.work.data(), g.spec_a.data());
        g.fft(true, g.plans.r2c, g.green_doubled.data(), g.spec_b.data());
        cuda::launch(g.stream, g.modes, "convolve adjoint (correlate)", cuda::correlation_kernel<T>,
                     (const T*)g.spec_a.data(), g.spec_b.data(), g.modes, norm);
        g.fft(false, g.plans.c2r, g.spec_b.data(), g.work.data());
        cuda::launch(g.stream, g.cells, "convolve adjoint (crop)", cuda::crop_kernel<T>, (const T*)g.work.data(),
                     g.cells, ny, nz, g.rho_adj.data());
        cuda::launch(g.stream, g.doubled_size, "convolve adjoint (pad)", cuda::pad_kernel<T>, rho, g.doubled_size, nx,
                     ny, nz, g.work.data());
        g.fft(true, g.plans.r2c, g.work.data(), g.spec_b.data());
        cuda::launch(g.stream, g.modes, "convolve adjoint (correlate)", cuda::correlation_kernel<T>,
                     (const T*)g.spec_a.data(), g.spec_b.data(), g.modes, norm);
        g.fft(false, g.plans.c2r, g.spec_b.data(), g.green_doubled.data());
    }

    // From the IGF's adjoint (in green_doubled) to the cell sizes' and gamma's
    // (build_green_adjoint): mirror fold, transposed differences z, y, x, and
    // the antiderivative's gradient at each corner.
    static void green(Impl& g, GeometryAdjoint& geo_adj, ParameterAdjoints& params) {
        const int nx = g.settings.shape[0], ny = g.settings.shape[1], nz = g.settings.shape[2];
        const std::int64_t cells = g.cells;
        const std::int64_t stride[3] = {std::int64_t(ny) * nz, nz, 1};
        cuda::DeviceArray<double> a(std::size_t(cells), g.stream), b(std::size_t(cells), g.stream);
        cuda::launch(g.stream, cells, "green adjoint (fold)", cuda::green_fold_adjoint_kernel<T>,
                     (const T*)g.green_doubled.data(), cells, nx, ny, nz, cuda::kCoulomb, a.data());
        cuda::DeviceArray<double>* src = &a;
        cuda::DeviceArray<double>* dst = &b;
        for (int ax = 2; ax >= 0; --ax) {
            cuda::launch(g.stream, cells, "green adjoint (differences)", cuda::corner_difference_transpose_kernel,
                         (const double*)src->data(), cells, stride[ax], g.settings.shape[ax], dst->data());
            std::swap(src, dst);
        }
        const double gamma = g.reference.gamma;
        const double hz = gamma * g.geometry.cell_m[2];
        cuda::launch_sums(g.stream, cells, "green adjoint (cells)", cuda::green_cell_adjoint_kernel,
                          (const double*)src->data(), cells, ny, nz, g.geometry.cell_m[0], g.geometry.cell_m[1], hz,
                          g.sum_partials.data());
        const auto h = sums<3>(g, cells);
        geo_adj.cell_m[0] += h[0];
        geo_adj.cell_m[1] += h[1];
        geo_adj.cell_m[2] += gamma * h[2];
        params.reference.gamma += g.geometry.cell_m[2] * h[2];
    }

    // grid_covering_adjoint on the device: the geometry's adjoint flows to
    // the particles that set the grid.
    static void grid_covering(Impl& g, const T* x, const T* y, const GeometryAdjoint& geo_adj) {
        const std::int64_t n = g.n;
        const T* pos[3] = {x, y, g.z.data()};
        T* pos_adj[3] = {g.adj[0].data(), g.adj[2].data(), g.z_adj.data()};
        g.launch_extents(x, y, g.z.data());
        cuda::ExtentAcc ext[3];
        cuda::check(cudaMemcpyAsync(ext, g.extents.data(), sizeof(ext), cudaMemcpyDeviceToHost, g.stream),
                    "copy the extents");
        cuda::check(cudaStreamSynchronize(g.stream), "extents");
        for (int a = 0; a < 3; ++a) {
            const double o_adj = geo_adj.origin_m[a], h_adj = geo_adj.cell_m[a];
            const ExtentJacobian jac = extent_jacobian(g.settings, a);
            // the adjoints of the two extent statistics (lo, hi or mean, rms)
            const double stat_adj[2] = {o_adj * jac.origin[0] + h_adj * jac.cell[0],
                                        o_adj * jac.origin[1] + h_adj * jac.cell[1]};
            if (g.settings.mode == ExtentMode::minmax) {
                // the first particle at lo / hi
                add_at_first(g, pos[a], ext[a].lo, pos_adj[a], stat_adj[0]);
                add_at_first(g, pos[a], ext[a].hi, pos_adj[a], stat_adj[1]);
            } else {
                const double mean = ext[a].sum / n;
                const double rms = std::sqrt(std::max(ext[a].sum2 / n - mean * mean, 0.0));
                cuda::launch(g.stream, n, "deposit adjoint (grid)", cuda::sigma_grid_adjoint_kernel<T>, pos[a], n,
                             mean, rms, stat_adj[0], stat_adj[1], pos_adj[a]);
            }
        }
    }

    static void add_at_first(Impl& g, const T* u, double value, T* u_adj, double v) {
        const long long none = g.n;
        cuda::check(cudaMemcpyAsync(g.first_index.data(), &none, sizeof(none), cudaMemcpyHostToDevice, g.stream),
                    "cudaMemcpyAsync");
        cuda::launch(g.stream, g.n, "deposit adjoint (grid)", cuda::first_index_kernel<T>, u, g.n, value,
                     g.first_index.data());
        cuda::add_at_kernel<T><<<1, 1, 0, g.stream>>>(u_adj, g.first_index.data(), v);
        cuda::check_launch("deposit adjoint (grid)");
        cuda::check(cudaStreamSynchronize(g.stream), "deposit adjoint (grid)");  // `none` lives on this stack
    }
};

template <class T>
DeviceColumn<T> GpuTracker<T>::snapshot(GpuBuffer which) const {
    Impl& g = *impl_;
    switch (which) {
        case GpuBuffer::charge_density: return GpuAdjoint<T>::copy_of(g, g.rho.data(), std::int64_t(g.rho.size()));
        case GpuBuffer::potential: return GpuAdjoint<T>::copy_of(g, g.phi.data(), std::int64_t(g.phi.size()));
        default: {
            const int c = static_cast<int>(which);
            return GpuAdjoint<T>::copy_of(g, g.coord[c].data(), g.n);
        }
    }
}

template <class T>
void GpuTracker<T>::to_host(const DeviceColumn<T>& column, HostArray<T>& out) const {
    out.resize(std::size_t(column.size));
    if (column.size > 0)
        cuda::check(cudaMemcpyAsync(out.data(), column.data, std::size_t(column.bytes()), cudaMemcpyDeviceToHost,
                                    impl_->stream),
                    "copy a device column to the host");
    cuda::check(cudaStreamSynchronize(impl_->stream), "copy a device column to the host");
}

template <class T>
void GpuTracker<T>::set_state(const std::array<DeviceColumn<T>, 6>& columns) {
    Impl& g = *impl_;
    for (int c = 0; c < 6; ++c) {
        if (columns[c].size != g.n) throw std::invalid_argument("GpuTracker::set_state: column size differs");
        if (g.n > 0)
            cuda::check(cudaMemcpyAsync(g.coord[c].data(), columns[c].data, g.coord[c].bytes(),
                                        cudaMemcpyDeviceToDevice, g.stream),
                        "restore a beam state");
    }
}

template <class T>
void GpuTracker<T>::set_adjoint(const std::array<HostArray<T>, 6>& adjoint) {
    Impl& g = *impl_;
    const std::size_t np = std::size_t(g.n);
    {
        MemoryScope scope("backward", cuda::device_memory());
        for (auto& a : g.adj) a.allocate(np, g.stream);
        g.sum_partials.allocate(std::size_t(cuda::kMaxSums) * cuda::kSumBlocks, g.stream);
        g.first_index.allocate(1, g.stream);
        if (g.space_charge) {
            g.z_adj.allocate(np, g.stream);
            g.pz_adj.allocate(np, g.stream);
            g.phi_adj.allocate(std::size_t(g.cells), g.stream);
            g.rho_adj.allocate(std::size_t(g.cells), g.stream);
            for (auto& e : g.e_grid_adj) e.allocate(std::size_t(g.cells), g.stream);
        }
    }
    for (int c = 0; c < 6; ++c) {
        if (std::int64_t(adjoint[c].size()) != g.n) throw std::invalid_argument("GpuTracker::set_adjoint: size differs");
        if (g.n > 0)
            cuda::check(cudaMemcpyAsync(g.adj[c].data(), adjoint[c].data(), np * sizeof(T), cudaMemcpyHostToDevice,
                                        g.stream),
                        "copy the adjoint to the device");
    }
    cuda::check(cudaStreamSynchronize(g.stream), "copy the adjoint to the device");
}

template <class T>
void GpuTracker<T>::get_adjoint(std::array<HostArray<T>, 6>& adjoint) const {
    Impl& g = *impl_;
    for (int c = 0; c < 6; ++c) {
        adjoint[c].resize(std::size_t(g.n));
        if (g.n > 0 && g.adj[c].data())
            cuda::check(cudaMemcpyAsync(adjoint[c].data(), g.adj[c].data(), std::size_t(g.n) * sizeof(T),
                                        cudaMemcpyDeviceToHost, g.stream),
                        "copy the adjoint to the host");
    }
    cuda::check(cudaStreamSynchronize(g.stream), "copy the adjoint to the host");
}

template <class T>
void GpuTracker<T>::map_adjoint(const std::array<DeviceColumn<T>, 6>& input, const Lattice& lattice,
                                std::size_t element, double fraction, ParameterAdjoints& params) {
    GpuAdjoint<T>::map(*impl_, input, lattice, element, fraction, params);
}

template <class T>
void GpuTracker<T>::unmap(const ElementMap& map) {
    impl_->map(inverse_map(map));
}

template <class T>
void GpuTracker<T>::kick_adjoint(const GpuKickSaved<T>& saved, double ds_m, std::size_t element, int slices,
                                 ParameterAdjoints& params) {
    GpuAdjoint<T>::kick(*impl_, saved, ds_m, element, slices, params);
}

template <class T>
GpuTracker<T>::GpuTracker(const Beam<T>& beam, bool space_charge, const GridSettings& grid, const GpuOptions& options)
    : impl_(std::make_unique<Impl>(beam, space_charge, grid, options)) {}

template <class T>
GpuTracker<T>::~GpuTracker() = default;

template <class T>
void GpuTracker<T>::map(const ElementMap& map) {
    impl_->map(map);
}

template <class T>
void GpuTracker<T>::kick(double ds_m) {
    impl_->kick(ds_m);
}

template <class T>
std::array<T*, 6> GpuTracker<T>::coordinates() {
    auto& c = impl_->coord;
    return {c[0].data(), c[1].data(), c[2].data(), c[3].data(), c[4].data(), c[5].data()};
}

template <class T>
std::array<const T*, 3> GpuTracker<T>::field_at_particles() {
    impl_->compute_field();
    impl_->add_substep_seconds(0, static_cast<int>(Substep::gather));
    const auto& e = impl_->e_part;
    return {e[0].data(), e[1].data(), e[2].data()};
}

template <class T>
void* GpuTracker<T>::stream() const {
    return impl_->stream;
}

template <class T>
const GpuOptions& GpuTracker<T>::options() const {
    return impl_->options;
}

template <class T>
void GpuTracker<T>::download(Beam<T>& beam) const {
    if (beam.size() != impl_->n) throw std::invalid_argument("GpuTracker::download: beam size differs");
    const std::array<HostArray<T>*, 6> host = beam.columns();
    for (int c = 0; c < 6; ++c)
        if (impl_->n > 0)
            cuda::check(cudaMemcpyAsync(host[c]->data(), impl_->coord[c].data(), impl_->coord[c].bytes(),
                                        cudaMemcpyDeviceToHost, impl_->stream),
                        "copy the beam to the host");
    cuda::check(cudaStreamSynchronize(impl_->stream), "copy the beam to the host");
    impl_->flush_drift_timing();
}

template <class T>
const GridGeometry& GpuTracker<T>::geometry() const {
    return impl_->geometry;
}

template <class T>
std::vector<T> GpuTracker<T>::charge_density() const {
    return impl_->to_host(impl_->rho);
}

template <class T>
std::vector<T> GpuTracker<T>::potential() const {
    return impl_->to_host(impl_->phi);
}

template <class T>
std::array<std::vector<T>, 3> GpuTracker<T>::field_on_grid() const {
    return {impl_->to_host(impl_->e_grid[0]), impl_->to_host(impl_->e_grid[1]), impl_->to_host(impl_->e_grid[2])};
}

template <class T>
std::array<std::vector<T>, 3> GpuTracker<T>::momentum_kick() const {
    return {impl_->to_host(impl_->dp[0]), impl_->to_host(impl_->dp[1]), impl_->to_host(impl_->dp[2])};
}

template <class T>
const std::array<double, kSubstepCount>& GpuTracker<T>::seconds() const {
    return impl_->seconds;
}

template <class T>
double GpuTracker<T>::drift_seconds() const {
    impl_->flush_drift_timing();
    return impl_->drift_seconds;
}

template <class T>
TrackReport track_on_gpu(Beam<T>& beam, const TrackSettings& settings, const Progress& progress,
                         const GpuOptions& options) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    cuda::NvtxRange range("forward");
    TrackReport report;
    GpuTracker<T> gpu(beam, settings.space_charge, settings.grid, options);
    const std::vector<std::size_t> elements = slice_elements(settings.lattice);
    const int total_slices = static_cast<int>(elements.size());
    const double bg = beam.reference.beta_gamma();
    auto map = [&](std::size_t e, double f) { gpu.map(element_map(settings.lattice[e], f, bg)); };
    auto kick = [&](std::size_t, double ds) {
        gpu.kick(ds);
        ++report.kicks;
    };
    for (int done = 0; done < total_slices; ++done) {
        strang_slice(settings, elements[done], map, kick);
        if (progress) progress(done + 1, total_slices);
    }
    gpu.download(beam);
    if (settings.space_charge) report.substep_seconds = gpu.seconds();
    report.drift_seconds = gpu.drift_seconds();
    report.total_seconds = std::chrono::duration<double>(clock::now() - start).count();
    return report;
}

template <class T>
TrackReport track_on_gpu(Beam<T>& beam, const TrackSettings& settings, const Progress& progress) {
    return track_on_gpu(beam, settings, progress, GpuOptions::from_environment());
}

template <class T>
void device_axis_extents(const T* x, const T* y, const T* z, std::int64_t n, AxisExtent extent[3]) {
    const cudaStream_t stream = nullptr;  // the legacy default stream: the autograd engine's
    cuda::DeviceArray<cuda::ExtentAcc> partials(std::size_t(3 * cuda::kExtentBlocks), stream), out(3, stream);
    cuda::launch_extents(stream, x, y, z, n, partials.data(), out.data());
    cuda::ExtentAcc host[3];
    cuda::check(cudaMemcpy(host, out.data(), sizeof(host), cudaMemcpyDeviceToHost), "copy the extents");
    for (int a = 0; a < 3; ++a) extent[a] = cuda::axis_extent(host[a]);
}

template class GpuTracker<float>;
template class GpuTracker<double>;
template void device_axis_extents<float>(const float*, const float*, const float*, std::int64_t, AxisExtent[3]);
template void device_axis_extents<double>(const double*, const double*, const double*, std::int64_t,
                                          AxisExtent[3]);
template TrackReport track_on_gpu<float>(Beam<float>&, const TrackSettings&, const Progress&);
template TrackReport track_on_gpu<double>(Beam<double>&, const TrackSettings&, const Progress&);
template TrackReport track_on_gpu<float>(Beam<float>&, const TrackSettings&, const Progress&, const GpuOptions&);
template TrackReport track_on_gpu<double>(Beam<double>&, const TrackSettings&, const Progress&, const GpuOptions&);

}  // namespace sctape
