// Reading and writing safetensors files (the format MLX checkpoints use).
#pragma once

#include <map>
#include <string>

#include "qmm/array.h"

namespace qmm::io {

struct SafetensorsFile {
  std::map<std::string, Array> tensors;
  std::map<std::string, std::string> metadata;
};

// Loads every tensor of a .safetensors file onto the CPU. Throws std::runtime_error for I/O
// errors and malformed files.
SafetensorsFile load_safetensors(const std::string& path);
// Writes tensors (and string metadata) to a .safetensors file.
void save_safetensors(const std::string& path, const std::map<std::string, Array>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace qmm::io
