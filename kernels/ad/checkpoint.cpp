#include "ad/checkpoint.hpp"

#include <algorithm>
#include <limits>


namespace sctape {

std::int64_t binomial_steps(int snapshots, int recomputations) {
    // C(s + r, s) built as a product of exact binomials; capped far above any lattice
    const std::int64_t cap = std::numeric_limits<std::int64_t>::max() / 1024;
    std::int64_t c = 1;
    for (int i = 1; i <= snapshots; ++i) {
        c = c * (recomputations + i) / i;
        if (c > cap) return cap;
    }
    return c;
}

int binomial_recomputations(std::int64_t steps, int snapshots) {
    int r = 0;
    while (binomial_steps(snapshots, r) < steps) ++r;
    return r;
}

std::int64_t binomial_split(std::int64_t a, std::int64_t n, int snapshots) {
    const int r = binomial_recomputations(n, snapshots);
    return a + std::min(n - 1, binomial_steps(snapshots, r - 1));
}

std::vector<std::int64_t> checkpoint_spine(std::int64_t steps, int snapshots) {
    std::vector<std::int64_t> spine;
    if (snapshots == 0) {
        for (std::int64_t i = 0; i < steps; ++i) spine.push_back(i);
        return spine;
    }
    spine.push_back(0);
    for (std::int64_t a = 0, s = snapshots; steps - a > 1 && s > 1; --s) {
        a = binomial_split(a, steps - a, static_cast<int>(s));
        spine.push_back(a);
    }
    return spine;
}

}  // namespace sctape
