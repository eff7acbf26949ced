// device.hpp — host-callable queries of the CUDA runtime (no CUDA types here,
// so host-only code can include it).
#pragma once

#include <string>

namespace sctape::cuda {

// Number of usable devices (0 on any error); `description` names device 0 or the error.
int probe_devices(std::string& description);

}  // namespace sctape::cuda
