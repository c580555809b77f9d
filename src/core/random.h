// A small, portable normal generator (same values on every platform and in every binding).
#pragma once

#include <cstdint>

namespace qmm::core {

// Fills `n` samples of Normal(mean, std) from `seed` (splitmix64 + Box-Muller).
void fill_normal(float* out, int64_t n, uint64_t seed, float mean, float std);

}  // namespace qmm::core
