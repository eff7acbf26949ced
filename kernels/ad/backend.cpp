#include "core/backend.hpp"

#include <stdexcept>

#ifdef SCTAPE_HAVE_CUDA
#include "cuda/device.hpp"
#endif

namespace sctape {

GpuProbe probe_gpu() {
    GpuProbe probe;
#ifdef SCTAPE_HAVE_CUDA
    probe.usable = cuda::probe_devices(probe.description) > 0;
#else
    probe.description = "built without the CUDA backend";
#endif
    return probe;
}

// "auto" takes the GPU when this build has the CUDA backend and the probe
// finds a usable device (any CUDA error counts as none), else the CPU with
// the reason; "cuda" is refused with the reason when it cannot be honoured.
Backend resolve_backend(Backend requested, std::string& why) {
    if (requested == Backend::cpu) {
        why = "cpu requested";
        return Backend::cpu;
    }
#ifdef SCTAPE_HAVE_CUDA
    GpuProbe gpu = probe_gpu();
    if (gpu.usable) {
        why = std::string(requested == Backend::cuda ? "cuda requested" : "auto") + ": GPU " + gpu.description;
        return Backend::cuda;
    }
    if (requested == Backend::cuda)
        throw std::runtime_error("backend \"cuda\" is not available: no usable GPU (" + gpu.description + ")");
    why = "auto: no usable GPU, using the CPU (" + gpu.description + ")";
    return Backend::cpu;
#else
    if (requested == Backend::cuda)
        throw std::runtime_error("backend \"cuda\" is not available: this build has no CUDA backend "
                                 "(build with nvcc and the cuda preset)");
    why = "auto: built without the CUDA backend, using the CPU";
    return Backend::cpu;
#endif
}

}  // namespace sctape
