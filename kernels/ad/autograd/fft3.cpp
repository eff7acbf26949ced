#include "ad/autograd/fft3.hpp"

#include "ad/autograd/runner.hpp"
#include "core/fft_cpu.hpp"

namespace sctape {
namespace ag {
namespace {

template <class T>
class HostFft final : public Fft3<T> {
public:
    HostFft(const Shape3& shape, int threads) : Fft3<T>(shape, Device::host), plans_(shape, threads) {}
    // An out-of-place r2c FFTW plan preserves its input (FFTW_PRESERVE_INPUT
    // is the default for r2c), so the const buffer is passed as is.
    void forward(const T* real, std::complex<T>* spectrum) const override {
        plans_.forward(const_cast<T*>(real), spectrum);
    }
    void inverse(std::complex<T>* spectrum, T* real) const override { plans_.inverse(spectrum, real); }

private:
    RealFft3d<T> plans_;
};

}  // namespace

template <class T>
std::shared_ptr<const Fft3<T>> make_fft(const Shape3& shape, Device device, int threads) {
    if (device == Device::host) return std::make_shared<const HostFft<T>>(shape, threads);
#ifdef SCTAPE_HAVE_CUDA
    return device::make_fft<T>(shape);
#else
    no_cuda_build();
#endif
}

template std::shared_ptr<const Fft3<float>> make_fft<float>(const Shape3&, Device, int);
template std::shared_ptr<const Fft3<double>> make_fft<double>(const Shape3&, Device, int);

}  // namespace ag
}  // namespace sctape
