#include "ad/autograd/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ad/autograd/op_bodies.hpp"
#include "ad/autograd/runner.hpp"
#include "core/communicator.hpp"

namespace sctape {
namespace ag {
namespace {

thread_local Tape* g_tape = nullptr;

template <class T>
using Buffer = std::shared_ptr<const Array<T>>;

template <class T>
std::shared_ptr<Array<T>> allocate(std::int64_t n, Device d) {
    return std::make_shared<Array<T>>(n, d);
}

template <class T>
std::shared_ptr<Array<T>> zeros(std::int64_t n, Device d) {
    auto a = allocate<T>(n, d);
    a->fill_zero();
    return a;
}

// Complex arrays as interleaved (re, im) pairs for op_bodies.hpp.
template <class T>
const T* pairs(const std::complex<T>* p) {
    return reinterpret_cast<const T*>(p);
}
template <class T>
T* pairs(std::complex<T>* p) {
    return reinterpret_cast<T*>(p);
}

// A new tensor around `values`, with a Node when it takes part in a recording.
template <class T>
Tensor<T> wrap(std::shared_ptr<Array<T>> values, bool requires_grad) {
    std::shared_ptr<Node<T>> node;
    if (requires_grad && g_tape) node = std::make_shared<Node<T>>(values->size(), values->device());
    return Tensor<T>(Buffer<T>(std::move(values)), std::move(node));
}

// Records the entry of the op that produced `out`. `backward(grad_out)` runs
// only when a gradient reached `out`; the gradient is then released (PyTorch
// frees a non-leaf's gradient once its grad_fn has consumed it).
template <class T, class F>
void record(const Tensor<T>& out, std::vector<SavedBuffer> saved, F backward) {
    std::shared_ptr<Node<T>> node = out.node();
    g_tape->record(std::move(saved), [node, backward]() {
        if (node->has_grad()) backward(static_cast<const T*>(node->grad.data()));
        if (!node->retain) node->release();
    });
}

template <class T>
SavedBuffer save(const Buffer<T>& b) {
    return {b, b->bytes()};
}

// Adds term(i), i < n, into `node`'s gradient; a size-1 node (broadcast
// operand) receives the sum.
template <class Term>
void accumulate(Node<typename Term::value_type>& node, std::int64_t n, const Term& term) {
    using T = typename Term::value_type;
    T* g = node.grad_data();
    if (node.size == n) for_each(node.device, n, AddTerm<Term>{g, term});
    else sum_into(node.device, n, term, g, T(1), true);
}

// An op's operands (tensors, indices, FFT plans) live on one device.
void same_device(Device a, Device b, const char* op) {
    if (a != b)
        throw std::invalid_argument(std::string("ag::") + op + ": operands on " + device_name(a) + " and " +
                                    device_name(b));
}

template <class T>
std::int64_t broadcast_size(const Tensor<T>& a, const Tensor<T>& b, const char* op) {
    same_device(a.device(), b.device(), op);
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

// Elementwise unary op: out = f(a); grad_a += grad_out * f'(kept value),
// where the kept value is the input, the output or nothing.
template <class T>
Tensor<T> unary(const Tensor<T>& a, Keep keep, UnaryOp op, double c = 0, double lo = 0, double hi = 0) {
    const UnaryFn<T> fn{op, static_cast<T>(c), static_cast<T>(lo), static_cast<T>(hi)};
    const std::int64_t n = a.size();
    auto out = allocate<T>(n, a.device());
    for_each(a.device(), n, Unary<T>{fn, a.data(), out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        Buffer<T> kept = keep == Keep::input ? a.buffer() : keep == Keep::output ? r.buffer() : nullptr;
        std::vector<SavedBuffer> saved;
        if (kept) saved.push_back(save(kept));
        auto an = a.node();
        record(r, std::move(saved), [an, kept, fn, n](const T* g) {
            accumulate(*an, n, UnaryGrad<T>{fn, g, kept ? kept->data() : nullptr});
        });
    }
    return r;
}

inline Dims dims(const Shape3& n) { return {n[0], n[1], n[2]}; }
inline std::int64_t cells(const Shape3& n) { return std::int64_t(n[0]) * n[1] * n[2]; }

}  // namespace

Recording::Recording(Tape& tape) : previous_(g_tape) { g_tape = &tape; }
Recording::~Recording() { g_tape = previous_; }
Tape* recording_tape() { return g_tape; }

// --- creation -------------------------------------------------------------------

template <class T>
Tensor<T> constant(HostArray<T> values, Device device) {
    if (device == Device::host) return Tensor<T>(std::make_shared<const Array<T>>(std::move(values)), nullptr);
    const auto n = static_cast<std::int64_t>(values.size());
    return Tensor<T>(std::make_shared<const Array<T>>(Array<T>::copy_of(values.data(), n, device)), nullptr);
}

template <class T>
Tensor<T> constant(std::shared_ptr<const Array<T>> values) {
    return Tensor<T>(std::move(values), nullptr);
}

template <class T>
Tensor<T> constant_scalar(T value, Device device) {
    return constant(HostArray<T>(1, value), device);
}

template <class T>
Tensor<T> parameter(HostArray<T> values, Device device) {
    Tensor<T> c = constant(std::move(values), device);
    auto node = std::make_shared<Node<T>>(c.size(), device);
    node->retain = true;
    return Tensor<T>(c.buffer(), std::move(node));
}

template <class T>
Tensor<T> parameter_scalar(T value, Device device) {
    return parameter(HostArray<T>(1, value), device);
}

template <class T>
void seed(const Tensor<T>& out, T value) {
    if (!out.requires_grad()) throw std::logic_error("ag::seed: the output does not require a gradient");
    for_each(out.device(), out.size(), Fill<T>{out.node()->grad_data(), value});
}

// --- binary elementwise ---------------------------------------------------------------

namespace {
template <class T>
Tensor<T> binary_forward(const Tensor<T>& a, const Tensor<T>& b, BinaryOp op, const char* name, std::int64_t& n,
                         std::int64_t& sa, std::int64_t& sb) {
    n = broadcast_size(a, b, name);
    sa = a.size() == 1 ? 0 : 1;
    sb = b.size() == 1 ? 0 : 1;
    auto out = allocate<T>(n, a.device());
    for_each(a.device(), n, Binary<T>{op, a.data(), sa, b.data(), sb, out->data()});
    return wrap(std::move(out), a.requires_grad() || b.requires_grad());
}

// add and sub, saving nothing: grad_b = sign * g.
template <class T>
Tensor<T> add_signed(const Tensor<T>& a, const Tensor<T>& b, BinaryOp op, const char* name) {
    std::int64_t n, sa, sb;
    Tensor<T> r = binary_forward(a, b, op, name, n, sa, sb);
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        const T sign = op == BinaryOp::add ? T(1) : T(-1);
        record(r, {}, [an, bn, n, sign](const T* g) {
            if (an) accumulate(*an, n, Scaled<T>{g, T(1)});
            if (bn) accumulate(*bn, n, Scaled<T>{g, sign});
        });
    }
    return r;
}
}  // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
    return add_signed(a, b, BinaryOp::add, "add");
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
    return add_signed(a, b, BinaryOp::sub, "sub");
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
    std::int64_t n, sa, sb;
    Tensor<T> r = binary_forward(a, b, BinaryOp::mul, "mul", n, sa, sb);
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        ProductSaves<T> keep = product_saves(a, b);
        record(r, std::move(keep.saved), [an, bn, keep_a = keep.a, keep_b = keep.b, n, sa, sb](const T* g) {
            if (an) accumulate(*an, n, Product<T>{g, keep_b->data(), sb});
            if (bn) accumulate(*bn, n, Product<T>{g, keep_a->data(), sa});
        });
    }
    return r;
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
    std::int64_t n, sa, sb;
    Tensor<T> r = binary_forward(a, b, BinaryOp::div, "div", n, sa, sb);
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        // DivBackward0: grad_a = g / b; grad_b = -g a / b^2 (needs a and b)
        Buffer<T> keep_a = bn ? a.buffer() : nullptr, keep_b = b.buffer();
        std::vector<SavedBuffer> saved;
        if (keep_a) saved.push_back(save(keep_a));
        saved.push_back(save(keep_b));
        record(r, std::move(saved), [an, bn, keep_a, keep_b, n, sa, sb](const T* g) {
            if (an) accumulate(*an, n, Quotient<T>{g, keep_b->data(), sb});
            if (bn) accumulate(*bn, n, QuotientDivisor<T>{g, keep_a->data(), sa, keep_b->data(), sb});
        });
    }
    return r;
}

// --- unary ------------------------------------------------------------------------

template <class T>
Tensor<T> neg(const Tensor<T>& a) {
    return unary(a, Keep::none, UnaryOp::neg);
}

template <class T>
Tensor<T> scale(const Tensor<T>& a, double c) {
    return unary(a, Keep::none, UnaryOp::scale, c);
}

template <class T>
Tensor<T> div_scalar(const Tensor<T>& a, double c) {
    return unary(a, Keep::none, UnaryOp::div_scalar, c);
}

template <class T>
Tensor<T> add_scalar(const Tensor<T>& a, double c) {
    return unary(a, Keep::none, UnaryOp::add_scalar, c);
}

template <class T>
Tensor<T> rsub_scalar(double c, const Tensor<T>& a) {
    return unary(a, Keep::none, UnaryOp::rsub_scalar, c);
}

template <class T>
Tensor<T> reciprocal(const Tensor<T>& a) {
    return unary(a, Keep::output, UnaryOp::reciprocal);
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& a) {
    return unary(a, Keep::output, UnaryOp::sqrt);
}

template <class T>
Tensor<T> square(const Tensor<T>& a) {
    return unary(a, Keep::input, UnaryOp::square);
}

template <class T>
Tensor<T> exp(const Tensor<T>& a) {
    return unary(a, Keep::output, UnaryOp::exp);
}

template <class T>
Tensor<T> log(const Tensor<T>& a) {
    return unary(a, Keep::input, UnaryOp::log);
}

template <class T>
Tensor<T> asinh(const Tensor<T>& a) {
    return unary(a, Keep::input, UnaryOp::asinh);
}

template <class T>
Tensor<T> atan(const Tensor<T>& a) {
    return unary(a, Keep::input, UnaryOp::atan);
}

template <class T>
Tensor<T> floor(const Tensor<T>& a) {
    const UnaryFn<T> fn{UnaryOp::floor, T(0), T(0), T(0)};
    auto out = allocate<T>(a.size(), a.device());
    for_each(a.device(), a.size(), Unary<T>{fn, a.data(), out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) record(r, {}, [](const T*) {});  // FloorBackward: zero gradient
    return r;
}

template <class T>
Tensor<T> clamp(const Tensor<T>& a, double lo, double hi) {
    return unary(a, Keep::input, UnaryOp::clamp, 0.0, lo, hi);
}

template <class To, class From>
Tensor<To> cast(const Tensor<From>& a) {
    const std::int64_t n = a.size();
    auto out = allocate<To>(n, a.device());
    for_each(a.device(), n, Convert<To, From>{a.data(), out->data(), false});
    Tensor<To> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n](const To* g) { for_each(an->device, n, Convert<From, To>{g, an->grad_data(), true}); });
    }
    return r;
}

// --- reductions ----------------------------------------------------------------------

namespace {
// sum(a) / divisor: one op for sum (divisor 1) and mean (divisor n), as PyTorch's.
template <class T>
Tensor<T> divided_sum(const Tensor<T>& a, T divisor) {
    const std::int64_t n = a.size();
    auto out = allocate<T>(1, a.device());
    sum_into(a.device(), n, Value<T>{a.data()}, out->data(), divisor, false);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, divisor](const T* g) {
            for_each(an->device, n, AddShare<T>{g, divisor, an->grad_data()});
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
template <class T>
Tensor<T> extremum_op(const Tensor<T>& a, bool minimum) {
    if (a.size() == 0) throw std::invalid_argument("ag::min/max of an empty tensor");
    auto out = allocate<T>(1, a.device());
    auto where = std::make_shared<IndexArray>(1, a.device());
    extremum(a.device(), a.data(), a.size(), minimum, out->data(), where->data());
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        // MinBackward0/MaxBackward0 (with dim): the index of the extremum is saved
        Index saved_where = where;
        auto an = a.node();
        record(r, {save(saved_where)}, [an, saved_where](const T* g) {
            for_each(an->device, 1, AddAt<T>{g, saved_where->data(), an->grad_data()});
        });
    }
    return r;
}
}  // namespace

template <class T>
Tensor<T> min(const Tensor<T>& a) {
    return extremum_op(a, true);
}

template <class T>
Tensor<T> max(const Tensor<T>& a) {
    return extremum_op(a, false);
}

// --- over MPI ranks ------------------------------------------------------------------

namespace {
// Over several ranks the reductions take host memory (the cuda backend does
// not run over ranks).
void host_only(Device d, const char* op) {
    if (d != Device::host)
        throw std::invalid_argument(std::string("ag::") + op + ": over MPI ranks, host tensors only");
}

// A double as int64 words, so that summing every rank's (one nonzero per
// slot) moves it exactly, signed zeros and NaNs included.
std::int64_t bits_of(double v) {
    std::int64_t w;
    std::memcpy(&w, &v, sizeof w);
    return w;
}
double double_of(std::int64_t w) {
    double v;
    std::memcpy(&v, &w, sizeof v);
    return v;
}

template <class T>
Tensor<T> ranks_extremum(const Tensor<T>& a, bool minimum) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return extremum_op(a, minimum);
    host_only(a.device(), minimum ? "ranks_min" : "ranks_max");
    // this rank's extreme (none if it holds no element), then every rank's in
    // rank order, combined by the one-rank rule: the result is the first
    // extreme of the global order (ranks hold contiguous blocks in order)
    const int ranks = comm.size(), me = comm.rank();
    T local = T(0);
    std::int64_t where = -1;
    if (a.size() > 0) extremum(a.device(), a.data(), a.size(), minimum, &local, &where);
    std::vector<std::int64_t> words(2 * std::size_t(ranks), 0);  // (value's bits, holds one) per rank
    words[2 * me] = bits_of(double(local));
    words[2 * me + 1] = where >= 0;
    comm.sum(words.data(), std::int64_t(words.size()));
    std::int64_t best = -1;
    double best_value = 0;
    for (int r = 0; r < ranks; ++r) {
        const double v = double_of(words[2 * r]);
        if (better_candidate(minimum, v, words[2 * r + 1] ? std::int64_t(r) : -1, best_value, best)) {
            best = r;
            best_value = v;
        }
    }
    if (best < 0) throw std::invalid_argument("ag::ranks_min/ranks_max of an empty tensor on every rank");
    auto out = allocate<T>(1, a.device());
    out->data()[0] = static_cast<T>(best_value);  // exact: a T's value
    auto held = std::make_shared<IndexArray>(1, a.device());
    held->data()[0] = best == me ? where : -1;  // -1: another rank holds the extreme
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        Index saved_where = held;
        auto an = a.node();
        record(r, {save(saved_where)}, [an, saved_where](const T* g) {
            T total = g[0];  // the ranks' partial adjoints
            communicator().sum(&total, 1);
            T* ga = an->grad_data();
            if (saved_where->data()[0] >= 0) ga[saved_where->data()[0]] += total;
        });
    }
    return r;
}
}  // namespace

template <class T>
Tensor<T> ranks_sum(const Tensor<T>& a) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return a;
    host_only(a.device(), "ranks_sum");
    const std::int64_t n = a.size();
    auto out = allocate<T>(n, a.device());
    std::copy_n(a.data(), n, out->data());
    comm.sum(out->data(), n);
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n](const T* g) {
            Array<T> total(n, an->device);  // the ranks' partial adjoints summed
            std::copy_n(g, n, total.data());
            communicator().sum(total.data(), n);
            accumulate(*an, n, Scaled<T>{total.data(), T(1)});  // Scaled: a term the device build instantiates
        });
    }
    return r;
}

template <class T>
Tensor<T> ranks_mean(const Tensor<T>& a) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return mean(a);
    host_only(a.device(), "ranks_mean");
    const std::int64_t n = a.size();
    double sums[2] = {0, double(n)};  // this rank's float64 sum in index order (sum_into's) and count
    for (std::int64_t i = 0; i < n; ++i) sums[0] += static_cast<double>(a.data()[i]);
    comm.sum(sums, 2);
    const T divisor = static_cast<T>(sums[1]);
    auto out = allocate<T>(1, a.device());
    out->data()[0] = static_cast<T>(sums[0]) / divisor;  // mean's rounding
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, divisor](const T* g) {
            T total = g[0];  // the ranks' partial adjoints
            communicator().sum(&total, 1);
            for_each(an->device, n, AddShare<T>{&total, divisor, an->grad_data()});
        });
    }
    return r;
}

template <class T>
Tensor<T> ranks_min(const Tensor<T>& a) {
    return ranks_extremum(a, true);
}

template <class T>
Tensor<T> ranks_max(const Tensor<T>& a) {
    return ranks_extremum(a, false);
}

template <class T>
Tensor<T> sum_inner(const Tensor<T>& a, int k) {
    const std::int64_t n = a.size() / k;
    auto out = allocate<T>(n, a.device());
    for_each(a.device(), n, SumInner<T>{a.data(), k, out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, k](const T* g) { for_each(an->device, n, SpreadInner<T>{g, k, an->grad_data()}); });
    }
    return r;
}

// --- indexing ----------------------------------------------------------------------------

template <class T>
Tensor<T> gather(const Tensor<T>& a, const Index& idx) {
    same_device(a.device(), idx->device(), "gather");
    const std::int64_t n = idx->size();
    auto out = allocate<T>(n, a.device());
    for_each(a.device(), n, Gather<T>{a.data(), idx->data(), out->data(), false});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {save(idx)}, [an, idx, n](const T* g) {
            for_each(an->device, n, ScatterAdd<T>{g, idx->data(), an->grad_data()});
        });
    }
    return r;
}

template <class T>
Tensor<T> scatter_add(const Tensor<T>& src, const Index& idx, std::int64_t n) {
    same_device(src.device(), idx->device(), "scatter_add");
    const std::int64_t m = idx->size();
    if (m != src.size()) throw std::invalid_argument("ag::scatter_add: index and source sizes differ");
    auto out = zeros<T>(n, src.device());
    for_each(src.device(), m, ScatterAdd<T>{src.data(), idx->data(), out->data()});
    Tensor<T> r = wrap(std::move(out), src.requires_grad());
    if (r.requires_grad()) {
        auto sn = src.node();
        record(r, {save(idx)}, [sn, idx, m](const T* g) {
            for_each(sn->device, m, Gather<T>{g, idx->data(), sn->grad_data(), true});
        });
    }
    return r;
}

template <class T>
Tensor<T> select_inner(const Tensor<T>& a, int k, const Index& sel) {
    same_device(a.device(), sel->device(), "select_inner");
    const std::int64_t n = a.size() / k;
    const int m = static_cast<int>(sel->size());
    auto out = allocate<T>(n * m, a.device());
    for_each(a.device(), n, SelectInner<T>{a.data(), k, sel->data(), m, out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {save(sel)}, [an, sel, n, k, m](const T* g) {
            for_each(an->device, n, SelectInnerAdjoint<T>{g, k, sel->data(), m, an->grad_data()});
        });
    }
    return r;
}

template <class T>
Tensor<T> stack_inner(const std::vector<Tensor<T>>& parts) {
    const int k = static_cast<int>(parts.size());
    if (k < 1 || k > kMaxStack) throw std::invalid_argument("ag::stack_inner: 1 to 8 parts");
    const std::int64_t n = parts[0].size();
    bool any = false;
    StackInner<T> body{{}, k, nullptr};
    for (int j = 0; j < k; ++j) {
        if (parts[j].size() != n) throw std::invalid_argument("ag::stack_inner: sizes differ");
        same_device(parts[0].device(), parts[j].device(), "stack_inner");
        any = any || parts[j].requires_grad();
        body.part[j] = parts[j].data();
    }
    auto out = allocate<T>(n * k, parts[0].device());
    body.out = out->data();
    for_each(out->device(), n, body);
    Tensor<T> r = wrap(std::move(out), any);
    if (r.requires_grad()) {
        std::vector<std::shared_ptr<Node<T>>> nodes;
        for (const auto& t : parts) nodes.push_back(t.node());
        record(r, {}, [nodes, n, k](const T* g) {
            for (int j = 0; j < k; ++j)
                if (nodes[j]) for_each(nodes[j]->device, n, Column<T>{g, k, j, nodes[j]->grad_data()});
        });
    }
    return r;
}

template <class T>
Index to_index(const Tensor<T>& a) {
    auto out = std::make_shared<IndexArray>(a.size(), a.device());
    for_each(a.device(), a.size(), Convert<std::int64_t, T>{a.data(), out->data(), false});
    return out;
}

// --- grid ------------------------------------------------------------------------------------

template <class T>
Tensor<T> pad3(const Tensor<T>& a, const Shape3& n, const Shape3& m) {
    auto out = zeros<T>(cells(m), a.device());
    for_each(a.device(), cells(n), CopyBox<T>{a.data(), dims(n), out->data(), dims(m), dims(n), false});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, m](const T* g) {
            for_each(an->device, cells(n), CopyBox<T>{g, dims(m), an->grad_data(), dims(n), dims(n), true});
        });
    }
    return r;
}

template <class T>
Tensor<T> crop3(const Tensor<T>& a, const Shape3& m, const Shape3& n) {
    auto out = allocate<T>(cells(n), a.device());
    for_each(a.device(), cells(n), CopyBox<T>{a.data(), dims(m), out->data(), dims(n), dims(n), false});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, m](const T* g) {
            for_each(an->device, cells(n), CopyBox<T>{g, dims(n), an->grad_data(), dims(m), dims(n), true});
        });
    }
    return r;
}

template <class T>
Tensor<T> mirror3(const Tensor<T>& a, const Shape3& n) {
    const std::int64_t doubled = 8 * cells(n);
    auto out = allocate<T>(doubled, a.device());
    for_each(a.device(), doubled, Mirror<T>{a.data(), dims(n), out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, n, doubled](const T* g) {
            for_each(an->device, doubled, MirrorAdjoint<T>{g, dims(n), an->grad_data()});
        });
    }
    return r;
}

template <class T>
Tensor<T> shift_odd(const Tensor<T>& a, const Shape3& n, int axis) {
    const std::int64_t s = dims(n).stride(axis), total = cells(n);
    const int len = n[axis];
    auto out = allocate<T>(total, a.device());
    for_each(a.device(), total, ShiftOdd<T>{a.data(), s, len, out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, s, total, len](const T* g) {
            for_each(an->device, total, ShiftOddAdjoint<T>{g, s, len, an->grad_data()});
        });
    }
    return r;
}

template <class T>
Tensor<T> grad_stencil(const Tensor<T>& a, const Shape3& n, int axis) {
    const std::int64_t s = dims(n).stride(axis), total = cells(n);
    const int len = n[axis];
    if (len < 2) throw std::invalid_argument("ag::grad_stencil needs at least 2 nodes");
    auto out = allocate<T>(total, a.device());
    for_each(a.device(), total, Stencil<T>{a.data(), s, len, out->data()});
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, s, total, len](const T* g) {
            for_each(an->device, total, StencilAdjoint<T>{g, s, len, an->grad_data()});
        });
    }
    return r;
}

// --- FFT and complex ------------------------------------------------------------------------------

namespace {
template <class T>
void check_fft(const Fft3<T>& fft, Device d, std::int64_t size, std::int64_t expected, const char* op) {
    if (size != expected) throw std::invalid_argument(std::string("ag::") + op + ": size does not match the plan");
    same_device(d, fft.device(), op);
}
}  // namespace

template <class T>
ComplexTensor<T> rfft3(const Tensor<T>& a, std::shared_ptr<const Fft3<T>> fft) {
    check_fft(*fft, a.device(), a.size(), fft->real_size(), "rfft3");
    auto out = allocate<std::complex<T>>(fft->spectrum_size(), a.device());
    fft->forward(a.data(), out->data());
    ComplexTensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, fft](const std::complex<T>* g) {
            const Device d = an->device;
            Array<std::complex<T>> h(fft->spectrum_size(), d);
            for_each(d, fft->spectrum_size(), HermitianHalf<T>{pairs(g), dims(fft->shape()), pairs(h.data())});
            Array<T> x(fft->real_size(), d);
            fft->inverse(h.data(), x.data());
            for_each(d, fft->real_size(), Convert<T, T>{x.data(), an->grad_data(), true});
        });
    }
    return r;
}

template <class T>
Tensor<T> irfft3(const ComplexTensor<T>& a, std::shared_ptr<const Fft3<T>> fft) {
    check_fft(*fft, a.device(), a.size(), fft->spectrum_size(), "irfft3");
    auto out = allocate<T>(fft->real_size(), a.device());
    {
        // c2r destroys its input: a transient copy, as PyTorch's cuFFT path clones
        Array<std::complex<T>> scratch(a.size(), a.device());
        for_each(a.device(), 2 * a.size(), Convert<T, T>{pairs(a.data()), pairs(scratch.data()), false});
        fft->inverse(scratch.data(), out->data());
    }
    Tensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, fft](const T* g) {
            const Device d = an->device;
            Array<std::complex<T>> spec(fft->spectrum_size(), d);
            fft->forward(g, spec.data());
            for_each(d, fft->spectrum_size(),
                     HalfSpectrumWeights<T>{pairs(spec.data()), fft->shape()[2], pairs(an->grad_data())});
        });
    }
    return r;
}

template <class T>
ComplexTensor<T> cmul(const ComplexTensor<T>& a, const ComplexTensor<T>& b) {
    using C = std::complex<T>;
    same_device(a.device(), b.device(), "cmul");
    const std::int64_t n = a.size();
    if (b.size() != n) throw std::invalid_argument("ag::cmul: sizes differ");
    auto out = allocate<C>(n, a.device());
    for_each(a.device(), n, ComplexProduct<T>{pairs(a.data()), pairs(b.data()), pairs(out->data()), false, false});
    ComplexTensor<T> r = wrap(std::move(out), a.requires_grad() || b.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node(), bn = b.node();
        ProductSaves<C> keep = product_saves(a, b);
        record(r, std::move(keep.saved), [an, bn, keep_a = keep.a, keep_b = keep.b, n](const C* g) {
            // gradient convention g = dL/dRe + i dL/dIm: grad_a = g conj(b)
            if (an)
                for_each(an->device, n,
                         ComplexProduct<T>{pairs(g), pairs(keep_b->data()), pairs(an->grad_data()), true, true});
            if (bn)
                for_each(bn->device, n,
                         ComplexProduct<T>{pairs(g), pairs(keep_a->data()), pairs(bn->grad_data()), true, true});
        });
    }
    return r;
}

template <class T>
ComplexTensor<T> cscale(const ComplexTensor<T>& a, T c) {
    using C = std::complex<T>;
    const UnaryFn<T> fn{UnaryOp::scale, c, T(0), T(0)};
    const std::int64_t reals = 2 * a.size();  // re and im scale alike
    auto out = allocate<C>(a.size(), a.device());
    for_each(a.device(), reals, Unary<T>{fn, pairs(a.data()), pairs(out->data())});
    ComplexTensor<T> r = wrap(std::move(out), a.requires_grad());
    if (r.requires_grad()) {
        auto an = a.node();
        record(r, {}, [an, fn, reals](const C* g) {
            const UnaryGrad<T> term{fn, pairs(g), nullptr};
            for_each(an->device, reals, AddTerm<UnaryGrad<T>>{pairs(an->grad_data()), term});
        });
    }
    return r;
}

// --- instantiations -----------------------------------------------------------------------------

#define SCTAPE_AG_REAL(T)                                                                     \
    template Tensor<T> constant<T>(HostArray<T>, Device);                                     \
    template Tensor<T> constant<T>(std::shared_ptr<const Array<T>>);                          \
    template Tensor<T> constant_scalar<T>(T, Device);                                         \
    template Tensor<T> parameter<T>(HostArray<T>, Device);                                    \
    template Tensor<T> parameter_scalar<T>(T, Device);                                        \
    template void seed<T>(const Tensor<T>&, T);                                               \
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
    template Tensor<T> ranks_sum<T>(const Tensor<T>&);                                        \
    template Tensor<T> ranks_mean<T>(const Tensor<T>&);                                       \
    template Tensor<T> ranks_min<T>(const Tensor<T>&);                                        \
    template Tensor<T> ranks_max<T>(const Tensor<T>&);                                        \
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
    template ComplexTensor<T> rfft3<T>(const Tensor<T>&, std::shared_ptr<const Fft3<T>>);     \
    template Tensor<T> irfft3<T>(const ComplexTensor<T>&, std::shared_ptr<const Fft3<T>>);    \
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
