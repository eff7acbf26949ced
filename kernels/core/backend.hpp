// backend.hpp — choosing where the kick runs. "auto" takes a usable GPU when
// the CUDA backend was built and a device answers, else the CPU; any CUDA
// error counts as "no GPU" (machines with nvcc but no GPU report error 35).
//
//   std::string why;
//   sctape::Backend b = sctape::resolve_backend(sctape::Backend::automatic, why);
#pragma once

#include <string>

#include "core/names.hpp"

namespace sctape {

enum class Backend { cpu, cuda, automatic };
inline constexpr NameList<Backend, 3> kBackendNames{{"cpu", "cuda", "auto"}};
inline const char* backend_name(Backend b) { return kBackendNames.name(b); }

struct GpuProbe {
    bool usable = false;
    std::string description;  // device name, or why there is none
};

GpuProbe probe_gpu();

// The backend to use for a request, with a one-line explanation in `why`.
// Throws std::runtime_error when "cuda" is requested and cannot be honoured.
Backend resolve_backend(Backend requested, std::string& why);

}  // namespace sctape
