// Array: construction, views, host access, printing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <ostream>
#include <sstream>

#include "core/array_impl.h"
#include "core/backend.h"
#include "core/convert.h"
#include "core/errors.h"
#include "core/random.h"

namespace qmm {

using detail::ArrayImpl;
using detail::Buffer;

namespace detail {

void HostCompletion::wait() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return done_; });
  if (error_) std::rethrow_exception(error_);
}

void HostCompletion::set(std::exception_ptr error) {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
    error_ = std::move(error);
  }
  cv_.notify_all();
}

bool HostCompletion::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

Strides contiguous_strides(const Shape& shape) {
  Strides st(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

int64_t shape_size(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Array make_array(std::shared_ptr<Buffer> buffer, Shape shape, Dtype dtype) {
  auto impl = std::make_shared<ArrayImpl>();
  impl->buffer = std::move(buffer);
  impl->strides = contiguous_strides(shape);
  impl->shape = std::move(shape);
  impl->dtype = dtype;
  return Array(std::move(impl));
}

}  // namespace detail

namespace {

const ArrayImpl& checked(const std::shared_ptr<ArrayImpl>& impl) {
  if (!impl) throw std::invalid_argument("[array] The array is empty (default-constructed).");
  return *impl;
}

int normalize_axis(int axis, int ndim, const char* op) {
  int a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim)
    core::throw_invalid(op, "Axis ", axis, " is out of bounds for an array with ", ndim,
                        " dimensions.");
  return a;
}

Array view_of(const ArrayImpl& a, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<ArrayImpl>(a);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Array(std::move(impl));
}

}  // namespace

Array Array::from_data(const void* data, Shape shape, Dtype dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0)
      core::throw_invalid("array", "Negative dimension in shape ", core::ShapeText{shape}, ".");
  auto& be = core::backend_for(device, "array");
  size_t bytes = static_cast<size_t>(detail::shape_size(shape)) * itemsize(dtype);
  auto buf = be.allocate(bytes, default_stream(device));
  if (bytes) be.copy_from_host(data, buf->ptr, bytes, device);
  return detail::make_array(std::move(buf), std::move(shape), dtype);
}

Array Array::wrap(void* data, Shape shape, Strides strides, Dtype dtype, Device device,
                  std::shared_ptr<void> owner) {
  if (strides.size() != shape.size())
    core::throw_invalid("array", "Shape ", core::ShapeText{shape}, " and strides of rank ",
                        strides.size(), " do not match.");
  auto buf = std::make_shared<Buffer>();
  buf->ptr = data;
  buf->device = device;
  buf->owner = std::move(owner);
  auto impl = std::make_shared<ArrayImpl>();
  impl->buffer = std::move(buf);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = dtype;
  return Array(std::move(impl));
}

Array Array::empty(Shape shape, Dtype dtype, Device device) {
  auto& be = core::backend_for(device, "array");
  size_t bytes = static_cast<size_t>(detail::shape_size(shape)) * itemsize(dtype);
  return detail::make_array(be.allocate(bytes, default_stream(device)), std::move(shape), dtype);
}

Array Array::zeros(Shape shape, Dtype dtype, Device device) {
  std::vector<char> host(static_cast<size_t>(detail::shape_size(shape)) * itemsize(dtype), 0);
  return from_data(host.data(), std::move(shape), dtype, device);
}

Array Array::random_normal(Shape shape, Dtype dtype, uint64_t seed, float mean, float std,
                           Device device) {
  if (!is_floating(dtype))
    core::throw_invalid("random_normal", "Only floating dtypes are supported but got ", dtype, ".");
  std::vector<float> v(static_cast<size_t>(detail::shape_size(shape)));
  core::fill_normal(v.data(), static_cast<int64_t>(v.size()), seed, mean, std);
  Array f = from_data(v.data(), std::move(shape), Dtype::float32, Device::cpu());
  Array out = dtype == Dtype::float32 ? f : f.astype(dtype, Device::cpu());
  return device == Device::cpu() ? out : out.to(device);
}

const Shape& Array::shape() const { return checked(impl_).shape; }
int64_t Array::shape(int axis) const {
  const auto& a = checked(impl_);
  return a.shape[normalize_axis(axis, static_cast<int>(a.shape.size()), "array")];
}
const Strides& Array::strides() const { return checked(impl_).strides; }
int Array::ndim() const { return static_cast<int>(checked(impl_).shape.size()); }
int64_t Array::size() const { return detail::shape_size(checked(impl_).shape); }
size_t Array::nbytes() const { return static_cast<size_t>(size()) * itemsize(dtype()); }
Dtype Array::dtype() const { return checked(impl_).dtype; }
Device Array::device() const { return checked(impl_).buffer->device; }

bool Array::is_contiguous() const {
  const auto& a = checked(impl_);
  int64_t expect = 1;
  for (size_t i = a.shape.size(); i-- > 0;) {
    if (a.shape[i] == 1) continue;
    if (a.strides[i] != expect) return false;
    expect *= a.shape[i];
  }
  return true;
}

void Array::wait() const {
  const auto& a = checked(impl_);
  if (a.done) a.done->wait();
}

void Array::copy_to_host(void* dst) const {
  wait();
  if (size() == 0) return;
  Array src = is_contiguous() ? *this : contiguous();
  src.wait();
  const auto& a = *src.impl_;
  core::backend_for(a.buffer->device, "array")
      .copy_to_host(detail::element_ptr(a), dst, src.nbytes(), a.buffer->device);
}

std::vector<double> Array::to_double_vector() const {
  std::vector<char> raw(nbytes());
  copy_to_host(raw.data());
  std::vector<double> out(static_cast<size_t>(size()));
  core::convert_to_double(raw.data(), dtype(), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

std::vector<float> Array::to_float_vector() const {
  auto d = to_double_vector();
  return std::vector<float>(d.begin(), d.end());
}

const void* Array::host_data() const {
  const auto& a = checked(impl_);
  if (a.buffer->device.type != DeviceType::cpu)
    core::throw_invalid("array", "host_data() needs a CPU array but the array is on ",
                        qmm::to_string(a.buffer->device), ".");
  wait();
  return detail::element_ptr(a);
}

void* Array::raw_data() const { return detail::element_ptr(checked(impl_)); }

void Array::check_host_type(Dtype t) const {
  if (dtype() != t)
    core::throw_invalid("array", "to_vector<", dtype_name(t), "> called on an array of dtype ",
                        dtype(), ".");
}

Array Array::to(Device device) const {
  const auto& a = checked(impl_);
  if (a.buffer->device == device) return contiguous();
  std::vector<char> host(nbytes());
  copy_to_host(host.data());
  return from_data(host.data(), a.shape, a.dtype, device);
}

Array Array::reshape(Shape shape) const {
  const auto& a = checked(impl_);
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && infer < 0) {
      infer = static_cast<int>(i);
    } else {
      if (shape[i] < 0)
        core::throw_invalid("reshape", "Invalid shape ", core::ShapeText{shape}, ".");
      known *= shape[i];
    }
  }
  if (infer >= 0 && known > 0 && size() % known == 0) shape[infer] = size() / known;
  if (detail::shape_size(shape) != size())
    core::throw_invalid("reshape", "Cannot reshape array of size ", size(), " into shape ",
                        core::ShapeText{shape}, ".");
  if (!is_contiguous()) return contiguous().reshape(std::move(shape));
  Strides st = detail::contiguous_strides(shape);
  return view_of(a, std::move(shape), std::move(st), a.offset);
}

Array Array::swapaxes(int ax, int bx) const {
  const auto& a = checked(impl_);
  int n = ndim();
  int i = normalize_axis(ax, n, "swapaxes"), j = normalize_axis(bx, n, "swapaxes");
  Shape sh = a.shape;
  Strides st = a.strides;
  std::swap(sh[i], sh[j]);
  std::swap(st[i], st[j]);
  return view_of(a, std::move(sh), std::move(st), a.offset);
}

Array Array::slice(int axis, int64_t start, int64_t stop) const {
  const auto& a = checked(impl_);
  int i = normalize_axis(axis, ndim(), "slice");
  if (start < 0 || stop < start || stop > a.shape[i])
    core::throw_invalid("slice", "Invalid range [", start, ", ", stop, ") for axis ", axis,
                        " of size ", a.shape[i], ".");
  Shape sh = a.shape;
  sh[i] = stop - start;
  return view_of(a, std::move(sh), a.strides, a.offset + start * a.strides[i]);
}

Array Array::broadcast_to(const Shape& shape) const {
  const auto& a = checked(impl_);
  int n = static_cast<int>(shape.size()), m = ndim();
  if (m > n)
    core::throw_invalid("broadcast_to", "Cannot broadcast array of shape ",
                        core::ShapeText{a.shape}, " to ", core::ShapeText{shape}, ".");
  Strides st(n, 0);
  for (int i = 0; i < n; ++i) {
    int k = i - (n - m);
    if (k < 0) continue;
    if (a.shape[k] == shape[i]) {
      st[i] = a.strides[k];
    } else if (a.shape[k] != 1) {
      core::throw_invalid("broadcast_to", "Cannot broadcast array of shape ",
                          core::ShapeText{a.shape}, " to ", core::ShapeText{shape}, ".");
    }
  }
  return view_of(a, shape, std::move(st), a.offset);
}

Array Array::astype(Dtype dtype, StreamOrDevice s) const {
  checked(impl_);
  return core::convert(*this, dtype, to_stream(s.index() == 0 ? StreamOrDevice{device()} : s));
}

Array Array::contiguous(StreamOrDevice s) const {
  checked(impl_);
  if (is_contiguous()) return *this;
  return core::convert(*this, dtype(), to_stream(s.index() == 0 ? StreamOrDevice{device()} : s));
}

std::string Array::to_string() const {
  if (!impl_) return "array(<empty>)";
  auto v = to_double_vector();
  const Shape& sh = shape();
  std::ostringstream os;
  os.precision(6);
  std::vector<int64_t> idx(sh.size(), 0);
  constexpr int64_t kEdge = 3;  // elements printed at each end of a long axis
  // Recursive printer over axes, eliding the middle of axes longer than 2*kEdge.
  std::function<void(int, int64_t)> rec = [&](int axis, int64_t base) {
    if (axis == static_cast<int>(sh.size())) {
      double x = v[static_cast<size_t>(base)];
      if (is_floating(dtype()))
        os << x;
      else
        os << static_cast<int64_t>(x);
      return;
    }
    int64_t n = sh[axis];
    int64_t inner = 1;
    for (size_t k = axis + 1; k < sh.size(); ++k) inner *= sh[k];
    os << "[";
    for (int64_t i = 0; i < n; ++i) {
      if (n > 2 * kEdge && i == kEdge) {
        os << "..., ";
        i = n - kEdge;
      }
      rec(axis + 1, base + i * inner);
      if (i + 1 < n) os << (axis + 1 == static_cast<int>(sh.size()) ? ", " : ",\n");
    }
    os << "]";
  };
  os << "array(";
  rec(0, 0);
  os << ", dtype=" << dtype_name(dtype()) << ")";
  return os.str();
}

}  // namespace qmm
