// dtype conversion: scalar element access for host code, and the convert op.
#pragma once

#include <cstdint>

#include "qmm/array.h"
#include "qmm/half.h"

namespace qmm::core {

// Reads element i of a host buffer of dtype t as double (exact for every qmm dtype but int64
// beyond 2^53).
double load_as_double(const void* data, Dtype t, int64_t i);
// Writes v to element i, converting with round-to-nearest-even (floats) or truncation toward
// zero with wrap-around (integers, as a C cast from int64).
void store_from_double(void* data, Dtype t, int64_t i, double v);
// n elements of dtype t -> double.
void convert_to_double(const void* src, Dtype t, double* dst, int64_t n);

// A contiguous copy of `a` converted to `dtype`, computed on stream s.
Array convert(const Array& a, Dtype dtype, Stream s);
// `a` on the device of stream s (a copy only when it is elsewhere).
Array on_device(const Array& a, Stream s);

// Element i of a host buffer as float (exact for the floating dtypes; integers via
// load_as_double). Shared by the CPU codecs and the reference/generic matmul.
inline float load_float(const void* p, Dtype t, int64_t i) {
  switch (t) {
    case Dtype::float32: return static_cast<const float*>(p)[i];
    case Dtype::float16: return float16::to_float(static_cast<const uint16_t*>(p)[i]);
    case Dtype::bfloat16: return bfloat16::to_float(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<float>(load_as_double(p, t, i));
  }
}

// Writes v to element i with round-to-nearest-even for the 2-byte floats.
inline void store_float(void* p, Dtype t, int64_t i, float v) {
  switch (t) {
    case Dtype::float32: static_cast<float*>(p)[i] = v; break;
    case Dtype::float16: static_cast<uint16_t*>(p)[i] = float16::from_float(v); break;
    case Dtype::bfloat16: static_cast<uint16_t*>(p)[i] = bfloat16::from_float(v); break;
    default: store_from_double(p, t, i, v);
  }
}

}  // namespace qmm::core
