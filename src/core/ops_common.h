// Helpers shared by the op front ends.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>

#include "core/array_impl.h"
#include "core/backend.h"
#include "core/quant_spec.h"
#include "qmm/array.h"

namespace qmm::core {

// Throws "[op] <name> is an empty array." for a default-constructed Array.
void require_valid(const Array& a, const char* op, const char* name);
// `a` on the stream's device, contiguous (copies only when needed).
Array contiguous_on(const Array& a, Stream s);
// `a` on the stream's device, contiguous and of dtype t.
Array contiguous_as(const Array& a, Dtype t, Stream s);
// A new, contiguous output array allocated on stream s.
Array new_array(Backend& be, Stream s, Shape shape, Dtype dtype);
// Marks outputs as produced by `done`.
void set_done(std::initializer_list<Array*> outs, const std::shared_ptr<Completion>& done);
// MLX's validate_mode_with_type checks on scales/biases (tag `op`).
void check_scale_types(QuantMode mode, const Array& scales, const std::optional<Array>& biases,
                       const char* op);

}  // namespace qmm::core
