// Bit-level codecs of MLX's quantized formats, shared by every backend (host and device code).
// Packing: each row of w_q is a little-endian, LSB-first bit stream; element j occupies stream
// bits [j*bits, (j+1)*bits). Groups always start on a word boundary.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define QMM_HD __host__ __device__ __forceinline__
#else
#define QMM_HD inline
#endif

namespace qmm::core {

QMM_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t b;
  __builtin_memcpy(&b, &f, 4);
  return b;
#endif
}

QMM_HD float bits_float(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  __builtin_memcpy(&f, &b, 4);
  return f;
#endif
}

// Element j of a packed row. 3/5/6-bit elements may straddle two words.
QMM_HD uint32_t unpack_code(const uint32_t* row, int64_t j, int bits) {
  int64_t bit = j * bits;
  int64_t word = bit >> 5;
  int shift = static_cast<int>(bit & 31);
  uint64_t two = row[word];
  if (shift + bits > 32) two |= static_cast<uint64_t>(row[word + 1]) << 32;
  return static_cast<uint32_t>(two >> shift) & ((1u << bits) - 1u);
}

// Writes `n` codes (each < 2^bits) as a bit stream into `out` (n*bits/32 words, n*bits % 32 == 0).
QMM_HD void pack_codes(const uint8_t* codes, int64_t n, int bits, uint32_t* out) {
  uint64_t acc = 0;
  int filled = 0;
  int64_t w = 0;
  for (int64_t j = 0; j < n; ++j) {
    acc |= static_cast<uint64_t>(codes[j]) << filled;
    filled += bits;
    if (filled >= 32) {
      out[w++] = static_cast<uint32_t>(acc);
      acc >>= 32;
      filled -= 32;
    }
  }
}

// E2M1 (fp4) code -> value; bit 3 is the sign.
QMM_HD float e2m1_to_float(uint32_t code) {
  constexpr float kMagnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  float m = kMagnitudes[code & 7u];
  return (code & 8u) ? -m : m;
}

// MLX CPU's fp4 encoder: index of the first minimum of |v - LUT[j]| over the table order
// (+0, 0.5, ..., 6, -0, -0.5, ..., -6). Ties go to the smaller magnitude; |v| <= 0.25 -> +0;
// NaN -> 0 (no comparison succeeds).
QMM_HD uint8_t float_to_e2m1_argmin(float v) {
  uint8_t best = 0;
  float best_err = v < 0 ? -v : v;  // |v - 0|
  for (uint8_t j = 1; j < 16; ++j) {
    float d = v - e2m1_to_float(j);
    d = d < 0 ? -d : d;
    if (d < best_err) {
      best_err = d;
      best = j;
    }
  }
  return best;
}

// E4M3 "fn" byte -> value as MLX 0.32.4 decodes it: 0x7F and 0xFF are NaN.
QMM_HD float e4m3_to_float(uint32_t byte) {
  uint32_t e = (byte >> 3) & 15u;
  uint32_t m = byte & 7u;
  if (e == 15u && m == 7u) return bits_float(0x7fc00000u);
  // value = 2^(e-7) * (1 + m/8) for e > 0, 2^-6 * m/8 for e == 0; exact in float.
  float mag = e ? static_cast<float>(8u + m) * (1.0f / 1024.0f) * static_cast<float>(1u << e)
                : static_cast<float>(m) * (1.0f / 512.0f);
  return (byte & 0x80u) ? -mag : mag;
}

// MLX 0.32.4's E4M3 encoder: round to nearest even, then saturate: every magnitude that rounds
// to 448 or more, and inf and NaN, become sign|0x7E (+-448); the sign bit is always kept.
QMM_HD uint8_t float_to_e4m3(float f) {
  uint32_t bits = float_bits(f);
  uint32_t sign = (bits >> 24) & 0x80u;
  uint32_t abs = bits & 0x7fffffffu;
  uint32_t out;
  if (abs >= 0x43e00000u) {  // >= 448.0f, inf, NaN
    out = 0x7eu;
  } else if (abs < 0x3c800000u) {  // < 2^-6: subnormal range, RNE at 2^-9 granularity
    // 2^14 has a float ulp of 2^-9, the E4M3 subnormal step, so the addition rounds for us.
    out = float_bits(bits_float(abs) + 16384.0f) - 0x46800000u;  // 0x46800000 = bits of 2^14
  } else {
    uint32_t mant_odd = (abs >> 20) & 1u;
    abs += 0xc407ffffu + mant_odd;  // rebias exponent by (7 - 127) << 23, add RNE bias 0x7ffff
    out = abs >> 20;
    if (out > 0x7eu) out = 0x7eu;  // (448, 464] rounds to 448 anyway; (464, 480) would be 0x7F
  }
  return static_cast<uint8_t>(out | sign);
}

// The smallest e with 2^e >= v (v > 0, finite): MLX 0.32.4 rounds E8M0 block scales up.
// Computed from the float's bits, since a float32 log2 can round across an integer.
QMM_HD int ceil_log2(float v) {
  uint32_t b = float_bits(v);
  int exp = static_cast<int>((b >> 23) & 0xffu);
  uint32_t mant = b & 0x7fffffu;
  if (exp == 0) {                        // subnormal: v = mant * 2^-149
    int top = 31 - __builtin_clz(mant);  // highest set bit
    return top - 149 + ((mant & (mant - 1u)) ? 1 : 0);
  }
  return exp - 127 + (mant ? 1 : 0);
}

// E8M0 scale byte -> 2^(s-127) (s = 255 -> inf, as MLX's CPU decodes it).
QMM_HD float e8m0_to_float(uint32_t s) { return bits_float(s == 0 ? 0x00400000u : (s << 23)); }

}  // namespace qmm::core
