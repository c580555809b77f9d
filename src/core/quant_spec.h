// Quantization modes, their legal (group size, bits) and per-mode defaults.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace qmm::core {

enum class QuantMode { affine, mxfp4, mxfp8, nvfp4 };

struct QuantSpec {
  QuantMode mode = QuantMode::affine;
  int group_size = 64;
  int bits = 4;
  // Packed uint32 words per row for `cols` elements.
  int64_t packed_cols(int64_t cols) const { return cols * bits / 32; }
};

// "affine", "mxfp4", ...
std::string_view mode_name(QuantMode m);
// Parses a mode string; throws "[<op>] Invalid quantization mode '<mode>'.".
QuantMode parse_mode(std::string_view mode, const char* op);
// Fills in the mode's defaults for absent group_size/bits (no legality check).
QuantSpec resolve_spec(QuantMode mode, std::optional<int> group_size, std::optional<int> bits);
// Throws std::invalid_argument with MLX's message (tagged `op`) if (mode, gs, bits) is illegal.
void check_spec(const QuantSpec& spec, const char* op);
// True for the fp modes (uint8 scales, no biases).
inline bool is_fp_mode(QuantMode m) { return m != QuantMode::affine; }

}  // namespace qmm::core
