// The CUDA backend against the CPU backend: quantize, dequantize and astype must give the same
// bits; quantized_matmul and gather_qmm must be within the output dtype's tolerance of a float64
// reference (small shapes) or of the CPU backend (large shapes). Also: odd and large shapes,
// broadcasting, strided inputs, gathered index errors raised at the next wait, streams and
// CUDA-graph capture. The GPU is the default device here (gpu_main.cpp); CPU work names
// Device::cpu() explicitly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "core/array_impl.h"
#include "cuda/backend.h"
#include "cuda/runtime.h"
#include "test_util.h"

using namespace qmm_test;
using qmm::Array;
using qmm::Device;
using qmm::Dtype;
using qmm::Shape;

namespace {

const Device kCpu = Device::cpu();
const Device kGpu = Device::gpu();

uint64_t g_seed = 777;
Array randn(Shape s, Dtype t = Dtype::float32, float std = 1.0f, Device d = Device::cpu()) {
  return Array::random_normal(std::move(s), t, ++g_seed, 0.0f, std, d);
}

// Dequantized weights as float32 computed by the CPU backend (scales widened first).
Array deq_cpu(const qmm::Quantized& q, const ModeCase& c) {
  if (c.mode == "affine")
    return qmm::dequantize(q.w_q, q.scales.astype(Dtype::float32, kCpu),
                           q.biases->astype(Dtype::float32, kCpu), c.group_size, c.bits, c.mode,
                           std::nullopt, Dtype::float32, kCpu);
  return qmm::dequantize(q.w_q, q.scales, std::nullopt, c.group_size, c.bits, c.mode, std::nullopt,
                         Dtype::float32, kCpu);
}

double rel_err(const Array& got, const std::vector<double>& ref) {
  return rel_frobenius(got.to_double_vector(), ref);
}

// Random floats with the special values quantizers must agree on: zeros, a constant group,
// an all-negative group, tiny and huge magnitudes.
Array special_weights(int64_t rows, int64_t cols, int gs, Dtype t) {
  std::mt19937 rng(static_cast<uint32_t>(++g_seed));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (auto& x : v) x = nd(rng);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = &v[r * cols];
    const int kind = static_cast<int>(r % 7);
    for (int i = 0; i < gs && i < cols; ++i) {
      if (kind == 1) row[i] = 0.0f;
      if (kind == 2) row[i] = 0.75f;
      if (kind == 3) row[i] = -1.0f - i / 31.0f;
      if (kind == 4) row[i] *= 1e-6f;
      if (kind == 5) row[i] *= 300.0f;
      if (kind == 6) row[i] = (i % 5) * 0.25f - 0.5f;  // exact ties
    }
  }
  Array a = Array::from_vector(v, {rows, cols});
  return t == Dtype::float32 ? a : a.astype(t, kCpu);
}

}  // namespace

// ---- runtime -------------------------------------------------------------------------------

TEST(GpuRuntime, ArraysCopiesStreams) {
  EXPECT_GE(qmm::device_count(qmm::DeviceType::gpu), 1);
  std::vector<float> v(1000);
  std::iota(v.begin(), v.end(), -3.0f);
  Array a = Array::from_vector(v, {10, 100}, kGpu);
  EXPECT_EQ(a.device(), kGpu);
  EXPECT_EQ(a.to_vector<float>(), v);
  EXPECT_EQ(a.to(kCpu).to_vector<float>(), v);
  qmm::Stream s = qmm::new_stream(kGpu);
  Array b = a.astype(Dtype::bfloat16, s);
  qmm::synchronize(s);
  EXPECT_TRUE(same_bits(b, a.to(kCpu).astype(Dtype::bfloat16, kCpu)));
  Array t = a.transpose_last2().contiguous(s);
  EXPECT_TRUE(same_bits(t, a.to(kCpu).transpose_last2().contiguous(kCpu)));
  Array z = Array::zeros({0, 5}, Dtype::float32, kGpu);
  EXPECT_EQ(z.size(), 0);
}

TEST(GpuConvert, EveryDtypePairAndStridesMatchCpuBits) {
  const Dtype all[] = {Dtype::float32, Dtype::float16, Dtype::bfloat16, Dtype::uint8,
                       Dtype::uint32,  Dtype::int32,   Dtype::int64};
  std::vector<float> fv(6 * 40);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 300.0f);
  for (auto& x : fv) x = nd(rng);
  fv[0] = NAN;
  fv[1] = INFINITY;
  fv[2] = -INFINITY;
  fv[3] = 70000.0f;
  fv[4] = -2.5f;
  fv[5] = 1e-30f;
  fv[6] = 65519.0f;
  fv[7] = -1e20f;
  Array base = Array::from_vector(fv, {6, 40});
  for (Dtype st : all) {
    Array src_cpu = st == Dtype::float32 ? base : base.astype(st, kCpu);
    Array src_gpu = src_cpu.to(kGpu);
    for (Dtype dt : all) {
      auto views = [](const Array& a) {
        return std::vector<Array>{a, a.transpose_last2(), a.slice(1, 3, 37).slice(0, 1, 5),
                                  a.slice(0, 2, 3).broadcast_to({3, 6, 40}).swapaxes(0, 2)};
      };
      auto vc = views(src_cpu), vg = views(src_gpu);
      for (size_t i = 0; i < vc.size(); ++i)
        EXPECT_TRUE(same_bits(vg[i].astype(dt), vc[i].astype(dt, kCpu)))
            << st << " -> " << dt << " view " << i;
    }
  }
}

// ---- quantize / dequantize: the same bits as the CPU backend --------------------------------

TEST(GpuQuantize, EveryModeDtypeMatchesCpuBits) {
  for (const auto& c : all_modes())
    for (Dtype t : {Dtype::float32, Dtype::float16, Dtype::bfloat16})
      for (Shape s : {Shape{7, int64_t(c.group_size) * 3}, Shape{67, 512}, Shape{2, 3, 256}}) {
        if (s.back() % c.group_size) continue;
        const int64_t cols = s.back(), rows = qmm::detail::shape_size(s) / cols;
        Array w = special_weights(rows, cols, c.group_size, t).reshape(s);
        auto qc = qmm::quantize(w, c.group_size, c.bits, c.mode, std::nullopt, kCpu);
        auto qg = qmm::quantize(w, c.group_size, c.bits, c.mode, std::nullopt, kGpu);
        std::string what =
            case_name(c) + " " + std::string(qmm::dtype_name(t)) + " " + qmm::shape_to_string(s);
        EXPECT_EQ(qg.w_q.device(), kGpu);
        EXPECT_TRUE(same_bits(qg.w_q, qc.w_q)) << what;
        EXPECT_TRUE(same_bits(qg.scales, qc.scales)) << what;
        if (qc.biases) EXPECT_TRUE(same_bits(*qg.biases, *qc.biases)) << what;
      }
}

TEST(GpuQuantize, StridedInputAndGlobalScale) {
  Array w = randn({256, 96}, Dtype::bfloat16).transpose_last2();  // (96, 256), strided
  for (const auto& c : all_modes()) {
    auto qc = qmm::quantize(w, c.group_size, c.bits, c.mode, std::nullopt, kCpu);
    auto qg = qmm::quantize(w, c.group_size, c.bits, c.mode, std::nullopt, kGpu);
    EXPECT_TRUE(same_bits(qg.w_q, qc.w_q)) << case_name(c);
    EXPECT_TRUE(same_bits(qg.scales, qc.scales)) << case_name(c);
  }
  for (Dtype t : {Dtype::float32, Dtype::bfloat16, Dtype::float16}) {
    Array wt = randn({33, 128}, t, 3.0f);
    Array g = Array::scalar(7.5f);
    auto qc = qmm::quantize(wt, 16, 4, "nvfp4", g, kCpu);
    auto qg = qmm::quantize(wt, 16, 4, "nvfp4", g, kGpu);
    EXPECT_TRUE(same_bits(qg.w_q, qc.w_q));
    EXPECT_TRUE(same_bits(qg.scales, qc.scales));
    for (std::optional<Dtype> od : {std::optional<Dtype>{}, std::optional<Dtype>{Dtype::bfloat16}})
      EXPECT_TRUE(same_bits(qmm::dequantize(qg.w_q, qg.scales, {}, 16, 4, "nvfp4", g, od, kGpu),
                            qmm::dequantize(qc.w_q, qc.scales, {}, 16, 4, "nvfp4", g, od, kCpu)));
  }
}

TEST(GpuDequantize, EveryModeAndOutputDtypeMatchesCpuBits) {
  for (const auto& c : all_modes())
    for (Dtype t : {Dtype::float32, Dtype::float16, Dtype::bfloat16}) {
      Array w = special_weights(37, c.group_size * 4, c.group_size, t);
      auto q = qmm::quantize(w, c.group_size, c.bits, c.mode, std::nullopt, kCpu);
      for (std::optional<Dtype> od :
           {std::optional<Dtype>{}, std::optional<Dtype>{Dtype::float32},
            std::optional<Dtype>{Dtype::float16}, std::optional<Dtype>{Dtype::bfloat16}})
        EXPECT_TRUE(same_bits(
            qmm::dequantize(q.w_q, q.scales, q.biases, c.group_size, c.bits, c.mode, {}, od, kGpu),
            qmm::dequantize(q.w_q, q.scales, q.biases, c.group_size, c.bits, c.mode, {}, od, kCpu)))
            << case_name(c) << " " << t;
    }
}

TEST(GpuDequantize, RandomCodesAndScales) {
  // Every code value and scale byte, including E4M3 NaN codes and extreme E8M0 scales.
  std::mt19937 rng(11);
  for (const auto& c : all_modes()) {
    const int64_t rows = 16, cols = c.group_size * 8;
    std::vector<uint32_t> words(static_cast<size_t>(rows * cols * c.bits / 32));
    for (auto& x : words) x = rng();
    Array wq = Array::from_vector(words, {rows, cols * c.bits / 32});
    const int64_t ns = rows * cols / c.group_size;
    if (c.mode == "affine") {
      Array s = randn({rows, cols / c.group_size}, Dtype::bfloat16);
      Array b = randn({rows, cols / c.group_size}, Dtype::float16);
      EXPECT_TRUE(same_bits(qmm::dequantize(wq, s, b, c.group_size, c.bits, c.mode, {}, {}, kGpu),
                            qmm::dequantize(wq, s, b, c.group_size, c.bits, c.mode, {}, {}, kCpu)))
          << case_name(c);
    } else {
      std::vector<uint8_t> sb(static_cast<size_t>(ns));
      for (auto& x : sb) x = static_cast<uint8_t>(rng());
      Array s = Array::from_vector(sb, {rows, cols / c.group_size});
      for (Dtype od : {Dtype::float32, Dtype::bfloat16, Dtype::float16})
        EXPECT_TRUE(
            same_bits(qmm::dequantize(wq, s, {}, c.group_size, c.bits, c.mode, {}, od, kGpu),
                      qmm::dequantize(wq, s, {}, c.group_size, c.bits, c.mode, {}, od, kCpu)))
            << case_name(c) << " " << od;
    }
  }
}

// ---- quantized_matmul ------------------------------------------------------------------------

namespace {

// Quantizes a random w (on the CPU), runs quantized_matmul on the GPU and checks it against the
// float64 reference of the CPU-dequantized weights.
double check_qmm(const Shape& x_shape, const Shape& w_shape, bool transpose, const ModeCase& c,
                 Dtype dt) {
  const int64_t K = x_shape.back();
  const float sd = 1.0f / std::sqrt(static_cast<float>(K));
  Array x = randn(x_shape, dt, sd);
  auto q = qmm::quantize(randn(w_shape, dt, sd), c.group_size, c.bits, c.mode, std::nullopt, kCpu);
  Array y = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, transpose, c.group_size, c.bits,
                                  c.mode, kGpu);
  EXPECT_EQ(y.device(), kGpu);
  auto ref = reference_qmm(x, deq_cpu(q, c), transpose);
  const double err = rel_err(y, ref);
  EXPECT_LE(err, tolerance(dt)) << case_name(c) << " " << dt << " x "
                                << qmm::shape_to_string(x_shape) << " w "
                                << qmm::shape_to_string(w_shape) << " t=" << transpose;
  return err;
}

}  // namespace

TEST(GpuMatmul, EveryModeDtypeAndRowCount) {
  for (const auto& c : all_modes())
    for (Dtype dt : {Dtype::bfloat16, Dtype::float16, Dtype::float32})
      for (int64_t M : {1, 5, 8, 9, 16, 17, 64, 65}) {
        const int64_t K = c.group_size * 6;
        check_qmm({M, K}, {67, K}, true, c, dt);
        check_qmm({M, 2 * c.group_size}, {2 * c.group_size, 3 * c.group_size}, false, c, dt);
      }
}

TEST(GpuMatmul, OddShapes) {
  for (Dtype dt : {Dtype::bfloat16, Dtype::float32, Dtype::float16})
    for (int64_t M : {1, 4, 33}) {
      check_qmm({M, 256}, {4, 256}, true, {"affine", 64, 4}, dt);     // N = 4
      check_qmm({M, 256}, {1000, 256}, true, {"affine", 64, 4}, dt);  // N = 1000
      check_qmm({M, 2880}, {72, 2880}, true, {"affine", 64, 4}, dt);  // K = 2880
      check_qmm({M, 2880}, {40, 2880}, true, {"mxfp4", 32, 4}, dt);
      check_qmm({M, 2880}, {40, 2880}, true, {"nvfp4", 16, 4}, dt);
      check_qmm({M, 128}, {300, 128}, true, {"affine", 128, 8}, dt);  // K = 128
      check_qmm({M, 48}, {20, 48}, true, {"nvfp4", 16, 4}, dt);       // K % 32 != 0
      check_qmm({M, 96}, {24, 96}, true, {"affine", 32, 3}, dt);
      check_qmm({M, 1000}, {1000, 64}, false, {"affine", 64, 4}, dt);  // N = 64, K = 1000
      check_qmm({M, 7}, {7, 4096}, false, {"affine", 128, 5}, dt);
    }
}

// The decode kernel is persistent: a CTA walks several 16-row weight tiles (one per 264
// resident CTAs, so N above 2 * 264 * 16 = 8448 for one slot) with its loads running across the
// tile boundaries. Both x paths: permuted once into shared memory (rows * K * 2 <= 48 KiB) and
// read from global memory (M = 12, K = 2048: 64 KiB); a tail tile inside the walk (N % 16 != 0);
// broadcast batches (3 slots share the SMs: 188 tiles over 88 CTAs); every decode format; x at
// the shared-memory budget's edge.
TEST(GpuMatmul, DecodeWalksSeveralTiles) {
  for (Dtype dt : {Dtype::bfloat16, Dtype::float16}) {
    check_qmm({1, 256}, {9000, 256}, true, {"affine", 64, 4}, dt);
    check_qmm({5, 512}, {9000, 512}, true, {"affine", 64, 8}, dt);
    check_qmm({12, 256}, {9000, 256}, true, {"affine", 32, 3}, dt);
    check_qmm({12, 2048}, {8500, 2048}, true, {"affine", 128, 4}, dt);
    check_qmm({3, 1, 2, 512}, {3000, 512}, true, {"affine", 64, 2}, dt);
  }
  // x at the shared-memory budget next to the static buffers (40888 bytes for 8-row chunks):
  // 2 rows x 10208 x 2 bytes fit, 2 x 10240 x 2 do not (x from global memory).
  check_qmm({3, 1, 2, 10208}, {2816, 10208}, true, {"affine", 32, 4}, Dtype::bfloat16);
  check_qmm({3, 1, 2, 10240}, {2816, 10240}, true, {"affine", 64, 4}, Dtype::bfloat16);
  for (const ModeCase& c :
       std::vector<ModeCase>{{"mxfp4", 32, 4}, {"nvfp4", 16, 4}, {"mxfp8", 32, 8}}) {
    check_qmm({1, 256}, {9000, 256}, true, c, Dtype::bfloat16);
    check_qmm({12, 2048}, {8500, 2048}, true, c, Dtype::bfloat16);
  }
}

// Programmatic dependent launch (qmv_mma.cuh): a decode kernel may start while the previous
// kernel of its stream drains, and prefetches weight rows into L2 before it waits. In a chain
// queued behind a long kernel (so the host is ahead and the decodes run back to back), every
// call reads what the kernel just before it wrote (x from the previous decode; every fourth
// step weights from the quantize just before; outputs in pool buffers freed a step earlier).
// It must give the bits of the same chain with a host wait after every op. (Checked to fail
// with the kernel's griddepcontrol.wait removed.)
TEST(GpuMatmul, DecodeChainsReadTheirProducersOutputs) {
  const int64_t K = 2048;
  std::vector<Array> ws;
  std::vector<qmm::Quantized> qs;
  for (int i = 0; i < 5; ++i) {
    ws.push_back(randn({K, K}, Dtype::bfloat16, 1.0f / std::sqrt(float(K))).to(kGpu));
    qs.push_back(qmm::quantize(ws.back(), 64, 4, "affine", {}, kGpu));
  }
  const Array big = randn({8192, 8192}, Dtype::bfloat16, 1.0f, kGpu);
  const Array x0 = randn({1, K}, Dtype::bfloat16).to(kGpu);
  qmm::synchronize();
  auto chain = [&](bool wait_each) {
    qmm::Stream s = qmm::new_stream(kGpu);
    auto busy = qmm::quantize(big, 64, 4, "affine", {}, s);  // the host runs ahead meanwhile
    Array y = x0;
    for (int step = 0; step < 16; ++step) {
      const qmm::Quantized q = step % 4 == 3
                                   ? qmm::quantize(ws[step % ws.size()], 64, 4, "affine", {}, s)
                                   : qs[step % qs.size()];
      if (wait_each) qmm::synchronize(s);
      y = qmm::quantized_matmul(y, q.w_q, q.scales, q.biases, true, 64, 4, "affine", s);
      if (wait_each) qmm::synchronize(s);
    }
    qmm::synchronize(s);
    return y;
  };
  const Array waited = chain(true);
  for (int rep = 0; rep < 3; ++rep) EXPECT_TRUE(same_bits(chain(false), waited)) << rep;
  double norm = 0.0;
  for (double v : waited.to_double_vector()) norm += v * v;
  EXPECT_TRUE(std::isfinite(norm) && norm > 1.0) << norm;  // K values of about unit size
}

// The float32-x decode kernel (qmv_f32.cu): warps walk several 2-row blocks (N above
// 2 * 8 * 264 = 4224) with loads running across blocks, an odd N ends inside a block, every
// mode and bit width, fp16 x with fp-mode weights, broadcast batches, x in shared memory at the
// two-CTAs-per-SM edge (96 KiB: M = 2, K = 11904 fits, 11936 runs one CTA per SM) and at the
// 227 KiB edge (M = 1: K = 56320 fits, 56352 takes the generic kernel).
TEST(GpuMatmul, Float32DecodeWalksSeveralRowBlocks) {
  for (int64_t M : {1, 2}) {
    for (const auto& c : all_modes()) {
      check_qmm({M, 256}, {9001, 256}, true, c, Dtype::float32);
      if (c.mode != "affine") check_qmm({M, 256}, {9001, 256}, true, c, Dtype::float16);
    }
    check_qmm({3, 1, M, 512}, {5000, 512}, true, {"affine", 64, 4}, Dtype::float32);
  }
  check_qmm({2, 11904}, {300, 11904}, true, {"affine", 128, 4}, Dtype::float32);
  check_qmm({2, 11936}, {300, 11936}, true, {"affine", 32, 4}, Dtype::float32);
  check_qmm({1, 23808}, {100, 23808}, true, {"affine", 64, 8}, Dtype::float32);
  check_qmm({1, 56320}, {40, 56320}, true, {"affine", 64, 4}, Dtype::float32);
  check_qmm({1, 56352}, {40, 56352}, true, {"affine", 32, 4}, Dtype::float32);
  check_qmm({5, 14336}, {600, 14336}, true, {"affine", 64, 4}, Dtype::float32);
  check_qmm({12, 14336}, {64, 14336}, true, {"affine", 64, 4}, Dtype::float32);
}

TEST(GpuMatmul, BroadcastingAndVectors) {
  for (Dtype dt : {Dtype::bfloat16, Dtype::float32}) {
    ModeCase c{"affine", 64, 4};
    check_qmm({2, 1, 5, 128}, {3, 16, 128}, true, c, dt);
    check_qmm({2, 3, 5, 128}, {3, 16, 128}, true, c, dt);
    check_qmm({5, 128}, {3, 16, 128}, true, c, dt);
    check_qmm({4, 1, 5, 128}, {1, 2, 16, 128}, true, c, dt);
    check_qmm({4, 1, 40, 128}, {1, 2, 16, 128}, true, c, dt);  // decode with row chunks
    check_qmm({2, 1, 100, 128}, {3, 48, 128}, true, c, dt);    // prefill, batched
    check_qmm({2, 1, 5, 64}, {3, 64, 128}, false, c, dt);
    check_qmm({128}, {3, 16, 128}, true, c, dt);
    check_qmm({256}, {40, 256}, true, {"mxfp4", 32, 4}, dt);
  }
}

TEST(GpuMatmul, StridedSlicedAndMisaligned) {
  Array x = randn({12, 256}, Dtype::bfloat16, 0.1f);
  auto q = qmm::quantize(randn({64, 256}, Dtype::bfloat16, 0.1f), 64, 4, "affine", {}, kCpu);
  Array xs = x.slice(0, 2, 9);
  Array ws = q.w_q.slice(0, 8, 40), ss = q.scales.slice(0, 8, 40), bs = q.biases->slice(0, 8, 40);
  Array y1 = qmm::quantized_matmul(xs, ws, ss, bs);
  Array y2 = qmm::quantized_matmul(xs.contiguous(kCpu), ws.contiguous(kCpu), ss.contiguous(kCpu),
                                   bs.contiguous(kCpu));
  EXPECT_TRUE(same_bits(y1, y2));
  // 3-bit rows of 3 words: a slice starting at row 1 is not 16-byte aligned (generic path).
  auto q3 = qmm::quantize(randn({20, 32}, Dtype::bfloat16), 32, 3, "affine", {}, kCpu);
  Array xg = randn({3, 32}, Dtype::bfloat16).to(kGpu);
  Array w3 = q3.w_q.to(kGpu).slice(0, 1, 20), s3 = q3.scales.to(kGpu).slice(0, 1, 20),
        b3 = q3.biases->to(kGpu).slice(0, 1, 20);
  Array y3 = qmm::quantized_matmul(xg, w3, s3, b3, true, 32, 3);
  auto deq = qmm::dequantize(q3.w_q, q3.scales.astype(Dtype::float32, kCpu),
                             q3.biases->astype(Dtype::float32, kCpu), 32, 3, "affine", {},
                             Dtype::float32, kCpu)
                 .slice(0, 1, 20)
                 .contiguous(kCpu);
  EXPECT_LE(rel_err(y3, reference_qmm(xg.to(kCpu), deq, true)), 1e-2);
  Array xt = randn({256, 5}, Dtype::float32).transpose_last2();
  EXPECT_LE(rel_err(qmm::quantized_matmul(xt, q.w_q, q.scales.astype(Dtype::float32, kCpu),
                                          q.biases->astype(Dtype::float32, kCpu)),
                    reference_qmm(xt, deq_cpu(q, {"affine", 64, 4}), true)),
            1e-5);
}

// The fused Hopper prefill kernel (affine 4/8-bit, bf16/fp16, group 64/128, N % 8 == 0, M above
// the decode kernel's range): both token tiles, stream-K, N and K not multiples of the 128 x 64
// tile, one k step of a group (K = 128 with g = 128), batches with a broadcast weight.
TEST(GpuMatmul, FusedPrefillEdgeShapes) {
  // The dispatch table sends small matrices to dequantize + cuBLAS; force the fused kernel.
  qmm::cuda::set_prefill_path("fused");
  for (Dtype dt : {Dtype::bfloat16, Dtype::float16})
    for (int bits : {4, 8})
      for (int gs : {64, 128}) {
        const ModeCase c{"affine", gs, bits};
        for (int64_t M : {33, 64, 65, 129, 300}) {
          check_qmm({M, 128}, {8, 128}, true, c, dt);
          check_qmm({M, 2 * gs * 3}, {136, 2 * gs * 3}, true, c, dt);
          check_qmm({M, 1024}, {1000, 1024}, true, c, dt);
        }
        check_qmm({1024, 2 * gs}, {264, 2 * gs}, true, c, dt);
        check_qmm({2, 3, 40, 256}, {3, 24, 256}, true, c, dt);
      }
  check_qmm({200, 2880}, {72, 2880}, true, {"affine", 64, 4}, Dtype::bfloat16);  // K = 45 groups
  EXPECT_THROW(qmm::cuda::set_prefill_path("fastest"), std::invalid_argument);
  qmm::cuda::set_prefill_path("table");
}

// The hand-written Hopper kernel (src/cuda/wgmma; affine 4-bit, bf16/fp16, group 32/64/128, K a
// multiple of 64 with groups % 8 == 0, N % 8 == 0), forced for every M (the table uses it to
// M = 64): several 64-token tiles, M and N tails, k splits over few tiles (ranges on 4-step TMA
// chunks, the last one short), broadcast batches. Shapes it does not take (group 128 at K = 512
// / 1536, K = 5 groups) fall back and must stay right.
TEST(GpuMatmul, WgmmaPrefillEdgeShapes) {
  qmm::cuda::set_prefill_path("wgmma");
  for (Dtype dt : {Dtype::bfloat16, Dtype::float16})
    for (int gs : {32, 64, 128}) {
      const ModeCase c{"affine", gs, 4};
      for (int64_t M : {17, 33, 64, 65, 129, 300}) {
        check_qmm({M, 1024}, {1000, 1024}, true, c, dt);
        check_qmm({M, 1536}, {136, 1536}, true, c, dt);
      }
      check_qmm({40, 512}, {264, 512}, true, c, dt);
      check_qmm({2, 3, 40, 1024}, {3, 24, 1024}, true, c, dt);
      check_qmm({33, 5 * gs}, {64, 5 * gs}, true, c, dt);
    }
  qmm::cuda::set_prefill_path("table");
}

// Large shapes: the GPU against the CPU backend (both float32-accumulating).
TEST(GpuMatmul, LargeShapesAgainstCpu) {
  struct L {
    int64_t M, N, K;
    bool t;
    ModeCase c;
    Dtype dt;
  };
  const L cases[] = {
      {1, 4096, 4096, true, {"affine", 64, 4}, Dtype::bfloat16},
      {16, 4096, 4096, true, {"affine", 64, 4}, Dtype::bfloat16},
      {3, 14336, 4096, true, {"affine", 64, 4}, Dtype::float16},
      {2, 4096, 14336, true, {"affine", 64, 8}, Dtype::bfloat16},
      {1, 2048, 8192, true, {"mxfp4", 32, 4}, Dtype::bfloat16},
      {4, 2048, 8192, true, {"nvfp4", 16, 4}, Dtype::bfloat16},
      {2, 2048, 4096, true, {"mxfp8", 32, 8}, Dtype::bfloat16},
      {1, 2048, 4096, true, {"affine", 64, 3}, Dtype::bfloat16},
      {1, 2048, 4096, true, {"affine", 64, 4}, Dtype::float32},
      {300, 2048, 4096, true, {"affine", 64, 4}, Dtype::bfloat16},
      {300, 1024, 2048, true, {"affine", 64, 4}, Dtype::float32},
      {64, 2048, 1024, false, {"affine", 64, 4}, Dtype::bfloat16},
      {3, 4096, 2048, false, {"affine", 64, 4}, Dtype::float32},
  };
  for (const L& l : cases) {
    Array x = randn({l.M, l.K}, l.dt, 0.05f);
    Shape ws = l.t ? Shape{l.N, l.K} : Shape{l.K, l.N};
    auto q = qmm::quantize(randn(ws, l.dt, 0.05f), l.c.group_size, l.c.bits, l.c.mode, {}, kCpu);
    Array yc = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, l.t, l.c.group_size, l.c.bits,
                                     l.c.mode, kCpu);
    Array yg = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, l.t, l.c.group_size, l.c.bits,
                                     l.c.mode, kGpu);
    EXPECT_LE(rel_err(yg, yc.to_double_vector()), tolerance(l.dt))
        << case_name(l.c) << " M=" << l.M << " N=" << l.N << " K=" << l.K << " t=" << l.t;
  }
}

// ---- gather_qmm ------------------------------------------------------------------------------

namespace {

// The sorted form of top-k routing (mlx-lm's SwitchGLU): the flat (token, expert) pairs
// ordered by expert (stable), their experts and their tokens.
struct SortedPairs {
  std::vector<int64_t> order, experts, tokens;
};
SortedPairs sort_pairs(const std::vector<int32_t>& idx, int64_t top) {
  SortedPairs p;
  p.order.resize(idx.size());
  std::iota(p.order.begin(), p.order.end(), 0);
  std::stable_sort(p.order.begin(), p.order.end(),
                   [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
  for (auto o : p.order) {
    p.experts.push_back(idx[o]);
    p.tokens.push_back(o / top);
  }
  return p;
}

// gather_qmm on the GPU against the CPU backend on the same inputs.
void check_gather_vs_cpu(const Array& x, const qmm::Quantized& q, const std::optional<Array>& lhs,
                         const std::optional<Array>& rhs, bool t, const ModeCase& c, bool sorted,
                         double tol, const std::string& what) {
  auto to_cpu = [](const std::optional<Array>& a) {
    return a ? std::optional<Array>(a->to(kCpu)) : std::nullopt;
  };
  Array yc = qmm::gather_qmm(x, q.w_q, q.scales, q.biases, to_cpu(lhs), to_cpu(rhs), t,
                             c.group_size, c.bits, c.mode, sorted, kCpu);
  Array yg = qmm::gather_qmm(x, q.w_q, q.scales, q.biases, lhs, rhs, t, c.group_size, c.bits,
                             c.mode, sorted, kGpu);
  EXPECT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LE(rel_err(yg, yc.to_double_vector()), tol) << what;
}

}  // namespace

TEST(GpuGather, MoeRoutingEveryPath) {
  const int64_t E = 8, N = 256, K = 512, top = 2;
  std::mt19937 rng(3);
  for (const auto& [c, dt] :
       std::vector<std::pair<ModeCase, Dtype>>{{{"affine", 64, 4}, Dtype::bfloat16},
                                               {{"mxfp4", 32, 4}, Dtype::bfloat16},
                                               {{"affine", 64, 8}, Dtype::float16},
                                               {{"affine", 64, 4}, Dtype::float32},
                                               {{"nvfp4", 16, 4}, Dtype::float16}}) {
    auto q = qmm::quantize(randn({E, N, K}, dt, 0.05f), c.group_size, c.bits, c.mode, {}, kCpu);
    for (int64_t T : {1, 3, 16, 64}) {
      Array x = randn({T, 1, 1, K}, dt, 0.5f);
      std::vector<int32_t> idx(T * top);
      for (auto& v : idx) v = static_cast<int32_t>(rng() % E);
      Array rhs = Array::from_vector(idx, {T, top});
      std::string what = case_name(c) + " T=" + std::to_string(T);
      // Indices on the host (checked by the core) and on the GPU (checked by the kernel).
      check_gather_vs_cpu(x, q, {}, rhs, true, c, false, tolerance(dt), what + " host idx");
      check_gather_vs_cpu(x, q, {}, rhs.to(kGpu), true, c, false, tolerance(dt), what + " gpu idx");
      // The sorted form (mlx-lm's SwitchGLU): flat pairs ordered by expert, x rows gathered.
      const auto [order, sidx, lhs] = sort_pairs(idx, top);
      Array xs = x.reshape({T, 1, K});
      Array rs = Array::from_vector(sidx, {T * top}, kGpu),
            ls = Array::from_vector(lhs, {T * top}, kGpu);
      check_gather_vs_cpu(xs, q, ls, rs, true, c, true, tolerance(dt), what + " lhs+rhs sorted");
      auto xv = x.astype(Dtype::float32, kCpu).to_vector<float>();
      std::vector<float> xg;
      for (auto l : lhs) xg.insert(xg.end(), xv.begin() + l * K, xv.begin() + (l + 1) * K);
      Array xga = Array::from_vector(xg, {T * top, 1, K}).astype(dt, kCpu);
      check_gather_vs_cpu(xga, q, {}, rs, true, c, true, tolerance(dt), what + " rhs sorted");
      // The hint with unsorted indices must not change the result (Decision 4).
      Array y_lie =
          qmm::gather_qmm(xga, q.w_q, q.scales, q.biases, {}, rhs.reshape({T * top}).to(kGpu), true,
                          c.group_size, c.bits, c.mode, true);
      Array y_true =
          qmm::gather_qmm(xga, q.w_q, q.scales, q.biases, {}, rhs.reshape({T * top}).to(kGpu), true,
                          c.group_size, c.bits, c.mode, false);
      EXPECT_TRUE(same_bits(y_lie, y_true)) << what;
    }
  }
}

// Enough tokens per expert for the grouped fused kernel (affine 4/8-bit, bf16/fp16): unsorted
// pairs, the same pairs sorted by expert (identical bits: each row's result does not depend on
// its place in a tile), an expert with no tokens, N and K not multiples of the tile.
TEST(GpuGather, GroupedFusedManyTokens) {
  std::mt19937 rng(11);
  // (E, T, top): about 66 rows per expert (128 x 64 tiles) and about 350 (4-bit: 128 x 256).
  for (auto [E, T, top] : {std::tuple<int64_t, int64_t, int64_t>{6, 200, 2}, {3, 700, 1}})
    for (Dtype dt : {Dtype::bfloat16, Dtype::float16})
      for (int bits : {4, 8})
        for (int gs : {64, 128}) {
          const ModeCase c{"affine", gs, bits};
          const int64_t K = 3 * gs, N = 136;
          auto q = qmm::quantize(randn({E, N, K}, dt, 0.05f), gs, bits, "affine", {}, kCpu);
          std::vector<int32_t> idx(T * top);
          for (auto& v : idx) v = static_cast<int32_t>(rng() % (E - 1));  // expert E-1 unused
          Array x = randn({T, 1, 1, K}, dt, 0.5f);
          Array rhs = Array::from_vector(idx, {T, top}, kGpu);
          const std::string what = case_name(c) + " " + std::string(qmm::dtype_name(dt));
          check_gather_vs_cpu(x, q, {}, rhs, true, c, false, tolerance(dt), what + " unsorted");
          const auto [order, sidx, lhs] = sort_pairs(idx, top);
          Array xs = x.reshape({T, 1, K});
          Array ls = Array::from_vector(lhs, {T * top}, kGpu),
                rs = Array::from_vector(sidx, {T * top}, kGpu);
          Array ys = qmm::gather_qmm(xs, q.w_q, q.scales, q.biases, ls, rs, true, gs, bits,
                                     "affine", true);
          check_gather_vs_cpu(xs, q, ls, rs, true, c, true, tolerance(dt), what + " sorted");
          // Unsorted result rows, permuted into the sorted order, equal the sorted run bit for bit.
          Array yu = qmm::gather_qmm(x, q.w_q, q.scales, q.biases, {}, rhs, true, gs, bits,
                                     "affine", false)
                         .reshape({T * top, N})
                         .to(kCpu);
          auto yuv = yu.astype(Dtype::float32, kCpu).to_vector<float>();
          std::vector<float> permuted;
          for (auto o : order)
            permuted.insert(permuted.end(), yuv.begin() + o * N, yuv.begin() + (o + 1) * N);
          EXPECT_EQ(permuted,
                    ys.reshape({T * top, N}).astype(Dtype::float32, kCpu).to_vector<float>())
              << what;
        }
}

TEST(GpuGather, ManyRowsPerItemAndNotTransposed) {
  ModeCase c{"affine", 64, 4};
  auto q = qmm::quantize(randn({4, 96, 256}, Dtype::bfloat16, 0.05f), 64, 4, "affine", {}, kCpu);
  Array x = randn({3, 40, 256}, Dtype::bfloat16);
  Array lhs = Array::from_vector(std::vector<int64_t>{0, 2, 1, 2, 0}, {5}, kGpu);
  Array rhs = Array::from_vector(std::vector<int64_t>{3, 3, 0, 1, 3}, {5}, kGpu);
  check_gather_vs_cpu(x, q, lhs, rhs, true, c, false, 1e-2, "M=40");
  check_gather_vs_cpu(x, q, {}, Array::from_vector(std::vector<int32_t>{0, 0, 2}, {3}, kGpu), true,
                      c, true, 1e-2, "M=40 sorted");
  auto qn = qmm::quantize(randn({4, 256, 128}, Dtype::bfloat16, 0.05f), 64, 4, "affine", {}, kCpu);
  check_gather_vs_cpu(x, qn, lhs, rhs, false, c, false, 1e-2, "transpose=false");
}

TEST(GpuGather, OutOfRangeIndicesRaiseAtWait) {
  ModeCase c{"affine", 64, 4};
  auto q = qmm::quantize(randn({4, 32, 128}, Dtype::bfloat16), 64, 4, "affine", {}, kGpu);
  Array x = randn({6, 1, 128}, Dtype::bfloat16);
  for (bool sorted : {false, true})
    for (Dtype xd : {Dtype::bfloat16, Dtype::float32}) {
      Array xx = x.astype(xd, kCpu);
      Array bad_rhs = Array::from_vector(std::vector<int32_t>{0, 1, 4, 2, 3, 1}, {6}, kGpu);
      Array y = qmm::gather_qmm(xx, q.w_q, q.scales, q.biases, {}, bad_rhs, true, 64, 4, "affine",
                                sorted);
      EXPECT_INVALID(y.wait(), "[gather_qmm] rhs_indices contains 4 at flat position 2");
      Array bad_lhs = Array::from_vector(std::vector<int64_t>{0, -1}, {2}, kGpu);
      Array rhs = Array::from_vector(std::vector<int64_t>{0, 1}, {2}, kGpu);
      Array y2 =
          qmm::gather_qmm(xx, q.w_q, q.scales, q.biases, bad_lhs, rhs, true, 64, 4, "affine");
      EXPECT_INVALID(y2.wait(), "[gather_qmm] lhs_indices contains -1");
      // The error is consumed: later work on the device runs normally.
      Array good_rhs = Array::from_vector(std::vector<int32_t>{0, 1, 3, 2, 3, 1}, {6}, kGpu);
      Array ok =
          qmm::gather_qmm(xx, q.w_q, q.scales, q.biases, {}, good_rhs, true, 64, 4, "affine");
      EXPECT_NO_THROW(ok.wait());
      Array y3 = qmm::gather_qmm(xx, q.w_q, q.scales, q.biases, {}, bad_rhs, true, 64, 4, "affine");
      EXPECT_INVALID(qmm::synchronize(qmm::default_stream(kGpu)), "[gather_qmm] rhs_indices");
      (void)y3;
    }
}

// ---- streams and graphs ----------------------------------------------------------------------

TEST(GpuStreams, WorkAcrossStreams) {
  qmm::Stream a = qmm::new_stream(kGpu), b = qmm::new_stream(kGpu);
  Array w = randn({512, 1024}, Dtype::bfloat16, 0.05f).to(kGpu);
  auto q = qmm::quantize(w, 64, 4, "affine", {}, a);  // produced on a, consumed on b
  Array x = randn({4, 1024}, Dtype::bfloat16).to(kGpu);
  Array y = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, true, 64, 4, "affine", b);
  qmm::synchronize(b);
  auto qc = qmm::quantize(w.to(kCpu), 64, 4, "affine", {}, kCpu);
  EXPECT_TRUE(same_bits(q.w_q, qc.w_q));
  Array yc =
      qmm::quantized_matmul(x.to(kCpu), qc.w_q, qc.scales, qc.biases, true, 64, 4, "affine", kCpu);
  EXPECT_LE(rel_err(y, yc.to_double_vector()), 1e-2);
}

TEST(GpuGraph, OpsAreCapturable) {
  qmm::Stream s = qmm::new_stream(kGpu);
  cudaStream_t cs = qmm::cuda::context(0).stream(s.index());
  Array xd = randn({4, 1024}, Dtype::bfloat16).to(kGpu);
  Array xp = randn({300, 1024}, Dtype::bfloat16).to(kGpu);
  auto q =
      qmm::quantize(randn({8, 512, 1024}, Dtype::bfloat16, 0.05f).to(kGpu), 64, 4, "affine", {}, s);
  Array rhs = Array::from_vector(std::vector<int32_t>{5, 1, 1, 7}, {4, 1, 1}, kGpu);
  Array x4 = xd.reshape({4, 1, 1, 1024});
  Array w0 = q.w_q.slice(0, 0, 1).reshape({512, 128}),
        s0 = q.scales.slice(0, 0, 1).reshape({512, 16}),
        b0 = q.biases->slice(0, 0, 1).reshape({512, 16});
  qmm::synchronize(s);
  auto run = [&] {
    return std::vector<Array>{
        qmm::quantized_matmul(xd, w0, s0, b0, true, 64, 4, "affine", s),  // decode
        qmm::quantized_matmul(xp, w0, s0, b0, true, 64, 4, "affine", s),  // prefill (cuBLAS)
        qmm::gather_qmm(x4, q.w_q, q.scales, q.biases, {}, rhs, true, 64, 4, "affine", false, s)};
  };
  auto eager = run();
  qmm::synchronize(s);
  ASSERT_EQ(cudaStreamBeginCapture(cs, cudaStreamCaptureModeRelaxed), cudaSuccess);
  auto captured = run();
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamEndCapture(cs, &graph), cudaSuccess);
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  // Once: the outputs were allocated inside the graph and are freed outside it (by the arrays).
  ASSERT_EQ(cudaGraphLaunch(exec, cs), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(cs), cudaSuccess);
  for (size_t i = 0; i < eager.size(); ++i) {
    captured[i].impl()->done = nullptr;  // its event was recorded during capture
    EXPECT_TRUE(same_bits(captured[i], eager[i])) << "op " << i;
  }
  captured.clear();
  qmm::synchronize(s);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}
