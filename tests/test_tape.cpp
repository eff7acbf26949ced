// The tape's accounting: distinct buffers counted once, attribution to the
// first saving scope, release on backward; FFT ops of the autograd engine
// save nothing; the min / max / clamp rules both devices share; the ops over
// MPI ranks against scripted other ranks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <vector>

#include "ad/autograd/tensor.hpp"
#include "ad/tape.hpp"
#include "core/communicator.hpp"

using namespace sctape;

TEST_CASE("a buffer saved twice counts once, in the scope that saved it first", "[tape]") {
    const std::int64_t start = host_memory().current_bytes();
    {
        Tape tape;
        auto a = std::make_shared<const HostArray<double>>(100, 1.0);  // 800 bytes
        auto b = std::make_shared<const HostArray<float>>(10, 2.0f);    // 40 bytes
        int order = 0, first = 0, second = 0;
        {
            TapeScope scope(tape, "deposit");
            tape.record({Tape::save(a)}, [&] { first = ++order; });
        }
        {
            TapeScope scope(tape, "gather");
            tape.record({Tape::save(a), Tape::save(b)}, [&] { second = ++order; });
        }
        CHECK(tape.tape_bytes() == 840);
        CHECK(tape.entries() == 2);
        CHECK(tape.by_scope().at("deposit").bytes == 800);
        CHECK(tape.by_scope().at("gather").bytes == 40);
        CHECK(tape.by_scope().at("gather").buffers == 1);
        a.reset();
        b.reset();
        CHECK(host_memory().current_bytes() - start == 840);  // the tape keeps them alive
        tape.backward();
        CHECK(second == 1);  // last recorded runs first
        CHECK(first == 2);
        CHECK(tape.empty());
        CHECK(tape.tape_bytes() == 0);
        CHECK(host_memory().current_bytes() == start);  // freed as backward went
    }
}

TEST_CASE("FFT ops add exactly 0 tape bytes", "[tape][autograd]") {
    Tape tape;
    ag::Recording recording(tape);
    auto fft = ag::make_fft<double>({4, 6, 8}, ag::Device::host, 1);
    HostArray<double> values(4 * 6 * 8);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = double(i % 7) - 3.0;
    auto x = ag::parameter(values);
    const std::int64_t before = tape.tape_bytes();
    auto spectrum = ag::rfft3(x, fft);
    auto back = ag::irfft3(spectrum, fft);
    CHECK(tape.tape_bytes() == before);
    CHECK(tape.entries() == 2);
    // the round trip is 4*6*8 times the input; its gradient is that constant
    auto total = ag::sum(back);
    ag::seed(total);
    tape.backward();
    REQUIRE(x.grad() != nullptr);
    for (double g : x.grad()->to_vector()) CHECK(g == Approx(4 * 6 * 8).epsilon(1e-12));
}

// The rules the host loop and the device tree must share (op_bodies.hpp):
// min / max pick the first extremum on ties and propagate NaN; clamp is
// std::min(std::max(x, lo), hi).
TEST_CASE("autograd min/max take the first extremum and propagate NaN; clamp", "[tape][autograd]") {
    Tape tape;
    ag::Recording recording(tape);
    auto a = ag::parameter(HostArray<double>{3, 1, 4, 1, 5, 5});
    auto lo = ag::min(a);
    auto hi = ag::max(a);
    CHECK(lo.item() == 1);
    CHECK(hi.item() == 5);
    CHECK(tape.tape_bytes() == 16);  // two int64 indices
    auto total = ag::add(lo, hi);
    ag::seed(total);
    tape.backward();
    CHECK(a.grad()->to_vector() == std::vector<double>{0, 1, 0, 0, 1, 0});
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto b = ag::constant(HostArray<double>{2, nan, 0, nan});
    CHECK(std::isnan(ag::min(b).item()));
    CHECK(std::isnan(ag::max(b).item()));
    auto c = ag::clamp(ag::constant(HostArray<double>{-1, 0.5, 2}), 0.0, 1.0);
    CHECK(c.values().to_vector() == std::vector<double>{0, 0.5, 1});
    CHECK(ag::clamp(ag::constant_scalar(0.5), 1.0, 0.0).item() == 0.0);  // lo > hi: hi
}

// --- the ops over MPI ranks (tensor.hpp, docs/mpi.md "autograd over ranks") ---

namespace {

// Rank `rank` of `size` whose other ranks are scripted: each sum adds the
// next queued contribution of the other ranks together (min, max and gather
// are not used by the ops).
class ScriptedRanks final : public Communicator {
public:
    ScriptedRanks(int rank, int size) : rank_(rank), size_(size) {}
    std::deque<std::vector<double>> values;        // for the float and double sums
    std::deque<std::vector<std::int64_t>> words;   // for the int64 sums
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    bool distributed() const override { return true; }
    void sum(double* v, std::int64_t n) override { add(values, v, n); }
    void sum(float* v, std::int64_t n) override { add(values, v, n); }
    void sum(std::int64_t* v, std::int64_t n) override { add(words, v, n); }
    void min(double*, std::int64_t) override { throw std::logic_error("ScriptedRanks: min not scripted"); }
    void max(double*, std::int64_t) override { throw std::logic_error("ScriptedRanks: max not scripted"); }
    std::vector<double> gather(const double*, std::int64_t) override {
        throw std::logic_error("ScriptedRanks: gather not scripted");
    }
    [[noreturn]] void abort(int) override { std::abort(); }

private:
    template <class Queue, class V>
    static void add(Queue& queue, V* v, std::int64_t n) {
        REQUIRE(!queue.empty());
        REQUIRE(std::int64_t(queue.front().size()) == n);
        for (std::int64_t i = 0; i < n; ++i) v[i] += static_cast<V>(queue.front()[i]);
        queue.pop_front();
    }
    int rank_, size_;
};

// Installs a ScriptedRanks for the scope (the serial communicator again after).
struct ScriptedRun {
    ScriptedRanks* ranks;
    ScriptedRun(int rank, int size) {
        auto c = std::make_unique<ScriptedRanks>(rank, size);
        ranks = c.get();
        install_communicator(std::move(c));
    }
    ~ScriptedRun() { install_communicator(nullptr); }
};

// The other ranks' extremes as ranks_min/ranks_max exchange them: per rank
// (the double's bits, 1 when it holds an element).
std::vector<std::int64_t> extremes_of(int size, const std::vector<std::pair<int, double>>& held) {
    std::vector<std::int64_t> w(2 * std::size_t(size), 0);
    for (const auto& [rank, value] : held) {
        std::memcpy(&w[2 * rank], &value, sizeof value);
        w[2 * rank + 1] = 1;
    }
    return w;
}

// ranks_min over rank 1 of 3 holding {3, 1, 1}: the value, and the gradient
// of its three elements when the ranks' partial adjoints are 1 here and 2 elsewhere.
std::pair<double, std::vector<double>> scripted_min(const std::vector<std::pair<int, double>>& others,
                                                    std::int64_t* tape_bytes = nullptr) {
    ScriptedRun run(1, 3);
    run.ranks->words.push_back(extremes_of(3, others));
    run.ranks->values.push_back({2.0});  // the other ranks' partial adjoints of the minimum
    Tape tape;
    ag::Recording recording(tape);
    auto a = ag::parameter(HostArray<double>{3, 1, 1});
    auto lo = ag::ranks_min(a);
    if (tape_bytes) *tape_bytes = tape.tape_bytes();
    ag::seed(lo);
    tape.backward();
    CHECK(run.ranks->values.empty());
    return {lo.item(), a.grad()->to_vector()};
}

}  // namespace

TEST_CASE("ranks_min/ranks_max: the first extreme in rank order; its rank alone receives the summed adjoint",
          "[tape][autograd][mpi]") {
    std::int64_t bytes = 0;
    // a tie with rank 0: rank 0's (the global order's first); no adjoint here
    auto tie = scripted_min({{0, 1.0}, {2, 2.0}}, &bytes);
    CHECK(tie.first == 1.0);
    CHECK(tie.second == std::vector<double>{0, 0, 0});
    CHECK(bytes == 8);  // the int64 index on every rank, as min's
    // a tie with rank 2 only: this rank's first 1, with every rank's adjoint (1 + 2)
    auto mine = scripted_min({{0, 2.0}, {2, 1.0}});
    CHECK(mine.first == 1.0);
    CHECK(mine.second == std::vector<double>{0, 3, 0});
    // rank 0 holds no element: its slot's value is ignored
    auto empty = scripted_min({{2, 4.0}});
    CHECK(empty.first == 1.0);
    CHECK(empty.second == std::vector<double>{0, 3, 0});
    // a smaller value on rank 2, and a NaN on rank 2 (NaN beats every number)
    CHECK(scripted_min({{0, 1.5}, {2, -1.0}}).first == -1.0);
    CHECK(std::isnan(scripted_min({{0, 1.5}, {2, std::numeric_limits<double>::quiet_NaN()}}).first));
    // this rank empty: the other ranks' largest
    ScriptedRun run(1, 2);
    run.ranks->words.push_back(extremes_of(2, {{0, 7.0}}));
    CHECK(ag::ranks_max(ag::constant(HostArray<double>{})).item() == 7.0);
}

TEST_CASE("ranks_mean and ranks_sum add the other ranks' values forward and their partial adjoints backward",
          "[tape][autograd][mpi]") {
    ScriptedRun run(0, 2);
    Tape tape;
    ag::Recording recording(tape);
    auto a = ag::parameter(HostArray<double>{1, 2, 3});
    run.ranks->values.push_back({10.0, 2.0});  // the other rank: sum 10 over 2 elements
    auto m = ag::ranks_mean(a);
    CHECK(m.item() == 16.0 / 5.0);
    auto b = ag::parameter(HostArray<double>{1, 2});
    run.ranks->values.push_back({10.0, 20.0});
    auto s = ag::ranks_sum(b);
    CHECK(s.values().to_vector() == std::vector<double>{11, 22});
    CHECK(tape.tape_bytes() == 0);  // neither saves anything
    auto total = ag::add(m, ag::sum(s));
    ag::seed(total);
    run.ranks->values.push_back({2.0, 3.0});  // backward, last op first: the other rank's partial adjoint of s
    run.ranks->values.push_back({4.0});       // then of the mean
    tape.backward();
    CHECK(b.grad()->to_vector() == std::vector<double>{3, 4});
    CHECK(a.grad()->to_vector() == std::vector<double>{1, 1, 1});  // (1 + 4) / 5 each
    CHECK(run.ranks->values.empty());
}

TEST_CASE("on one rank the ops over ranks are the one-rank ops", "[tape][autograd][mpi]") {
    Tape tape;
    ag::Recording recording(tape);
    auto a = ag::parameter(HostArray<double>{0.1, 0.7, 0.2});
    auto s = ag::ranks_sum(a);
    CHECK(s.buffer() == a.buffer());  // the input itself: no copy, no entry
    CHECK(tape.entries() == 0);
    CHECK(ag::ranks_mean(a).item() == ag::mean(a).item());
    CHECK(ag::ranks_min(a).item() == 0.1);
    CHECK(ag::ranks_max(a).item() == 0.7);
    CHECK(tape.entries() == 4);  // mean twice, min, max
    CHECK(tape.tape_bytes() == 16);
}

// A rank may hold no particle: its tensors of particles have no elements, and
// the ops on them must still run their backward, or a reduction over ranks
// upstream would wait for that rank.
TEST_CASE("a rank holding no element runs every backward that reduces over ranks", "[tape][autograd][mpi]") {
    ScriptedRun run(1, 2);
    Tape tape;
    ag::Recording recording(tape);
    auto none = ag::parameter(HostArray<double>{});       // this rank's particles: none
    auto scale = ag::parameter_scalar(2.0);
    run.ranks->values.push_back({4.0, 2.0});             // the other rank: sum 4 over 2
    auto center = ag::ranks_mean(ag::mul(none, scale));  // 2
    auto shifted = ag::sub(none, center);                // no elements
    run.ranks->values.push_back({-2.0, 2.0});
    auto m = ag::ranks_mean(shifted);                    // -1
    CHECK(center.item() == 2.0);
    CHECK(m.item() == -1.0);
    ag::seed(m, 0.0);  // rank 0 seeds the objective
    run.ranks->values.push_back({1.0});  // backward: the other rank's partial adjoint of m
    run.ranks->values.push_back({0.5});  // then of center, reached through the empty `shifted`
    tape.backward();
    CHECK(run.ranks->values.empty());
    CHECK(none.node()->has_grad());
}
