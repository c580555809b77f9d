#include "core/quant_spec.h"

#include <stdexcept>

#include "core/errors.h"

namespace qmm::core {

std::string_view mode_name(QuantMode m) {
  switch (m) {
    case QuantMode::affine: return "affine";
    case QuantMode::mxfp4: return "mxfp4";
    case QuantMode::mxfp8: return "mxfp8";
    case QuantMode::nvfp4: return "nvfp4";
  }
  return "?";
}

QuantMode parse_mode(std::string_view mode, const char* op) {
  if (mode == "affine") return QuantMode::affine;
  if (mode == "mxfp4") return QuantMode::mxfp4;
  if (mode == "mxfp8") return QuantMode::mxfp8;
  if (mode == "nvfp4") return QuantMode::nvfp4;
  throw_invalid(op, "Invalid quantization mode '", mode, "'.");
}

QuantSpec resolve_spec(QuantMode mode, std::optional<int> group_size, std::optional<int> bits) {
  QuantSpec s{mode, 64, 4};
  switch (mode) {
    case QuantMode::affine: s = {mode, 64, 4}; break;
    case QuantMode::mxfp4: s = {mode, 32, 4}; break;
    case QuantMode::mxfp8: s = {mode, 32, 8}; break;
    case QuantMode::nvfp4: s = {mode, 16, 4}; break;
  }
  if (group_size) s.group_size = *group_size;
  if (bits) s.bits = *bits;
  return s;
}

void check_spec(const QuantSpec& spec, const char* op) {
  if (spec.mode == QuantMode::affine) {
    int g = spec.group_size;
    if (g != 32 && g != 64 && g != 128)
      throw_invalid(op, "The requested group size ", g,
                    " is not supported. The supported group sizes are 32, 64, and 128.");
    int b = spec.bits;
    if (b != 2 && b != 3 && b != 4 && b != 5 && b != 6 && b != 8)
      throw_invalid(op, "The requested number of bits ", b,
                    " is not supported. The supported bits are 2, 3, 4, 5, 6 and 8.");
    return;
  }
  int want_gs = spec.mode == QuantMode::nvfp4 ? 16 : 32;
  int want_bits = spec.mode == QuantMode::mxfp8 ? 8 : 4;
  if (spec.group_size != want_gs)
    throw_invalid(op, mode_name(spec.mode), " quantization requires group size ", want_gs,
                  " but got ", spec.group_size, ".");
  if (spec.bits != want_bits)
    throw_invalid(op, mode_name(spec.mode), " quantization requires bits to be ", want_bits,
                  " but got ", spec.bits, ".");
}

}  // namespace qmm::core
