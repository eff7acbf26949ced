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
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

#include "core/communicator.hpp"
#include "physics/constants.hpp"
#include "cuda/backward_kernels.cuh"
#include "cuda/cufft_plans.cuh"
#include "cuda/device_alloc.cuh"
#include "cuda/device_staging.cuh"
#include "cuda/launch.cuh"
#include "cuda/gpu_tracking.hpp"
#include "physics/geometry_bodies.hpp"
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

// Per-axis reduction for the grid geometry (geometry_bodies.hpp): min, max,
// sum, sum of squares of the finite coordinates and the count of non-finite
// ones. Fixed launch shape and tree order, so the sums are reproducible run to run.
__device__ inline void block_reduce(ExtentAcc* s) {
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w >>= 1) {
        if (int(threadIdx.x) < w) extent_combine(s[threadIdx.x], s[threadIdx.x + w]);
        __syncthreads();
    }
}

template <class T>
__global__ void extent_partials(const T* x, const T* y, const T* z, std::int64_t n, ExtentAcc* partials) {
    __shared__ ExtentAcc s[kThreads];
    const T* u = blockIdx.y == 0 ? x : (blockIdx.y == 1 ? y : z);
    ExtentAcc acc = empty_extent();
    SCTAPE_GRID_LOOP(p, n) extent_add(acc, double(u[p]));
    s[threadIdx.x] = acc;
    block_reduce(s);
    if (threadIdx.x == 0) partials[std::int64_t(blockIdx.y) * gridDim.x + blockIdx.x] = s[0];
}

__global__ void extent_final(const ExtentAcc* partials, int blocks, ExtentAcc* out) {
    __shared__ ExtentAcc s[kThreads];
    ExtentAcc acc = empty_extent();
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) extent_combine(acc, partials[std::int64_t(blockIdx.x) * blocks + b]);
    s[threadIdx.x] = acc;
    block_reduce(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// Blocks per axis of the extents reduction over n particles.
inline int extent_blocks(std::int64_t n) {
    return int(std::min<std::int64_t>({std::max<std::int64_t>((n + kThreads - 1) / kThreads, 1),
                                       std::int64_t(kExtentBlocks), std::int64_t(block_limit())}));
}

// Per-axis extents of (x, y, z) into out[0..2], via extent_blocks(n) partials per axis.
template <class T>
void launch_extents(cudaStream_t stream, const T* x, const T* y, const T* z, std::int64_t n, ExtentAcc* partials,
                    ExtentAcc* out) {
    const int blocks = extent_blocks(n);
    extent_partials<T><<<dim3(unsigned(blocks), 3), kThreads, 0, stream>>>(x, y, z, n, partials);
    check_launch("extents");
    extent_final<<<3, kThreads, 0, stream>>>(partials, blocks, out);
    check_launch("extents");
}

// Over MPI ranks the frame needs every rank's extents and non-finite pz
// count: packed into kRankValues doubles (lo[3], hi[3], then sum, sum2 and the
// non-finite count per axis, and the pz count; counts exact below 2^53),
// reduced (min, max, sum) and unpacked, as the CPU's reduce_over_ranks does.
constexpr int kRankValues = 16;

__global__ void pack_extents_kernel(const ExtentAcc* e, const int* non_finite_pz, double* out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int a = 0; a < 3; ++a) {
        out[a] = e[a].lo;
        out[3 + a] = e[a].hi;
        out[6 + 3 * a] = e[a].sum;
        out[7 + 3 * a] = e[a].sum2;
        out[8 + 3 * a] = double(e[a].non_finite);
    }
    out[15] = double(*non_finite_pz);
}

__global__ void unpack_extents_kernel(const double* in, ExtentAcc* e, int* non_finite_pz) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int a = 0; a < 3; ++a) {
        e[a].lo = in[a];
        e[a].hi = in[3 + a];
        e[a].sum = in[6 + 3 * a];
        e[a].sum2 = in[7 + 3 * a];
        e[a].non_finite = static_cast<unsigned long long>(in[8 + 3 * a]);
    }
    *non_finite_pz = in[15] > 0 ? 1 : 0;
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

// The first error of the kicks since the host last looked, with that kick's
// extents (the host rebuilds the CPU's message from them).
struct KickStatus {
    int error;
    int axis;
    ExtentAcc extent[3];
};

// One thread: the kick's frame from the extents and the s_to_t flag, the
// IGF's reuse decision, and the first error (kick_frame, geometry_bodies.hpp).
template <class T>
__global__ void frame_kernel(ExtentRule rule, const ExtentAcc* extents, const int* non_finite_pz, std::int64_t n,
                             double macro_charge_C, double gamma, KickFrame<T>* frame, GreenCache* green,
                             KickStatus* status) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    ExtentAcc ext[3] = {extents[0], extents[1], extents[2]};
    KickFrame<T> f;
    int axis = 0;
    int error = kick_frame(rule, ext, n, macro_charge_C, gamma, f, axis);
    if (*non_finite_pz > 0) error = kKickNonFinitePz;
    f.green_stale = (error != kKickOk || green_needs_build(*green, f.cell, gamma)) ? 1 : 0;
    if (error != kKickOk) green->valid = 0;
    *frame = f;
    if (error != kKickOk && status->error == kKickOk) {
        status->error = error;
        status->axis = axis;
        for (int a = 0; a < 3; ++a) status->extent[a] = ext[a];
    }
}

template <class T>
__global__ void deposit_atomic_kernel(const KickFrame<T>* frame, const T* x, const T* y, const T* z, std::int64_t n, T* acc) {
    const CicGrid<T> g = frame->cic;
    SCTAPE_GRID_LOOP(p, n) {
        const CicPoint<T> c = cic_point(g, x[p], y[p], z[p]);
        for (int m = 0; m < 8; ++m) atomicAdd(acc + c.base + cic_offset(g, m), c.w[m]);
    }
}

template <class T>
__global__ void deposit_fixed_kernel(const KickFrame<T>* frame, const T* x, const T* y, const T* z, std::int64_t n, double one,
                                     unsigned long long* acc) {
    const CicGrid<T> g = frame->cic;
    SCTAPE_GRID_LOOP(p, n) {
        const CicPoint<T> c = cic_point(g, x[p], y[p], z[p]);
        for (int m = 0; m < 8; ++m)
            atomicAdd(acc + c.base + cic_offset(g, m), static_cast<unsigned long long>(to_fixed_point(c.w[m], one)));
    }
}

template <class T>
__global__ void scale_kernel(const T* sum, std::int64_t cells, const KickFrame<T>* frame, T* rho) {
    const T scale = frame->deposit_scale;
    SCTAPE_GRID_LOOP(c, cells) rho[c] = sum[c] * scale;
}

template <class T>
__global__ void scale_fixed_kernel(const unsigned long long* sum, std::int64_t cells, double inv_one,
                                   const KickFrame<T>* frame, T* rho) {
    const T scale = frame->deposit_scale;
    SCTAPE_GRID_LOOP(c, cells) rho[c] = T(double(static_cast<long long>(sum[c])) * inv_one) * scale;
}

// The IGF kernels do nothing when the frame reuses the last IGF.
template <class T>
__global__ void green_corner_kernel(const KickFrame<T>* frame, std::int64_t cells, int ny, int nz, double* corner) {
    if (!frame->green_stale) return;
    const double hx = frame->green_h[0], hy = frame->green_h[1], hz = frame->green_h[2];
    SCTAPE_GRID_LOOP(c, cells) corner[c] = green_corner(c, ny, nz, hx, hy, hz);
}

template <class T>
__global__ void corner_difference_kernel(const KickFrame<T>* frame, const double* in, std::int64_t cells,
                                         std::int64_t stride, int len, double* out) {
    if (!frame->green_stale) return;
    SCTAPE_GRID_LOOP(c, cells) out[c] = corner_difference(in, c, stride, len);
}

template <class T>
__global__ void green_mirror_kernel(const KickFrame<T>* frame, const double* corner, std::int64_t doubled, int nx,
                                    int ny, int nz, double coulomb, T* green) {
    if (!frame->green_stale) return;
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
__global__ void field_kernel(const KickFrame<T>* frame, int axis, const T* phi, std::int64_t cells,
                             std::int64_t stride, int len, T* e) {
    const T inv_h = frame->inv_h[axis], inv_2h = frame->inv_2h[axis];
    SCTAPE_GRID_LOOP(c, cells) e[c] = field_component(phi, c, stride, len, inv_h, inv_2h);
}

template <class T>
__global__ void gather_kernel(const KickFrame<T>* frame, const T* x, const T* y, const T* z, std::int64_t n,
                              const T* ex, const T* ey, const T* ez, T* out_x, T* out_y, T* out_z) {
    const CicGrid<T> g = frame->cic;
    SCTAPE_GRID_LOOP(p, n) {
        const CicPoint<T> c = cic_point(g, x[p], y[p], z[p]);
        const T* e_grid[3] = {ex, ey, ez};
        T e[3];
        cic_gather3(g, c, e_grid, e);  // the CPU's gather, bit for bit
        out_x[p] = e[0];
        out_y[p] = e[1];
        out_z[p] = e[2];
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
        cudaStreamSynchronize(stream);  // not counted: the tracker's end
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
        wait(stop[slot], "read a substep's time");
        check(cudaEventElapsedTime(&ms, start[slot], stop[slot]), "cudaEventElapsedTime");
        return 1e-3 * ms;
    }
};

constexpr double kCoulomb = 1.0 / (4.0 * kPi * kVacuumPermittivity_F_per_m);

}  // namespace
}  // namespace cuda

GpuOptions GpuOptions::from_environment() {
    GpuOptions o;
    o.deterministic_deposit = deterministic_deposit_requested();
    return o;
}

template <class T>
struct GpuTracker<T>::Impl {
    cuda::StreamHolder holder;  // first: destroyed last
    cuda::EventSet events;
    cudaStream_t stream;
    cuda::StreamStaging staging;  // reductions over MPI ranks (core/communicator.hpp)

    GpuOptions options;
    bool space_charge;
    GridSettings settings;
    bodies::ExtentRule rule;
    std::int64_t n;        // this rank's particles
    std::int64_t n_total;  // every rank's (n on one rank)
    Species species;
    Reference reference;
    double bunch_charge_C;

    std::array<cuda::DeviceArray<T>, 6> coord;  // x, px, y, py, tau, delta
    // kick buffers
    cuda::DeviceArray<T> z, pz;
    std::array<cuda::DeviceArray<T>, 3> e_part, dp, e_grid;
    cuda::DeviceArray<T> rho, phi, sum;
    cuda::DeviceArray<unsigned long long> sum_fixed;
    // green_doubled keeps the last IGF (reused while its key repeats, see
    // green_cache); work is the pad scratch and, before the convolution, the
    // IGF's two float64 corner lattices (2 cells x 8 bytes <= 8 cells x sizeof(T))
    cuda::DeviceArray<T> green_doubled, work, spec_a, spec_b;
    cuda::DeviceArray<unsigned char> fft_work;
    cuda::DeviceArray<bodies::ExtentAcc> partials, extents;
    cuda::DeviceArray<int> non_finite;
    cuda::DeviceArray<double> rank_values;  // over MPI ranks only: the extents in reduction
    // the kick's grid, computed on the device (frame_kernel), the IGF's key
    // and the first error since the host last looked
    cuda::DeviceArray<bodies::KickFrame<T>> frame;
    cuda::DeviceArray<bodies::GreenCache> green_cache;
    cuda::DeviceArray<cuda::KickStatus> status;
    cuda::PlanPair plans;
    std::array<int, 3> doubled{};
    std::int64_t cells = 0, doubled_size = 0, modes = 0;

    // reverse mode, allocated by set_adjoint (the backward pass's workspace)
    std::array<cuda::DeviceArray<T>, 6> adj;
    cuda::DeviceArray<T> z_adj, pz_adj, phi_adj, rho_adj;
    std::array<cuda::DeviceArray<T>, 3> e_grid_adj;
    cuda::DeviceArray<double> sum_partials;
    cuda::DeviceArray<long long> first_index;
    // the backward's scalar sums, finished on the device in the host's old
    // order; the host applies `deferred` to them when it reads them back
    // (get_adjoint, or a full ledger)
    cuda::DeviceArray<double> ledger;
    std::size_t ledger_used = 0;
    std::vector<std::pair<std::size_t, std::function<void(const double*)>>> deferred;
    cuda::DeviceArray<bodies::GeometryAdjointAcc> geo_adj;
    cuda::DeviceArray<bodies::CoveringAdjoint> covering;

    bool has_grid = false;
    bool timing = true;     // substep events, read when recorded again or when asked
    unsigned pending = 0;   // event slots recorded and not yet read
    std::array<double, kSubstepCount> seconds{};
    double drift_seconds = 0;
    cudaGraphExec_t graph = nullptr;  // capture_kick's

    Impl(const Beam<T>& beam, bool sc, const GridSettings& grid, const GpuOptions& opt)
        : stream(holder.stream), staging(holder.stream), options(opt), space_charge(sc), settings(grid),
          rule(bodies::extent_rule(grid)), n(beam.size()), n_total(beam.global_size()), species(beam.species),
          reference(beam.reference), bunch_charge_C(beam.bunch_charge_C) {
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
        if (over_ranks()) rank_values.allocate(cuda::kRankValues, stream);
        frame.allocate(1, stream);
        green_cache.allocate(1, stream);
        status.allocate(1, stream);
        cuda::check(cudaMemsetAsync(green_cache.data(), 0, green_cache.bytes(), stream), "cudaMemsetAsync");
        cuda::check(cudaMemsetAsync(status.data(), 0, status.bytes(), stream), "cudaMemsetAsync");
        plans = cuda::cached_plans(doubled, sizeof(T) == sizeof(double));
        fft_work.allocate(plans.work_bytes, stream);
    }

    ~Impl() {
        if (graph) cudaGraphExecDestroy(graph);
    }

    // Particle decomposition over MPI ranks (docs/mpi.md): each rank holds its
    // particles and the whole grid; the grid's inputs and the sums over
    // particles that feed replicated grid work are reduced over the ranks.
    static bool over_ranks() { return communicator().size() > 1; }
    template <class U>  // float, double
    void sum_over_ranks(U* values, std::int64_t count) {
        communicator().sum_device(values, count, staging);
    }
    void sum_over_ranks(unsigned long long* values, std::int64_t count) {
        // two's complement: the integer sums are the same bits signed or not
        communicator().sum_device(reinterpret_cast<std::int64_t*>(values), count, staging);
    }

    // The extents and the non-finite pz count of every rank, in place.
    void reduce_extents() {
        double* v = rank_values.data();
        cuda::pack_extents_kernel<<<1, 1, 0, stream>>>(extents.data(), non_finite.data(), v);
        cuda::check_launch("extents over ranks");
        Communicator& comm = communicator();
        comm.min_device(v, 3, staging);
        comm.max_device(v + 3, 3, staging);
        comm.sum_device(v + 6, cuda::kRankValues - 6, staging);
        cuda::unpack_extents_kernel<<<1, 1, 0, stream>>>(v, extents.data(), non_finite.data());
        cuda::check_launch("extents over ranks");
    }

    // A kick's error: every rank found it in the same reduced values.
    [[noreturn]] static void kick_failed(const std::string& message) {
        if (over_ranks()) throw CollectiveError(message);
        throw std::runtime_error(message);
    }

    // Adds the time of a recorded event slot (substeps, then the drift): a
    // wait, made only before the slot is recorded again or when asked.
    void read_timing(int slot) {
        const unsigned bit = 1u << slot;
        if (!(pending & bit)) return;
        pending &= ~bit;
        const double s = events.elapsed_s(slot);
        if (slot == kSubstepCount) drift_seconds += s;
        else seconds[slot] += s;
    }
    void read_all_timing() {
        for (int slot = 0; slot < cuda::EventSet::kSlots; ++slot) read_timing(slot);
    }

    // Runs work between the events of `slot` (when timing) inside an NVTX range and memory scope.
    template <class Work>
    void timed(int slot, const char* name, Work&& work_fn) {
        cuda::NvtxRange range(name);
        MemoryScope scope(name, cuda::device_memory());
        if (timing) {
            read_timing(slot);
            cuda::check(cudaEventRecord(events.start[slot], stream), "cudaEventRecord");
        }
        work_fn();
        if (timing) {
            cuda::check(cudaEventRecord(events.stop[slot], stream), "cudaEventRecord");
            pending |= 1u << slot;
        }
    }
    template <class Work>
    void substep(Substep s, Work&& work_fn) {
        timed(static_cast<int>(s), substep_name(s), work_fn);
    }

    // scope and NVTX range "drift": the element maps keep the schema's name
    void map(const ElementMap& map) {
        timed(kSubstepCount, "drift", [&] {
            cuda::launch(stream, n, "map", cuda::map_kernel<T>, coord[0].data(), coord[1].data(), coord[2].data(),
                         coord[3].data(), coord[4].data(), coord[5].data(), n, map);
        });
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

    // The kick's frame from the extents of (x, y, z), on the device.
    void run_frame(const T* x, const T* y) {
        cuda::launch_extents(stream, x, y, (const T*)z.data(), n, partials.data(), extents.data());
        if (over_ranks()) reduce_extents();
        cuda::frame_kernel<T><<<1, 1, 0, stream>>>(rule, extents.data(), non_finite.data(), n_total, macro_charge_C(),
                                                    reference.gamma, frame.data(), green_cache.data(), status.data());
        cuda::check_launch("grid geometry");
        has_grid = true;
    }

    // e_grid = -grad phi on the frame's grid.
    void run_field(const T* potential) {
        const auto& s = settings.shape;
        const std::int64_t stride[3] = {std::int64_t(s[1]) * s[2], s[2], 1};
        for (int a = 0; a < 3; ++a)
            cuda::launch(stream, cells, "field", cuda::field_kernel<T>, (const bodies::KickFrame<T>*)frame.data(), a,
                         potential, cells, stride[a], s[a], e_grid[a].data());
    }

    // e_part = e_grid at the particles (x, y, z).
    void run_gather(const T* x, const T* y) {
        cuda::launch(stream, n, "gather", cuda::gather_kernel<T>, (const bodies::KickFrame<T>*)frame.data(), x, y,
                     (const T*)z.data(), n, (const T*)e_grid[0].data(), (const T*)e_grid[1].data(),
                     (const T*)e_grid[2].data(), e_part[0].data(), e_part[1].data(), e_part[2].data());
    }

    // The IGF of the frame's grid into green_doubled (float64 corner lattice,
    // differenced along x, y, z, mirrored, cast: build_green on the CPU); the
    // kernels do nothing when the frame reuses the last one.
    void build_green() {
        const int nx = settings.shape[0], ny = settings.shape[1], nz = settings.shape[2];
        const bodies::KickFrame<T>* f = frame.data();
        double* src = reinterpret_cast<double*>(work.data());
        double* dst = src + cells;
        cuda::launch(stream, cells, "green (corners)", cuda::green_corner_kernel<T>, f, cells, ny, nz, src);
        const std::int64_t stride[3] = {std::int64_t(ny) * nz, nz, 1};
        for (int ax = 0; ax < 3; ++ax) {
            cuda::launch(stream, cells, "green (differences)", cuda::corner_difference_kernel<T>, f, (const double*)src,
                         cells, stride[ax], settings.shape[ax], dst);
            std::swap(src, dst);
        }
        cuda::launch(stream, doubled_size, "green (mirror)", cuda::green_mirror_kernel<T>, f, (const double*)src,
                     doubled_size, nx, ny, nz, cuda::kCoulomb, green_doubled.data());
    }

    // green_doubled no longer holds the IGF of green_cache's key (an adjoint overwrote it).
    void forget_green() {
        char* valid = reinterpret_cast<char*>(green_cache.data()) + offsetof(bodies::GreenCache, valid);
        cuda::check(cudaMemsetAsync(valid, 0, sizeof(int), stream), "cudaMemsetAsync");
    }

    // Substeps s_to_t ... gather at the current coordinates: rho, phi, the
    // frame and e_part as the kick leaves them, before push and t_to_s. No
    // host wait and no allocation: the grid is computed and used on the device.
    void compute_field() {
        if (!space_charge) throw std::logic_error("GpuTracker: tracker built without space charge");
        const T* x = coord[0].data();
        const T* y = coord[2].data();
        const int nx = settings.shape[0], ny = settings.shape[1], nz = settings.shape[2];
        const bodies::KickFrame<T>* f = frame.data();

        substep(Substep::s_to_t,
                [&] { run_s_to_t(coord[1].data(), coord[3].data(), coord[4].data(), coord[5].data()); });

        substep(Substep::deposit, [&] {
            run_frame(x, y);
            if (options.deterministic_deposit) {
                // every rank's weights in the same units (the global count), so their integers add
                const int bits = bodies::fixed_point_bits(n_total);
                cuda::check(cudaMemsetAsync(sum_fixed.data(), 0, sum_fixed.bytes(), stream), "cudaMemsetAsync");
                cuda::launch(stream, n, "deposit", cuda::deposit_fixed_kernel<T>, f, x, y, (const T*)z.data(), n,
                             std::ldexp(1.0, bits), sum_fixed.data());
                if (over_ranks()) sum_over_ranks(sum_fixed.data(), cells);
                cuda::launch(stream, cells, "deposit (scale)", cuda::scale_fixed_kernel<T>,
                             (const unsigned long long*)sum_fixed.data(), cells, std::ldexp(1.0, -bits), f,
                             rho.data());
            } else {
                cuda::check(cudaMemsetAsync(sum.data(), 0, sum.bytes(), stream), "cudaMemsetAsync");
                cuda::launch(stream, n, "deposit", cuda::deposit_atomic_kernel<T>, f, x, y, (const T*)z.data(), n,
                             sum.data());
                if (over_ranks()) sum_over_ranks(sum.data(), cells);
                cuda::launch(stream, cells, "deposit (scale)", cuda::scale_kernel<T>, (const T*)sum.data(), cells, f,
                             rho.data());
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
    }

    // kick(ds_m) captured into a CUDA graph: the capture fails on any host
    // wait or blocking call inside the kick (ThreadLocal mode), and the graph
    // replays the whole kick for any positions (the grid lives on the device).
    void capture_kick(double ds_m) {
        if (over_ranks())
            throw std::runtime_error("a kick over MPI ranks cannot be captured in a CUDA graph (its reductions wait "
                                     "on the host)");
        read_all_timing();
        if (graph) cudaGraphExecDestroy(graph);
        graph = nullptr;
        const bool was_timing = timing;
        timing = false;  // timing events would need host waits
        cudaGraph_t captured = nullptr;
        cuda::check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capturing a kick");
        try {
            kick(ds_m);
        } catch (...) {
            cudaStreamEndCapture(stream, &captured);
            if (captured) cudaGraphDestroy(captured);
            cudaGetLastError();
            timing = was_timing;
            throw;
        }
        timing = was_timing;
        cuda::check(cudaStreamEndCapture(stream, &captured),
                    "capture a kick (a host wait or a blocking call inside the kick breaks it)");
        const cudaError_t err = cudaGraphInstantiate(&graph, captured, 0);
        cudaGraphDestroy(captured);
        cuda::check(err, "instantiate the kick's graph");
    }

    void replay_kick() {
        if (!graph) throw std::logic_error("GpuTracker::replay_kick: no kick captured");
        cuda::check(cudaGraphLaunch(graph, stream), "replay the kick's graph");
    }

    // Waits for the device; raises the first error of the kicks since
    // construction with the CPU kick's message.
    void synchronize() {
        cuda::wait(stream, "GpuTracker");
        if (!space_charge) return;
        cuda::KickStatus st{};
        cuda::check(cudaMemcpyAsync(&st, status.data(), sizeof st, cudaMemcpyDeviceToHost, stream),
                    "copy the kick status");
        cuda::wait(stream, "copy the kick status");
        if (st.error == bodies::kKickOk) return;
        if (st.error == bodies::kKickNonFinitePz) kick_failed(kNonFinitePzMessage);
        AxisExtent ext[3];
        for (int a = 0; a < 3; ++a) ext[a] = cuda::axis_extent(st.extent[a]);
        try {
            geometry_from_extents(settings, ext, n_total);  // throws the CPU's message for these extents
        } catch (const std::runtime_error& e) {
            kick_failed(e.what());
        }
        throw std::logic_error("GpuTracker: the device rejected a grid the host accepts (error " +
                               std::to_string(st.error) + ")");
    }

    GridGeometry host_geometry() {
        synchronize();
        GridGeometry g;
        if (!has_grid) return g;
        bodies::KickFrame<T> f;
        cuda::check(cudaMemcpyAsync(&f, frame.data(), sizeof f, cudaMemcpyDeviceToHost, stream), "copy the grid");
        cuda::wait(stream, "copy the grid");
        g.n = settings.shape;
        for (int a = 0; a < 3; ++a) {
            g.origin_m[a] = f.origin[a];
            g.cell_m[a] = f.cell[a];
        }
        return g;
    }

    double macro_charge_C() const {
        return bunch_charge_C * (species.charge_e < 0 ? -1.0 : 1.0) / static_cast<double>(n_total);
    }

    std::vector<T> to_host(const cuda::DeviceArray<T>& a) {
        std::vector<T> out(a.size());
        if (!out.empty())
            cuda::check(cudaMemcpyAsync(out.data(), a.data(), a.bytes(), cudaMemcpyDeviceToHost, stream),
                        "copy to the host");
        synchronize();
        return out;
    }
};


// ---------------------------------------------------------------- reverse mode

template <class T>
struct GpuAdjoint {
    using Impl = typename GpuTracker<T>::Impl;
    // doubles between read-backs: a kick adjoint takes about 27, a map adjoint 12,
    // so ~150 kicks alone or ~80 Strang slices (a kick and two maps)
    static constexpr std::size_t kLedgerSize = 4096;

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

    // The K sums of the last sum kernel over n elements, finished on the
    // device in block order into the ledger: returns where they are.
    template <int K>
    static double* finish(Impl& g, std::int64_t n) {
        static_assert(K <= cuda::kMaxSums, "more sums than a ledger entry holds");
        if (g.ledger_used + K > g.ledger.size()) read_ledger(g);
        double* out = g.ledger.data() + g.ledger_used;
        cuda::finish_sums_kernel<<<1, K, 0, g.stream>>>(g.sum_partials.data(), int(cuda::sum_blocks(n)), K, out);
        cuda::check_launch("finish the adjoint sums");
        g.ledger_used += K;
        return out;
    }

    // One ledger slot for a scalar a single-thread kernel writes.
    static double* slot(Impl& g) {
        if (g.ledger_used + 1 > g.ledger.size()) read_ledger(g);
        return g.ledger.data() + g.ledger_used++;
    }

    // apply(values) runs on the host, in program order, when the ledger is read back.
    template <class Apply>
    static void defer(Impl& g, const double* at, Apply apply) {
        g.deferred.emplace_back(std::size_t(at - g.ledger.data()), std::function<void(const double*)>(apply));
    }

    // The one host wait of a backward (or of ~80 Strang slices of it): the ledger's
    // values to the host, and the deferred parameter updates in order.
    static void read_ledger(Impl& g) {
        if (g.ledger_used == 0) return;
        std::vector<double> host(g.ledger_used);
        cuda::check(cudaMemcpyAsync(host.data(), g.ledger.data(), host.size() * sizeof(double),
                                    cudaMemcpyDeviceToHost, g.stream),
                    "copy the adjoint sums");
        cuda::wait(g.stream, "adjoint sums");
        auto deferred = std::move(g.deferred);
        g.deferred.clear();
        g.ledger_used = 0;
        for (auto& [offset, apply] : deferred) apply(host.data() + offset);
    }

    static void zero(Impl& g, cuda::DeviceArray<T>& a) {
        cuda::check(cudaMemsetAsync(a.data(), 0, a.bytes(), g.stream), "cudaMemsetAsync");
    }

    static void map(Impl& g, const std::array<DeviceColumn<T>, 6>& in, const Lattice& lattice, std::size_t element,
                    double fraction, ParameterAdjoints& params) {
        cuda::NvtxRange range("drift");
        MemoryScope scope("drift", cuda::device_memory());
        const Element e = lattice[element];
        const ElementMap m = element_map(e, fraction, g.reference.beta_gamma());
        cuda::launch_sums(g.stream, g.n, "map adjoint", cuda::map_adjoint_kernel<T>, in[0].data, in[1].data,
                          in[2].data, in[3].data, in[4].data, in[5].data, columns(g), g.n, m, g.sum_partials.data());
        const Reference ref = g.reference;
        defer(g, finish<12>(g, g.n), [&params, ref, e, element, fraction](const double* s) {
            add_map_adjoint(params, ref, e, element, fraction, s);
        });
    }

    // Substep adjoint inside its NVTX range and device memory scope.
    template <class Work>
    static void substep(Substep sub, Work&& work) {
        cuda::NvtxRange range(substep_name(sub));
        MemoryScope scope(substep_name(sub), cuda::device_memory());
        work();
    }

    // The kick's adjoint with no host wait and no allocation: the grid is
    // recomputed on the device from the saved input (the same reduction, so
    // the same bits as the forward's), the scalar sums go to the ledger.
    static void kick(Impl& g, const GpuKickSaved<T>& saved, double ds_m, std::size_t element, int slices,
                     ParameterAdjoints& params) {
        if (!g.space_charge) throw std::logic_error("GpuTracker::kick_adjoint: tracker built without space charge");
        if (!g.ledger.data()) throw std::logic_error("GpuTracker::kick_adjoint: set_adjoint first");
        const Reference ref = g.reference;
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
        const bodies::KickFrame<T>* f = g.frame.data();
        bodies::GeometryAdjointAcc* geo_adj = g.geo_adj.data();
        cuda::check(cudaMemsetAsync(geo_adj, 0, sizeof(bodies::GeometryAdjointAcc), g.stream), "cudaMemsetAsync");

        // z, pz, the grid, the field on the grid and at the particles, from the saved data
        g.run_s_to_t(px, py, tau, delta);
        g.run_frame(x, y);
        g.run_field(saved.phi.data);
        g.run_gather(x, y);

        const T push_scale = T(g.species.charge_e * ds_m / (ref.beta * ref.gamma * ref.gamma * ref.p0c_eV));
        substep(Substep::t_to_s, [&] {
            cuda::launch_sums(g.stream, n, "t_to_s adjoint", cuda::t_to_s_adjoint_kernel<T>, px, py,
                              (const T*)g.pz.data(), (const T*)g.e_part[0].data(), (const T*)g.e_part[1].data(),
                              (const T*)g.e_part[2].data(), n, push_scale, inv_bg2, A, g.pz_adj.data(),
                              g.dp[0].data(), g.dp[1].data(), g.dp[2].data(), partials);
            defer(g, finish<2>(g, n), [&params, ref](const double* s) {
                add_inv_beta_adjoint(params, ref, s[0]);
                add_inv_bg_sq_adjoint(params, ref, s[1]);
            });
        });
        substep(Substep::push, [&] {
            cuda::launch_sums(g.stream, n, "push adjoint", cuda::push_adjoint_kernel<T>, (const T*)g.e_part[0].data(),
                              (const T*)g.e_part[1].data(), (const T*)g.e_part[2].data(), n, push_scale,
                              g.dp[0].data(), g.dp[1].data(), g.dp[2].data(), partials);
            defer(g, finish<1>(g, n), [&params, ref, element, ds_m, slices, push_scale](const double* s) {
                add_push_scale_adjoint(params, ref, element, ds_m, slices, s[0] * double(push_scale));
            });
        });
        substep(Substep::gather, [&] {
            for (auto& e : g.e_grid_adj) zero(g, e);
            cuda::launch_sums(g.stream, n, "gather adjoint", cuda::gather_adjoint_kernel<T>, f, x, y,
                              (const T*)g.z.data(), n, (const T*)g.e_grid[0].data(), (const T*)g.e_grid[1].data(),
                              (const T*)g.e_grid[2].data(), (const T*)g.dp[0].data(), (const T*)g.dp[1].data(),
                              (const T*)g.dp[2].data(), g.e_grid_adj[0].data(), g.e_grid_adj[1].data(),
                              g.e_grid_adj[2].data(), A.a[0], A.a[2], g.z_adj.data(), partials);
            double* s = finish<6>(g, n);
            if (g.over_ranks()) {  // every rank's particles on the grid: the grid adjoints below run on the totals
                for (auto& e : g.e_grid_adj) g.sum_over_ranks(e.data(), cells);
                g.sum_over_ranks(s, 6);
            }
            cuda::add_geometry_sums_kernel<<<1, 1, 0, g.stream>>>(geo_adj, s, 0, 3);
            cuda::check_launch("gather adjoint (geometry)");
        });
        substep(Substep::field, [&] {
            zero(g, g.phi_adj);
            for (int a = 0; a < 3; ++a) {
                cuda::launch_sums(g.stream, cells, "field adjoint", cuda::field_adjoint_kernel<T>, f, a,
                                  (const T*)g.e_grid[a].data(), (const T*)g.e_grid_adj[a].data(), cells, stride[a],
                                  shape[a], g.phi_adj.data(), partials);
                cuda::add_cell_sum_kernel<<<1, 1, 0, g.stream>>>(geo_adj, a, finish<1>(g, cells));
                cuda::check_launch("field adjoint (geometry)");
            }
        });
        substep(Substep::convolve, [&] { convolve(g, saved.rho.data); });
        substep(Substep::green, [&] { green(g, params); });
        substep(Substep::deposit, [&] {
            cuda::launch_sums(g.stream, n, "deposit adjoint", cuda::deposit_adjoint_kernel<T>, f, x, y,
                              (const T*)g.z.data(), n, (const T*)g.rho_adj.data(), A.a[0], A.a[2], g.z_adj.data(),
                              partials);
            double* s = finish<7>(g, n);
            if (g.over_ranks()) g.sum_over_ranks(s, 7);  // d/d(scale) and the geometry's terms of every rank
            cuda::add_geometry_sums_kernel<<<1, 1, 0, g.stream>>>(geo_adj, s, 1, 4);
            cuda::check_launch("deposit adjoint (geometry)");
            // scale = +-Q / (N hx hy hz)
            double* v = slot(g);
            cuda::add_deposit_scale_kernel<T><<<1, 1, 0, g.stream>>>(geo_adj, f, s, v);
            cuda::check_launch("deposit adjoint (scale)");
            const double charge = g.bunch_charge_C;
            defer(g, v, [&params, charge](const double* value) {
                params.bunch_charge_C += counted_once(value[0] / charge);  // every rank's total (summed above)
            });
            grid_covering(g, x, y);
        });
        substep(Substep::s_to_t, [&] {
            cuda::launch_sums(g.stream, n, "s_to_t adjoint", cuda::s_to_t_adjoint_kernel<T>, px, py, tau, delta,
                              (const T*)g.pz.data(), (const T*)g.z_adj.data(), (const T*)g.pz_adj.data(), n, beta0,
                              inv_beta0, A, partials);
            defer(g, finish<3>(g, n), [&params, ref](const double* s) {
                params.reference.beta += s[0];
                add_inv_beta_adjoint(params, ref, s[1]);
                add_inv_bg_sq_adjoint(params, ref, s[2]);
            });
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
        g.forget_green();
    }

    // From the IGF's adjoint (in green_doubled) to the cell sizes' and gamma's
    // (build_green_adjoint): mirror fold, transposed differences z, y, x, and
    // the antiderivative's gradient at each corner. Scratch: `work`.
    static void green(Impl& g, ParameterAdjoints& params) {
        const int nx = g.settings.shape[0], ny = g.settings.shape[1], nz = g.settings.shape[2];
        const std::int64_t cells = g.cells;
        const std::int64_t stride[3] = {std::int64_t(ny) * nz, nz, 1};
        double* src = reinterpret_cast<double*>(g.work.data());
        double* dst = src + cells;
        cuda::launch(g.stream, cells, "green adjoint (fold)", cuda::green_fold_adjoint_kernel<T>,
                     (const T*)g.green_doubled.data(), cells, nx, ny, nz, cuda::kCoulomb, src);
        for (int ax = 2; ax >= 0; --ax) {
            cuda::launch(g.stream, cells, "green adjoint (differences)", cuda::corner_difference_transpose_kernel,
                         (const double*)src, cells, stride[ax], g.settings.shape[ax], dst);
            std::swap(src, dst);
        }
        cuda::launch_sums(g.stream, cells, "green adjoint (cells)", cuda::green_cell_adjoint_kernel<T>,
                          (const bodies::KickFrame<T>*)g.frame.data(), (const double*)src, cells, ny, nz,
                          g.sum_partials.data());
        const double* h = finish<3>(g, cells);
        double* gamma_term = slot(g);
        cuda::add_green_adjoint_kernel<T><<<1, 1, 0, g.stream>>>(g.geo_adj.data(), g.frame.data(), h,
                                                                 g.reference.gamma, gamma_term);
        cuda::check_launch("green adjoint (cells)");
        // the replicated grid's term: every rank computed it alike
        defer(g, gamma_term, [&params](const double* v) { params.reference.gamma += counted_once(v[0]); });
    }

    // grid_covering_adjoint on the device: the geometry's adjoint flows to
    // the particles that set the grid (the extents are the frame's).
    static void grid_covering(Impl& g, const T* x, const T* y) {
        const std::int64_t n = g.n;
        const T* pos[3] = {x, y, g.z.data()};
        T* pos_adj[3] = {g.adj[0].data(), g.adj[2].data(), g.z_adj.data()};
        const bodies::CoveringAdjoint* c = g.covering.data();
        cuda::covering_adjoint_kernel<<<1, 3, 0, g.stream>>>(g.rule, g.extents.data(), g.n_total, g.geo_adj.data(),
                                                              g.covering.data());
        cuda::check_launch("deposit adjoint (grid)");
        for (int a = 0; a < 3; ++a) {
            if (!g.rule.sigma) {
                add_at_first(g, pos[a], &c[a].lo, pos_adj[a], &c[a].lo_adj);
                add_at_first(g, pos[a], &c[a].hi, pos_adj[a], &c[a].hi_adj);
            } else {
                cuda::launch(g.stream, n, "deposit adjoint (grid)", cuda::sigma_grid_adjoint_kernel<T>, pos[a], n,
                             g.n_total, c + a, pos_adj[a]);
            }
        }
    }

    // u_adj[first p with u[p] == *value] += *v, all on the device. Over MPI
    // ranks only the lowest rank holding that value adds it (the CPU's
    // extreme_owners): the others mark their index as none (n).
    static void add_at_first(Impl& g, const T* u, const double* value, T* u_adj, const double* v) {
        cuda::reset_index_kernel<<<1, 1, 0, g.stream>>>(g.first_index.data(), g.n);
        cuda::check_launch("deposit adjoint (grid)");
        cuda::launch(g.stream, g.n, "deposit adjoint (grid)", cuda::first_index_kernel<T>, u, g.n, value,
                     g.first_index.data());
        if (g.over_ranks()) {
            const double rank = double(communicator().rank());
            double* owner = slot(g);  // a ledger slot no deferred update reads
            cuda::rank_if_found_kernel<<<1, 1, 0, g.stream>>>(g.first_index.data(), g.n, rank, owner);
            cuda::check_launch("deposit adjoint (grid)");
            communicator().min_device(owner, 1, g.staging);
            cuda::keep_if_owner_kernel<<<1, 1, 0, g.stream>>>(g.first_index.data(), g.n, owner, rank);
            cuda::check_launch("deposit adjoint (grid)");
        }
        cuda::add_at_kernel<T><<<1, 1, 0, g.stream>>>(u_adj, g.first_index.data(), g.n, v);
        cuda::check_launch("deposit adjoint (grid)");
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
    impl_->synchronize();
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
        g.ledger.allocate(GpuAdjoint<T>::kLedgerSize, g.stream);
        g.geo_adj.allocate(1, g.stream);
        g.covering.allocate(3, g.stream);
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
    cuda::wait(g.stream, "copy the adjoint to the device");  // the host's columns may go
}

template <class T>
void GpuTracker<T>::get_adjoint(std::array<HostArray<T>, 6>& adjoint) const {
    Impl& g = *impl_;
    GpuAdjoint<T>::read_ledger(g);  // the parameters' adjoints so far, into their ParameterAdjoints
    for (int c = 0; c < 6; ++c) {
        adjoint[c].resize(std::size_t(g.n));
        if (g.n > 0 && g.adj[c].data())
            cuda::check(cudaMemcpyAsync(adjoint[c].data(), g.adj[c].data(), std::size_t(g.n) * sizeof(T),
                                        cudaMemcpyDeviceToHost, g.stream),
                        "copy the adjoint to the host");
    }
    g.synchronize();
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
void GpuTracker<T>::synchronize() const {
    impl_->synchronize();
}

template <class T>
void GpuTracker<T>::set_substep_timing(bool on) {
    impl_->read_all_timing();
    impl_->timing = on;
}

template <class T>
void GpuTracker<T>::capture_kick(double ds_m) {
    impl_->capture_kick(ds_m);
}

template <class T>
void GpuTracker<T>::replay_kick() {
    impl_->replay_kick();
}

template <class T>
std::array<T*, 6> GpuTracker<T>::coordinates() {
    auto& c = impl_->coord;
    return {c[0].data(), c[1].data(), c[2].data(), c[3].data(), c[4].data(), c[5].data()};
}

template <class T>
std::array<const T*, 3> GpuTracker<T>::field_at_particles() {
    impl_->compute_field();
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
    impl_->synchronize();
}

template <class T>
GridGeometry GpuTracker<T>::geometry() const {
    return impl_->host_geometry();
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
    impl_->read_all_timing();
    return impl_->seconds;
}

template <class T>
double GpuTracker<T>::drift_seconds() const {
    impl_->read_all_timing();
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
        // kicks raise their errors when the host looks: every 64 slices
        if (settings.space_charge && (done + 1) % 64 == 0) gpu.synchronize();
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
    cuda::DeviceArray<bodies::ExtentAcc> partials(std::size_t(3 * cuda::kExtentBlocks), stream), out(3, stream);
    cuda::launch_extents(stream, x, y, z, n, partials.data(), out.data());
    bodies::ExtentAcc host[3];
    cuda::check(cudaMemcpy(host, out.data(), sizeof(host), cudaMemcpyDeviceToHost), "copy the extents");  // autograd's host wait
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
