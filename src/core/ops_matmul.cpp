// Front ends of quantized_matmul and gather_qmm: validation (MLX's order and messages plus
// qmm's stricter checks), automatic quantization, broadcasting, dtype promotion, and the
// reduction of both ops to one batched MatmulProblem.
#include <algorithm>

#include "core/array_impl.h"
#include "core/backend.h"
#include "core/convert.h"
#include "core/errors.h"
#include "core/ops_common.h"
#include "qmm/ops.h"

namespace qmm {

using namespace core;

namespace {

struct Weights {
  Array w, scales;
  std::optional<Array> biases;
};

// Quantizes a floating-point `w` when no scales are given (the documented R API needs this).
Weights resolve_weights(const Array& w, const std::optional<Array>& scales,
                        const std::optional<Array>& biases, std::optional<int> group_size,
                        std::optional<int> bits, std::string_view mode, StreamOrDevice sd,
                        const char* op) {
  require_valid(w, op, "w");
  if (scales && scales->valid()) return {w, *scales, biases};
  if (!is_floating(w.dtype()))
    throw_invalid(op,
                  "Scales must be provided when the weight matrix is already quantized (w has "
                  "dtype ",
                  w.dtype(), ").");
  if (biases && biases->valid())
    throw_invalid(op,
                  "Biases were given without scales. Pass both (pre-quantized weights) or neither "
                  "(w is quantized automatically).");
  Quantized q = quantize(w, group_size, bits, mode, std::nullopt, sd);
  return {q.w_q, q.scales, q.biases};
}

// The checks shared by both ops; returns the spec. `op` is the message tag.
QuantSpec validate(const Array& x, const Weights& W, bool transpose, std::optional<int> group_size,
                   std::optional<int> bits, std::string_view mode_str, const char* op,
                   int64_t* K_out, int64_t* N_out, Dtype* out_dtype) {
  require_valid(x, op, "x");
  QuantMode mode = parse_mode(mode_str, op);
  check_scale_types(mode, W.scales, W.biases, op);
  QuantSpec spec = resolve_spec(mode, group_size, bits);
  check_spec(spec, op);  // qmm: legal (mode, group size, bits) in every op
  const Array& w = W.w;
  if (w.dtype() != Dtype::uint32)
    throw_invalid(op, "The weight matrix should be uint32 but received ", w.dtype());
  if (W.biases && W.biases->shape() != W.scales.shape())
    throw_invalid(op, "Scales and biases should have the same shape. Received scales with shape ",
                  ShapeText{W.scales.shape()}, " and biases with ", ShapeText{W.biases->shape()});
  if (w.ndim() < 2)
    throw_invalid(op, "The weight matrix must have at least 2 dimensions but received shape ",
                  ShapeText{w.shape()}, ".");
  const Shape& ws = w.shape();
  const Shape& ss = W.scales.shape();
  bool same_batch = ss.size() >= ws.size() - 2 && std::equal(ws.begin(), ws.end() - 2, ss.begin());
  if (!same_batch)
    throw_invalid(op,
                  "Weight and scales should have the same batch shape. Received weight with "
                  "shape ",
                  ShapeText{ws}, ", scales with ", ShapeText{ss}, ".");
  if (ws.back() * 32 / spec.bits != ss.back() * spec.group_size || (ws.back() * 32) % spec.bits)
    throw_invalid(op,
                  "The shapes of the weight and scales are incompatible based on bits and "
                  "group_size. w.shape() == ",
                  ShapeText{ws}, " and scales.shape() == ", ShapeText{ss},
                  " with group_size=", spec.group_size, " and bits=", spec.bits);
  // qmm: MLX reads out of bounds when scales has other rows than w (Decision 3).
  if (ss.size() != ws.size() || ss[ss.size() - 2] != ws[ws.size() - 2])
    throw_invalid(op,
                  "Weight and scales should have the same number of rows. Received weight "
                  "with shape ",
                  ShapeText{ws}, ", scales with ", ShapeText{ss}, ".");
  int64_t unpacked = ws.back() * 32 / spec.bits;
  int64_t w_inner = transpose ? unpacked : ws[ws.size() - 2];
  int64_t w_outer = transpose ? ws[ws.size() - 2] : unpacked;
  if (x.ndim() < 1 || x.shape(-1) != w_inner)
    throw_invalid(op, "Last dimension of first input with shape (..., ", x.ndim() ? x.shape(-1) : 0,
                  ") does not match the expanded quantized matrix (", w_inner, ", ", w_outer,
                  ") computed from shape ", ShapeText{ws}, " with group_size=", spec.group_size,
                  ", bits=", spec.bits, " and transpose=", transpose ? "true" : "false");
  Dtype out = mode == QuantMode::affine
                  ? promote_types(x.dtype(), promote_types(W.scales.dtype(), W.biases->dtype()))
                  : x.dtype();
  if (!is_floating(out))
    throw_invalid(op, "Only real floating types are supported but x.dtype() == ", x.dtype(), ".");
  *K_out = w_inner;
  *N_out = w_outer;
  *out_dtype = out;
  return spec;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw_invalid(op, "Shapes ", ShapeText{a}, " and ", ShapeText{b}, " cannot be broadcast.");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides (in matrices) of an operand whose batch shape is `own`, seen over `out` batch axes.
Strides batch_strides(const Shape& own, const Shape& out) {
  Strides st(out.size(), 0);
  int64_t acc = 1;
  for (size_t k = own.size(); k-- > 0;) {
    size_t i = k + (out.size() - own.size());
    st[i] = own[k] == 1 && out[i] != 1 ? 0 : acc;
    acc *= own[k];
  }
  return st;
}

// Casts x, scales and biases to the compute dtype, makes them contiguous on the stream's
// device, allocates the output and runs the problem.
Array run(MatmulProblem p, const Array& x, const Weights& W, Dtype out_dtype, Shape out_shape,
          Stream s, const char* op) {
  auto& be = backend_for(s.device(), op);
  bool affine = p.spec.mode == QuantMode::affine;
  p.x = contiguous_as(x, out_dtype, s);
  p.w = contiguous_on(W.w, s);
  p.scales = affine ? contiguous_as(W.scales, out_dtype, s) : contiguous_on(W.scales, s);
  if (affine) p.biases = contiguous_as(*W.biases, out_dtype, s);
  p.out = new_array(be, s, {p.batch, p.M, p.N}, out_dtype);
  auto done = be.quantized_matmul(p, s);
  set_done({&p.out}, done);
  return p.out.reshape(std::move(out_shape));
}

Shape leading(const Shape& s, size_t drop) { return Shape(s.begin(), s.end() - drop); }

// Index array -> int64 on the stream's device broadcast to `shape`; checked against
// [0, limit) here when it lives on the host (GPU backends check on the device).
Array prepare_indices(const Array& idx, const Shape& shape, int64_t limit, const char* which,
                      const Shape& operand_shape, const char* operand, Stream s) {
  if (idx.device().type == DeviceType::cpu) {
    auto v = idx.to_double_vector();
    for (size_t i = 0; i < v.size(); ++i)
      if (!(v[i] >= 0 && v[i] < static_cast<double>(limit)))
        throw_invalid("gather_qmm", which, " contains ", static_cast<int64_t>(v[i]),
                      " at flat position ", i, ", outside the valid range [0, ", limit, ") of ",
                      operand, "'s batch (", operand, " has shape ", ShapeText{operand_shape},
                      ").");
  }
  return convert(idx.broadcast_to(shape), Dtype::int64, s);
}

}  // namespace

Array quantized_matmul(const Array& x, const Array& w, const std::optional<Array>& scales,
                       const std::optional<Array>& biases, bool transpose,
                       std::optional<int> group_size, std::optional<int> bits,
                       std::string_view mode, StreamOrDevice sd) {
  const char* op = "quantized_matmul";
  Weights W = resolve_weights(w, scales, biases, group_size, bits, mode, sd, op);
  int64_t K, N;
  Dtype out_dtype;
  QuantSpec spec = validate(x, W, transpose, group_size, bits, mode, op, &K, &N, &out_dtype);
  Stream s = to_stream(sd);

  MatmulProblem p;
  p.spec = spec;
  p.transpose = transpose;
  p.K = K;
  p.N = N;
  bool vector_x = x.ndim() == 1;
  Array xm = vector_x ? x.reshape({1, K}) : x;
  Shape x_batch = leading(xm.shape(), 2);
  Shape w_batch = leading(W.w.shape(), 2);
  int64_t w_batches = detail::shape_size(w_batch);
  Shape out_shape;
  Shape out_batch = broadcast_shapes(x_batch, w_batch, op);
  if (w_batches == 1) {
    // One weight matrix: every row of x, all batch axes folded into M, meets it once.
    p.M = detail::shape_size(leading(xm.shape(), 1));
    out_shape = out_batch;
    out_shape.push_back(xm.shape(-2));
    out_shape.push_back(N);
    xm = xm.reshape({1, p.M, K});
  } else {
    p.M = xm.shape(-2);
    p.batch_shape = out_batch;
    p.batch = detail::shape_size(out_batch);
    p.x_batches = detail::shape_size(x_batch);
    p.w_batches = w_batches;
    p.x_map.strides = batch_strides(x_batch, out_batch);
    p.w_map.strides = batch_strides(w_batch, out_batch);
    xm = xm.reshape({p.x_batches, p.M, K});
    out_shape = out_batch;
    out_shape.push_back(p.M);
    out_shape.push_back(N);
  }
  if (vector_x) out_shape.erase(out_shape.end() - 2);
  Weights Wf = W;
  Wf.w = W.w.reshape({w_batches, W.w.shape(-2), W.w.shape(-1)});
  Wf.scales = W.scales.reshape({w_batches, W.scales.shape(-2), W.scales.shape(-1)});
  if (W.biases) Wf.biases = W.biases->reshape(Wf.scales.shape());
  return run(std::move(p), xm, Wf, out_dtype, std::move(out_shape), s, op);
}

Array gather_qmm(const Array& x, const Array& w, const std::optional<Array>& scales,
                 const std::optional<Array>& biases, const std::optional<Array>& lhs_indices,
                 const std::optional<Array>& rhs_indices, bool transpose,
                 std::optional<int> group_size, std::optional<int> bits, std::string_view mode,
                 bool sorted_indices, StreamOrDevice sd) {
  bool has_lhs = lhs_indices && lhs_indices->valid();
  bool has_rhs = rhs_indices && rhs_indices->valid();
  if (!has_lhs && !has_rhs)
    return quantized_matmul(x, w, scales, biases, transpose, group_size, bits, mode, sd);
  const char* op = "gather_qmm";
  Weights W = resolve_weights(w, scales, biases, group_size, bits, mode, sd, op);
  int64_t K, N;
  Dtype out_dtype;
  QuantSpec spec = validate(x, W, transpose, group_size, bits, mode, op, &K, &N, &out_dtype);
  for (const Array* a : {&x, static_cast<const Array*>(&W.w)})
    if (a->ndim() < 2)
      throw_invalid(op, "Input must have at least two dimensions but got input with shape ",
                    ShapeText{a->shape()}, ".");
  if ((has_lhs && !is_integral(lhs_indices->dtype())) ||
      (has_rhs && !is_integral(rhs_indices->dtype())))
    throw_invalid(op, "Got indices with invalid dtype. Indices must be integral.");

  Stream s = to_stream(sd);
  Shape x_batch = leading(x.shape(), 2);
  Shape w_batch = leading(W.w.shape(), 2);
  Shape lhs_shape = has_lhs ? lhs_indices->shape() : x_batch;
  Shape rhs_shape = has_rhs ? rhs_indices->shape() : w_batch;
  Shape batch_shape = broadcast_shapes(lhs_shape, rhs_shape, op);

  MatmulProblem p;
  p.spec = spec;
  p.transpose = transpose;
  p.M = x.shape(-2);
  p.K = K;
  p.N = N;
  p.batch_shape = batch_shape;
  p.batch = detail::shape_size(batch_shape);
  p.x_batches = detail::shape_size(x_batch);
  p.w_batches = detail::shape_size(w_batch);
  if (has_lhs)
    p.x_map.indices =
        prepare_indices(*lhs_indices, batch_shape, p.x_batches, "lhs_indices", x.shape(), "x", s);
  else
    p.x_map.strides = batch_strides(x_batch, batch_shape);
  if (has_rhs)
    p.w_map.indices =
        prepare_indices(*rhs_indices, batch_shape, p.w_batches, "rhs_indices", W.w.shape(), "w", s);
  else
    p.w_map.strides = batch_strides(w_batch, batch_shape);
  // MLX honours the hint only when exactly one index array is given; so does qmm.
  p.sorted_indices = sorted_indices && has_rhs && !has_lhs;

  Shape out_shape = batch_shape;
  out_shape.push_back(p.M);
  out_shape.push_back(N);
  Array xm = x.reshape({p.x_batches, p.M, K});
  Weights Wf = W;
  Wf.w = W.w.reshape({p.w_batches, W.w.shape(-2), W.w.shape(-1)});
  Wf.scales = W.scales.reshape({p.w_batches, W.scales.shape(-2), W.scales.shape(-1)});
  if (W.biases) Wf.biases = W.biases->reshape(Wf.scales.shape());
  return run(std::move(p), xm, Wf, out_dtype, std::move(out_shape), s, op);
}

}  // namespace qmm
