// Helpers shared by the CPU tests: random inputs, a float64 reference written independently of
// the library's kernels, and error-norm checks.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qmm/qmm.h"

namespace qmm_test {

using qmm::Array;
using qmm::Dtype;
using qmm::Shape;

// Expects `stmt` to throw std::invalid_argument whose message contains `text`.
#define EXPECT_INVALID(stmt, text)                                              \
  do {                                                                          \
    try {                                                                       \
      (void)(stmt);                                                             \
      ADD_FAILURE() << "expected std::invalid_argument containing: " << (text); \
    } catch (const std::invalid_argument& e) {                                  \
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos)            \
          << "message: " << e.what() << "\nexpected to contain: " << (text);    \
    }                                                                           \
  } while (0)

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// ‖a − b‖_F / ‖b‖_F.
inline double rel_frobenius(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Bitwise equality of two arrays (any devices); any NaN equals any NaN, since MLX and the
// backends canonicalise NaN payloads differently.
inline ::testing::AssertionResult same_bits(const Array& got, const Array& want) {
  if (got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "dtype " << got.dtype() << " vs " << want.dtype();
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << qmm::shape_to_string(got.shape()) << " vs "
                                         << qmm::shape_to_string(want.shape());
  std::vector<uint8_t> a(got.nbytes()), b(want.nbytes());
  got.copy_to_host(a.data());
  want.copy_to_host(b.data());
  const size_t item = qmm::itemsize(got.dtype());
  const bool fl = qmm::is_floating(got.dtype());
  std::vector<double> da, db;
  if (fl) {
    da = got.to_double_vector();
    db = want.to_double_vector();
  }
  int64_t bad = 0, first = -1;
  const int64_t n = got.size();
  for (int64_t i = 0; i < n; ++i) {
    bool eq = std::memcmp(&a[i * item], &b[i * item], item) == 0 ||
              (fl && std::isnan(da[i]) && std::isnan(db[i]));
    if (!eq && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  auto f = ::testing::AssertionFailure();
  f << bad << " of " << n << " elements differ; first at " << first;
  if (fl) f << ": got " << da[first] << ", expected " << db[first];
  return f;
}

// The tolerance of mlx-semantics.md Decision 2 for an output dtype.
inline double tolerance(Dtype t) {
  switch (t) {
    case Dtype::float32: return 1e-5;
    case Dtype::float16: return 2e-3;
    default: return 1e-2;
  }
}

// Batch axes of a shape (all but the last two).
inline Shape batch_of(const Shape& s) {
  return Shape(s.begin(), s.end() - std::min<size_t>(2, s.size()));
}

// Broadcast two batch shapes (numpy rules).
inline Shape broadcast(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Flat index into `own` batch shape of the multi-index of flat position `b` in `out`.
inline int64_t broadcast_index(const Shape& own, const Shape& out, int64_t b) {
  int64_t idx = 0, stride = 1;
  for (size_t k = out.size(); k-- > 0;) {
    int64_t coord = b % out[k];
    b /= out[k];
    int64_t ko = static_cast<int64_t>(k) - static_cast<int64_t>(out.size() - own.size());
    if (ko >= 0) {
      int64_t d = own[ko];
      idx += (d == 1 ? 0 : coord) * stride;
      stride *= d;
    }
  }
  return idx;
}

// ‖a − b‖_F / ‖scale‖_F: the error relative to Σ|x|·|w| per output (`scale` from
// reference_qmm on |x| and |w|). A float32-accumulated dot product's error bound scales with
// Σ|x·w|, not with |Σ x·w|: an output that cancels to nearly zero can have a large error
// relative to itself without any bug, so checks on few outputs use this norm.
inline double rel_to_magnitude(const std::vector<double>& a, const std::vector<double>& b,
                               const std::vector<double>& scale) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += scale[i] * scale[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// float64 reference of quantized_matmul with qmm's broadcasting rules, computed from the
// float32 dequantized weights: y = x @ W^T (transpose) or x @ W.
// With `magnitude`, the sums of |x| * |w| instead (the scale of the rounding error bound).
inline std::vector<double> reference_qmm(const Array& x, const Array& w_deq, bool transpose,
                                         bool magnitude = false) {
  auto xd = x.to_double_vector();
  auto wd = w_deq.to_double_vector();
  if (magnitude) {
    for (auto& v : xd) v = std::fabs(v);
    for (auto& v : wd) v = std::fabs(v);
  }
  Shape xs = x.shape(), ws = w_deq.shape();
  if (xs.size() == 1) xs.insert(xs.begin(), 1);
  const int64_t M = xs[xs.size() - 2], K = xs.back();
  const int64_t R = ws[ws.size() - 2], C = ws.back();
  const int64_t N = transpose ? R : C;
  Shape xb = batch_of(xs), wb = batch_of(ws), ob = broadcast(xb, wb);
  const int64_t B = numel(ob);
  std::vector<double> y(static_cast<size_t>(B * M * N));
  for (int64_t b = 0; b < B; ++b) {
    int64_t xi = broadcast_index(xb, ob, b), wi = broadcast_index(wb, ob, b);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          double wv = transpose ? wd[wi * R * C + n * C + k] : wd[wi * R * C + k * C + n];
          acc += xd[(xi * M + m) * K + k] * wv;
        }
        y[(b * M + m) * N + n] = acc;
      }
  }
  return y;
}

// Dequantized weights as float32. Affine scales and biases are widened to float32 first, so
// s*q + b is the exact value the kernels use (dequantize itself rounds in the scales' dtype).
inline Array dequant_f32(const qmm::Quantized& q, int gs, int bits, const std::string& mode) {
  if (mode == "affine")
    return qmm::dequantize(q.w_q, q.scales.astype(Dtype::float32), q.biases->astype(Dtype::float32),
                           gs, bits, mode, std::nullopt, Dtype::float32);
  return qmm::dequantize(q.w_q, q.scales, q.biases, gs, bits, mode, std::nullopt, Dtype::float32);
}

struct ModeCase {
  std::string mode;
  int group_size;
  int bits;
};

// Every legal (mode, group size, bits).
inline std::vector<ModeCase> all_modes() {
  std::vector<ModeCase> v;
  for (int gs : {32, 64, 128})
    for (int b : {2, 3, 4, 5, 6, 8}) v.push_back({"affine", gs, b});
  v.push_back({"mxfp4", 32, 4});
  v.push_back({"mxfp8", 32, 8});
  v.push_back({"nvfp4", 16, 4});
  return v;
}

inline std::string case_name(const ModeCase& c) {
  return c.mode + "_g" + std::to_string(c.group_size) + "_b" + std::to_string(c.bits);
}

}  // namespace qmm_test
