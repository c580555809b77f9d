// Front ends of quantize and dequantize: MLX's validation (same order, same messages), the
// stricter checks of qmm's decisions, output shapes and dtypes, then a backend call.
#include "core/array_impl.h"
#include "core/backend.h"
#include "core/convert.h"
#include "core/errors.h"
#include "core/ops_common.h"
#include "qmm/ops.h"

namespace qmm {

using namespace core;

namespace {

void check_global_scale(const std::optional<Array>& g, QuantMode mode, const char* op) {
  if (!g) return;
  if (mode != QuantMode::nvfp4)
    throw_invalid(op, "Global scale is only supported for 'nvfp4' quantization mode.");
  if (g->size() != 1)
    throw_invalid(op, "Global scale must be a scalar but got shape ", ShapeText{g->shape()}, ".");
  if (g->dtype() != Dtype::float32)
    throw_invalid(op, "Global scale must have dtype float32 but got ", g->dtype(), ".");
}

Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}

}  // namespace

Quantized quantize(const Array& w, std::optional<int> group_size, std::optional<int> bits,
                   std::string_view mode_str, const std::optional<Array>& global_scale,
                   StreamOrDevice sd) {
  const char* op = "quantize";
  require_valid(w, op, "w");
  QuantMode mode = parse_mode(mode_str, op);
  if (!is_floating(w.dtype()))
    throw_invalid(op, "Only real floating types can be quantized but w has type ", w.dtype(), ".");
  if (w.ndim() < 2)
    throw_invalid(op, "The matrix to be quantized must have at least 2 dimension but it has only ",
                  w.ndim(), ".");
  QuantSpec spec = resolve_spec(mode, group_size, bits);
  if (spec.group_size <= 0 || spec.bits <= 0) check_spec(spec, op);  // avoid % 0 below
  if (w.shape(-1) % spec.group_size != 0)
    throw_invalid(op,
                  "The last dimension of the matrix needs to be divisible by the quantization "
                  "group size ",
                  spec.group_size, ". However the provided  matrix has shape ",
                  ShapeText{w.shape()});
  check_global_scale(global_scale, mode, op);
  check_spec(spec, op);

  Stream s = to_stream(sd);
  auto& be = backend_for(s.device(), op);
  int64_t cols = w.shape(-1);
  int64_t rows = cols ? w.size() / cols : 0;
  Dtype scale_dtype = mode == QuantMode::affine ? w.dtype() : Dtype::uint8;

  QuantizeProblem p;
  p.spec = spec;
  p.rows = rows;
  p.cols = cols;
  p.w = contiguous_on(w, s);
  if (global_scale) p.global_scale = contiguous_on(*global_scale, s);
  p.w_q = new_array(be, s, with_last(w.shape(), spec.packed_cols(cols)), Dtype::uint32);
  p.scales = new_array(be, s, with_last(w.shape(), cols / spec.group_size), scale_dtype);
  if (mode == QuantMode::affine)
    p.biases = new_array(be, s, with_last(w.shape(), cols / spec.group_size), scale_dtype);
  auto done = be.quantize(p, s);
  Quantized out{p.w_q, p.scales, p.biases};
  set_done({&out.w_q, &out.scales, out.biases ? &*out.biases : nullptr}, done);
  return out;
}

Array dequantize(const Array& w, const Array& scales, const std::optional<Array>& biases,
                 std::optional<int> group_size, std::optional<int> bits, std::string_view mode_str,
                 const std::optional<Array>& global_scale, std::optional<Dtype> dtype,
                 StreamOrDevice sd) {
  const char* op = "dequantize";
  require_valid(w, op, "w");
  require_valid(scales, op, "scales");
  QuantMode mode = parse_mode(mode_str, op);
  if (dtype && !is_floating(*dtype))
    throw_invalid(op, "Only real floating types are supported but output dtype == ", *dtype, ".");
  check_scale_types(mode, scales, biases, op);
  QuantSpec spec = resolve_spec(mode, group_size, bits);
  if (spec.bits <= 0) throw_invalid(op, "Invalid value for bits: ", spec.bits);
  if (spec.group_size <= 0) throw_invalid(op, "Invalid value for group_size: ", spec.group_size);
  if (w.dtype() != Dtype::uint32) throw_invalid(op, "The matrix should be given as a uint32");
  if (w.ndim() < 2)
    throw_invalid(op,
                  "The matrix to be dequantized must have at least 2 dimension but it has only ",
                  w.ndim(), ".");
  check_global_scale(global_scale, mode, op);
  check_spec(spec, op);  // qmm: legal (mode, group size, bits) in every op

  const Shape& ws = w.shape();
  const Shape& ss = scales.shape();
  bool same_lead = ss.size() == ws.size();
  for (size_t i = 0; same_lead && i + 1 < ws.size(); ++i) same_lead = ss[i] == ws[i];
  const char* what = mode == QuantMode::affine ? "Shape of scales and biases" : "Shape of scales";
  if (!same_lead || (biases && biases->shape() != ss))
    throw_invalid(op, what, " does not match the matrix");
  int64_t cols = ws.back() * 32 / spec.bits;
  if (cols != ss.back() * spec.group_size || (ws.back() * 32) % spec.bits != 0)
    throw_invalid(op, what,
                  " does not match the matrix given the quantization parameters. Provided matrix "
                  "of shape ",
                  ShapeText{ws}, " and scales", mode == QuantMode::affine ? "/biases" : "",
                  " of shape ", ShapeText{ss}, " with group_size=", spec.group_size,
                  " and bits=", spec.bits, ".");

  // Defaults as MLX 0.32.4: the scales' type (affine), bfloat16 (fp modes), and float32 for
  // nvfp4 with a global scale (MLX always returns float32 there; qmm honours an explicit dtype).
  Dtype out_dtype = dtype                       ? *dtype
                    : mode == QuantMode::affine ? promote_types(scales.dtype(), biases->dtype())
                    : global_scale              ? Dtype::float32
                                                : Dtype::bfloat16;
  Stream s = to_stream(sd);
  auto& be = backend_for(s.device(), op);
  DequantizeProblem p;
  p.spec = spec;
  p.cols = cols;
  p.rows = cols ? w.size() / ws.back() : 0;
  p.w_q = contiguous_on(w, s);
  // Mixed scale/bias dtypes (rare) are brought to their common type so kernels see one.
  Dtype sb_dtype = biases ? promote_types(scales.dtype(), biases->dtype()) : scales.dtype();
  p.scales = contiguous_as(scales, sb_dtype, s);
  if (biases) p.biases = contiguous_as(*biases, sb_dtype, s);
  if (global_scale) p.global_scale = contiguous_on(*global_scale, s);
  p.out = new_array(be, s, with_last(ws, cols), out_dtype);
  auto done = be.dequantize(p, s);
  set_done({&p.out}, done);
  return p.out;
}

}  // namespace qmm
