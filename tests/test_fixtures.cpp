// qmm against MLX 0.32.4 itself: fixtures written by tests/fixtures/make_fixtures.py with the
// released mlx[cpu] wheel. quantize and dequantize must match bit for bit (Decision 1); matmul
// and gather results must match a float64 reference built from MLX's own stored tensors, and be
// close to MLX's own outputs (MLX accumulates in the output type, so those are looser).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "test_util.h"

using namespace qmm_test;
using qmm::Array;
using qmm::Dtype;

namespace fs = std::filesystem;

namespace {

std::vector<std::string> fixtures(const std::string& prefix) {
  std::vector<std::string> out;
  if (!fs::exists(QMM_FIXTURES_DIR)) return out;
  for (auto& e : fs::directory_iterator(QMM_FIXTURES_DIR)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".safetensors")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string meta(const qmm::io::SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  return it == f.metadata.end() ? "" : it->second;
}

std::optional<Array> get(const qmm::io::SafetensorsFile& f, const std::string& key) {
  auto it = f.tensors.find(key);
  if (it == f.tensors.end()) return std::nullopt;
  return it->second;
}

}  // namespace

TEST(MlxFixtures, FilesArePresent) {
  EXPECT_GE(fixtures("quant_").size(), 66u) << "run tests/fixtures/make_fixtures.py";
  EXPECT_GE(fixtures("qmm_").size(), 20u);
  EXPECT_GE(fixtures("gather_").size(), 10u);
}

// Every mode × bits × group × dtype: quantize and dequantize bit for bit.
TEST(MlxFixtures, QuantizeDequantizeBitExact) {
  int checked = 0;
  for (const auto& path : fixtures("quant_")) {
    SCOPED_TRACE(path);
    auto f = qmm::io::load_safetensors(path);
    const std::string mode = meta(f, "mode");
    const int bits = std::stoi(meta(f, "bits")), gs = std::stoi(meta(f, "group_size"));
    if (mode == "affine" && bits == 1) continue;  // MLX accepts 1-bit affine; qmm supports 2..8
    auto gscale = get(f, "global_scale");
    Array w = *get(f, "w");
    auto q = qmm::quantize(w, gs, bits, mode, gscale);
    EXPECT_TRUE(same_bits(q.w_q, *get(f, "w_q"))) << "w_q";
    EXPECT_TRUE(same_bits(q.scales, *get(f, "scales"))) << "scales";
    if (mode == "affine") EXPECT_TRUE(same_bits(*q.biases, *get(f, "biases"))) << "biases";
    // Dequantize MLX's own packed tensors (independent of our quantize).
    auto mq = *get(f, "w_q");
    auto ms = *get(f, "scales");
    auto mb = get(f, "biases");
    EXPECT_TRUE(same_bits(qmm::dequantize(mq, ms, mb, gs, bits, mode, gscale), *get(f, "deq")))
        << "deq";
    EXPECT_TRUE(same_bits(qmm::dequantize(mq, ms, mb, gs, bits, mode, gscale, Dtype::float32),
                          *get(f, "deq_f32")))
        << "deq_f32";
    ++checked;
  }
  EXPECT_GE(checked, 66);
}

namespace {

// y from MLX's stored operands, against our float64 reference and MLX's own y.
void check_matmul_fixture(const std::string& path, bool gather) {
  SCOPED_TRACE(path);
  auto f = qmm::io::load_safetensors(path);
  const std::string mode = meta(f, "mode");
  const int bits = std::stoi(meta(f, "bits")), gs = std::stoi(meta(f, "group_size"));
  const bool transpose = meta(f, "transpose") == "true";
  Array x = *get(f, "x"), wq = *get(f, "w_q"), s = *get(f, "scales"), y_mlx = *get(f, "y");
  auto b = get(f, "biases");
  auto lhs = get(f, "lhs_indices"), rhs = get(f, "rhs_indices");
  const bool sorted = meta(f, "sorted_indices") == "true";
  Array y = gather ? qmm::gather_qmm(x, wq, s, b, lhs, rhs, transpose, gs, bits, mode, sorted)
                   : qmm::quantized_matmul(x, wq, s, b, transpose, gs, bits, mode);
  ASSERT_EQ(y.shape(), y_mlx.shape());
  ASSERT_EQ(y.dtype(), y_mlx.dtype());
  // Float64 reference: affine weights are exact scale*q+bias in the output type (scales are
  // cast to it before dequantizing, as MLX does).
  Dtype ct = y.dtype();
  Array wd = mode == "affine" ? qmm::dequantize(wq, s.astype(ct).astype(Dtype::float32),
                                                b->astype(ct).astype(Dtype::float32), gs, bits,
                                                mode, std::nullopt, Dtype::float32)
                              : qmm::dequantize(wq, s, std::nullopt, gs, bits, mode, std::nullopt,
                                                Dtype::float32);
  std::vector<double> ref;
  if (!gather) {
    ref = reference_qmm(x.astype(Dtype::float32), wd, transpose);
  } else {
    // Expand the index arrays (defaults: all batches in order) and loop.
    Shape xb = batch_of(x.shape()), wb = batch_of(wq.shape());
    Shape lb = lhs ? lhs->shape() : xb, rb = rhs ? rhs->shape() : wb;
    Shape I = broadcast(lb, rb);
    auto lv = lhs ? lhs->to_double_vector() : std::vector<double>();
    auto rv = rhs ? rhs->to_double_vector() : std::vector<double>();
    auto xd = x.astype(Dtype::float32).to_double_vector(), wdd = wd.to_double_vector();
    const int64_t M = x.shape(-2), K = x.shape(-1), R = wd.shape(-2), C = wd.shape(-1);
    const int64_t N = transpose ? R : C;
    for (int64_t i = 0; i < numel(I); ++i) {
      int64_t li = broadcast_index(lb, I, i), ri = broadcast_index(rb, I, i);
      int64_t xi = lhs ? static_cast<int64_t>(lv[li]) : li,
              wi = rhs ? static_cast<int64_t>(rv[ri]) : ri;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += xd[(xi * M + m) * K + k] *
                   (transpose ? wdd[wi * R * C + n * C + k] : wdd[wi * R * C + k * C + n]);
          ref.push_back(acc);
        }
    }
  }
  auto got = y.to_double_vector();
  EXPECT_LE(rel_frobenius(got, ref), tolerance(ct)) << "vs float64 reference";
  // MLX's own float32 results are within 1e-6 of float64; fp16/bf16 ones accumulate in the
  // output type and are up to a few percent off.
  double mlx_tol = ct == Dtype::float32 ? 1e-5 : 3e-2;
  EXPECT_LE(rel_frobenius(got, y_mlx.to_double_vector()), mlx_tol) << "vs MLX's y";
}

}  // namespace

TEST(MlxFixtures, QuantizedMatmulMatchesMlx) {
  auto files = fixtures("qmm_");
  for (const auto& p : files) check_matmul_fixture(p, false);
  EXPECT_GE(files.size(), 20u);
}

TEST(MlxFixtures, GatherQmmMatchesMlx) {
  auto files = fixtures("gather_");
  for (const auto& p : files) check_matmul_fixture(p, true);
  EXPECT_GE(files.size(), 10u);
}
