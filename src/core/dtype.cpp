// Dtype names, sizes and MLX's promotion rules.
#include <ostream>
#include <sstream>

#include "core/errors.h"
#include "qmm/array.h"

namespace qmm {

size_t itemsize(Dtype t) {
  switch (t) {
    case Dtype::float32:
    case Dtype::uint32:
    case Dtype::int32: return 4;
    case Dtype::float16:
    case Dtype::bfloat16: return 2;
    case Dtype::uint8: return 1;
    case Dtype::int64: return 8;
  }
  return 0;
}

std::string_view dtype_name(Dtype t) {
  switch (t) {
    case Dtype::float32: return "float32";
    case Dtype::float16: return "float16";
    case Dtype::bfloat16: return "bfloat16";
    case Dtype::uint8: return "uint8";
    case Dtype::uint32: return "uint32";
    case Dtype::int32: return "int32";
    case Dtype::int64: return "int64";
  }
  return "?";
}

Dtype parse_dtype(std::string_view name) {
  for (Dtype t : {Dtype::float32, Dtype::float16, Dtype::bfloat16, Dtype::uint8, Dtype::uint32,
                  Dtype::int32, Dtype::int64})
    if (dtype_name(t) == name) return t;
  core::throw_invalid("dtype", "Unknown dtype '", name, "'.");
}

std::ostream& operator<<(std::ostream& os, Dtype t) { return os << dtype_name(t); }

bool is_floating(Dtype t) {
  return t == Dtype::float32 || t == Dtype::float16 || t == Dtype::bfloat16;
}
bool is_integral(Dtype t) { return !is_floating(t); }

Dtype promote_types(Dtype a, Dtype b) {
  if (a == b) return a;
  bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) {
    // Any mix with float32, and float16 with bfloat16, needs float32 to hold both.
    return Dtype::float32;
  }
  if (fa) return a;  // float with integer: the float type (MLX: int32 + float16 -> float16)
  if (fb) return b;
  // Integers: the smallest type holding both (uint32 with a signed type needs int64).
  auto rank = [](Dtype t) {
    switch (t) {
      case Dtype::uint8: return 0;
      case Dtype::int32: return 2;
      case Dtype::uint32: return 1;
      default: return 3;
    }
  };
  if ((a == Dtype::uint32 && b == Dtype::int32) || (a == Dtype::int32 && b == Dtype::uint32))
    return Dtype::int64;
  return rank(a) >= rank(b) ? a : b;
}

std::string shape_to_string(const Shape& s) {
  std::ostringstream os;
  os << "(";
  // MLX's spelling: "(10,512)", no spaces.
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ")";
  return os.str();
}

}  // namespace qmm
