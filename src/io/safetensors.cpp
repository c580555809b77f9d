// safetensors reader and writer (the format of MLX checkpoints).
// Layout: u64 little-endian header length N, N bytes of JSON, then the tensor bytes.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/array_impl.h"
#include "qmm/io.h"

namespace qmm::io {

namespace {

// The reference implementation's limit; MLX enforces the same.
constexpr uint64_t kMaxHeader = 100'000'000;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("[load_safetensors] " + path + ": " + what);
}

Dtype from_code(const std::string& code, const std::string& path) {
  if (code == "F32") return Dtype::float32;
  if (code == "F16") return Dtype::float16;
  if (code == "BF16") return Dtype::bfloat16;
  if (code == "U8" || code == "F8_E4M3" || code == "F8_E8M0") return Dtype::uint8;  // as MLX
  if (code == "U32") return Dtype::uint32;
  if (code == "I32") return Dtype::int32;
  if (code == "I64") return Dtype::int64;
  fail(path, "unsupported dtype '" + code + "'");
}

const char* to_code(Dtype t) {
  switch (t) {
    case Dtype::float32: return "F32";
    case Dtype::float16: return "F16";
    case Dtype::bfloat16: return "BF16";
    case Dtype::uint8: return "U8";
    case Dtype::uint32: return "U32";
    case Dtype::int32: return "I32";
    case Dtype::int64: return "I64";
  }
  return "?";
}

}  // namespace

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open file");
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  uint8_t len_bytes[8];
  if (file_size < 8 || !f.read(reinterpret_cast<char*>(len_bytes), 8)) fail(path, "file too short");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeader || 8 + n > file_size) fail(path, "invalid header length");
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  nlohmann::json j = nlohmann::json::parse(header, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(path, "header is not a JSON object");
  const uint64_t data_start = 8 + n, data_size = file_size - data_start;

  SafetensorsFile out;
  for (auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, "__metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(path, "metadata value of '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      fail(path, "tensor '" + name + "' lacks dtype, shape or data_offsets");
    Dtype t = from_code(entry["dtype"].get<std::string>(), path);
    Shape shape;
    uint64_t count = 1;
    for (auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail(path, "tensor '" + name + "' has a bad shape");
      uint64_t v = d.get<uint64_t>();
      if (v && count > UINT64_MAX / v) fail(path, "tensor '" + name + "' is too large");
      count *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    auto& offs = entry["data_offsets"];
    if (!offs.is_array() || offs.size() != 2) fail(path, "tensor '" + name + "' has bad offsets");
    uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (end < begin || end > data_size || end - begin != count * itemsize(t))
      fail(path, "tensor '" + name + "' has offsets that do not match its shape and dtype");
    // Copy into an aligned buffer: MLX does not pad the header, so tensor data may be unaligned.
    std::vector<char> bytes(end - begin);
    f.seekg(static_cast<std::streamoff>(data_start + begin));
    if (!f.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
      fail(path, "cannot read tensor '" + name + "'");
    out.tensors.emplace(name, Array::from_data(bytes.data(), shape, t));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, Array>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json j = nlohmann::json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto& [name, a] : tensors) {
    j[name] = {{"dtype", to_code(a.dtype())},
               {"shape", a.shape()},
               {"data_offsets", {offset, offset + a.nbytes()}}};
    offset += a.nbytes();
  }
  std::string header = j.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // pad so tensor data starts 8-byte aligned
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("[save_safetensors] cannot open " + path);
  uint64_t n = header.size();
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  f.write(len_bytes, 8);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (auto& [name, a] : tensors) {
    std::vector<char> bytes(a.nbytes());
    a.copy_to_host(bytes.data());
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  if (!f) throw std::runtime_error("[save_safetensors] write failed for " + path);
}

}  // namespace qmm::io
