// One test per validation rule: MLX's checks with MLX's messages, plus qmm's stricter ones
// (mlx-semantics.md, Decision 3).
#include <gtest/gtest.h>

#include "test_util.h"

using namespace qmm_test;
using qmm::Array;
using qmm::Dtype;

namespace {

Array randn(Shape s, Dtype t = Dtype::float32, uint64_t seed = 7) {
  return Array::random_normal(std::move(s), t, seed);
}
Array ints(Shape s, Dtype t = Dtype::int32) { return Array::zeros(std::move(s), t); }

struct Affine {
  Array x = randn({10, 512});
  Array w = randn({32, 512}, Dtype::float32, 8);
  qmm::Quantized q = qmm::quantize(w);  // defaults: affine, 64, 4
};

}  // namespace

// ---- quantize ------------------------------------------------------------------------------

TEST(QuantizeErrors, InvalidMode) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), {}, {}, "xyz"),
                 "[quantize] Invalid quantization mode 'xyz'.");
}
TEST(QuantizeErrors, IntegerInput) {
  EXPECT_INVALID(qmm::quantize(ints({4, 64})),
                 "[quantize] Only real floating types can be quantized but w has type int32.");
  EXPECT_INVALID(qmm::quantize(ints({4, 64}), {}, {}, "mxfp4"),
                 "Only real floating types can be quantized");
}
TEST(QuantizeErrors, OneDimensional) {
  EXPECT_INVALID(qmm::quantize(randn({64})),
                 "[quantize] The matrix to be quantized must have at least 2 dimension but it has "
                 "only 1.");
}
TEST(QuantizeErrors, LastDimNotDivisible) {
  EXPECT_INVALID(qmm::quantize(randn({4, 100})),
                 "[quantize] The last dimension of the matrix needs to be divisible by the "
                 "quantization group size 64. However the provided  matrix has shape (4,100)");
}
TEST(QuantizeErrors, GlobalScaleOnlyForNvfp4) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), {}, {}, "affine", Array::scalar(1.0f)),
                 "[quantize] Global scale is only supported for 'nvfp4' quantization mode.");
}
TEST(QuantizeErrors, GlobalScaleNotScalar) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), {}, {}, "nvfp4", randn({2})),
                 "[quantize] Global scale must be a scalar but got shape (2).");
}
TEST(QuantizeErrors, GlobalScaleDtype) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), {}, {}, "nvfp4", randn({}, Dtype::float16)),
                 "[quantize] Global scale must have dtype float32 but got float16.");
}
TEST(QuantizeErrors, AffineGroupSize) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), 16),
                 "[quantize] The requested group size 16 is not supported. The supported group "
                 "sizes are 32, 64, and 128.");
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), 0), "The requested group size 0 is not supported");
}
TEST(QuantizeErrors, AffineBits) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), 64, 7),
                 "[quantize] The requested number of bits 7 is not supported. The supported bits "
                 "are 2, 3, 4, 5, 6 and 8.");
}
TEST(QuantizeErrors, FpGroupSize) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), 64, {}, "mxfp4"),
                 "[quantize] mxfp4 quantization requires group size 32 but got 64.");
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), 32, {}, "nvfp4"),
                 "[quantize] nvfp4 quantization requires group size 16 but got 32.");
}
TEST(QuantizeErrors, FpBits) {
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), {}, 3, "mxfp8"),
                 "[quantize] mxfp8 quantization requires bits to be 8 but got 3.");
  EXPECT_INVALID(qmm::quantize(randn({4, 64}), {}, 8, "mxfp4"),
                 "[quantize] mxfp4 quantization requires bits to be 4 but got 8.");
}
TEST(QuantizeErrors, EmptyArray) {
  EXPECT_INVALID(qmm::quantize(Array()), "[quantize] w is an empty array.");
}

// ---- dequantize ----------------------------------------------------------------------------

TEST(DequantizeErrors, InvalidMode) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, {}, {}, "xyz"),
                 "[dequantize] Invalid quantization mode 'xyz'.");
}
TEST(DequantizeErrors, IntegerOutputDtype) {
  Affine a;
  EXPECT_INVALID(
      qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, {}, {}, "affine", {}, Dtype::int32),
      "[dequantize] Only real floating types are supported but output dtype == int32.");
}
TEST(DequantizeErrors, MissingBiases) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales),
                 "[dequantize] Biases must be provided for affine quantization.");
}
TEST(DequantizeErrors, IntegerScalesAndBiases) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, ints({32, 8}), ints({32, 8})),
                 "[dequantize] Only real floating types are supported but scales.dtype() == int32 "
                 "and biases.dtype() == int32.");
}
TEST(DequantizeErrors, FpScalesMustBeUint8) {
  auto q = qmm::quantize(randn({4, 64}), {}, {}, "mxfp4");
  EXPECT_INVALID(qmm::dequantize(q.w_q, randn({4, 2}), {}, {}, {}, "mxfp4"),
                 "[dequantize] Scale type must be uint8 but received type float32.");
}
TEST(DequantizeErrors, FpBiasesMustBeNull) {
  auto q = qmm::quantize(randn({4, 64}), {}, {}, "mxfp4");
  EXPECT_INVALID(qmm::dequantize(q.w_q, q.scales, randn({4, 2}), {}, {}, "mxfp4"),
                 "[dequantize] Biases must be null for quantization mode 'mxfp4'.");
}
TEST(DequantizeErrors, NonPositiveBitsOrGroup) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, 64, 0),
                 "[dequantize] Invalid value for bits: 0");
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, -1, 4),
                 "[dequantize] Invalid value for group_size: -1");
}
TEST(DequantizeErrors, WeightsMustBeUint32) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.w, a.q.scales, a.q.biases),
                 "[dequantize] The matrix should be given as a uint32");
}
TEST(DequantizeErrors, WeightsOneDimensional) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q.reshape({-1}), a.q.scales, a.q.biases),
                 "[dequantize] The matrix to be dequantized must have at least 2 dimension but it "
                 "has only 1.");
}
TEST(DequantizeErrors, GlobalScaleRules) {
  Affine a;
  EXPECT_INVALID(
      qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, {}, {}, "affine", Array::scalar(1.0f)),
      "[dequantize] Global scale is only supported for 'nvfp4' quantization mode.");
  auto q = qmm::quantize(randn({4, 64}), {}, {}, "nvfp4");
  EXPECT_INVALID(qmm::dequantize(q.w_q, q.scales, {}, {}, {}, "nvfp4", randn({3})),
                 "[dequantize] Global scale must be a scalar but got shape (3).");
  EXPECT_INVALID(qmm::dequantize(q.w_q, q.scales, {}, {}, {}, "nvfp4", randn({}, Dtype::bfloat16)),
                 "[dequantize] Global scale must have dtype float32 but got bfloat16.");
}
TEST(DequantizeErrors, IllegalSpecEvenInDequantize) {  // qmm: stricter than MLX
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, 64, 7),
                 "[dequantize] The requested number of bits 7 is not supported.");
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, 16, 4),
                 "[dequantize] The requested group size 16 is not supported.");
  auto q = qmm::quantize(randn({4, 64}), {}, {}, "mxfp8");
  EXPECT_INVALID(qmm::dequantize(q.w_q, q.scales, {}, 16, 4, "mxfp8"),
                 "[dequantize] mxfp8 quantization requires group size 32 but got 16.");
}
TEST(DequantizeErrors, ScalesShapeMismatch) {
  Affine a;
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales.slice(0, 0, 16), a.q.biases),
                 "[dequantize] Shape of scales and biases does not match the matrix");
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases->slice(0, 0, 16)),
                 "[dequantize] Shape of scales and biases does not match the matrix");
}
TEST(DequantizeErrors, ScalesIncompatibleWithParameters) {
  Affine a;  // w_q (32, 64): 512 4-bit elements per row = 8 groups of 64
  EXPECT_INVALID(qmm::dequantize(a.q.w_q, a.q.scales, a.q.biases, 32, 4),
                 "[dequantize] Shape of scales and biases does not match the matrix given the "
                 "quantization parameters. Provided matrix of shape (32,64) and scales/biases of "
                 "shape (32,8) with group_size=32 and bits=4.");
  auto q = qmm::quantize(randn({4, 64}), {}, {}, "mxfp4");
  EXPECT_INVALID(qmm::dequantize(q.w_q, q.scales.slice(1, 0, 1), {}, {}, {}, "mxfp4"),
                 "[dequantize] Shape of scales does not match the matrix given the quantization "
                 "parameters.");
  EXPECT_INVALID(qmm::dequantize(q.w_q, q.scales.slice(0, 0, 2), {}, {}, {}, "mxfp4"),
                 "[dequantize] Shape of scales does not match the matrix");
}

// ---- quantized_matmul ----------------------------------------------------------------------

TEST(QuantizedMatmulErrors, InvalidMode) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales, a.q.biases, true, {}, {}, "xyz"),
                 "[quantized_matmul] Invalid quantization mode 'xyz'.");
}
TEST(QuantizedMatmulErrors, MissingBiases) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales),
                 "[quantized_matmul] Biases must be provided for affine quantization.");
}
TEST(QuantizedMatmulErrors, IntegerScales) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, ints({32, 8}), ints({32, 8})),
                 "[quantized_matmul] Only real floating types are supported but scales.dtype() == "
                 "int32 and biases.dtype() == int32.");
}
TEST(QuantizedMatmulErrors, FpScaleType) {
  auto q = qmm::quantize(randn({32, 512}), {}, {}, "mxfp8");
  EXPECT_INVALID(
      qmm::quantized_matmul(randn({2, 512}), q.w_q, randn({32, 16}), {}, true, {}, {}, "mxfp8"),
      "[quantized_matmul] Scale type must be uint8 but received type float32.");
}
TEST(QuantizedMatmulErrors, FpBiasesMustBeNull) {
  auto q = qmm::quantize(randn({32, 512}), {}, {}, "mxfp8");
  EXPECT_INVALID(qmm::quantized_matmul(randn({2, 512}), q.w_q, q.scales, randn({32, 16}), true, {},
                                       {}, "mxfp8"),
                 "[quantized_matmul] Biases must be null for quantization mode 'mxfp8'.");
}
TEST(QuantizedMatmulErrors, IllegalSpec) {  // qmm: MLX does not check this here
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales, a.q.biases, true, 64, 7),
                 "[quantized_matmul] The requested number of bits 7 is not supported.");
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales, a.q.biases, true, 64, 0),
                 "[quantized_matmul] The requested number of bits 0 is not supported.");
  auto q = qmm::quantize(randn({32, 512}), {}, {}, "nvfp4");
  EXPECT_INVALID(qmm::quantized_matmul(randn({2, 512}), q.w_q, q.scales, {}, true, 32, 4, "nvfp4"),
                 "[quantized_matmul] nvfp4 quantization requires group size 16 but got 32.");
}
TEST(QuantizedMatmulErrors, WeightMustBeUint32) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.w, a.q.scales, a.q.biases),
                 "[quantized_matmul] The weight matrix should be uint32 but received float32");
}
TEST(QuantizedMatmulErrors, ScalesAndBiasesShapes) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales, a.q.biases->slice(1, 0, 4)),
                 "[quantized_matmul] Scales and biases should have the same shape. Received scales "
                 "with shape (32,8) and biases with (32,4)");
}
TEST(QuantizedMatmulErrors, BatchShapeMismatch) {
  auto q = qmm::quantize(randn({3, 32, 512}));
  Array s2 = q.scales.slice(0, 0, 2), b2 = q.biases->slice(0, 0, 2);
  EXPECT_INVALID(qmm::quantized_matmul(randn({3, 4, 512}), q.w_q, s2, b2),
                 "[quantized_matmul] Weight and scales should have the same batch shape. Received "
                 "weight with shape (3,32,64), scales with (2,32,8).");
}
TEST(QuantizedMatmulErrors, ScalesIncompatibleWithBits) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales, a.q.biases, true, 32, 4),
                 "[quantized_matmul] The shapes of the weight and scales are incompatible based on "
                 "bits and group_size. w.shape() == (32,64) and scales.shape() == (32,8) with "
                 "group_size=32 and bits=4");
}
TEST(QuantizedMatmulErrors, ScalesRowsMustMatch) {  // qmm: MLX would read out of bounds
  Affine a;
  EXPECT_INVALID(
      qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales.slice(0, 0, 16), a.q.biases->slice(0, 0, 16)),
      "[quantized_matmul] Weight and scales should have the same number of rows.");
}
TEST(QuantizedMatmulErrors, InnerDimension) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(randn({10, 256}), a.q.w_q, a.q.scales, a.q.biases),
                 "[quantized_matmul] Last dimension of first input with shape (..., 256) does not "
                 "match the expanded quantized matrix (512, 32) computed from shape (32,64) with "
                 "group_size=64, bits=4 and transpose=true");
}
TEST(QuantizedMatmulErrors, MlxThrowCatalogue) {  // mlx-semantics.md §14 #22
  Affine a;
  const auto& q = a.q;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, q.w_q.transpose_last2(), q.scales, q.biases),
                 "[quantized_matmul]");
  EXPECT_INVALID(
      qmm::quantized_matmul(a.x, q.w_q.transpose_last2(), q.scales.transpose_last2(), q.biases),
      "[quantized_matmul]");
  EXPECT_INVALID(qmm::quantized_matmul(a.x, q.w_q, q.scales, q.biases, false), "transpose=false");
  EXPECT_INVALID(
      qmm::quantized_matmul(a.x, q.w_q, q.scales.transpose_last2(), q.biases->transpose_last2()),
      "[quantized_matmul]");
  EXPECT_EQ(qmm::quantized_matmul(a.x, q.w_q, q.scales, q.biases).shape(), (Shape{10, 32}));
}
TEST(QuantizedMatmulErrors, NonFloatingXForFpMode) {
  auto q = qmm::quantize(randn({32, 512}), {}, {}, "mxfp4");
  EXPECT_INVALID(
      qmm::quantized_matmul(ints({2, 512}), q.w_q, q.scales, {}, true, {}, {}, "mxfp4"),
      "[quantized_matmul] Only real floating types are supported but x.dtype() == int32.");
}
TEST(QuantizedMatmulErrors, QuantizedWeightsNeedScales) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q),
                 "[quantized_matmul] Scales must be provided when the weight matrix is already "
                 "quantized");
}
TEST(QuantizedMatmulErrors, BiasesWithoutScales) {
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.w, std::nullopt, a.q.biases),
                 "[quantized_matmul] Biases were given without scales.");
}
TEST(QuantizedMatmulErrors, AutoQuantizationErrorsComeFromQuantize) {
  EXPECT_INVALID(qmm::quantized_matmul(randn({2, 100}), randn({8, 100})),
                 "[quantize] The last dimension of the matrix needs to be divisible");
}
TEST(QuantizedMatmulErrors, BatchShapesCannotBroadcast) {
  auto q = qmm::quantize(randn({3, 32, 512}));
  EXPECT_INVALID(qmm::quantized_matmul(randn({2, 4, 512}), q.w_q, q.scales, q.biases),
                 "[quantized_matmul] Shapes (2) and (3) cannot be broadcast.");
}
TEST(QuantizedMatmulErrors, UnavailableDevice) {
  if (qmm::is_available(qmm::Device::gpu())) GTEST_SKIP() << "a GPU is available here";
  Affine a;
  EXPECT_INVALID(qmm::quantized_matmul(a.x, a.q.w_q, a.q.scales, a.q.biases, true, {}, {}, "affine",
                                       qmm::Device::gpu()),
                 "is not available");
}

// ---- gather_qmm ----------------------------------------------------------------------------

namespace {
struct Experts {
  Array x = randn({4, 2, 128});
  qmm::Quantized q = qmm::quantize(randn({3, 16, 128}, Dtype::float32, 9));
};
Array idx(std::vector<int32_t> v, Shape s) { return Array::from_vector(v, std::move(s)); }
}  // namespace

TEST(GatherQmmErrors, InvalidMode) {
  Experts e;
  EXPECT_INVALID(
      qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, {}, idx({0}, {}), true, {}, {}, "xyz"),
      "[gather_qmm] Invalid quantization mode 'xyz'.");
}
TEST(GatherQmmErrors, MissingBiasesTaggedGather) {
  Experts e;
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, {}, {}, idx({0, 1}, {2})),
                 "[gather_qmm] Biases must be provided for affine quantization.");
}
TEST(GatherQmmErrors, WithoutIndicesItIsQuantizedMatmul) {
  Experts e;
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales),
                 "[quantized_matmul] Biases must be provided for affine quantization.");
}
TEST(GatherQmmErrors, IndicesMustBeIntegral) {
  Experts e;
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, {}, randn({2})),
                 "[gather_qmm] Got indices with invalid dtype. Indices must be integral.");
}
TEST(GatherQmmErrors, InputsNeedTwoDimensions) {
  Experts e;
  EXPECT_INVALID(
      qmm::gather_qmm(randn({128}), e.q.w_q, e.q.scales, e.q.biases, {}, idx({0}, {1})),
      "[gather_qmm] Input must have at least two dimensions but got input with shape (128).");
}
TEST(GatherQmmErrors, RhsOutOfRange) {
  Experts e;
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, {}, idx({0, 3, 1, 2}, {4})),
                 "[gather_qmm] rhs_indices contains 3 at flat position 1, outside the valid range "
                 "[0, 3)");
}
TEST(GatherQmmErrors, NegativeIndex) {
  Experts e;
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, {}, idx({-1}, {1})),
                 "[gather_qmm] rhs_indices contains -1");
  Array neg64 = Array::from_vector(std::vector<int64_t>{0, -5}, {2});
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, neg64, idx({0, 1}, {2})),
                 "[gather_qmm] lhs_indices contains -5");
}
TEST(GatherQmmErrors, LhsOutOfRange) {
  Experts e;
  Array big = Array::from_vector(std::vector<uint32_t>{4}, {1});
  EXPECT_INVALID(qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, big, idx({0}, {1})),
                 "[gather_qmm] lhs_indices contains 4 at flat position 0, outside the valid range "
                 "[0, 4)");
}
TEST(GatherQmmErrors, IndicesMustBroadcast) {
  Experts e;
  EXPECT_INVALID(
      qmm::gather_qmm(e.x, e.q.w_q, e.q.scales, e.q.biases, idx({0, 1, 2}, {3}), idx({0, 1}, {2})),
      "[gather_qmm] Shapes (3) and (2) cannot be broadcast.");
}
TEST(GatherQmmErrors, InnerDimensionTaggedGather) {
  Experts e;
  EXPECT_INVALID(
      qmm::gather_qmm(randn({4, 2, 64}), e.q.w_q, e.q.scales, e.q.biases, {}, idx({0}, {1})),
      "[gather_qmm] Last dimension of first input with shape (..., 64)");
}
