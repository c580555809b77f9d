#include "core/ops_common.h"

#include "core/convert.h"
#include "core/errors.h"

namespace qmm::core {

void require_valid(const Array& a, const char* op, const char* name) {
  if (!a.valid()) throw_invalid(op, name, " is an empty array.");
}

Array contiguous_on(const Array& a, Stream s) {
  Array b = on_device(a, s);
  return b.is_contiguous() ? b : convert(b, b.dtype(), s);
}

Array contiguous_as(const Array& a, Dtype t, Stream s) {
  Array b = on_device(a, s);
  return (b.is_contiguous() && b.dtype() == t) ? b : convert(b, t, s);
}

Array new_array(Backend& be, Stream s, Shape shape, Dtype dtype) {
  size_t bytes = static_cast<size_t>(detail::shape_size(shape)) * itemsize(dtype);
  return detail::make_array(be.allocate(bytes, s), std::move(shape), dtype);
}

void set_done(std::initializer_list<Array*> outs, const std::shared_ptr<Completion>& done) {
  for (Array* a : outs)
    if (a) a->impl()->done = done;
}

void check_scale_types(QuantMode mode, const Array& scales, const std::optional<Array>& biases,
                       const char* op) {
  if (mode == QuantMode::affine) {
    if (!biases || !biases->valid())
      throw_invalid(op, "Biases must be provided for affine quantization.");
    if (!is_floating(promote_types(scales.dtype(), biases->dtype())))
      throw_invalid(op,
                    "Only real floating types are supported but scales.dtype() == ", scales.dtype(),
                    " and biases.dtype() == ", biases->dtype(), ".");
    return;
  }
  if (scales.dtype() != Dtype::uint8)
    throw_invalid(op, "Scale type must be uint8 but received type ", scales.dtype(), ".");
  if (biases && biases->valid())
    throw_invalid(op, "Biases must be null for quantization mode '", mode_name(mode), "'.");
}

}  // namespace qmm::core
