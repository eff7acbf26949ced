// op_bodies.hpp — the per-element math of every autograd op, forward and
// backward, as small structs with an SCTAPE_HD call operator: runner.hpp runs
// them in a host loop or a CUDA kernel, so the CPU tests cover exactly the
// math the GPU runs. A Body writes element i (`void operator()(i)`); a Term
// returns the i-th contribution to a gradient (`T operator()(i)`), added
// elementwise by AddTerm or summed into a broadcast operand by sum_into.
// Complex arrays are passed as interleaved (re, im) pairs of T.
//
//   for_each(device, n, Binary<float>{BinaryOp::mul, a, 1, b, 0, out});  // out = a * b[0]
//   for_each(device, n, AddTerm<Product<float>>{ga, Product<float>{g, b, 0}});  // ga += g * b[0]
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.hpp"
#include "physics/kick_math.hpp"  // mirror_fold

namespace sctape {
namespace ag {

using i64 = std::int64_t;

// A scatter's add: atomic on the device (several threads may hit one
// target), a plain add in the host's ordered loop.
template <class T>
SCTAPE_HD void add_to(T* target, T v) {
#if defined(__CUDA_ARCH__)
    atomicAdd(target, v);
#else
    *target += v;
#endif
}

// Row-major 3D shape (index (i*n1 + j)*n2 + k), device-copyable.
struct Dims {
    int n0, n1, n2;
    SCTAPE_HD i64 cells() const { return i64(n0) * n1 * n2; }
    SCTAPE_HD i64 at(int i, int j, int k) const { return (i64(i) * n1 + j) * n2 + k; }
    SCTAPE_HD i64 stride(int axis) const { return axis == 0 ? i64(n1) * n2 : axis == 1 ? i64(n2) : 1; }
    SCTAPE_HD int len(int axis) const { return axis == 0 ? n0 : axis == 1 ? n1 : n2; }
};

// ---- elementwise ---------------------------------------------------------------

template <class T>
struct Fill {
    T* out;
    T value;
    SCTAPE_HD void operator()(i64 i) const { out[i] = value; }
};

// out = a (+ out when `add`), with a type conversion: cast, to_index, the
// index values of the CIC weights, and cast's backward.
template <class To, class From>
struct Convert {
    const From* a;
    To* out;
    bool add;
    SCTAPE_HD void operator()(i64 i) const { out[i] = add ? out[i] + To(a[i]) : To(a[i]); }
};

enum class BinaryOp { add, sub, mul, div };

// out = a op b; a stride of 0 broadcasts a size-1 operand.
template <class T>
struct Binary {
    BinaryOp op;
    const T* a;
    i64 sa;
    const T* b;
    i64 sb;
    T* out;
    SCTAPE_HD void operator()(i64 i) const {
        const T x = a[i * sa], y = b[i * sb];
        out[i] = op == BinaryOp::add ? x + y : op == BinaryOp::sub ? x - y : op == BinaryOp::mul ? x * y : x / y;
    }
};

enum class UnaryOp { neg, scale, div_scalar, add_scalar, rsub_scalar, reciprocal, sqrt, square, exp, log, asinh,
                     atan, floor, clamp };

// A unary op with its constants: c (scale, div_scalar, add_scalar,
// rsub_scalar) or lo, hi (clamp).
template <class T>
struct UnaryFn {
    UnaryOp op;
    T c, lo, hi;

    SCTAPE_HD T value(T x) const {
        switch (op) {
            case UnaryOp::neg: return -x;
            case UnaryOp::scale: return x * c;
            case UnaryOp::div_scalar: return x / c;
            case UnaryOp::add_scalar: return x + c;
            case UnaryOp::rsub_scalar: return c - x;
            case UnaryOp::reciprocal: return T(1) / x;
            case UnaryOp::sqrt: return std::sqrt(x);
            case UnaryOp::square: return x * x;
            case UnaryOp::exp: return std::exp(x);
            case UnaryOp::log: return std::log(x);
            case UnaryOp::asinh: return std::asinh(x);
            case UnaryOp::atan: return std::atan(x);
            case UnaryOp::floor: return std::floor(x);
            case UnaryOp::clamp: {  // std::min(std::max(x, lo), hi), also for lo > hi
                const T m = x < lo ? lo : x;
                return hi < m ? hi : m;
            }
        }
        return x;
    }
    // d value / d x, from the value the op keeps (its input, its output, or
    // nothing: k = 0), as PyTorch's derivatives.yaml writes it.
    SCTAPE_HD T derivative(T k) const {
        switch (op) {
            case UnaryOp::neg: return T(-1);
            case UnaryOp::scale: return c;
            case UnaryOp::div_scalar: return T(1) / c;
            case UnaryOp::add_scalar: return T(1);
            case UnaryOp::rsub_scalar: return T(-1);
            case UnaryOp::reciprocal: return -k * k;      // k = output
            case UnaryOp::sqrt: return T(0.5) / k;        // k = output
            case UnaryOp::square: return T(2) * k;        // k = input
            case UnaryOp::exp: return k;                  // k = output
            case UnaryOp::log: return T(1) / k;           // k = input
            case UnaryOp::asinh: return T(1) / std::sqrt(k * k + T(1));
            case UnaryOp::atan: return T(1) / (T(1) + k * k);
            case UnaryOp::floor: return T(0);
            case UnaryOp::clamp: return (k >= lo && k <= hi) ? T(1) : T(0);
        }
        return T(0);
    }
};

template <class T>
struct Unary {
    UnaryFn<T> fn;
    const T* a;
    T* out;
    SCTAPE_HD void operator()(i64 i) const { out[i] = fn.value(a[i]); }
};

// ---- gradient terms (T operator()(i): the i-th contribution) ---------------------

template <class T>
struct Value {  // a[i]: sum's forward
    using value_type = T;
    const T* a;
    SCTAPE_HD T operator()(i64 i) const { return a[i]; }
};

template <class T>
struct Scaled {  // g * s, s = +-1: add's and sub's backward
    using value_type = T;
    const T* g;
    T s;
    SCTAPE_HD T operator()(i64 i) const { return g[i] * s; }
};

template <class T>
struct Product {  // g * other: mul's backward
    using value_type = T;
    const T* g;
    const T* other;
    i64 so;
    SCTAPE_HD T operator()(i64 i) const { return g[i] * other[i * so]; }
};

template <class T>
struct Quotient {  // g / b: div's backward to a
    using value_type = T;
    const T* g;
    const T* b;
    i64 sb;
    SCTAPE_HD T operator()(i64 i) const { return g[i] / b[i * sb]; }
};

template <class T>
struct QuotientDivisor {  // -g a / b^2: div's backward to b
    using value_type = T;
    const T* g;
    const T* a;
    i64 sa;
    const T* b;
    i64 sb;
    SCTAPE_HD T operator()(i64 i) const {
        const T d = b[i * sb];
        return -g[i] * a[i * sa] / (d * d);
    }
};

template <class T>
struct UnaryGrad {  // g * f'(kept): a unary op's backward
    using value_type = T;
    UnaryFn<T> fn;
    const T* g;
    const T* kept;  // nullptr when the op keeps nothing
    SCTAPE_HD T operator()(i64 i) const { return g[i] * fn.derivative(kept ? kept[i] : T(0)); }
};

template <class Term>
struct AddTerm {
    typename Term::value_type* out;
    Term term;
    SCTAPE_HD void operator()(i64 i) const { out[i] += term(i); }
};

// ---- reductions and indexing ------------------------------------------------------

template <class T>
struct AddShare {  // ga[i] += g[0] / divisor: sum's and mean's backward
    const T* g;
    T divisor;
    T* ga;
    SCTAPE_HD void operator()(i64 i) const { ga[i] += g[0] / divisor; }
};

template <class T>
struct AddAt {  // ga[where[0]] += g[0] (one element): min's and max's backward
    const T* g;
    const i64* where;
    T* ga;
    SCTAPE_HD void operator()(i64) const { ga[where[0]] += g[0]; }
};

// min / max: whether candidate (v, i) beats (w, j): a smaller (larger)
// value, or the same value at a lower index (the host's first-best scan);
// index -1 is no candidate. A NaN beats every number (torch.min / max
// propagate NaN), so host and device agree whatever the tree shape.
template <class T>
SCTAPE_HD bool better_candidate(bool minimum, T v, i64 i, T w, i64 j) {
    if (i < 0) return false;
    if (j < 0) return true;
    const bool v_nan = v != v, w_nan = w != w;
    if (v_nan || w_nan) return v_nan && (!w_nan || i < j);
    if (v == w) return i < j;
    return minimum ? v < w : v > w;
}

template <class T>
struct SumInner {  // out[p] = sum_j a[p k + j], in order
    const T* a;
    int k;
    T* out;
    SCTAPE_HD void operator()(i64 p) const {
        T acc = 0;
        for (int j = 0; j < k; ++j) acc += a[p * k + j];
        out[p] = acc;
    }
};

template <class T>
struct SpreadInner {  // ga[p k + j] += g[p]: sum_inner's backward
    const T* g;
    int k;
    T* ga;
    SCTAPE_HD void operator()(i64 p) const {
        for (int j = 0; j < k; ++j) ga[p * k + j] += g[p];
    }
};

template <class T>
struct Gather {  // out[i] (+)= a[idx[i]]: gather, and scatter_add's backward
    const T* a;
    const i64* idx;
    T* out;
    bool add;
    SCTAPE_HD void operator()(i64 i) const { out[i] = add ? out[i] + a[idx[i]] : a[idx[i]]; }
};

template <class T>
struct ScatterAdd {  // out[idx[i]] += src[i]: scatter_add, and gather's backward
    const T* src;
    const i64* idx;
    T* out;
    SCTAPE_HD void operator()(i64 i) const { add_to(&out[idx[i]], src[i]); }
};

template <class T>
struct SelectInner {  // out[p m + c] = a[p k + sel[c]]
    const T* a;
    int k;
    const i64* sel;
    int m;
    T* out;
    SCTAPE_HD void operator()(i64 p) const {
        for (int c = 0; c < m; ++c) out[p * m + c] = a[p * k + sel[c]];
    }
};

template <class T>
struct SelectInnerAdjoint {  // ga[p k + sel[c]] += g[p m + c] (several c may share a column)
    const T* g;
    int k;
    const i64* sel;
    int m;
    T* ga;
    SCTAPE_HD void operator()(i64 p) const {
        for (int c = 0; c < m; ++c) ga[p * k + sel[c]] += g[p * m + c];
    }
};

constexpr int kMaxStack = 8;  // parts stack_inner takes

template <class T>
struct StackInner {  // out[p k + j] = part_j[p]
    const T* part[kMaxStack];
    int k;
    T* out;
    SCTAPE_HD void operator()(i64 p) const {
        for (int j = 0; j < k; ++j) out[p * k + j] = part[j][p];
    }
};

template <class T>
struct Column {  // ga[p] += g[p k + j]: stack_inner's backward to part j
    const T* g;
    int k, j;
    T* ga;
    SCTAPE_HD void operator()(i64 p) const { ga[p] += g[p * k + j]; }
};

struct ClampIndex {
    const i64* in;
    i64 lo, hi;
    i64* out;
    SCTAPE_HD void operator()(i64 p) const { out[p] = in[p] < lo ? lo : (in[p] > hi ? hi : in[p]); }
};

// Flat node index of the 8 CIC corners of particle p (corner m = 4a + 2b + c).
struct CornerNodes {
    const i64* ix;
    const i64* iy;
    const i64* iz;
    Dims n;
    i64* out;
    SCTAPE_HD void operator()(i64 p) const {
        for (int m = 0; m < 8; ++m)
            out[8 * p + m] = n.at(int(ix[p] + ((m >> 2) & 1)), int(iy[p] + ((m >> 1) & 1)), int(iz[p] + (m & 1)));
    }
};

// (i + 1/2) along `axis` on the node lattice (a meshgrid), float64.
struct HalfCellLattice {
    Dims n;
    int axis;
    double* out;
    SCTAPE_HD void operator()(i64 c) const {
        const i64 s = n.stride(axis);
        out[c] = double((c / s) % n.len(axis)) + 0.5;
    }
};

// ---- grid ---------------------------------------------------------------------------

// The box at the origin of src into the box at the origin of dst (pad and crop
// forward; each one's backward, with `add`, as the other's). c runs over the box.
template <class T>
struct CopyBox {
    const T* src;
    Dims src_shape;
    T* dst;
    Dims dst_shape;
    Dims box;
    bool add;
    SCTAPE_HD void operator()(i64 c) const {
        const int i = int(c / (i64(box.n1) * box.n2)), j = int((c / box.n2) % box.n1), k = int(c % box.n2);
        const T v = src[src_shape.at(i, j, k)];
        T& to = dst[dst_shape.at(i, j, k)];
        to = add ? to + v : v;
    }
};

// c over the 2n grid -> the source cell in the n grid, or -1 on a zero plane.
SCTAPE_HD i64 mirror_source(const Dims& n, i64 c) {
    const Dims m{2 * n.n0, 2 * n.n1, 2 * n.n2};
    const int i = int(c / (i64(m.n1) * m.n2)), j = int((c / m.n2) % m.n1), k = int(c % m.n2);
    const int fi = mirror_fold(i, n.n0), fj = mirror_fold(j, n.n1), fk = mirror_fold(k, n.n2);
    return (fi < 0 || fj < 0 || fk < 0) ? -1 : n.at(fi, fj, fk);
}

template <class T>
struct Mirror {  // out (2n grid) = a folded
    const T* a;
    Dims n;
    T* out;
    SCTAPE_HD void operator()(i64 c) const {
        const i64 from = mirror_source(n, c);
        out[c] = from < 0 ? T(0) : a[from];
    }
};

template <class T>
struct MirrorAdjoint {  // ga += g (2n grid) folded back
    const T* g;
    Dims n;
    T* ga;
    SCTAPE_HD void operator()(i64 c) const {
        const i64 to = mirror_source(n, c);
        if (to >= 0) add_to(&ga[to], g[c]);
    }
};

// out(i) = a(i - 1) along an axis of stride s and length len, out(0) = -a(0).
template <class T>
struct ShiftOdd {
    const T* a;
    i64 s;
    int len;
    T* out;
    SCTAPE_HD void operator()(i64 c) const { out[c] = (c / s) % len == 0 ? -a[c] : a[c - s]; }
};

template <class T>
struct ShiftOddAdjoint {  // ga += the adjoint of ShiftOdd applied to g
    const T* g;
    i64 s;
    int len;
    T* ga;
    SCTAPE_HD void operator()(i64 c) const {
        if ((c / s) % len == 0) add_to(&ga[c], -g[c]);
        else add_to(&ga[c - s], g[c]);
    }
};

// numpy.gradient with unit spacing along an axis (one-sided at the two ends).
template <class T>
struct Stencil {
    const T* a;
    i64 s;
    int len;
    T* out;
    SCTAPE_HD void operator()(i64 c) const {
        const int i = int((c / s) % len);
        out[c] = i == 0 ? a[c + s] - a[c] : i == len - 1 ? a[c] - a[c - s] : T(0.5) * (a[c + s] - a[c - s]);
    }
};

template <class T>
struct StencilAdjoint {
    const T* g;
    i64 s;
    int len;
    T* ga;
    SCTAPE_HD void operator()(i64 c) const {
        const int i = int((c / s) % len);
        if (i == 0) {
            add_to(&ga[c + s], g[c]);
            add_to(&ga[c], -g[c]);
        } else if (i == len - 1) {
            add_to(&ga[c], g[c]);
            add_to(&ga[c - s], -g[c]);
        } else {
            const T h = T(0.5) * g[c];
            add_to(&ga[c + s], h);
            add_to(&ga[c - s], -h);
        }
    }
};

// ---- spectra (interleaved re, im) ---------------------------------------------------------

// rfft3's backward before its c2r: d/dx_n of Re-linear functionals of the
// half spectrum is c2r(H), H = G/2 on the interior planes of the last axis
// and the Hermitian part of G on its planes 0 and M/2 (c2r counts those once).
// m: the real shape; c runs over the half spectrum.
template <class T>
struct HermitianHalf {
    const T* g;
    Dims m;
    T* h;
    SCTAPE_HD void operator()(i64 c) const {
        const int h2 = m.n2 / 2 + 1;
        const int i = int(c / (i64(m.n1) * h2)), j = int((c / h2) % m.n1), k = int(c % h2);
        const bool boundary = k == 0 || (m.n2 % 2 == 0 && k == h2 - 1);
        if (!boundary) {
            h[2 * c] = g[2 * c] * T(0.5);
            h[2 * c + 1] = g[2 * c + 1] * T(0.5);
            return;
        }
        const i64 cm = (i64((m.n0 - i) % m.n0) * m.n1 + (m.n1 - j) % m.n1) * h2 + k;
        h[2 * c] = (g[2 * c] + g[2 * cm]) * T(0.5);          // G + conj(G mirrored)
        h[2 * c + 1] = (g[2 * c + 1] - g[2 * cm + 1]) * T(0.5);
    }
};

// irfft3's backward after its r2c: grad_X += c_k r2c(g), c_k = 1 on the last
// axis' planes 0 and M/2, 2 elsewhere.
template <class T>
struct HalfSpectrumWeights {
    const T* spec;
    int n2;  // real length of the last axis
    T* ga;
    SCTAPE_HD void operator()(i64 c) const {
        const int h2 = n2 / 2 + 1, k = int(c % h2);
        const bool boundary = k == 0 || (n2 % 2 == 0 && k == h2 - 1);
        const T w = boundary ? T(1) : T(2);
        ga[2 * c] += spec[2 * c] * w;
        ga[2 * c + 1] += spec[2 * c + 1] * w;
    }
};

// out (+)= a * b, or a * conj(b) with `conjugate` (cmul's backward, with the
// gradient convention g = dL/dRe + i dL/dIm).
template <class T>
struct ComplexProduct {
    const T* a;
    const T* b;
    T* out;
    bool conjugate, add;
    SCTAPE_HD void operator()(i64 c) const {
        const T ar = a[2 * c], ai = a[2 * c + 1], br = b[2 * c], bi = conjugate ? -b[2 * c + 1] : b[2 * c + 1];
        const T re = ar * br - ai * bi, im = ar * bi + ai * br;
        out[2 * c] = add ? out[2 * c] + re : re;
        out[2 * c + 1] = add ? out[2 * c + 1] + im : im;
    }
};

}  // namespace ag
}  // namespace sctape
