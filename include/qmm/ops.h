// The four quantized operations, with MLX's names, arguments, defaults and meaning.
#pragma once

#include <optional>
#include <string_view>

#include "qmm/array.h"
#include "qmm/device.h"

namespace qmm {

// The result of quantize: packed uint32 weights, per-group scales, and biases (affine mode only).
struct Quantized {
  Array w_q;
  Array scales;
  std::optional<Array> biases;
};

// Quantizes the last axis of `w` (ndim >= 2) in groups of `group_size` with `bits` bits.
// mode: "affine" (bits 2,3,4,5,6,8; group 32,64,128; defaults 4/64), "mxfp4" (4/32),
// "mxfp8" (8/32), "nvfp4" (4/16, optional float32 scalar `global_scale`).
Quantized quantize(const Array& w, std::optional<int> group_size = std::nullopt,
                   std::optional<int> bits = std::nullopt, std::string_view mode = "affine",
                   const std::optional<Array>& global_scale = std::nullopt, StreamOrDevice s = {});

// Expands packed weights back to floating point. The output dtype is `dtype` if given, else the
// scales' dtype (affine) or bfloat16 (fp modes).
Array dequantize(const Array& w, const Array& scales,
                 const std::optional<Array>& biases = std::nullopt,
                 std::optional<int> group_size = std::nullopt,
                 std::optional<int> bits = std::nullopt, std::string_view mode = "affine",
                 const std::optional<Array>& global_scale = std::nullopt,
                 std::optional<Dtype> dtype = std::nullopt, StreamOrDevice s = {});

// x @ dequantize(w).T (transpose = true) or x @ dequantize(w) (transpose = false), accumulated in
// float32. When `scales` is absent and `w` is floating point, `w` is quantized first with the
// given (or default) group size, bits and mode.
Array quantized_matmul(const Array& x, const Array& w,
                       const std::optional<Array>& scales = std::nullopt,
                       const std::optional<Array>& biases = std::nullopt, bool transpose = true,
                       std::optional<int> group_size = std::nullopt,
                       std::optional<int> bits = std::nullopt, std::string_view mode = "affine",
                       StreamOrDevice s = {});

// The gathered form used by Mixture-of-Experts layers: out[i] = x[lhs[i]] @ dequantize(w[rhs[i]]).T
// where lhs/rhs index the flattened batch axes of x and w, broadcast against each other, and
// default to all batches in order. `sorted_indices` says rhs (or lhs) is sorted ascending: a
// hint that may make the call faster and never changes its result.
Array gather_qmm(const Array& x, const Array& w, const std::optional<Array>& scales = std::nullopt,
                 const std::optional<Array>& biases = std::nullopt,
                 const std::optional<Array>& lhs_indices = std::nullopt,
                 const std::optional<Array>& rhs_indices = std::nullopt, bool transpose = true,
                 std::optional<int> group_size = std::nullopt,
                 std::optional<int> bits = std::nullopt, std::string_view mode = "affine",
                 bool sorted_indices = false, StreamOrDevice s = {});

}  // namespace qmm
