// qmm::Array: an n-dimensional, reference-counted array on a device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "qmm/device.h"
#include "qmm/half.h"

namespace qmm {

enum class Dtype : uint8_t { float32, float16, bfloat16, uint8, uint32, int32, int64 };

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;  // in elements, not bytes

// Bytes per element.
size_t itemsize(Dtype t);
// MLX's name for the dtype: "float32", "bfloat16", "uint32", ...
std::string_view dtype_name(Dtype t);
// Inverse of dtype_name; throws std::invalid_argument for unknown names.
Dtype parse_dtype(std::string_view name);
bool is_floating(Dtype t);
bool is_integral(Dtype t);
// MLX's type promotion (e.g. float16 + bfloat16 -> float32, int32 + float16 -> float16).
Dtype promote_types(Dtype a, Dtype b);
// "(2,3,4)", as MLX prints shapes in its messages.
std::string shape_to_string(const Shape& s);
std::ostream& operator<<(std::ostream& os, Dtype t);

// The C++ type stored for a dtype, e.g. dtype_of<float>() == Dtype::float32.
template <class T>
constexpr Dtype dtype_of();
template <>
constexpr Dtype dtype_of<float>() {
  return Dtype::float32;
}
template <>
constexpr Dtype dtype_of<float16>() {
  return Dtype::float16;
}
template <>
constexpr Dtype dtype_of<bfloat16>() {
  return Dtype::bfloat16;
}
template <>
constexpr Dtype dtype_of<uint8_t>() {
  return Dtype::uint8;
}
template <>
constexpr Dtype dtype_of<uint32_t>() {
  return Dtype::uint32;
}
template <>
constexpr Dtype dtype_of<int32_t>() {
  return Dtype::int32;
}
template <>
constexpr Dtype dtype_of<int64_t>() {
  return Dtype::int64;
}

namespace detail {
struct ArrayImpl;
}

// An array of `shape` elements of `dtype` on a device, possibly strided (views share storage).
// Arrays produced by ops may still be being computed; every host read waits for them.
class Array {
 public:
  Array() = default;  // an empty handle; valid() is false

  // Copies `shape`-many elements of `dtype` from host memory (C order) onto `device`.
  static Array from_data(const void* data, Shape shape, Dtype dtype, Device device = Device::cpu());
  template <class T>
  static Array from_vector(const std::vector<T>& v, Shape shape, Device device = Device::cpu()) {
    return from_data(v.data(), std::move(shape), dtype_of<T>(), device);
  }
  // A 0-d array holding one value.
  template <class T>
  static Array scalar(T v, Device device = Device::cpu()) {
    return from_data(&v, {}, dtype_of<T>(), device);
  }
  // Wraps external memory without copying; `owner` keeps it alive. Strides in elements.
  static Array wrap(void* data, Shape shape, Strides strides, Dtype dtype, Device device,
                    std::shared_ptr<void> owner);
  // An uninitialised, contiguous array.
  static Array empty(Shape shape, Dtype dtype, Device device = Device::cpu());
  static Array zeros(Shape shape, Dtype dtype, Device device = Device::cpu());
  // Normal(mean, std) samples from a seeded generator (same seed, same values on every machine).
  static Array random_normal(Shape shape, Dtype dtype = Dtype::float32, uint64_t seed = 0,
                             float mean = 0.0f, float std = 1.0f, Device device = Device::cpu());

  bool valid() const { return impl_ != nullptr; }
  const Shape& shape() const;
  // Size of one axis; negative axes count from the end.
  int64_t shape(int axis) const;
  const Strides& strides() const;
  int ndim() const;
  int64_t size() const;
  size_t nbytes() const;
  Dtype dtype() const;
  Device device() const;
  // True when the elements are laid out densely in C order.
  bool is_contiguous() const;

  // Blocks until the array's data has been computed; rethrows an error raised while computing it.
  void wait() const;
  // Copies the elements, in C order, to host memory (waits first).
  void copy_to_host(void* dst) const;
  template <class T>
  std::vector<T> to_vector() const {
    check_host_type(dtype_of<T>());
    std::vector<T> out(static_cast<size_t>(size()));
    copy_to_host(out.data());
    return out;
  }
  // All elements converted to float (waits first; for tests and printing).
  std::vector<float> to_float_vector() const;
  // All elements converted to double.
  std::vector<double> to_double_vector() const;

  // Pointer to the first element of a host array (waits first). Throws for a GPU array.
  const void* host_data() const;
  // Pointer to the first element in its device's memory, without waiting.
  void* raw_data() const;

  // A copy on another device (or the same one), contiguous.
  Array to(Device device) const;
  // Views: no copy. reshape copies only when the array is not contiguous.
  Array reshape(Shape shape) const;
  Array swapaxes(int a, int b) const;
  // The 2-D transpose of the last two axes (a view), as `a.T` of a matrix in numpy.
  Array transpose_last2() const { return swapaxes(-2, -1); }
  // Elements [start, stop) of one axis (a view).
  Array slice(int axis, int64_t start, int64_t stop) const;
  // A view of this array broadcast to `shape` (stride 0 on new or size-1 axes).
  Array broadcast_to(const Shape& shape) const;
  // A converted, contiguous copy (dtype conversion rounds to nearest even).
  Array astype(Dtype dtype, StreamOrDevice s = {}) const;
  // A contiguous copy (or this array if already contiguous), on the array's device.
  Array contiguous(StreamOrDevice s = {}) const;

  // "array([[...]], dtype=float32)" (short arrays in full, long ones elided).
  std::string to_string() const;

  // Internal: the implementation (used by the core and the backends).
  const std::shared_ptr<detail::ArrayImpl>& impl() const { return impl_; }
  explicit Array(std::shared_ptr<detail::ArrayImpl> impl) : impl_(std::move(impl)) {}

 private:
  void check_host_type(Dtype t) const;
  std::shared_ptr<detail::ArrayImpl> impl_;
};

}  // namespace qmm
