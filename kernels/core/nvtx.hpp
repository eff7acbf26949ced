// nvtx.hpp — NVTX ranges for Nsight Systems, named after the eight substeps
// (and "drift", "forward", "backward"). Header-only NVTX3 from the CUDA
// toolkit (CMake target CUDA::nvtx3, which defines SCTAPE_HAVE_NVTX3 here);
// without it the range is a no-op. NVTX3 does nothing unless a profiler
// injects itself, so the ranges cost ~nothing in normal runs.
//
//   { sctape::cuda::NvtxRange r("deposit"); launch(...); }
#pragma once

#if defined(SCTAPE_HAVE_NVTX3)
#include <nvtx3/nvToolsExt.h>
#endif

namespace sctape::cuda {

class NvtxRange {
public:
    explicit NvtxRange(const char* name) {
#if defined(SCTAPE_HAVE_NVTX3)
        nvtxRangePushA(name);
#else
        (void)name;
#endif
    }
    ~NvtxRange() {
#if defined(SCTAPE_HAVE_NVTX3)
        nvtxRangePop();
#endif
    }
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace sctape::cuda
