#include "backend.hpp"

#include <stdexcept>

#ifdef SCTAPE_HAVE_CUDA
#include "cuda/device.hpp"
#endif

namespace sctape {

const char* backend_name(Backend b) {
    switch (b) {
        case Backend::cpu: return "cpu";
        case Backend::cuda: return "cuda";
        case Backend::automatic: return "auto";
    }
    return "?";
}

GpuProbe probe_gpu() {
    GpuProbe probe;
#ifdef SCTAPE_HAVE_CUDA
    probe.usable = cuda::probe_devices(probe.description) > 0;
#else
    probe.description = "built without the CUDA backend";
#endif
    return probe;
}

// The kick itself has no CUDA kernels yet (issue "CUDA backend"): a usable GPU
// is reported, but the work runs on the CPU and says so.
Backend resolve_backend(Backend requested, std::string& why) {
    if (requested == Backend::cpu) {
        why = "cpu requested";
        return Backend::cpu;
    }
    GpuProbe gpu = probe_gpu();
    if (requested == Backend::cuda)
        throw std::runtime_error("backend \"cuda\" is not available: the space-charge kick has no CUDA "
                                 "kernels in this build yet (GPU probe: " + gpu.description + ")");
    why = "auto: no CUDA kick in this build, using the CPU (GPU probe: " + gpu.description + ")";
    return Backend::cpu;
}

}  // namespace sctape
