// The backend registry and batch mapping.
#include "core/backend.h"

#include <mutex>

#include "core/errors.h"

namespace qmm::core {

// Defined in src/register_backends.cpp: registers every backend this build contains.
void register_builtin_backends();

namespace {
std::unique_ptr<Backend> g_backends[2];
std::once_flag g_once;

void ensure_registered() { std::call_once(g_once, register_builtin_backends); }
}  // namespace

void register_backend(DeviceType type, std::unique_ptr<Backend> backend) {
  g_backends[static_cast<int>(type)] = std::move(backend);
}

Backend* find_backend(DeviceType type) {
  ensure_registered();
  return g_backends[static_cast<int>(type)].get();
}

Backend& backend_for(Device d, const char* op) {
  Backend* be = find_backend(d.type);
  if (!be) {
    throw_invalid(op, "Device ", to_string(d), " is not available: this build of qmm has no ",
                  d.type == DeviceType::gpu ? "CUDA" : "CPU", " backend.");
  }
  int n = be->device_count();
  if (d.index < 0 || d.index >= n)
    throw_invalid(op, "Device ", to_string(d), " is not available (", n, " device",
                  n == 1 ? "" : "s", " of this type found).");
  return *be;
}

int64_t map_batch(const BatchMap& map, const Shape& batch_shape, int64_t b,
                  const int64_t* indices) {
  if (indices) return indices[b];
  int64_t off = 0;
  for (size_t i = batch_shape.size(); i-- > 0;) {
    int64_t d = batch_shape[i];
    off += (b % d) * map.strides[i];
    b /= d;
  }
  return off;
}

}  // namespace qmm::core
