#include "physics/exact_sums.hpp"

#include "core/memory.hpp"

namespace sctape {

void sum_over_ranks(ExactSum* sums, int count) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return;
    HostArray<std::int64_t> words(std::size_t(count) * ExactSum::kWords);
    for (int k = 0; k < count; ++k) sums[k].to_words(words.data() + std::size_t(k) * ExactSum::kWords);
    comm.sum(words.data(), std::int64_t(words.size()));
    for (int k = 0; k < count; ++k) sums[k] = ExactSum::from_words(words.data() + std::size_t(k) * ExactSum::kWords);
}

// Each value as three 42-bit limbs (the top one signed): a rank's value is
// below 2^126, so every limb's sum over ranks fits an int64 with room to spare.
void sum_over_ranks(int128* values, std::int64_t count) {
    Communicator& comm = communicator();
    if (comm.size() == 1) return;
    constexpr int kBits = 42;
    const int128 mask = (int128(1) << kBits) - 1;
    HostArray<std::int64_t> limbs(std::size_t(3 * count));  // counted by the allocator
    for (std::int64_t i = 0; i < count; ++i) {
        const int128 v = values[i];
        limbs[3 * i] = std::int64_t(v & mask);
        limbs[3 * i + 1] = std::int64_t((v >> kBits) & mask);
        limbs[3 * i + 2] = std::int64_t(v >> (2 * kBits));  // arithmetic shift: floor
    }
    comm.sum(limbs.data(), std::int64_t(limbs.size()));
    for (std::int64_t i = 0; i < count; ++i)
        values[i] = int128(limbs[3 * i]) + int128(limbs[3 * i + 1]) * (int128(1) << kBits) +
                    int128(limbs[3 * i + 2]) * (int128(1) << (2 * kBits));
}

}  // namespace sctape
