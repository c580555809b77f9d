// 2-byte floating-point storage types (IEEE binary16 and bfloat16) with exact float conversion.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace qmm {

// IEEE 754 binary16. Conversions round to nearest even and keep NaN.
struct float16 {
  uint16_t bits = 0;

  float16() = default;
  explicit float16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }

  static constexpr float16 from_bits(uint16_t b) {
    float16 h;
    h.bits = b;
    return h;
  }

  static uint16_t from_float(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // inf or NaN; keep NaN quiet and non-zero
      return static_cast<uint16_t>(sign | 0x7c00u |
                                   (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
    }
    if (abs >= 0x477ff000u)
      return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520 → inf
    if (abs < 0x38800000u) {  // result is subnormal (|f| < 2^-14): round on the scaled value
      // 0.5f * 2^-23 ... uses float addition to perform round-to-nearest-even at 2^-24 granularity.
      float af = std::bit_cast<float>(abs) + 0.5f;  // 0.5 = 2^-1 puts bit 2^-24 at the ulp of 0.5
      return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(af) - 0x3f000000u));
    }
    uint32_t mant_odd = (abs >> 13) & 1u;
    abs += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and add rounding bias (RNE)
    return static_cast<uint16_t>(sign | (abs >> 13));
  }

  static float to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t out;
    if (exp == 0x1f) {
      out = sign | 0x7f800000u | (mant << 13);
    } else if (exp == 0) {
      // subnormal: value = mant * 2^-24, exact in float
      float v = static_cast<float>(mant) * 5.9604644775390625e-08f;
      return sign ? -v : v;
    } else {
      out = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(out);
  }
};

// bfloat16: the upper half of a float32. Conversions round to nearest even and keep NaN.
struct bfloat16 {
  uint16_t bits = 0;

  bfloat16() = default;
  explicit bfloat16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }

  static constexpr bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }

  static uint16_t from_float(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
      return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);                    // round to nearest, ties to even
    return static_cast<uint16_t>(x >> 16);
  }

  static float to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }
};

static_assert(sizeof(float16) == 2 && alignof(float16) == 2);
static_assert(sizeof(bfloat16) == 2 && alignof(bfloat16) == 2);

}  // namespace qmm
