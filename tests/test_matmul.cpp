// quantized_matmul and gather_qmm against a float64 reference (mlx-semantics.md §14, Decision 2):
// MLX's test catalogue for the matmul and gather cases, every mode/bits/group/dtype, edge shapes
// and qmm's broadcasting rules.
#include <gtest/gtest.h>

#include <numeric>

#include "test_util.h"

using namespace qmm_test;
using qmm::Array;
using qmm::Dtype;

namespace {

uint64_t g_seed = 1000;
Array randn(Shape s, Dtype t = Dtype::float32, float std = 1.0f) {
  return Array::random_normal(std::move(s), t, ++g_seed, 0.0f, std);
}

// Quantizes a random w laid out for `transpose`, runs quantized_matmul and checks it against
// the float64 reference; returns the relative error.
double check_qmm(const Shape& x_shape, const Shape& w_shape, bool transpose, const ModeCase& c,
                 Dtype dtype = Dtype::float32) {
  const int64_t K = x_shape.back();
  Array x = randn(x_shape, dtype, 1.0f / std::sqrt(static_cast<float>(K)));
  Array w = randn(w_shape, dtype, 1.0f / std::sqrt(static_cast<float>(K)));
  auto q = qmm::quantize(w, c.group_size, c.bits, c.mode);
  Array y =
      qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, transpose, c.group_size, c.bits, c.mode);
  auto ref = reference_qmm(x, dequant_f32(q, c.group_size, c.bits, c.mode), transpose);
  EXPECT_EQ(y.dtype(), dtype);
  auto got = y.to_double_vector();
  EXPECT_EQ(got.size(), ref.size());
  double err = rel_frobenius(got, ref);
  EXPECT_LE(err, tolerance(dtype)) << case_name(c) << " dtype " << qmm::dtype_name(dtype) << " x "
                                   << qmm::shape_to_string(x_shape) << " w "
                                   << qmm::shape_to_string(w_shape) << " transpose " << transpose;
  return err;
}

}  // namespace

// §14 #6 test_qmm: gs × bits {2,4,8} × M × N × K × transpose, float32.
TEST(QuantizedMatmul, MlxTestQmm) {
  for (int gs : {128, 64, 32})
    for (int bits : {2, 4, 8})
      for (int64_t M : {8, 32, 33, 64})
        for (int64_t N : {128, 256})
          for (int64_t K : {128, 256})
            for (bool t : {true, false}) {
              Shape ws = t ? Shape{N, K} : Shape{K, N};
              check_qmm({M, K}, ws, t, {"affine", gs, bits});
            }
}

// Every legal (mode, group, bits) × activation dtype × transpose at awkward sizes: M = 1 and
// M not a multiple of anything, N odd, K a single group and several.
TEST(QuantizedMatmul, EveryModeAndDtype) {
  for (const auto& c : all_modes())
    for (Dtype dt : {Dtype::float32, Dtype::float16, Dtype::bfloat16})
      for (int64_t M : {1, 3, 17}) {
        int64_t K = c.group_size * 3;
        check_qmm({M, K}, {67, K}, true, c, dt);
        check_qmm({M, K}, {c.group_size, K}, true, c, dt);
        check_qmm({M, 7}, {7, c.group_size * 2}, false, c,
                  dt);  // groups along N when not transposed
      }
}

// §14 #7 test_qmm_large_dims (the heaviest case trimmed to stay fast on 2 cores).
TEST(QuantizedMatmul, LargeDims) {
  check_qmm({16, 128}, {32840, 128}, true, {"affine", 64, 4});
  check_qmm({33, 128}, {32840, 128}, true, {"affine", 64, 4});
  check_qmm({3300, 128}, {64, 128}, true, {"affine", 64, 4});
}

// §14 #12 test_qmm_shapes and #23/#24/#25 small and non-multiple shapes.
TEST(QuantizedMatmul, MlxShapes) {
  ModeCase c{"affine", 64, 4};
  check_qmm({3, 256}, {32, 256}, true, c);
  check_qmm({2, 1, 7, 256}, {32, 256}, true, c);
  check_qmm({3, 256}, {256, 256}, false, c);
  check_qmm({2, 1, 7, 256}, {256, 256}, false, c);
  check_qmm({3, 1, 256}, {8, 256}, true, c);
  check_qmm({3, 4, 256}, {1, 8, 256}, true, c);
  check_qmm({3, 10, 256}, {3, 8, 256}, true, c);
  check_qmm({3, 1, 8}, {3, 8, 256}, false, c);
  for (int64_t M : {1, 10}) {
    check_qmm({M, 256}, {33, 256}, true, c);
    check_qmm({M, 33}, {33, 256}, false, c);
    check_qmm({M, 256}, {3, 256}, true, c);
  }
  check_qmm({129, 256}, {99, 256}, true, c);
  for (ModeCase m :
       {ModeCase{"affine", 32, 4}, ModeCase{"affine", 32, 6}, ModeCase{"nvfp4", 16, 4}}) {
    check_qmm({1, 32}, {3, 32}, true, m);
    check_qmm({2, 32}, {10, 32}, true, m);
    check_qmm({4, 32}, {7, 32}, true, m);
  }
}

// §14 #18: 1-D x with transpose=False, and 1-D x with a transposed weight.
TEST(QuantizedMatmul, VectorX) {
  Array x = randn({2048}, Dtype::float32, 0.02f);
  Array w = randn({2048, 512}, Dtype::float32, 0.02f);
  auto q = qmm::quantize(w, 32, 8);
  Array y = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, false, 32, 8);
  EXPECT_EQ(y.shape(), (Shape{512}));
  auto ref = reference_qmm(x, dequant_f32(q, 32, 8, "affine"), false);
  EXPECT_LE(rel_frobenius(y.to_double_vector(), ref), 1e-5);
  check_qmm({256}, {40, 256}, true, {"mxfp4", 32, 4});
}

// Batch broadcasting: qmm broadcasts x and w batch axes like matmul, including a 2-D x with a
// batched w (MLX silently uses w[0] there; Decision 3).
TEST(QuantizedMatmul, BatchBroadcasting) {
  ModeCase c{"affine", 64, 4};
  check_qmm({2, 1, 5, 128}, {3, 16, 128}, true, c);
  check_qmm({2, 3, 5, 128}, {3, 16, 128}, true, c);
  check_qmm({5, 128}, {3, 16, 128}, true, c);
  check_qmm({4, 1, 5, 128}, {1, 2, 16, 128}, true, c);
  check_qmm({2, 1, 5, 64}, {3, 64, 128}, false, c);
  check_qmm({128}, {3, 16, 128}, true, c);
  Array x = randn({5, 128});
  auto q = qmm::quantize(randn({3, 16, 128}));
  EXPECT_EQ(qmm::quantized_matmul(x, q.w_q, q.scales, q.biases).shape(), (Shape{3, 5, 16}));
  EXPECT_EQ(qmm::quantized_matmul(randn({128}), q.w_q, q.scales, q.biases).shape(), (Shape{3, 16}));
}

// Output dtype: affine promotes x with the scales' dtype; fp modes keep x's dtype (§14 #27).
TEST(QuantizedMatmul, DtypePromotion) {
  Array w = randn({16, 128});
  auto q16 = qmm::quantize(w.astype(Dtype::float16));
  Array xb = randn({2, 128}, Dtype::bfloat16);
  Array y = qmm::quantized_matmul(xb, q16.w_q, q16.scales, q16.biases);
  EXPECT_EQ(y.dtype(), Dtype::float32);  // bfloat16 with float16 needs float32
  auto ref = reference_qmm(xb, dequant_f32(q16, 64, 4, "affine"), true);
  EXPECT_LE(rel_frobenius(y.to_double_vector(), ref), 1e-5);
  auto q32 = qmm::quantize(w);
  Array xi = Array::from_vector(std::vector<int32_t>(256, 2), {2, 128});
  Array yi = qmm::quantized_matmul(xi, q32.w_q, q32.scales, q32.biases);
  EXPECT_EQ(yi.dtype(), Dtype::float32);  // integer x is cast to the scales' type
  EXPECT_LE(rel_frobenius(yi.to_double_vector(),
                          reference_qmm(xi, dequant_f32(q32, 64, 4, "affine"), true)),
            1e-5);
  for (const char* mode : {"mxfp8", "mxfp4", "nvfp4"})
    for (Dtype dt : {Dtype::bfloat16, Dtype::float16, Dtype::float32}) {
      auto qf = qmm::quantize(randn({32, 256}), {}, {}, mode);
      Array yf =
          qmm::quantized_matmul(randn({32, 256}, dt), qf.w_q, qf.scales, {}, true, {}, {}, mode);
      EXPECT_EQ(yf.dtype(), dt) << mode;
    }
}

// Automatic quantization when scales are absent equals quantize-then-matmul exactly.
TEST(QuantizedMatmul, AutomaticQuantization) {
  for (const auto& c : all_modes()) {
    Array x = randn({4, 2 * c.group_size});
    Array w = randn({24, 2 * c.group_size});
    Array y_auto =
        qmm::quantized_matmul(x, w, std::nullopt, std::nullopt, true, c.group_size, c.bits, c.mode);
    auto q = qmm::quantize(w, c.group_size, c.bits, c.mode);
    Array y =
        qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, true, c.group_size, c.bits, c.mode);
    EXPECT_EQ(y_auto.to_vector<float>(), y.to_vector<float>()) << case_name(c);
  }
}

// Strided and sliced inputs give the same result as contiguous copies.
TEST(QuantizedMatmul, StridedInputs) {
  Array x = randn({12, 256});
  auto q = qmm::quantize(randn({64, 256}));
  Array xs = x.slice(0, 2, 9);
  Array ws = q.w_q.slice(0, 8, 40), ss = q.scales.slice(0, 8, 40), bs = q.biases->slice(0, 8, 40);
  Array y1 = qmm::quantized_matmul(xs, ws, ss, bs);
  Array y2 =
      qmm::quantized_matmul(xs.contiguous(), ws.contiguous(), ss.contiguous(), bs.contiguous());
  EXPECT_EQ(y1.to_vector<float>(), y2.to_vector<float>());
  Array xt = randn({256, 5}).transpose_last2();
  EXPECT_LE(rel_frobenius(qmm::quantized_matmul(xt, q.w_q, q.scales, q.biases).to_double_vector(),
                          reference_qmm(xt, dequant_f32(q, 64, 4, "affine"), true)),
            1e-5);
}

// ---- gather_qmm ----------------------------------------------------------------------------

namespace {

// float64 reference of gather_qmm: a loop over the broadcast index pairs.
std::vector<double> reference_gather(const Array& x, const Array& w_deq,
                                     const std::vector<int64_t>& lhs,
                                     const std::vector<int64_t>& rhs, bool transpose) {
  auto xd = x.to_double_vector();
  auto wd = w_deq.to_double_vector();
  const int64_t M = x.shape(-2), K = x.shape(-1), R = w_deq.shape(-2), C = w_deq.shape(-1);
  const int64_t N = transpose ? R : C;
  std::vector<double> y;
  for (size_t i = 0; i < lhs.size(); ++i)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += xd[(lhs[i] * M + m) * K + k] *
                 (transpose ? wd[rhs[i] * R * C + n * C + k] : wd[rhs[i] * R * C + k * C + n]);
        y.push_back(acc);
      }
  return y;
}

struct GatherCase {
  Shape x_batch;
  std::optional<std::vector<int64_t>> lhs;
  Shape lhs_shape;
  Shape w_batch;
  std::optional<std::vector<int64_t>> rhs;
  Shape rhs_shape;
};

// Runs one gather case and checks values and output shape.
void check_gather(const GatherCase& g, int64_t M, int64_t N, int64_t K, bool transpose,
                  const ModeCase& c, Dtype dt = Dtype::float32) {
  Shape xs = g.x_batch, ws = g.w_batch;
  xs.insert(xs.end(), {M, K});
  if (transpose)
    ws.insert(ws.end(), {N, K});
  else
    ws.insert(ws.end(), {K, N});
  Array x = randn(xs, dt);
  auto q = qmm::quantize(randn(ws, dt), c.group_size, c.bits, c.mode);
  std::optional<Array> lhs, rhs;
  if (g.lhs) lhs = Array::from_vector(*g.lhs, g.lhs_shape);
  if (g.rhs) rhs = Array::from_vector(*g.rhs, g.rhs_shape);
  Array y = qmm::gather_qmm(x, q.w_q, q.scales, q.biases, lhs, rhs, transpose, c.group_size, c.bits,
                            c.mode);
  // Expand defaults and broadcast, independently of the library.
  Shape lb = g.lhs ? g.lhs_shape : g.x_batch, rb = g.rhs ? g.rhs_shape : g.w_batch;
  Shape I = broadcast(lb, rb);
  std::vector<int64_t> lv, rv;
  for (int64_t i = 0; i < numel(I); ++i) {
    int64_t li = broadcast_index(lb, I, i), ri = broadcast_index(rb, I, i);
    lv.push_back(g.lhs ? (*g.lhs)[li] : li);
    rv.push_back(g.rhs ? (*g.rhs)[ri] : ri);
  }
  Shape out = I;
  out.insert(out.end(), {M, N});
  EXPECT_EQ(y.shape(), out);
  auto ref = reference_gather(x, dequant_f32(q, c.group_size, c.bits, c.mode), lv, rv, transpose);
  EXPECT_LE(rel_frobenius(y.to_double_vector(), ref), tolerance(dt)) << case_name(c);
}

}  // namespace

// §14 #26 test_gather_qmm: the batch configurations × shapes × transpose, and fp modes.
TEST(GatherQmm, MlxTestGatherQmm) {
  using V = std::vector<int64_t>;
  std::vector<GatherCase> cases = {
      {{1}, V{0}, {1}, {3}, V{2, 1}, {2}},
      {{1}, std::nullopt, {}, {3}, V{2, 1}, {2}},
      {{2}, std::nullopt, {}, {3}, V{2, 1}, {2}},
      {{3}, V{0, 2}, {2}, {1}, V{0}, {1}},
      {{5}, V{0, 2}, {2}, {3}, V{2, 1}, {2}},
      {{4, 2}, V{7, 6, 5, 4, 1, 2}, {3, 2}, {4, 1}, V{2, 0, 1}, {3, 1}},
  };
  struct S {
    int64_t M, N, K;
    bool t;
  };
  for (S s : {S{1, 32, 128, true}, S{32, 32, 256, true}, S{1, 32, 256, true}, S{32, 32, 512, true},
              S{32, 256, 32, false}, S{1, 256, 32, false}, S{1, 512, 32, false}})
    for (const auto& g : cases) check_gather(g, s.M, s.N, s.K, s.t, {"affine", 32, 4});
  for (ModeCase c : {ModeCase{"nvfp4", 16, 4}, ModeCase{"mxfp4", 32, 4}, ModeCase{"mxfp8", 32, 8}})
    check_gather(cases[0], 32, 32, 256, true, c);
}

// §14 #30 test_gather_qmm_sorted, the MoE layout, every mode: sorted == unsorted, and the
// sorted hint with indices that are not sorted still gives the right answer (Decision 4).
TEST(GatherQmm, SortedEqualsUnsorted) {
  const int64_t L = 33, K = 256, D = 128, E = 4, I = 2;
  for (const auto& c :
       {ModeCase{"affine", 64, 4}, ModeCase{"affine", 32, 3}, ModeCase{"mxfp4", 32, 4},
        ModeCase{"nvfp4", 16, 4}, ModeCase{"mxfp8", 32, 8}})
    for (bool t : {true, false}) {
      Array x = randn({L, 1, 1, K});
      auto q = qmm::quantize(t ? randn({E, D, K}) : randn({E, K, D}), c.group_size, c.bits, c.mode);
      std::vector<int32_t> idx(L * I);
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>((i * 7 + i / 3) % E);
      Array rhs = Array::from_vector(idx, {L, I});
      Array y =
          qmm::gather_qmm(x, q.w_q, q.scales, q.biases, {}, rhs, t, c.group_size, c.bits, c.mode);
      EXPECT_EQ(y.shape(), (Shape{L, I, 1, D}));
      // Sorted form: flatten, order by expert, gather x rows.
      std::vector<int64_t> order(idx.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
      std::vector<int32_t> sidx;
      std::vector<int64_t> lhs;
      for (auto o : order) {
        sidx.push_back(idx[o]);
        lhs.push_back(o / I);
      }
      Array rs = Array::from_vector(sidx, {L * I});
      Array ls = Array::from_vector(lhs, {L * I});
      Array xs = x.reshape({L, 1, K});
      Array y_hint = qmm::gather_qmm(xs, q.w_q, q.scales, q.biases, ls, rs, t, c.group_size, c.bits,
                                     c.mode, true);
      Array y_plain = qmm::gather_qmm(xs, q.w_q, q.scales, q.biases, ls, rs, t, c.group_size,
                                      c.bits, c.mode, false);
      EXPECT_EQ(y_hint.to_vector<float>(), y_plain.to_vector<float>());
      // rhs-only sorted form (the hint applies): x rows gathered on the host.
      auto xv = x.to_vector<float>();
      std::vector<float> xg;
      for (auto l : lhs) xg.insert(xg.end(), xv.begin() + l * K, xv.begin() + (l + 1) * K);
      Array xg_a = Array::from_vector(xg, {L * I, 1, K});
      Array ys = qmm::gather_qmm(xg_a, q.w_q, q.scales, q.biases, {}, rs, t, c.group_size, c.bits,
                                 c.mode, true);
      Array yu = qmm::gather_qmm(xg_a, q.w_q, q.scales, q.biases, {}, rs, t, c.group_size, c.bits,
                                 c.mode, false);
      EXPECT_EQ(ys.to_vector<float>(), yu.to_vector<float>()) << case_name(c);
      auto yv = y.to_vector<float>(), ysv = ys.to_vector<float>();
      std::vector<double> back(yv.size()), yd(yv.begin(), yv.end());
      for (size_t i = 0; i < order.size(); ++i)
        for (int64_t n = 0; n < D; ++n) back[order[i] * D + n] = ysv[i * D + n];
      EXPECT_LE(rel_frobenius(back, yd), 1e-6) << case_name(c);
      // The hint with unsorted indices must not change the answer.
      Array y_lie = qmm::gather_qmm(xg_a, q.w_q, q.scales, q.biases, {}, rhs.reshape({L * I}), t,
                                    c.group_size, c.bits, c.mode, true);
      Array y_true = qmm::gather_qmm(xg_a, q.w_q, q.scales, q.biases, {}, rhs.reshape({L * I}), t,
                                     c.group_size, c.bits, c.mode, false);
      EXPECT_EQ(y_lie.to_vector<float>(), y_true.to_vector<float>()) << case_name(c);
    }
}

// §14 #29 test_gather_qmm_matrix_path and every activation dtype.
TEST(GatherQmm, MatrixPathAndDtypes) {
  using V = std::vector<int64_t>;
  GatherCase g{{3}, V{0, 1, 2}, {3}, {4}, V{0, 2, 3}, {3}};
  for (Dtype dt : {Dtype::float32, Dtype::bfloat16, Dtype::float16}) {
    check_gather(g, 64, 128, 256, true, {"affine", 64, 4}, dt);
    check_gather(g, 5, 128, 256, true, {"mxfp4", 32, 4}, dt);
  }
}
