#include "core/convert.h"

#include <cmath>

#include "core/array_impl.h"
#include "core/backend.h"

namespace qmm::core {

double load_as_double(const void* data, Dtype t, int64_t i) {
  switch (t) {
    case Dtype::float32: return static_cast<const float*>(data)[i];
    case Dtype::float16: return float16::to_float(static_cast<const uint16_t*>(data)[i]);
    case Dtype::bfloat16: return bfloat16::to_float(static_cast<const uint16_t*>(data)[i]);
    case Dtype::uint8: return static_cast<const uint8_t*>(data)[i];
    case Dtype::uint32: return static_cast<const uint32_t*>(data)[i];
    case Dtype::int32: return static_cast<const int32_t*>(data)[i];
    case Dtype::int64: return static_cast<double>(static_cast<const int64_t*>(data)[i]);
  }
  return 0;
}

namespace {
// Float -> integer as numpy/MLX do for in-range values; NaN and out-of-range values become 0
// or wrap instead of being undefined behaviour.
int64_t to_int64(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2e18) return INT64_MAX;
  if (v <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(v);
}
}  // namespace

void store_from_double(void* data, Dtype t, int64_t i, double v) {
  switch (t) {
    case Dtype::float32: static_cast<float*>(data)[i] = static_cast<float>(v); break;
    // Through float: double -> float -> half can double-round, but every value that reaches
    // here came from a float or an integer, so the first step is exact for floats.
    case Dtype::float16:
      static_cast<uint16_t*>(data)[i] = float16::from_float(static_cast<float>(v));
      break;
    case Dtype::bfloat16:
      static_cast<uint16_t*>(data)[i] = bfloat16::from_float(static_cast<float>(v));
      break;
    case Dtype::uint8: static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(to_int64(v)); break;
    case Dtype::uint32: static_cast<uint32_t*>(data)[i] = static_cast<uint32_t>(to_int64(v)); break;
    case Dtype::int32: static_cast<int32_t*>(data)[i] = static_cast<int32_t>(to_int64(v)); break;
    case Dtype::int64: static_cast<int64_t*>(data)[i] = to_int64(v); break;
  }
}

void convert_to_double(const void* src, Dtype t, double* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_as_double(src, t, i);
}

Array on_device(const Array& a, Stream s) {
  if (a.device() == s.device()) return a;
  return a.to(s.device());
}

Array convert(const Array& a, Dtype dtype, Stream s) {
  Array src = on_device(a, s);
  auto& be = backend_for(s.device(), "astype");
  Shape shape = src.shape();
  size_t bytes = static_cast<size_t>(src.size()) * itemsize(dtype);
  Array dst = detail::make_array(be.allocate(bytes, s), shape, dtype);
  dst.impl()->done = be.convert(ConvertProblem{src, dst}, s);
  return dst;
}

}  // namespace qmm::core
