#include "ad/autograd/runner.hpp"

namespace sctape {
namespace ag {

void no_cuda_build() {
    throw std::runtime_error("autograd on the device: this build has no CUDA backend");
}

#ifndef SCTAPE_HAVE_CUDA
// Without the CUDA build no device Array can exist: creating one fails here.
namespace device {
void* allocate(std::size_t) { no_cuda_build(); }
void release(void*, std::size_t) noexcept {}
void upload(void*, const void*, std::size_t) { no_cuda_build(); }
void download(void*, const void*, std::size_t) { no_cuda_build(); }
void zero(void*, std::size_t) { no_cuda_build(); }
}  // namespace device
#endif

}  // namespace ag
}  // namespace sctape
