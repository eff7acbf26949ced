#include "autograd/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace sctape {
namespace ag {
namespace {

thread_local Tape* g_tape = nullptr;

template <class T>
using Buffer = std::shared_ptr<const HostArray<T>>;

template <class T>
std::shared_ptr<HostArray<T>> allocate(std::int64_t n) {
    return std::make_shared<HostArray<T>>(static_cast<std::size_t>(n));
}

// A new tensor around `values`, with a Node when it takes part in a recording.
template <class T>
Tensor<T> wrap(std::shared_ptr<HostArray<T>> values, bool requires_grad) {
    std::shared_ptr<Node<T>> node;
    const std::int64_t n = static_cast<std::int64_t>(values->size());
    if (requires_grad && g_tape) node = std::make_shared<Node<T>>(n);
    return Tensor<T>(Buffer<T>(std::move(values)), std::move(node));
}

// Records the entry of the op that produced `out`. `backward(grad_out)` runs
// only when a gradient reached `out`; the gradient is then released (PyTorch
// frees a non-leaf's gradient once its grad_fn has consumed it).
template <class T, class F>
void record(const Tensor<T>& out, std::vector<SavedBuffer> saved, F backward) {
    std::shared_ptr<Node<T>> node = out.node();
    g_tape->record(std::move(saved), [node, backward]() {
        if (node->has_grad()) backward(static_cast<const HostArray<T>&>(node->grad));
        if (!node->retain) node->release();
    });
}

template <class T>
SavedBuffer save(const Buffer<T>& b) {
    return Tape::save(b);
}

// Adds f(i), i < n, into `node`'s gradient; a size-1 node (broadcast operand)
// receives the sum.
template <class T, class F>
void accumulate(Node<T>& node, std::int64_t n, F f) {
    T* g = node.grad_data();
    if (node.size == n) {
        for (std::int64_t i = 0; i < n; ++i) g[i] += f(i);
    } else {
        double acc = 0;
        for (std::int64_t i = 0; i < n; ++i) acc += static_cast<double>(f(i));
        g[0] += static_cast<T>(acc);
    }
}

template <class T>
std::int64_t broadcast_size(const Tensor<T>& a, const Tensor<T>& b, const char* op) {
    const std::int64_t na = a.size(), nb = b.size();
    if (na == nb || nb == 1) return na;
    if (na == 1) return nb;
    throw std::invalid_argument(std::string("ag::") + op + ": sizes " + std::to_string(na) + " and " +
                                std::to_string(nb) + " do not broadcast");
}

// MulBackward0's conditional saving, for real and complex products: grad_a
// needs b and grad_b needs a, so each operand is kept only when the other's
// gradient is required.
template <class V>
struct ProductSaves {
    Buffer<V> a, b;
    std::vector<SavedBuffer> saved;
};

template <class V>
ProductSaves<V> product_saves(const Tensor<V>& a, const Tensor<V>& b) {
    ProductSaves<V> keep;
    if (b.requires_grad()) keep.a = a.buffer();
    if (a.requires_grad()) keep.b = b.buffer();
    if (keep.a) keep.saved.push_back(save(keep.a));
    if (keep.b) keep.saved.push_back(save(keep.b));
    return keep;
}

enum class Keep { none, input, output };

// Elementwise unary op: out = fwd(a); grad_a += grad_out * deriv(kept value),
// where the kept value is the input, the output or nothing (deriv(T(0))).
template <class T, class Fwd, class Deriv>
Tensor<T> unary(const Tensor<T>& a, Keep keep, Fwd fwd, Deriv deriv) {
    const std::int64_t n = a.size();
    auto out = allocate<T>(n);
    const T* pa = a.data();
    T* po = out->data();
    for (std::int64_t i = 0; i < n; ++i) po[i] = fwd(pa[i]);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        Buffer<T> kept = keep == Keep::input ? a.buffer() : keep == Keep::output ? r.buffer() : nullptr;
        std::vector<SavedBuffer> saved;
        if (kept) saved.push_back(save(kept));
        auto an = a.node();
        record(r, std::move(saved), [an, kept, deriv, n](const HostArray<T>& g) {
            T* ga = an->grad_data();
            const T* k = kept ? kept->data() : nullptr;
            for (std::int64_t i = 0; i < n; ++i) ga[i] += g[i] * deriv(k ? k[i] : T(0));
        });
    }
    return r;
}

inline std::int64_t cells(const Shape3& n) { return std::int64_t(n[0]) * n[1] * n[2]; }
inline std::int64_t at(const Shape3& n, int i, int j, int k) { return (std::int64_t(i) * n[1] + j) * n[2] + k; }

}  // namespace

Recording::Recording(Tape& tape) : previous_(g_tape) { g_tape = &tape; }
Recording::~Recording() { g_tape = previous_; }
Tape* recording_tape() { return g_tape; }

// --- creation -------------------------------------------------------------------

template <class T>
Tensor<T> constant(HostArray<T> values) {
    return Tensor<T>(std::make_shared<const HostArray<T>>(std::move(values)), nullptr);
}

template <class T>
Tensor<T> constant(std::shared_ptr<const HostArray<T>> values) {
    return Tensor<T>(std::move(values), nullptr);
}

template <class T>
Tensor<T> constant_scalar(T value) {
    return constant(HostArray<T>(1, value));
}

template <class T>
Tensor<T> parameter(HostArray<T> values) {
    auto node = std::make_shared<Node<T>>(static_cast<std::int64_t>(values.size()));
    node->retain = true;
    return Tensor<T>(std::make_shared<const HostArray<T>>(std::move(values)), std::move(node));
}

template <class T>
Tensor<T> parameter_scalar(T value) {
    return parameter(HostArray<T>(1, value));
}

template <class T>
void seed(const Tensor<T>& out) {
    if (!out.requires_grad()) throw std::logic_error("ag::seed: the output does not require a gradient");
    T* g = out.node()->grad_data();
    std::fill(g, g + out.size(), T(1));
}

// --- binary elementwise ---------------------------------------------------------------

namespace {
// a + sign * b (sign +-1: exact in floating point): add and sub, saving nothing.
template <class T>
Tensor<T> add_signed(const Tensor<T>& a, const Tensor<T>& b, T sign, const char* name) {
    const std::int64_t n = broadcast_size(a, b, name);
    const std::int64_t sa = a.size() == 1 ? 0 : 1, sb = b.size() == 1 ? 0 : 1;
    auto out = allocate<T>(n);
    const T *pa = a.data(), *pb = b.data();
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = pa[i * sa] + sign * pb[i * sb];
    Tensor<T> r = wrap(std::move(out), a.requires_grad() || b.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        record(r, {}, [an, bn, n, sign](const HostArray<T>& g) {
            if (an) accumulate(*an, n, [&](std::int64_t i) { return g[i]; });
            if (bn) accumulate(*bn, n, [&](std::int64_t i) { return sign * g[i]; });
        });
    }
    return r;
}
}  // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
    return add_signed(a, b, T(1), "add");
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
    return add_signed(a, b, T(-1), "sub");
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
    const std::int64_t n = broadcast_size(a, b, "mul");
    const std::int64_t sa = a.size() == 1 ? 0 : 1, sb = b.size() == 1 ? 0 : 1;
    auto out = allocate<T>(n);
    const T *pa = a.data(), *pb = b.data();
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = pa[i * sa] * pb[i * sb];
    Tensor<T> r = wrap(std::move(out), a.requires_grad() || b.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        ProductSaves<T> keep = product_saves(a, b);
        record(r, std::move(keep.saved), [an, bn, keep_a = keep.a, keep_b = keep.b, n, sa, sb](const HostArray<T>& g) {
            if (an) {
                const T* pb = keep_b->data();
                accumulate(*an, n, [&](std::int64_t i) { return g[i] * pb[i * sb]; });
            }
            if (bn) {
                const T* pa = keep_a->data();
                accumulate(*bn, n, [&](std::int64_t i) { return g[i] * pa[i * sa]; });
            }
        });
    }
    return r;
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
    const std::int64_t n = broadcast_size(a, b, "div");
    const std::int64_t sa = a.size() == 1 ? 0 : 1, sb = b.size() == 1 ? 0 : 1;
    auto out = allocate<T>(n);
    const T *pa = a.data(), *pb = b.data();
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = pa[i * sa] / pb[i * sb];
    Tensor<T> r = wrap(std::move(out), a.requires_grad() || b.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        // DivBackward0: grad_a = g / b; grad_b = -g a / b^2 (needs a and b)
        Buffer<T> keep_a = bn ? a.buffer() : nullptr, keep_b = b.buffer();
        std::vector<SavedBuffer> saved;
        if (keep_a) saved.push_back(save(keep_a));
        saved.push_back(save(keep_b));
        record(r, std::move(saved), [an, bn, keep_a, keep_b, n, sa, sb](const HostArray<T>& g) {
            const T* pb = keep_b->data();
            if (an) accumulate(*an, n, [&](std::int64_t i) { return g[i] / pb[i * sb]; });
            if (bn) {
                const T* pa = keep_a->data();
                accumulate(*bn, n, [&](std::int64_t i) {
                    const T b = pb[i * sb];
                    return -g[i] * pa[i * sa] / (b * b);
                });
            }
        });
    }
    return r;
}

// --- unary ------------------------------------------------------------------------

template <class T>
Tensor<T> neg(const Tensor<T>& a) {
    return unary(a, Keep::none, [](T x) { return -x; }, [](T) { return T(-1); });
}

template <class T>
Tensor<T> scale(const Tensor<T>& a, double c) {
    const T ct = static_cast<T>(c);
    return unary(a, Keep::none, [ct](T x) { return x * ct; }, [ct](T) { return ct; });
}

template <class T>
Tensor<T> div_scalar(const Tensor<T>& a, double c) {
    const T ct = static_cast<T>(c);
    return unary(a, Keep::none, [ct](T x) { return x / ct; }, [ct](T) { return T(1) / ct; });
}

template <class T>
Tensor<T> add_scalar(const Tensor<T>& a, double c) {
    const T ct = static_cast<T>(c);
    return unary(a, Keep::none, [ct](T x) { return x + ct; }, [](T) { return T(1); });
}

template <class T>
Tensor<T> rsub_scalar(double c, const Tensor<T>& a) {
    const T ct = static_cast<T>(c);
    return unary(a, Keep::none, [ct](T x) { return ct - x; }, [](T) { return T(-1); });
}

template <class T>
Tensor<T> reciprocal(const Tensor<T>& a) {
    return unary(a, Keep::output, [](T x) { return T(1) / x; }, [](T y) { return -y * y; });
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& a) {
    return unary(a, Keep::output, [](T x) { return std::sqrt(x); }, [](T y) { return T(0.5) / y; });
}

template <class T>
Tensor<T> square(const Tensor<T>& a) {
    return unary(a, Keep::input, [](T x) { return x * x; }, [](T x) { return T(2) * x; });
}

template <class T>
Tensor<T> exp(const Tensor<T>& a) {
    return unary(a, Keep::output, [](T x) { return std::exp(x); }, [](T y) { return y; });
}

template <class T>
Tensor<T> log(const Tensor<T>& a) {
    return unary(a, Keep::input, [](T x) { return std::log(x); }, [](T x) { return T(1) / x; });
}

template <class T>
Tensor<T> asinh(const Tensor<T>& a) {
    return unary(a, Keep::input, [](T x) { return std::asinh(x); },
                 [](T x) { return T(1) / std::sqrt(x * x + T(1)); });
}

template <class T>
Tensor<T> atan(const Tensor<T>& a) {
    return unary(a, Keep::input, [](T x) { return std::atan(x); }, [](T x) { return T(1) / (T(1) + x * x); });
}

template <class T>
Tensor<T> floor(const Tensor<T>& a) {
    const std::int64_t n = a.size();
    auto out = allocate<T>(n);
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = std::floor(a.data()[i]);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) record(r, {}, [](const HostArray<T>&) {});  // FloorBackward: zero gradient
    return r;
}

template <class T>
Tensor<T> clamp(const Tensor<T>& a, double lo, double hi) {
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    return unary(a, Keep::input, [l, h](T x) { return std::min(std::max(x, l), h); },
                 [l, h](T x) { return (x >= l && x <= h) ? T(1) : T(0); });
}

template <class To, class From>
Tensor<To> cast(const Tensor<From>& a) {
    const std::int64_t n = a.size();
    auto out = allocate<To>(n);
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = static_cast<To>(a.data()[i]);
    Tensor<To> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n](const HostArray<To>& g) {
            From* ga = an->grad_data();
            for (std::int64_t i = 0; i < n; ++i) ga[i] += static_cast<From>(g[i]);
        });
    }
    return r;
}

// --- reductions ----------------------------------------------------------------------

namespace {
// sum(a) / divisor: one op for sum (divisor 1) and mean (divisor n), as PyTorch's.
template <class T>
Tensor<T> divided_sum(const Tensor<T>& a, T divisor) {
    const std::int64_t n = a.size();
    T acc = 0;
    for (std::int64_t i = 0; i < n; ++i) acc += a.data()[i];
    auto out = allocate<T>(1);
    (*out)[0] = acc / divisor;
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, divisor](const HostArray<T>& g) {
            T* ga = an->grad_data();
            const T share = g[0] / divisor;
            for (std::int64_t i = 0; i < n; ++i) ga[i] += share;
        });
    }
    return r;
}
}  // namespace

template <class T>
Tensor<T> sum(const Tensor<T>& a) {
    return divided_sum(a, T(1));
}

template <class T>
Tensor<T> mean(const Tensor<T>& a) {
    return divided_sum(a, static_cast<T>(a.size()));
}

namespace {
template <class T, class Better>
Tensor<T> extremum(const Tensor<T>& a, Better better) {
    const std::int64_t n = a.size();
    std::int64_t best = 0;
    for (std::int64_t i = 1; i < n; ++i)
        if (better(a.data()[i], a.data()[best])) best = i;
    auto out = allocate<T>(1);
    (*out)[0] = a.data()[best];
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        // MinBackward0/MaxBackward0 (with dim): the index of the extremum is saved
        Index where = std::make_shared<const IndexArray>(1, best);
        auto an = a.node();
        record(r, {save(where)}, [an, where](const HostArray<T>& g) { an->grad_data()[(*where)[0]] += g[0]; });
    }
    return r;
}
}  // namespace

template <class T>
Tensor<T> min(const Tensor<T>& a) {
    return extremum(a, [](T x, T y) { return x < y; });
}

template <class T>
Tensor<T> max(const Tensor<T>& a) {
    return extremum(a, [](T x, T y) { return x > y; });
}

template <class T>
Tensor<T> sum_inner(const Tensor<T>& a, int k) {
    const std::int64_t n = a.size() / k;
    auto out = allocate<T>(n);
    const T* pa = a.data();
    for (std::int64_t p = 0; p < n; ++p) {
        T acc = 0;
        for (int j = 0; j < k; ++j) acc += pa[p * k + j];
        (*out)[p] = acc;
    }
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, k](const HostArray<T>& g) {
            T* ga = an->grad_data();
            for (std::int64_t p = 0; p < n; ++p)
                for (int j = 0; j < k; ++j) ga[p * k + j] += g[p];
        });
    }
    return r;
}

// --- indexing ----------------------------------------------------------------------------

template <class T>
Tensor<T> gather(const Tensor<T>& a, const Index& idx) {
    const std::int64_t n = static_cast<std::int64_t>(idx->size());
    auto out = allocate<T>(n);
    const T* pa = a.data();
    const std::int64_t* pi = idx->data();
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = pa[pi[i]];
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {save(idx)}, [an, idx, n](const HostArray<T>& g) {
            T* ga = an->grad_data();
            const std::int64_t* pi = idx->data();
            for (std::int64_t i = 0; i < n; ++i) ga[pi[i]] += g[i];
        });
    }
    return r;
}

template <class T>
Tensor<T> scatter_add(const Tensor<T>& src, const Index& idx, std::int64_t n) {
    const std::int64_t m = static_cast<std::int64_t>(idx->size());
    if (m != src.size()) throw std::invalid_argument("ag::scatter_add: index and source sizes differ");
    auto out = std::make_shared<HostArray<T>>(static_cast<std::size_t>(n), T(0));
    const T* ps = src.data();
    const std::int64_t* pi = idx->data();
    for (std::int64_t i = 0; i < m; ++i) (*out)[pi[i]] += ps[i];
    Tensor<T> r = wrap(std::move(out), src.requires_grad());
    if (r.requires_grad()) {
        auto sn = src.node();
        record(r, {save(idx)}, [sn, idx, m](const HostArray<T>& g) {
            T* gs = sn->grad_data();
            const std::int64_t* pi = idx->data();
            for (std::int64_t i = 0; i < m; ++i) gs[i] += g[pi[i]];
        });
    }
    return r;
}

template <class T>
Tensor<T> select_inner(const Tensor<T>& a, int k, const Index& sel) {
    const std::int64_t n = a.size() / k;
    const int m = static_cast<int>(sel->size());
    auto out = allocate<T>(n * m);
    const T* pa = a.data();
    const std::int64_t* ps = sel->data();
    for (std::int64_t p = 0; p < n; ++p)
        for (int c = 0; c < m; ++c) (*out)[p * m + c] = pa[p * k + ps[c]];
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {save(sel)}, [an, sel, n, k, m](const HostArray<T>& g) {
            T* ga = an->grad_data();
            const std::int64_t* ps = sel->data();
            for (std::int64_t p = 0; p < n; ++p)
                for (int c = 0; c < m; ++c) ga[p * k + ps[c]] += g[p * m + c];
        });
    }
    return r;
}

template <class T>
Tensor<T> stack_inner(const std::vector<Tensor<T>>& parts) {
    const int k = static_cast<int>(parts.size());
    const std::int64_t n = parts.at(0).size();
    bool any = false;
    for (const auto& t : parts) {
        if (t.size() != n) throw std::invalid_argument("ag::stack_inner: sizes differ");
        any = any || t.requires_grad();
    }
    auto out = allocate<T>(n * k);
    for (int j = 0; j < k; ++j) {
        const T* pj = parts[j].data();
        for (std::int64_t p = 0; p < n; ++p) (*out)[p * k + j] = pj[p];
    }
    Tensor<T> r = wrap(std::move(out), any);
    if (r.requires_grad()) {
        std::vector<std::shared_ptr<Node<T>>> nodes;
        for (const auto& t : parts) nodes.push_back(t.node());
        record(r, {}, [nodes, n, k](const HostArray<T>& g) {
            for (int j = 0; j < k; ++j) {
                if (!nodes[j]) continue;
                T* gj = nodes[j]->grad_data();
                for (std::int64_t p = 0; p < n; ++p) gj[p] += g[p * k + j];
            }
        });
    }
    return r;
}

template <class T>
Index to_index(const Tensor<T>& a) {
    auto out = std::make_shared<IndexArray>(static_cast<std::size_t>(a.size()));
    for (std::int64_t i = 0; i < a.size(); ++i) (*out)[i] = static_cast<std::int64_t>(a.data()[i]);
    return out;
}

// --- grid ------------------------------------------------------------------------------------

namespace {
// The box at the origin of `src` into the box at the origin of `dst` (shapes
// differ): pad and crop forward, and each one's backward as the other's.
template <class T>
void copy_box(const T* src, const Shape3& src_shape, T* dst, const Shape3& dst_shape, const Shape3& box, bool add) {
    for (int i = 0; i < box[0]; ++i)
        for (int j = 0; j < box[1]; ++j) {
            const T* from = src + at(src_shape, i, j, 0);
            T* to = dst + at(dst_shape, i, j, 0);
            for (int k = 0; k < box[2]; ++k) to[k] = add ? to[k] + from[k] : from[k];
        }
}
}  // namespace

template <class T>
Tensor<T> pad3(const Tensor<T>& a, const Shape3& n, const Shape3& m) {
    auto out = std::make_shared<HostArray<T>>(static_cast<std::size_t>(cells(m)), T(0));
    copy_box(a.data(), n, out->data(), m, n, false);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, m](const HostArray<T>& g) { copy_box(g.data(), m, an->grad_data(), n, n, true); });
    }
    return r;
}

template <class T>
Tensor<T> crop3(const Tensor<T>& a, const Shape3& m, const Shape3& n) {
    auto out = allocate<T>(cells(n));
    copy_box(a.data(), m, out->data(), n, n, false);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, m](const HostArray<T>& g) { copy_box(g.data(), n, an->grad_data(), m, n, true); });
    }
    return r;
}

namespace {
inline int fold(int i, int n) { return i < n ? i : (i == n ? -1 : 2 * n - i); }
}  // namespace

template <class T>
Tensor<T> mirror3(const Tensor<T>& a, const Shape3& n) {
    const Shape3 m = {2 * n[0], 2 * n[1], 2 * n[2]};
    auto out = allocate<T>(cells(m));
    const T* pa = a.data();
    for (int i = 0; i < m[0]; ++i)
        for (int j = 0; j < m[1]; ++j)
            for (int k = 0; k < m[2]; ++k) {
                const int fi = fold(i, n[0]), fj = fold(j, n[1]), fk = fold(k, n[2]);
                (*out)[at(m, i, j, k)] = (fi < 0 || fj < 0 || fk < 0) ? T(0) : pa[at(n, fi, fj, fk)];
            }
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, m](const HostArray<T>& g) {
            T* ga = an->grad_data();
            for (int i = 0; i < m[0]; ++i)
                for (int j = 0; j < m[1]; ++j)
                    for (int k = 0; k < m[2]; ++k) {
                        const int fi = fold(i, n[0]), fj = fold(j, n[1]), fk = fold(k, n[2]);
                        if (fi >= 0 && fj >= 0 && fk >= 0) ga[at(n, fi, fj, fk)] += g[at(m, i, j, k)];
                    }
        });
    }
    return r;
}

template <class T>
Tensor<T> shift_odd(const Tensor<T>& a, const Shape3& n, int axis) {
    const std::int64_t stride[3] = {std::int64_t(n[1]) * n[2], n[2], 1};
    const std::int64_t s = stride[axis], total = cells(n);
    const int len = n[axis];
    auto out = allocate<T>(total);
    const T* pa = a.data();
    for (std::int64_t c = 0; c < total; ++c) {
        const int i = int((c / s) % len);
        (*out)[c] = i == 0 ? -pa[c] : pa[c - s];
    }
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, s, total, len](const HostArray<T>& g) {
            T* ga = an->grad_data();
            for (std::int64_t c = 0; c < total; ++c) {
                const int i = int((c / s) % len);
                if (i == 0) ga[c] -= g[c];
                else ga[c - s] += g[c];
            }
        });
    }
    return r;
}

template <class T>
Tensor<T> grad_stencil(const Tensor<T>& a, const Shape3& n, int axis) {
    const std::int64_t stride[3] = {std::int64_t(n[1]) * n[2], n[2], 1};
    const std::int64_t s = stride[axis], total = cells(n);
    const int len = n[axis];
    if (len < 2) throw std::invalid_argument("ag::grad_stencil needs at least 2 nodes");
    auto out = allocate<T>(total);
    const T* pa = a.data();
    for (std::int64_t c = 0; c < total; ++c) {
        const int i = int((c / s) % len);
        if (i == 0) (*out)[c] = pa[c + s] - pa[c];
        else if (i == len - 1) (*out)[c] = pa[c] - pa[c - s];
        else (*out)[c] = T(0.5) * (pa[c + s] - pa[c - s]);
    }
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, s, total, len](const HostArray<T>& g) {
            T* ga = an->grad_data();
            for (std::int64_t c = 0; c < total; ++c) {
                const int i = int((c / s) % len);
                if (i == 0) {
                    ga[c + s] += g[c];
                    ga[c] -= g[c];
                } else if (i == len - 1) {
                    ga[c] += g[c];
                    ga[c - s] -= g[c];
                } else {
                    const T h = T(0.5) * g[c];
                    ga[c + s] += h;
                    ga[c - s] -= h;
                }
            }
        });
    }
    return r;
}

// --- FFT and complex ------------------------------------------------------------------------------

template <class T>
ComplexTensor<T> rfft3(const Tensor<T>& a, std::shared_ptr<const RealFft3d<T>> fft) {
    if (a.size() != fft->real_size()) throw std::invalid_argument("ag::rfft3: size does not match the plan");
    auto out = allocate<std::complex<T>>(fft->spectrum_size());
    // An out-of-place r2c plan preserves its input (FFTW_PRESERVE_INPUT is
    // the default for r2c), so the immutable buffer is passed directly.
    fft->forward(const_cast<T*>(a.data()), out->data());
    ComplexTensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, fft](const HostArray<std::complex<T>>& g) {
            // d/dx_n of Re-linear functionals of the half spectrum:
            // grad_x = Re sum_{k in half} G_k e^{+i theta_kn} = c2r(H) with
            // H = G/2 on the interior planes of the last axis and the
            // Hermitian part of G on its planes 0 and M/2 (c2r counts those once).
            const auto& shape = fft->shape();
            const int m0 = shape[0], m1 = shape[1], h2 = shape[2] / 2 + 1;
            const bool even = shape[2] % 2 == 0;
            HostArray<std::complex<T>> h(g.size());
            for (int i = 0; i < m0; ++i)
                for (int j = 0; j < m1; ++j)
                    for (int k = 0; k < h2; ++k) {
                        const std::int64_t c = (std::int64_t(i) * m1 + j) * h2 + k;
                        const bool boundary = k == 0 || (even && k == h2 - 1);
                        if (!boundary) {
                            h[c] = g[c] * T(0.5);
                        } else {
                            const int mi = (m0 - i) % m0, mj = (m1 - j) % m1;
                            const std::int64_t cm = (std::int64_t(mi) * m1 + mj) * h2 + k;
                            h[c] = (g[c] + std::conj(g[cm])) * T(0.5);
                        }
                    }
            HostArray<T> x(static_cast<std::size_t>(fft->real_size()));
            fft->inverse(h.data(), x.data());
            T* ga = an->grad_data();
            for (std::int64_t i = 0; i < fft->real_size(); ++i) ga[i] += x[i];
        });
    }
    return r;
}

template <class T>
Tensor<T> irfft3(const ComplexTensor<T>& a, std::shared_ptr<const RealFft3d<T>> fft) {
    if (a.size() != fft->spectrum_size()) throw std::invalid_argument("ag::irfft3: size does not match the plan");
    HostArray<std::complex<T>> scratch(a.values());  // c2r destroys its input
    auto out = allocate<T>(fft->real_size());
    fft->inverse(scratch.data(), out->data());
    HostArray<std::complex<T>>().swap(scratch);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, fft](const HostArray<T>& g) {
            // y = Re sum_{k in half} c_k X_k e^{+i theta}, c_k = 1 on the
            // last axis' planes 0 and M/2, 2 elsewhere: grad_X = c_k r2c(g).
            const auto& shape = fft->shape();
            const int h2 = shape[2] / 2 + 1;
            const bool even = shape[2] % 2 == 0;
            HostArray<std::complex<T>> spec(static_cast<std::size_t>(fft->spectrum_size()));
            fft->forward(const_cast<T*>(g.data()), spec.data());
            std::complex<T>* ga = an->grad_data();
            for (std::int64_t c = 0; c < fft->spectrum_size(); ++c) {
                const int k = int(c % h2);
                const bool boundary = k == 0 || (even && k == h2 - 1);
                ga[c] += boundary ? spec[c] : spec[c] * T(2);
            }
        });
    }
    return r;
}

template <class T>
ComplexTensor<T> cmul(const ComplexTensor<T>& a, const ComplexTensor<T>& b) {
    using C = std::complex<T>;
    const std::int64_t n = a.size();
    if (b.size() != n) throw std::invalid_argument("ag::cmul: sizes differ");
    auto out = allocate<C>(n);
    const C *pa = a.data(), *pb = b.data();
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = pa[i] * pb[i];
    ComplexTensor<T> r = wrap(std::move(out), a.requires_grad() || b.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        ProductSaves<C> keep = product_saves(a, b);
        record(r, std::move(keep.saved), [an, bn, keep_a = keep.a, keep_b = keep.b, n](const HostArray<C>& g) {
            // gradient convention g = dL/dRe + i dL/dIm: grad_a = g conj(b)
            if (an) {
                C* ga = an->grad_data();
                const C* pb = keep_b->data();
                for (std::int64_t i = 0; i < n; ++i) ga[i] += g[i] * std::conj(pb[i]);
            }
            if (bn) {
                C* gb = bn->grad_data();
                const C* pa = keep_a->data();
                for (std::int64_t i = 0; i < n; ++i) gb[i] += g[i] * std::conj(pa[i]);
            }
        });
    }
    return r;
}

template <class T>
ComplexTensor<T> cscale(const ComplexTensor<T>& a, T c) {
    using C = std::complex<T>;
    const std::int64_t n = a.size();
    auto out = allocate<C>(n);
    for (std::int64_t i = 0; i < n; ++i) (*out)[i] = a.data()[i] * c;
    ComplexTensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, c](const HostArray<C>& g) {
            C* ga = an->grad_data();
            for (std::int64_t i = 0; i < n; ++i) ga[i] += g[i] * c;
        });
    }
    return r;
}

// --- instantiations -----------------------------------------------------------------------------

#define SCTAPE_AG_REAL(T)                                                                     \
    template Tensor<T> constant<T>(HostArray<T>);                                             \
    template Tensor<T> constant<T>(std::shared_ptr<const HostArray<T>>);                      \
    template Tensor<T> constant_scalar<T>(T);                                                 \
    template Tensor<T> parameter<T>(HostArray<T>);                                            \
    template Tensor<T> parameter_scalar<T>(T);                                                \
    template void seed<T>(const Tensor<T>&);                                                  \
    template Tensor<T> add<T>(const Tensor<T>&, const Tensor<T>&);                            \
    template Tensor<T> sub<T>(const Tensor<T>&, const Tensor<T>&);                            \
    template Tensor<T> mul<T>(const Tensor<T>&, const Tensor<T>&);                            \
    template Tensor<T> div<T>(const Tensor<T>&, const Tensor<T>&);                            \
    template Tensor<T> neg<T>(const Tensor<T>&);                                              \
    template Tensor<T> scale<T>(const Tensor<T>&, double);                                    \
    template Tensor<T> div_scalar<T>(const Tensor<T>&, double);                               \
    template Tensor<T> add_scalar<T>(const Tensor<T>&, double);                               \
    template Tensor<T> rsub_scalar<T>(double, const Tensor<T>&);                              \
    template Tensor<T> reciprocal<T>(const Tensor<T>&);                                       \
    template Tensor<T> sqrt<T>(const Tensor<T>&);                                             \
    template Tensor<T> square<T>(const Tensor<T>&);                                           \
    template Tensor<T> exp<T>(const Tensor<T>&);                                              \
    template Tensor<T> log<T>(const Tensor<T>&);                                              \
    template Tensor<T> asinh<T>(const Tensor<T>&);                                            \
    template Tensor<T> atan<T>(const Tensor<T>&);                                             \
    template Tensor<T> floor<T>(const Tensor<T>&);                                            \
    template Tensor<T> clamp<T>(const Tensor<T>&, double, double);                            \
    template Tensor<T> sum<T>(const Tensor<T>&);                                              \
    template Tensor<T> mean<T>(const Tensor<T>&);                                             \
    template Tensor<T> min<T>(const Tensor<T>&);                                              \
    template Tensor<T> max<T>(const Tensor<T>&);                                              \
    template Tensor<T> sum_inner<T>(const Tensor<T>&, int);                                   \
    template Tensor<T> gather<T>(const Tensor<T>&, const Index&);                             \
    template Tensor<T> scatter_add<T>(const Tensor<T>&, const Index&, std::int64_t);          \
    template Tensor<T> select_inner<T>(const Tensor<T>&, int, const Index&);                  \
    template Tensor<T> stack_inner<T>(const std::vector<Tensor<T>>&);                         \
    template Index to_index<T>(const Tensor<T>&);                                             \
    template Tensor<T> pad3<T>(const Tensor<T>&, const Shape3&, const Shape3&);               \
    template Tensor<T> crop3<T>(const Tensor<T>&, const Shape3&, const Shape3&);              \
    template Tensor<T> mirror3<T>(const Tensor<T>&, const Shape3&);                           \
    template Tensor<T> shift_odd<T>(const Tensor<T>&, const Shape3&, int);                    \
    template Tensor<T> grad_stencil<T>(const Tensor<T>&, const Shape3&, int);                 \
    template ComplexTensor<T> rfft3<T>(const Tensor<T>&, std::shared_ptr<const RealFft3d<T>>); \
    template Tensor<T> irfft3<T>(const ComplexTensor<T>&, std::shared_ptr<const RealFft3d<T>>); \
    template ComplexTensor<T> cmul<T>(const ComplexTensor<T>&, const ComplexTensor<T>&);      \
    template ComplexTensor<T> cscale<T>(const ComplexTensor<T>&, T);
SCTAPE_AG_REAL(float)
SCTAPE_AG_REAL(double)
#undef SCTAPE_AG_REAL

template Tensor<float> cast<float, double>(const Tensor<double>&);
template Tensor<double> cast<double, float>(const Tensor<float>&);
template Tensor<float> cast<float, float>(const Tensor<float>&);
template Tensor<double> cast<double, double>(const Tensor<double>&);

}  // namespace ag
}  // namespace sctape
