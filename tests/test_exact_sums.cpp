// The deterministic mode's integer sums (physics/fixed_point.hpp, exact_sums.hpp;
// docs/mpi.md): ExactSum adds doubles without rounding and rounds the total
// once, in any order and any split; the 128-bit grid fixed point stays within
// its stated bound; and with the fixed-point deposit a gradient run gives the
// same objective and gradients, bit for bit, on 1 and 2 threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "ad/gradient.hpp"
#include "physics/exact_sums.hpp"
#include "physics/fixed_point.hpp"

using namespace sctape;

namespace {

double exact_sum(const std::vector<double>& terms) {
    ExactSum s;
    for (double v : terms) s.add(v);
    return s.value();
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Terms of 53 random bits each, exponents spread over [-20, 20): multiples of
// 2^-73 below 2^20 in magnitude, so 10^4 of them sum exactly in an __int128
// (below 2^107 units), whose conversion to double GCC rounds to nearest.
std::vector<double> spread_terms(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<double> terms(n);
    for (double& v : terms) {
        const double significand = double(rng() >> 11) * 0x1.0p-53;  // [0, 1), 53 bits
        const int exponent = int(rng() % 40) - 20;
        v = std::ldexp(significand, exponent) * ((rng() & 1) ? -1.0 : 1.0);
    }
    return terms;
}

double int128_reference(const std::vector<double>& terms) {
    int128 total = 0;
    for (double v : terms) total += int128(std::ldexp(v, 73));  // exact: v 2^73 is an integer below 2^93
    return std::ldexp(double(total), -73);
}

// Sets SCTAPE_DETERMINISTIC_DEPOSIT while it lives (the kick reads it when built).
class DeterministicMode {
public:
    DeterministicMode() { setenv("SCTAPE_DETERMINISTIC_DEPOSIT", "1", 1); }
    ~DeterministicMode() { unsetenv("SCTAPE_DETERMINISTIC_DEPOSIT"); }
};

}  // namespace

TEST_CASE("ExactSum adds doubles without rounding and rounds the total once, to nearest even", "[exact-sums]") {
    CHECK(exact_sum({1e100, 1.0, -1e100}) == 1.0);  // a float sum gives 0
    CHECK(exact_sum({DBL_MAX, DBL_MAX, -DBL_MAX}) == DBL_MAX);  // no overflow midway
    CHECK(exact_sum({DBL_MAX, DBL_MAX}) == HUGE_VAL);
    CHECK(exact_sum({-DBL_MAX, -DBL_MAX}) == -HUGE_VAL);
    CHECK(exact_sum({0x1.0p-1074, DBL_MAX, -DBL_MAX}) == 0x1.0p-1074);  // the smallest subnormal survives
    CHECK(exact_sum({0x1.0p-1074, 0x1.0p-1074}) == 0x1.0p-1073);
    // ties: 1 + 2^-53 is halfway between 1 and its successor
    CHECK(exact_sum({1.0, 0x1.0p-53}) == 1.0);                               // tie, to even
    CHECK(exact_sum({1.0, 0x1.0p-53, 0x1.0p-200}) == 1.0 + 0x1.0p-52);       // above the tie
    CHECK(exact_sum({1.0, 0x1.0p-53, -0x1.0p-200}) == 1.0);                  // below it
    CHECK(exact_sum({1.0 + 0x1.0p-52, 0x1.0p-53}) == 1.0 + 0x1.0p-51);       // tie, to even (up)
    CHECK(exact_sum({-1.0, -0x1.0p-53, -0x1.0p-106}) == -(1.0 + 0x1.0p-52));  // negative totals alike
    CHECK(exact_sum({3.0, -3.0}) == 0.0);
    CHECK(!std::signbit(exact_sum({-0.0, -0.0})));  // zero is +0 whatever the terms
    CHECK(exact_sum({}) == 0.0);
    // non-finite terms give what a float sum gives
    CHECK(exact_sum({1.0, HUGE_VAL}) == HUGE_VAL);
    CHECK(exact_sum({-HUGE_VAL, 5.0}) == -HUGE_VAL);
    CHECK(std::isnan(exact_sum({HUGE_VAL, -HUGE_VAL})));
    CHECK(std::isnan(exact_sum({1.0, std::nan("")})));
}

TEST_CASE("ExactSum: the same bits in any order and any split, equal to an exact integer reference",
          "[exact-sums]") {
    const std::vector<double> terms = spread_terms(10000, 7);
    const double whole = exact_sum(terms);
    CHECK(same_bits(whole, int128_reference(terms)));
    std::vector<double> shuffled = terms;
    std::mt19937_64 rng(11);
    for (int round = 0; round < 3; ++round) {
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        CHECK(same_bits(exact_sum(shuffled), whole));
    }
    // split in three parts (as over ranks): merged, and as the integer words a
    // reduction over ranks adds
    ExactSum part[3];
    for (std::size_t i = 0; i < terms.size(); ++i) part[i * 3 / terms.size()].add(terms[i]);
    ExactSum merged = part[2];
    merged.add(part[0]);
    merged.add(part[1]);
    CHECK(same_bits(merged.value(), whole));
    std::vector<std::int64_t> words(ExactSum::kWords, 0), one(ExactSum::kWords);
    for (const ExactSum& p : part) {
        p.to_words(one.data());
        for (int w = 0; w < ExactSum::kWords; ++w) words[w] += one[w];
    }
    CHECK(same_bits(ExactSum::from_words(words.data()).value(), whole));
    // a float64 sum of the same terms does depend on the order (what the mode is for)
    double forward = 0, backward = 0;
    for (double v : terms) forward += v;
    for (auto it = terms.rbegin(); it != terms.rend(); ++it) backward += *it;
    CHECK(!same_bits(forward, backward));
}

TEST_CASE("the 128-bit grid fixed point: no overflow at its bound, and its error within terms 2^-(bits+1)",
          "[exact-sums]") {
    const std::int64_t terms = 2000;
    const double largest = 3.5;
    const int bits = grid_sum_bits(largest, terms);  // 125 - 11 - 2
    CHECK(bits == 112);
    // the worst case: every term the largest, one sign; the total is below 2^126
    int128 total = 0;
    for (std::int64_t i = 0; i < terms; ++i) total -= to_fixed128(largest, bits);
    CHECK(from_fixed128(total, bits) == -largest * terms);
    CHECK(total > -(int128(1) << 126));
    // random terms: the integer total against the exact sum of the same doubles
    std::mt19937_64 rng(3);
    std::vector<double> values(terms);
    int128 sum = 0;
    for (double& v : values) {
        v = largest * (2.0 * (double(rng() >> 11) * 0x1.0p-53) - 1.0) * std::ldexp(1.0, -int(rng() % 60));
        sum += to_fixed128(v, bits);
    }
    const double exact = exact_sum(values);
    const double bound = double(terms) * std::ldexp(1.0, -(bits + 1)) + std::fabs(exact) * DBL_EPSILON;
    CHECK(std::fabs(from_fixed128(sum, bits) - exact) <= bound);
    // below 2^62 units llrint rounds to nearest, ties to even
    CHECK(to_fixed128(0x1.8p-60, bits) == int128(3) << 51);
    CHECK(to_fixed128(0x1.0p-113, bits) == 0);   // half a unit: to even (0)
    CHECK(to_fixed128(-0x1.8p-112, bits) == -2); // one and a half: to even (2)
    // from 2^51 units on, halves are rounded to even by the bits themselves
    const int128 two51 = int128(1) << 51;
    CHECK(to_fixed128(0x1.0000000000001p51, 0) == two51);        // 2^51 + 1/2
    CHECK(to_fixed128(0x1.0000000000003p51, 0) == two51 + 2);    // 2^51 + 3/2
    CHECK(to_fixed128(-0x1.0000000000003p51, 0) == -two51 - 2);
    CHECK(to_fixed128(0x1.ffffffffffffep50, 0) == two51);        // 2^51 - 1/2, below the band
    CHECK(to_fixed128(0x1.8p52, 0) == 3 * two51);
    // values at and above 2^62 units are integers already: exact
    CHECK(from_fixed128(to_fixed128(-0x1.8p1, bits), bits) == -3.0);
    CHECK(from_fixed128(to_fixed128(0x1.fffffffffffffp1, bits), bits) == 0x1.fffffffffffffp1);
}

TEST_CASE("with the fixed-point deposit the objective and every gradient are the same bits on 1 and 2 threads",
          "[exact-sums][mpi]") {
    DeterministicMode deterministic;
    BeamParameters beam;
    beam.n_particles = 1500;
    beam.bunch_charge_C = 1e-9;
    beam.kinetic_energy_eV = 10e6;
    beam.distribution.size_m = {1e-3, 1.2e-3, 0.8e-3};
    beam.distribution.momentum_rms = {1e-4, 2e-4, 1e-4};
    Element quad(0.1, 2, ElementKind::quadrupole);
    quad.k1_per_m2 = 5.0;
    TrackSettings tracking;
    tracking.lattice = {quad, Element(0.3, 2)};
    tracking.grid.shape = {12, 10, 14};
    GradientRequest request;
    request.gradients = gradient_names(beam, tracking.lattice);
    request.objective = Objective::emittance_x;
    auto run = [&](int threads) {
        tracking.threads = threads;
        return compute_gradient<double>(beam, tracking, request);
    };
    // minmax and sigma extents, and quantized cells (whose Green function adjoint has its own path)
    for (int grid = 0; grid < 3; ++grid) {
        tracking.grid.mode = grid == 1 ? ExtentMode::sigma : ExtentMode::minmax;
        tracking.grid.cell_quantum = grid == 2 ? 0.05 : 0.0;
        for (Strategy strategy : {Strategy::fused, Strategy::checkpoint, Strategy::reversible}) {
            request.strategy = strategy;
            const GradientResult one = run(1), two = run(2);
            INFO("strategy " << int(strategy) << ", grid " << grid << " (minmax, sigma, quantized cells)");
            CHECK(same_bits(one.objective, two.objective));
            for (const auto& [name, value] : one.gradients) {
                INFO(name << ": " << value << " vs " << two.gradients.at(name));
                CHECK(same_bits(value, two.gradients.at(name)));
            }
            for (int c = 0; c < 6; ++c) CHECK(one.particle_gradient[c] == two.particle_gradient[c]);
        }
    }
}
