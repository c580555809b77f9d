// Devices, default device, streams.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "core/backend.h"
#include "core/errors.h"
#include "qmm/device.h"

namespace qmm {

std::string to_string(Device d) {
  return d.type == DeviceType::cpu ? "cpu" : "gpu:" + std::to_string(d.index);
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "gpu") return Device::gpu(0);
  if (name.rfind("gpu:", 0) == 0) {
    try {
      size_t used = 0;
      int idx = std::stoi(name.substr(4), &used);
      if (used == name.size() - 4 && idx >= 0) return Device::gpu(idx);
    } catch (const std::exception&) {
    }
  }
  core::throw_invalid("device", "Unknown device '", name, "'. Expected 'cpu', 'gpu' or 'gpu:N'.");
}

int device_count(DeviceType type) {
  core::Backend* be = core::find_backend(type);
  return be ? be->device_count() : 0;
}

bool is_available(Device d) { return d.index >= 0 && d.index < device_count(d.type); }

namespace {
std::mutex g_default_mutex;
Device g_default_device = Device::cpu();
}  // namespace

Device default_device() {
  std::lock_guard lock(g_default_mutex);
  return g_default_device;
}

void set_default_device(Device d) {
  if (!is_available(d))
    core::throw_invalid("set_default_device", "Device ", to_string(d), " is not available.");
  std::lock_guard lock(g_default_mutex);
  g_default_device = d;
}

Stream new_stream(Device d) {
  auto& be = core::backend_for(d, "new_stream");
  return Stream(d, be.new_stream(d));
}

Stream default_stream(Device d) { return Stream(d, 0); }

void synchronize(Stream s) { core::backend_for(s.device(), "synchronize").synchronize(s); }

void synchronize() { synchronize(default_stream(default_device())); }

Stream to_stream(const StreamOrDevice& s) {
  if (auto* st = std::get_if<Stream>(&s)) return *st;
  if (auto* d = std::get_if<Device>(&s)) return default_stream(*d);
  return default_stream(default_device());
}

const char* version() { return "0.1.0"; }

}  // namespace qmm
