#include "core/random.h"

#include <cmath>

namespace qmm::core {

namespace {
// splitmix64: a full-period 64-bit generator with good statistical quality for test data.
uint64_t next(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform in (0, 1]: 53 random bits, never 0 so that log() is finite.
double uniform(uint64_t& state) {
  return (static_cast<double>(next(state) >> 11) + 1.0) * 0x1.0p-53;
}
}  // namespace

void fill_normal(float* out, int64_t n, uint64_t seed, float mean, float std) {
  uint64_t state = seed;
  constexpr double kTwoPi = 6.283185307179586;
  for (int64_t i = 0; i < n; i += 2) {
    double r = std::sqrt(-2.0 * std::log(uniform(state)));
    double t = kTwoPi * uniform(state);
    out[i] = static_cast<float>(mean + std * r * std::cos(t));
    if (i + 1 < n) out[i + 1] = static_cast<float>(mean + std * r * std::sin(t));
  }
}

}  // namespace qmm::core
