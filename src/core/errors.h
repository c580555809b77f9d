// MLX-style error messages: "[op] what was expected, what was given".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include "qmm/array.h"

namespace qmm::core {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

// Throws std::invalid_argument("[op] " + parts...).
template <class... Parts>
[[noreturn]] void throw_invalid(const char* op, const Parts&... parts) {
  throw std::invalid_argument(concat("[", op, "] ", parts...));
}

// Stream insertion for shapes and dtypes inside messages.
struct ShapeText {
  const Shape& s;
};
inline std::ostream& operator<<(std::ostream& os, ShapeText t) {
  return os << shape_to_string(t.s);
}

}  // namespace qmm::core
