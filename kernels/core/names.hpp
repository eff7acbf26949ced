// names.hpp — one list of names per enumeration, and its parser: the enum's
// values in declaration order, each with the name users write (CONFIG keys,
// CLI flags, JSON). Help texts, config choices and error messages all read
// the same list, so a new value is added in one place.
//
//   inline constexpr sctape::NameList<Strategy, 4> kStrategyNames{{"autograd", "fused", "checkpoint", "reversible"}};
//   Strategy s = kStrategyNames.parse("fused", "strategy");  // throws std::invalid_argument naming the choices
//   kStrategyNames.name(s);         // "fused"
//   kStrategyNames.joined("|");     // "autograd|fused|checkpoint|reversible"
#pragma once

#include <array>
#include <cstddef>
#include <set>
#include <stdexcept>
#include <string>

namespace sctape {

template <class Enum, std::size_t N>
struct NameList {
    std::array<const char*, N> names;

    const char* name(Enum e) const { return names[static_cast<std::size_t>(e)]; }

    Enum parse(const std::string& name, const char* what) const {
        for (std::size_t i = 0; i < N; ++i)
            if (name == names[i]) return static_cast<Enum>(i);
        throw std::invalid_argument(std::string("unknown ") + what + " '" + name + "' (one of " + joined(", ") + ")");
    }

    std::string joined(const char* separator) const {
        std::string out;
        for (std::size_t i = 0; i < N; ++i) out += (i ? separator : "") + std::string(names[i]);
        return out;
    }

    std::set<std::string> set() const { return std::set<std::string>(names.begin(), names.end()); }
};

}  // namespace sctape
