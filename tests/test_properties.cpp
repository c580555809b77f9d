// Property tests (RapidCheck): invariants over randomly drawn shapes, modes and data.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <numeric>

#include "core/formats.h"
#include "test_util.h"

using namespace qmm_test;
using qmm::Array;
using qmm::Dtype;

namespace {

ModeCase any_mode() { return *rc::gen::elementOf(all_modes()); }

// Normal data at a random magnitude. float16 products of two 1e-3 values would be float16
// subnormals, whose rounding is absolute, not relative: matmul properties use `moderate`.
Array normal(Shape s, Dtype t = Dtype::float32, bool moderate = false) {
  float std =
      moderate ? *rc::gen::element(0.1f, 1.0f, 10.0f) : *rc::gen::element(1e-3f, 1.0f, 50.0f);
  return Array::random_normal(std::move(s), t, *rc::gen::arbitrary<uint32_t>(), 0.0f, std);
}

}  // namespace

// Packing is a bijection: codes -> words -> codes and words -> codes -> words are identities.
RC_GTEST_PROP(Properties, PackingIsABijection, ()) {
  const int bits = *rc::gen::element(2, 3, 4, 5, 6, 8);
  const int groups = *rc::gen::inRange(1, 5);
  const int n = 32 * groups;  // a whole number of words for every bit width
  auto codes = *rc::gen::container<std::vector<uint8_t>>(
      n, rc::gen::inRange<uint8_t>(0, static_cast<uint8_t>((1 << bits) - 1) + 1));
  std::vector<uint32_t> words(n * bits / 32);
  qmm::core::pack_codes(codes.data(), n, bits, words.data());
  for (int j = 0; j < n; ++j) RC_ASSERT(qmm::core::unpack_code(words.data(), j, bits) == codes[j]);
  auto random_words =
      *rc::gen::container<std::vector<uint32_t>>(words.size(), rc::gen::arbitrary<uint32_t>());
  std::vector<uint8_t> back(n);
  for (int j = 0; j < n; ++j)
    back[j] = static_cast<uint8_t>(qmm::core::unpack_code(random_words.data(), j, bits));
  std::vector<uint32_t> repacked(words.size());
  qmm::core::pack_codes(back.data(), n, bits, repacked.data());
  RC_ASSERT(repacked == random_words);
}

// Affine round trip: every element whose code was not clamped is within |scale|/2 of its
// original value (rounding to the nearest code); clamped ones (the far extreme, whose code MLX's
// scale re-fit can push up to n_bins + 1) are within |scale|, the bound MLX's own test uses.
RC_GTEST_PROP(Properties, AffineRoundTripError, ()) {
  const int gs = *rc::gen::element(32, 64, 128);
  const int bits = *rc::gen::element(2, 3, 4, 5, 6, 8);
  const int64_t rows = *rc::gen::inRange(1, 6), groups = *rc::gen::inRange(1, 4);
  Array w = normal({rows, groups * gs});
  auto q = qmm::quantize(w, gs, bits);
  auto wv = w.to_vector<float>();
  auto deq = qmm::dequantize(q.w_q, q.scales, q.biases, gs, bits).to_vector<float>();
  auto s = q.scales.to_vector<float>();
  auto words = q.w_q.to_vector<uint32_t>();
  const int64_t cols = groups * gs, wpr = cols * bits / 32;
  const uint32_t top = (1u << bits) - 1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double scale = std::abs(s[r * groups + c / gs]);
      const double err = std::abs(static_cast<double>(wv[r * cols + c]) - deq[r * cols + c]);
      const uint32_t code = qmm::core::unpack_code(&words[r * wpr], c, bits);
      const double slack = 1e-6 * (std::abs(wv[r * cols + c]) + scale);  // float32 arithmetic
      if (code > 0 && code < top) {
        RC_ASSERT(err <= scale / 2 + slack);
      } else {
        RC_ASSERT(err <= scale + slack);
      }
    }
}

// quantized_matmul equals x @ dequantize(w) (float64) within Decision 2's tolerance.
RC_GTEST_PROP(Properties, QmmEqualsDequantizeThenMatmul, ()) {
  const ModeCase c = any_mode();
  const bool transpose = *rc::gen::arbitrary<bool>();
  const Dtype dt = *rc::gen::element(Dtype::float32, Dtype::float16, Dtype::bfloat16);
  const int64_t M = *rc::gen::inRange(1, 20), groups = *rc::gen::inRange(1, 4);
  const int64_t other =
      transpose ? *rc::gen::inRange(1, 40) : c.group_size * *rc::gen::inRange(1, 3);
  const int64_t K = transpose ? groups * c.group_size : *rc::gen::inRange(1, 40);
  const int64_t N = transpose ? other : other;
  Array x = normal({M, K}, dt, true);
  Array w = normal(transpose ? Shape{N, K} : Shape{K, N}, dt, true);
  auto q = qmm::quantize(w, c.group_size, c.bits, c.mode);
  Array y =
      qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, transpose, c.group_size, c.bits, c.mode);
  const Array w_deq = dequant_f32(q, c.group_size, c.bits, c.mode);
  auto ref = reference_qmm(x, w_deq, transpose);
  // Relative to sum |x| |w| per output: with M = N = 1 a single cancelling output would
  // otherwise fail float32's 1e-5 by accumulation rounding alone (seen: 2.9e-4, 3-bit).
  const double err =
      rel_to_magnitude(y.to_double_vector(), ref, reference_qmm(x, w_deq, transpose, true));
  RC_LOG() << case_name(c) << " " << qmm::dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K
           << " transpose=" << transpose << " err=" << err << "\n";
  RC_ASSERT(err <= tolerance(dt));
}

// gather_qmm equals a loop of quantized_matmul over the index pairs.
RC_GTEST_PROP(Properties, GatherEqualsLoopOfQmm, ()) {
  const ModeCase c = any_mode();
  const int64_t E = *rc::gen::inRange(1, 5), B = *rc::gen::inRange(1, 5),
                P = *rc::gen::inRange(1, 9);
  const int64_t M = *rc::gen::inRange(1, 4), N = *rc::gen::inRange(1, 20),
                K = c.group_size * *rc::gen::inRange(1, 3);
  Array x = normal({B, M, K});
  auto q = qmm::quantize(normal({E, N, K}), c.group_size, c.bits, c.mode);
  auto lhs = *rc::gen::container<std::vector<int32_t>>(
      P, rc::gen::inRange<int32_t>(0, static_cast<int32_t>(B)));
  auto rhs = *rc::gen::container<std::vector<int32_t>>(
      P, rc::gen::inRange<int32_t>(0, static_cast<int32_t>(E)));
  Array y = qmm::gather_qmm(x, q.w_q, q.scales, q.biases, Array::from_vector(lhs, {P}),
                            Array::from_vector(rhs, {P}), true, c.group_size, c.bits, c.mode);
  auto yv = y.to_double_vector();
  for (int64_t i = 0; i < P; ++i) {
    Array xi = x.slice(0, lhs[i], lhs[i] + 1).reshape({M, K});
    auto sl = [&](const Array& a) {
      return a.slice(0, rhs[i], rhs[i] + 1).reshape({a.shape(1), a.shape(2)});
    };
    std::optional<Array> bi;
    if (q.biases) bi = sl(*q.biases);
    const qmm::Quantized qi{sl(q.w_q), sl(q.scales), bi};
    auto yi =
        qmm::quantized_matmul(xi, qi.w_q, qi.scales, qi.biases, true, c.group_size, c.bits, c.mode)
            .to_double_vector();
    std::vector<double> part(yv.begin() + i * M * N, yv.begin() + (i + 1) * M * N);
    // Kernels may be chosen by problem size (GEMV for few rows, blocked GEMM for many), so the
    // two sides can sum in different orders: equal within Decision 2's float32 tolerance,
    // relative to sum |x| |w| per output (a single cancelling output fails a plain relative
    // norm on rare seeds, e.g. seed=13759585835379301666).
    const auto scale =
        reference_qmm(xi, dequant_f32(qi, c.group_size, c.bits, c.mode), true, /*magnitude=*/true);
    RC_ASSERT(rel_to_magnitude(part, yi, scale) <= 1e-5);
  }
}

// The sorted hint never changes the result, whether or not the indices really are sorted.
RC_GTEST_PROP(Properties, SortedHintNeverChangesResults, ()) {
  const ModeCase c = any_mode();
  const int64_t E = *rc::gen::inRange(1, 6), P = *rc::gen::inRange(1, 40),
                N = *rc::gen::inRange(1, 24);
  const int64_t K = c.group_size * *rc::gen::inRange(1, 3);
  auto rhs = *rc::gen::container<std::vector<int32_t>>(
      P, rc::gen::inRange<int32_t>(0, static_cast<int32_t>(E)));
  if (*rc::gen::arbitrary<bool>()) std::sort(rhs.begin(), rhs.end());
  Array x = normal({P, 1, K});
  auto q = qmm::quantize(normal({E, N, K}), c.group_size, c.bits, c.mode);
  Array r = Array::from_vector(rhs, {P});
  auto a =
      qmm::gather_qmm(x, q.w_q, q.scales, q.biases, {}, r, true, c.group_size, c.bits, c.mode, true)
          .to_vector<float>();
  auto b = qmm::gather_qmm(x, q.w_q, q.scales, q.biases, {}, r, true, c.group_size, c.bits, c.mode,
                           false)
               .to_vector<float>();
  RC_ASSERT(a == b);
}

// Results are bit-identical for any thread count (static partition).
TEST(Properties, ThreadCountDoesNotChangeResults) {
  Array x = Array::random_normal({37, 512}, Dtype::float32, 5);
  auto q = qmm::quantize(Array::random_normal({300, 512}, Dtype::float32, 6));
  const int before = qmm::num_threads();
  qmm::set_num_threads(1);
  auto one = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases).to_vector<float>();
  auto q1 =
      qmm::quantize(Array::random_normal({300, 512}, Dtype::float32, 6)).w_q.to_vector<uint32_t>();
  qmm::set_num_threads(3);
  auto three = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases).to_vector<float>();
  auto q3 =
      qmm::quantize(Array::random_normal({300, 512}, Dtype::float32, 6)).w_q.to_vector<uint32_t>();
  qmm::set_num_threads(before);
  EXPECT_EQ(one, three);
  EXPECT_EQ(q1, q3);
}
