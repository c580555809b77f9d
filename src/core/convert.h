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

// Float conversions used by kernels.
template <class T>
inline float to_float(T v) {
  return static_cast<float>(v);
}
template <class T>
inline T from_float(float f) {
  return static_cast<T>(f);
}

}  // namespace qmm::core
