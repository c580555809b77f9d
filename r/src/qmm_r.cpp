// R glue for qmm over its public C++ API (include/qmm/*.h) only.
//
// Arrays cross into R as external pointers of class "mlx" that own a heap copy of a qmm::Array
// (a reference-counted handle); the finalizer frees the copy. Shapes seen from R are MLX shapes:
// R stores arrays column-major, so data is converted at the boundary by reading R's memory as
// the axis-reversed C-order array and reversing the axes back (a copy), never by changing what
// an op computes. Every C++ exception becomes an R error carrying the core's message (cpp11's
// BEGIN_CPP11/END_CPP11 in the generated cpp11.cpp).
#include <cpp11.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qmm/qmm.h"

namespace {

using ArrayPtr = cpp11::external_pointer<qmm::Array>;
using StreamPtr = cpp11::external_pointer<qmm::Stream>;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

SEXP wrap_array(qmm::Array a) {
  ArrayPtr p(new qmm::Array(std::move(a)));
  cpp11::sexp out(p);
  cpp11::sexp cls = cpp11::as_sexp("mlx");
  Rf_setAttrib(out, R_ClassSymbol, cls);
  return out;
}

const qmm::Array& get_array(SEXP s, const char* name) {
  if (TYPEOF(s) != EXTPTRSXP || !Rf_inherits(s, "mlx"))
    fail(std::string(name) + " must be an mlx array.");
  auto* p = static_cast<qmm::Array*>(R_ExternalPtrAddr(s));
  if (p == nullptr || !p->valid())
    fail(std::string(name) +
         " is a released mlx array (arrays do not survive saveRDS() or a new R session).");
  return *p;
}

std::optional<qmm::Array> get_optional_array(SEXP s, const char* name) {
  if (Rf_isNull(s)) return std::nullopt;
  return get_array(s, name);
}

std::optional<int> get_optional_int(SEXP s, const char* name) {
  if (Rf_isNull(s)) return std::nullopt;
  if (Rf_length(s) != 1) fail(std::string(name) + " must be a single integer or NULL.");
  double v = Rf_asReal(s);
  if (std::isnan(v) || v != std::floor(v) || std::fabs(v) > 1e9)
    fail(std::string(name) + " must be a single integer or NULL.");
  return static_cast<int>(v);
}

// "cpu", "gpu", "gpu:N" or the external pointer of an mlx_stream; NULL means the default device.
qmm::StreamOrDevice get_where(SEXP s) {
  if (Rf_isNull(s)) return {};
  if (TYPEOF(s) == STRSXP && Rf_length(s) == 1)
    return qmm::parse_device(cpp11::as_cpp<std::string>(s));
  if (TYPEOF(s) == EXTPTRSXP) {
    auto* st = static_cast<qmm::Stream*>(R_ExternalPtrAddr(s));
    if (st == nullptr) fail("device is a released mlx_stream.");
    return *st;
  }
  fail("device must be \"cpu\", \"gpu\" or an mlx_stream.");
}

qmm::Device where_device(const qmm::StreamOrDevice& w) { return qmm::to_stream(w).device(); }

std::string device_name(qmm::Device d) {
  if (d.type == qmm::DeviceType::cpu) return "cpu";
  return d.index == 0 ? "gpu" : "gpu:" + std::to_string(d.index);
}

// The array with its axes in reverse order (a view; a no-op below two dimensions).
qmm::Array reverse_axes(qmm::Array a) {
  int n = a.ndim();
  for (int i = 0; i < n / 2; ++i) a = a.swapaxes(i, n - 1 - i);
  return a;
}

qmm::Shape to_shape(const cpp11::doubles& dims) {
  qmm::Shape s;
  for (double d : dims) {
    if (std::isnan(d) || d < 0 || d != std::floor(d) || d > 9.0e15)
      fail("Shape entries must be non-negative integers.");
    s.push_back(static_cast<int64_t>(d));
  }
  return s;
}

template <class T>
std::vector<T> integral_values(SEXP data, double lo, double hi, const std::string& dtype) {
  R_xlen_t n = Rf_xlength(data);
  std::vector<T> out(static_cast<size_t>(n));
  auto check = [&](double v, R_xlen_t i) {
    if (std::isnan(v) || v != std::floor(v) || v < lo || v > hi)
      fail("Value at position " + std::to_string(i + 1) + " cannot be stored as " + dtype +
           " (integers in [" + std::to_string(static_cast<long long>(lo)) + ", " +
           std::to_string(static_cast<long long>(hi)) + "] only, no NA).");
  };
  if (TYPEOF(data) == REALSXP) {
    const double* p = REAL(data);
    for (R_xlen_t i = 0; i < n; ++i) {
      check(p[i], i);
      out[static_cast<size_t>(i)] = static_cast<T>(p[i]);
    }
  } else {
    const int* p = TYPEOF(data) == INTSXP ? INTEGER(data) : LOGICAL(data);
    for (R_xlen_t i = 0; i < n; ++i) {
      double v = p[i] == NA_INTEGER ? NAN : static_cast<double>(p[i]);
      check(v, i);
      out[static_cast<size_t>(i)] = static_cast<T>(p[i]);
    }
  }
  return out;
}

}  // namespace

// R vector (double, integer or logical; column-major with R dims `dims`) -> mlx array of shape
// `dims` and dtype `dtype` on `device`.
[[cpp11::register]] SEXP cpp_array_from_r(SEXP data, cpp11::doubles dims, std::string dtype,
                                          SEXP device) {
  if (TYPEOF(data) != REALSXP && TYPEOF(data) != INTSXP && TYPEOF(data) != LGLSXP)
    fail("mlx_array() needs a numeric, integer or logical R object.");
  qmm::Shape shape = to_shape(dims);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != static_cast<int64_t>(Rf_xlength(data)))
    fail("The data has " + std::to_string(Rf_xlength(data)) + " elements but the shape " +
         qmm::shape_to_string(shape) + " needs " + std::to_string(n) + ".");
  qmm::Dtype t = qmm::parse_dtype(dtype);
  qmm::Device dev = where_device(get_where(device));
  qmm::Shape rshape(shape.rbegin(), shape.rend());  // R's memory, read as a C-order array

  qmm::Array host;
  R_xlen_t len = Rf_xlength(data);
  if (qmm::is_floating(t)) {
    std::vector<float> v(static_cast<size_t>(len));
    if (TYPEOF(data) == REALSXP) {
      const double* p = REAL(data);
      for (R_xlen_t i = 0; i < len; ++i) v[static_cast<size_t>(i)] = static_cast<float>(p[i]);
    } else {
      const int* p = TYPEOF(data) == INTSXP ? INTEGER(data) : LOGICAL(data);
      for (R_xlen_t i = 0; i < len; ++i)
        v[static_cast<size_t>(i)] =
            p[i] == NA_INTEGER ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(p[i]);
    }
    host = qmm::Array::from_vector(v, rshape);
  } else if (t == qmm::Dtype::int32) {
    host = qmm::Array::from_vector(
        integral_values<int32_t>(data, -2147483647.0, 2147483647.0, dtype), rshape);
  } else if (t == qmm::Dtype::int64) {
    host = qmm::Array::from_vector(
        integral_values<int64_t>(data, -9007199254740992.0, 9007199254740992.0, dtype), rshape);
  } else if (t == qmm::Dtype::uint32) {
    host =
        qmm::Array::from_vector(integral_values<uint32_t>(data, 0.0, 4294967295.0, dtype), rshape);
  } else if (t == qmm::Dtype::uint8) {
    host = qmm::Array::from_vector(integral_values<uint8_t>(data, 0.0, 255.0, dtype), rshape);
  } else {
    fail("Unsupported dtype " + dtype + ".");
  }
  qmm::Array out = reverse_axes(host);
  out = out.dtype() == t ? out.contiguous() : out.astype(t);
  if (!(dev == qmm::Device::cpu())) out = out.to(dev);
  return wrap_array(std::move(out));
}

// mlx array -> R vector in column-major order (the caller sets dim). Integer dtypes that fit
// (int32, uint8) come back as R integers, everything else as doubles.
[[cpp11::register]] SEXP cpp_array_to_r(SEXP x) {
  const qmm::Array& a = get_array(x, "x");
  qmm::Array c = reverse_axes(a);
  std::vector<double> v = c.to_double_vector();  // contiguous copy in C order, then converted
  if (a.dtype() == qmm::Dtype::int32 || a.dtype() == qmm::Dtype::uint8) {
    cpp11::writable::integers out(static_cast<R_xlen_t>(v.size()));
    for (size_t i = 0; i < v.size(); ++i) out[static_cast<R_xlen_t>(i)] = static_cast<int>(v[i]);
    return out;
  }
  cpp11::writable::doubles out(static_cast<R_xlen_t>(v.size()));
  std::copy(v.begin(), v.end(), REAL(out.data()));
  return out;
}

[[cpp11::register]] cpp11::doubles cpp_array_shape(SEXP x) {
  const qmm::Array& a = get_array(x, "x");
  cpp11::writable::doubles out(static_cast<R_xlen_t>(a.ndim()));
  for (int i = 0; i < a.ndim(); ++i) out[i] = static_cast<double>(a.shape()[i]);
  return out;
}

[[cpp11::register]] std::string cpp_array_dtype(SEXP x) {
  return std::string(qmm::dtype_name(get_array(x, "x").dtype()));
}

[[cpp11::register]] std::string cpp_array_device(SEXP x) {
  return device_name(get_array(x, "x").device());
}

[[cpp11::register]] std::string cpp_array_to_string(SEXP x) {
  return get_array(x, "x").to_string();
}

[[cpp11::register]] bool cpp_array_is_valid(SEXP x) {
  if (TYPEOF(x) != EXTPTRSXP) return false;
  auto* p = static_cast<qmm::Array*>(R_ExternalPtrAddr(x));
  return p != nullptr && p->valid();
}

// A converted (dtype) and/or moved (device) copy; NULL keeps the array's own.
[[cpp11::register]] SEXP cpp_array_convert(SEXP x, SEXP dtype, SEXP device) {
  qmm::Array a = get_array(x, "x");
  if (!Rf_isNull(dtype)) {
    qmm::Dtype t = qmm::parse_dtype(cpp11::as_cpp<std::string>(dtype));
    if (t != a.dtype()) a = a.astype(t);
  }
  if (!Rf_isNull(device)) {
    qmm::Device d = where_device(get_where(device));
    if (!(d == a.device())) a = a.to(d);
  }
  return wrap_array(std::move(a));
}

// A reshaped array (a view when possible): the new shape is read in MLX (C) order.
[[cpp11::register]] SEXP cpp_array_reshape(SEXP x, cpp11::doubles dims) {
  qmm::Shape s;
  for (double d : dims) {
    if (std::isnan(d) || d < -1 || d != std::floor(d) || d > 9.0e15)
      fail("Shape entries must be non-negative integers or -1.");
    s.push_back(static_cast<int64_t>(d));
  }
  return wrap_array(get_array(x, "x").reshape(std::move(s)));
}

[[cpp11::register]] SEXP cpp_random_normal(cpp11::doubles dims, std::string dtype, double seed,
                                           double mean, double sd, SEXP device) {
  qmm::Device dev = where_device(get_where(device));
  if (!(seed >= 0) || seed > 18446744073709549568.0) fail("seed must be a non-negative number.");
  return wrap_array(qmm::Array::random_normal(to_shape(dims), qmm::parse_dtype(dtype),
                                              static_cast<uint64_t>(seed), static_cast<float>(mean),
                                              static_cast<float>(sd), dev));
}

[[cpp11::register]] SEXP cpp_quantize(SEXP w, SEXP group_size, SEXP bits, std::string mode,
                                      SEXP device) {
  qmm::Quantized q =
      qmm::quantize(get_array(w, "w"), get_optional_int(group_size, "group_size"),
                    get_optional_int(bits, "bits"), mode, std::nullopt, get_where(device));
  cpp11::writable::list out(3);
  out[0] = wrap_array(q.w_q);
  out[1] = wrap_array(q.scales);
  out[2] = q.biases ? wrap_array(*q.biases) : R_NilValue;
  out.names() = {"w_q", "scales", "biases"};
  return out;
}

[[cpp11::register]] SEXP cpp_dequantize(SEXP w, SEXP scales, SEXP biases, SEXP group_size,
                                        SEXP bits, std::string mode, SEXP dtype, SEXP device) {
  std::optional<qmm::Dtype> t;
  if (!Rf_isNull(dtype)) t = qmm::parse_dtype(cpp11::as_cpp<std::string>(dtype));
  return wrap_array(qmm::dequantize(
      get_array(w, "w"), get_array(scales, "scales"), get_optional_array(biases, "biases"),
      get_optional_int(group_size, "group_size"), get_optional_int(bits, "bits"), mode,
      std::nullopt, t, get_where(device)));
}

[[cpp11::register]] SEXP cpp_quantized_matmul(SEXP x, SEXP w, SEXP scales, SEXP biases,
                                              bool transpose, SEXP group_size, SEXP bits,
                                              std::string mode, SEXP device) {
  return wrap_array(qmm::quantized_matmul(
      get_array(x, "x"), get_array(w, "w"), get_optional_array(scales, "scales"),
      get_optional_array(biases, "biases"), transpose, get_optional_int(group_size, "group_size"),
      get_optional_int(bits, "bits"), mode, get_where(device)));
}

// Indices arrive 0-based: the R wrapper has already subtracted 1.
[[cpp11::register]] SEXP cpp_gather_qmm(SEXP x, SEXP w, SEXP scales, SEXP biases, SEXP lhs_indices,
                                        SEXP rhs_indices, bool transpose, SEXP group_size,
                                        SEXP bits, std::string mode, bool sorted_indices,
                                        SEXP device) {
  return wrap_array(qmm::gather_qmm(
      get_array(x, "x"), get_array(w, "w"), get_optional_array(scales, "scales"),
      get_optional_array(biases, "biases"), get_optional_array(lhs_indices, "lhs_indices"),
      get_optional_array(rhs_indices, "rhs_indices"), transpose,
      get_optional_int(group_size, "group_size"), get_optional_int(bits, "bits"), mode,
      sorted_indices, get_where(device)));
}

[[cpp11::register]] std::string cpp_default_device() { return device_name(qmm::default_device()); }

[[cpp11::register]] void cpp_set_default_device(std::string name) {
  qmm::set_default_device(qmm::parse_device(name));
}

[[cpp11::register]] bool cpp_device_available(std::string name) {
  return qmm::is_available(qmm::parse_device(name));
}

// A new stream: returns list(ptr, device, index).
[[cpp11::register]] cpp11::list cpp_new_stream(std::string name) {
  qmm::Stream s = qmm::new_stream(qmm::parse_device(name));
  StreamPtr p(new qmm::Stream(s));
  cpp11::writable::list out(3);
  out[0] = p;
  out[1] = cpp11::as_sexp(device_name(s.device()));
  out[2] = cpp11::as_sexp(s.index());
  out.names() = {"ptr", "device", "index"};
  return out;
}

[[cpp11::register]] void cpp_synchronize(SEXP device) {
  qmm::synchronize(qmm::to_stream(get_where(device)));
}

[[cpp11::register]] int cpp_num_threads(SEXP n) {
  if (!Rf_isNull(n)) {
    auto v = get_optional_int(n, "n");
    if (*v < 1) fail("n must be a positive integer.");
    qmm::set_num_threads(*v);
  }
  return qmm::num_threads();
}

[[cpp11::register]] std::string cpp_version() { return qmm::version(); }
