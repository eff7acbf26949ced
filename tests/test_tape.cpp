// The tape's accounting: distinct buffers counted once, attribution to the
// first saving scope, release on backward; FFT ops of the autograd engine
// save nothing; the min / max / clamp rules both devices share.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "ad/autograd/tensor.hpp"
#include "ad/tape.hpp"

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
