// Device helpers shared by the CUDA kernels: dtype access, conversions that round exactly like
// the host code (include/qmm/half.h, src/core/convert.cpp), and launch helpers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "qmm/array.h"

namespace qmm::cuda {

#define QMM_DEV __device__ __forceinline__

// float -> binary16 bits, bit-exact with float16::from_float (RNE, NaN kept quiet with payload).
QMM_DEV uint16_t f32_to_f16_bits(float f) {
  uint32_t x = __float_as_uint(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u)
    return static_cast<uint16_t>(sign | 0x7c00u |
                                 (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {
    float af = __fadd_rn(__uint_as_float(abs), 0.5f);
    return static_cast<uint16_t>(sign | (__float_as_uint(af) - 0x3f000000u));
  }
  uint32_t mant_odd = (abs >> 13) & 1u;
  abs += 0xc8000fffu + mant_odd;
  return static_cast<uint16_t>(sign | (abs >> 13));
}

// float -> bfloat16 bits, bit-exact with bfloat16::from_float.
QMM_DEV uint16_t f32_to_bf16_bits(float f) {
  uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

QMM_DEV float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
QMM_DEV float bf16_bits_to_f32(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}

// Element i of a floating buffer of dtype t, as float (exact).
QMM_DEV float load_float(const void* p, Dtype t, int64_t i) {
  switch (t) {
    case Dtype::float16: return f16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case Dtype::bfloat16: return bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Stores v rounded to dtype t (floating dtypes only).
QMM_DEV void store_float(void* p, Dtype t, int64_t i, float v) {
  switch (t) {
    case Dtype::float16: static_cast<uint16_t*>(p)[i] = f32_to_f16_bits(v); break;
    case Dtype::bfloat16: static_cast<uint16_t*>(p)[i] = f32_to_bf16_bits(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// v rounded to dtype t's precision (float32: unchanged), like codecs.cpp's round_to.
QMM_DEV float round_to(Dtype t, float v) {
  switch (t) {
    case Dtype::float16: return f16_bits_to_f32(f32_to_f16_bits(v));
    case Dtype::bfloat16: return bf16_bits_to_f32(f32_to_bf16_bits(v));
    default: return v;
  }
}

// Activation types of the kernels and their conversions (hardware RNE; hot paths).
template <class T>
QMM_DEV float to_f32(T v);
template <>
QMM_DEV float to_f32<float>(float v) {
  return v;
}
template <>
QMM_DEV float to_f32<__half>(__half v) {
  return __half2float(v);
}
template <>
QMM_DEV float to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <class T>
QMM_DEV T from_f32(float v);
template <>
QMM_DEV float from_f32<float>(float v) {
  return v;
}
template <>
QMM_DEV __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}
template <>
QMM_DEV __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// E2M1 code -> float without a lookup table (bit placement into float, then x 2^126, exact).
QMM_DEV float e2m1_value(uint32_t code) {
  uint32_t bits = ((code & 7u) << 22) | ((code & 8u) << 28);
  return __fmul_rn(__uint_as_float(bits), 8.507059173023462e37f);  // 2^126
}

// (a & b) | c as one LOP3: with two immediates the compiler emits two instructions, which costs
// a third of a 4-bit decode.
QMM_DEV uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < max_blocks ? b : max_blocks);
}

// Loads W consecutive weight words, streamed (__ldcs: read once, evict first): 16-byte vectors
// where W allows (4/8-bit chunks), else 8 or 4 bytes. Used by the decode kernels.
template <int W>
QMM_DEV void load_words(uint32_t (&dst)[W], const uint32_t* src) {
  if constexpr (W % 4 == 0) {
#pragma unroll
    for (int i = 0; i < W / 4; ++i) {
      uint4 v = __ldcs(reinterpret_cast<const uint4*>(src) + i);
      dst[4 * i] = v.x;
      dst[4 * i + 1] = v.y;
      dst[4 * i + 2] = v.z;
      dst[4 * i + 3] = v.w;
    }
  } else if constexpr (W % 2 == 0) {
#pragma unroll
    for (int i = 0; i < W / 2; ++i) {
      uint2 v = __ldcs(reinterpret_cast<const uint2*>(src) + i);
      dst[2 * i] = v.x;
      dst[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < W; ++i) dst[i] = __ldcs(src + i);
  }
}

}  // namespace qmm::cuda
