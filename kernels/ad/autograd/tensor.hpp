// tensor.hpp — a small generic op-by-op reverse-mode engine on flat arrays,
// the `autograd` strategy's stand-in for PyTorch's autograd.
//
// A Tensor is an immutable value buffer (an Array on the host or the CUDA
// device, counted by that device's tracking allocator) plus, when it requires
// a gradient, a Node that accumulates d(objective)/d(tensor) during backward.
// Every op that has an input requiring a gradient records ONE entry on the
// active sctape::Tape, saving exactly the buffers PyTorch's autograd would
// save for it (derivatives.yaml, with the conditional saving of the generated
// code: a buffer is saved only if the gradient of an input that needs it is
// required). So the tape holds the same bytes on either device. An op's
// operands live on one device and its result on the same one; the
// per-element math of every op is in op_bodies.hpp. Size-1 operands
// broadcast in the binary ops. Index buffers are int64, as PyTorch's indices
// are. Grid ops take the 3D shape explicitly (row-major, index (i*n1 + j)*n2 + k).
//
//   sctape::Tape tape;
//   sctape::ag::Recording rec(tape);                  // ops record on `tape`
//   auto a = sctape::ag::parameter_scalar(2.0);       // leaf on the host, gradient kept
//   auto b = sctape::ag::mul(a, a);                   // saves a
//   sctape::ag::seed(b);                              // d b / d b = 1
//   tape.backward();                                  // a.grad()->at(0) == 4
#pragma once

#include <array>
#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

#include "ad/autograd/array.hpp"
#include "ad/autograd/fft3.hpp"
#include "ad/tape.hpp"

namespace sctape {
namespace ag {

using IndexArray = Array<std::int64_t>;
using Index = std::shared_ptr<const IndexArray>;

// Gradient accumulator of one tensor, on the tensor's device.
template <class T>
struct Node {
    Node(std::int64_t n, Device d) : size(n), device(d) {}
    std::int64_t size;
    Device device;
    bool retain = false;  // keep the gradient once the producing op's backward has run
    Array<T> grad;        // empty until a gradient arrives

    // A flag, not grad's size: a tensor of no elements (a rank holding no
    // particle) receives its gradient too, and its op's backward then runs on
    // that rank as on the others (the reductions over ranks in it must meet).
    bool has_grad() const { return received_; }
    T* grad_data() {
        if (!received_) {
            grad = Array<T>(size, device);
            grad.fill_zero();
            received_ = true;
        }
        return grad.data();
    }
    void release() {
        grad = Array<T>();
        received_ = false;
    }

private:
    bool received_ = false;
};

template <class T>
class Tensor {
public:
    Tensor() = default;
    Tensor(std::shared_ptr<const Array<T>> data, std::shared_ptr<Node<T>> node)
        : data_(std::move(data)), node_(std::move(node)) {}

    std::int64_t size() const { return data_ ? data_->size() : 0; }
    Device device() const { return data_ ? data_->device() : Device::host; }
    const T* data() const { return data_->data(); }
    const Array<T>& values() const { return *data_; }
    const std::shared_ptr<const Array<T>>& buffer() const { return data_; }
    const std::shared_ptr<Node<T>>& node() const { return node_; }
    bool requires_grad() const { return node_ != nullptr; }
    T item() const { return data_->at(0); }  // on the host

    // Keeps this tensor's gradient after backward (PyTorch's retain_grad()).
    void retain_grad() const {
        if (node_) node_->retain = true;
    }
    // The accumulated gradient (empty when none arrived), or nullptr.
    const Array<T>* grad() const { return node_ ? &node_->grad : nullptr; }

private:
    std::shared_ptr<const Array<T>> data_;
    std::shared_ptr<Node<T>> node_;
};

template <class T>
using ComplexTensor = Tensor<std::complex<T>>;

// RAII: ops record on `tape` while it lives (one per thread; nests).
class Recording {
public:
    explicit Recording(Tape& tape);
    ~Recording();
    Recording(const Recording&) = delete;
    Recording& operator=(const Recording&) = delete;

private:
    Tape* previous_;
};
Tape* recording_tape();

// --- creation (host values, copied to `device`) --------------------------------------
template <class T>
Tensor<T> constant(HostArray<T> values, Device device = Device::host);
template <class T>
Tensor<T> constant(std::shared_ptr<const Array<T>> values);
template <class T>
Tensor<T> constant_scalar(T value, Device device = Device::host);
// Leaves requiring a gradient; their gradients are kept.
template <class T>
Tensor<T> parameter(HostArray<T> values, Device device = Device::host);
template <class T>
Tensor<T> parameter_scalar(T value, Device device = Device::host);
// Seeds d(out)/d(out) = value (every element; 1 by default) before Tape::backward().
template <class T>
void seed(const Tensor<T>& out, T value = T(1));

// --- elementwise, size-1 operands broadcast ----------------------------------
template <class T> Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b);  // saves nothing
template <class T> Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b);  // saves nothing
template <class T> Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b);  // saves b if a needs grad, a if b does
template <class T> Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b);  // saves b; and a if b needs grad

template <class T> Tensor<T> neg(const Tensor<T>& a);                    // saves nothing
template <class T> Tensor<T> scale(const Tensor<T>& a, double c);        // a * c, saves nothing
template <class T> Tensor<T> div_scalar(const Tensor<T>& a, double c);   // a / c, saves nothing
template <class T> Tensor<T> add_scalar(const Tensor<T>& a, double c);   // a + c, saves nothing
template <class T> Tensor<T> rsub_scalar(double c, const Tensor<T>& a);  // c - a, saves nothing
template <class T> Tensor<T> reciprocal(const Tensor<T>& a);             // 1 / a, saves the output
template <class T> Tensor<T> sqrt(const Tensor<T>& a);                   // saves the output
template <class T> Tensor<T> square(const Tensor<T>& a);                 // saves the input
template <class T> Tensor<T> exp(const Tensor<T>& a);                    // saves the output
template <class T> Tensor<T> log(const Tensor<T>& a);                    // saves the input
template <class T> Tensor<T> asinh(const Tensor<T>& a);                  // saves the input
template <class T> Tensor<T> atan(const Tensor<T>& a);                   // saves the input
template <class T> Tensor<T> floor(const Tensor<T>& a);                  // zero gradient, saves nothing
template <class T> Tensor<T> clamp(const Tensor<T>& a, double lo, double hi);  // saves the input

template <class To, class From>
Tensor<To> cast(const Tensor<From>& a);  // dtype conversion, saves nothing

// --- reductions ----------------------------------------------------------------
template <class T> Tensor<T> sum(const Tensor<T>& a);   // accumulated in float64; saves nothing
template <class T> Tensor<T> mean(const Tensor<T>& a);  // accumulated in float64; saves nothing
template <class T> Tensor<T> min(const Tensor<T>& a);   // the first on ties, NaN if any; saves the argmin (int64)
template <class T> Tensor<T> max(const Tensor<T>& a);   // the first on ties, NaN if any; saves the argmax (int64)
// (N, k) -> N, summed in order from zero in T; saves nothing.
template <class T> Tensor<T> sum_inner(const Tensor<T>& a, int k);

// --- over MPI ranks (core/communicator.hpp) -------------------------------------
// A tensor of particles holds this rank's share; a replicated tensor (the
// grid, the scalars) is the same on every rank, and its gradient on a rank is
// that rank's partial adjoint: the ranks' partial adjoints sum to the true one
// (docs/mpi.md, "autograd over ranks"). Each op reduces over the ranks in its
// forward and again in its backward, so every rank records and runs them in
// the same order. On one rank each is the op it extends (the same values,
// tape entries and saved bytes; ranks_sum records nothing); over several,
// host tensors only.
// Every rank's `a` summed elementwise, the same total on every rank; saves
// nothing. Backward: the partial adjoints summed over the ranks.
template <class T> Tensor<T> ranks_sum(const Tensor<T>& a);
// mean(a) over every rank's elements (float64 sums added over the ranks,
// divided by the total count); saves nothing.
template <class T> Tensor<T> ranks_mean(const Tensor<T>& a);
// min(a) / max(a) over every rank's elements: the first in the global order
// on ties (the lowest rank holding the extreme, its first), NaN if any. Saves
// this rank's argmin / argmax (int64), as min and max do; the adjoint (summed
// over the ranks) goes to that element on the rank holding it.
template <class T> Tensor<T> ranks_min(const Tensor<T>& a);
template <class T> Tensor<T> ranks_max(const Tensor<T>& a);

// --- indexing ------------------------------------------------------------------
// out[i] = a[idx[i]]; saves idx.
template <class T> Tensor<T> gather(const Tensor<T>& a, const Index& idx);
// out (size n) zero, out[idx[i]] += src[i] in order; saves idx.
template <class T> Tensor<T> scatter_add(const Tensor<T>& src, const Index& idx, std::int64_t n);
// (N, k) -> (N, m): out[p, c] = a[p, sel[c]] (PyTorch a[:, sel]); saves sel.
template <class T> Tensor<T> select_inner(const Tensor<T>& a, int k, const Index& sel);
// k tensors of size N -> (N, k); saves nothing.
template <class T> Tensor<T> stack_inner(const std::vector<Tensor<T>>& parts);
// Non-differentiable int64 conversion (PyTorch .long()); no tape entry.
template <class T> Index to_index(const Tensor<T>& a);

// --- grid (3D, row-major) ------------------------------------------------------
// Zero-pad an n-shaped array into the corner of an m-shaped one; saves nothing.
template <class T> Tensor<T> pad3(const Tensor<T>& a, const Shape3& n, const Shape3& m);
// The corner n-shaped block of an m-shaped array; saves nothing.
template <class T> Tensor<T> crop3(const Tensor<T>& a, const Shape3& m, const Shape3& n);
// n -> 2n by mirroring: index i < n -> i, n -> zero, i > n -> 2n - i; saves nothing.
template <class T> Tensor<T> mirror3(const Tensor<T>& a, const Shape3& n);
// Shift by one along `axis` with the odd extension: out(i) = a(i-1), out(0) = -a(0); saves nothing.
template <class T> Tensor<T> shift_odd(const Tensor<T>& a, const Shape3& n, int axis);
// numpy.gradient with unit spacing along `axis`: (a(i+1) - a(i-1))/2 inside,
// one-sided differences on the two boundary nodes; saves nothing.
template <class T> Tensor<T> grad_stencil(const Tensor<T>& a, const Shape3& n, int axis);

// --- FFT (unnormalized, FFTW conventions) and complex ops ---------------------
// r2c of a real array of fft.shape(); saves nothing.
template <class T>
ComplexTensor<T> rfft3(const Tensor<T>& a, std::shared_ptr<const Fft3<T>> fft);
// c2r of a half spectrum (unnormalized); saves nothing.
template <class T>
Tensor<T> irfft3(const ComplexTensor<T>& a, std::shared_ptr<const Fft3<T>> fft);
// Elementwise complex product; saves b if a needs grad, a if b does.
template <class T>
ComplexTensor<T> cmul(const ComplexTensor<T>& a, const ComplexTensor<T>& b);
// Complex times a real constant; saves nothing.
template <class T>
ComplexTensor<T> cscale(const ComplexTensor<T>& a, T c);

}  // namespace ag
}  // namespace sctape
