// Devices and streams. An op runs on a stream and returns at once; reading a result waits for it.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

namespace qmm {

enum class DeviceType : uint8_t { cpu, gpu };

// A compute device: the host CPU or one GPU.
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device gpu(int index = 0) { return {DeviceType::gpu, index}; }
  bool operator==(const Device&) const = default;
};

// "cpu" or "gpu:0".
std::string to_string(Device d);
// Parses "cpu", "gpu" or "gpu:N"; throws std::invalid_argument otherwise.
Device parse_device(const std::string& name);

// True when a backend for this device was built and the device exists on this machine.
bool is_available(Device d);
// Number of devices of this type (0 for gpu in a CPU-only build or without a GPU).
int device_count(DeviceType type);

// The device used when an op is given neither a device nor a stream (cpu unless changed).
Device default_device();
void set_default_device(Device d);

// An ordered queue of work on one device. Work on one stream runs in order; work on different
// streams may overlap. Copies are cheap handles.
class Stream {
 public:
  Stream() = default;
  Device device() const { return device_; }
  int index() const { return index_; }
  bool operator==(const Stream&) const = default;

 private:
  friend Stream new_stream(Device d);
  friend Stream default_stream(Device d);
  Stream(Device d, int index) : device_(d), index_(index) {}
  Device device_{};
  int index_ = 0;
};

// A new stream on device d.
Stream new_stream(Device d);
// The stream ops use when given only a device.
Stream default_stream(Device d);
// Waits until all work queued on s has finished; rethrows the first error it raised.
void synchronize(Stream s);
// Waits for all work on the default stream of the default device.
void synchronize();

// Where an op runs: nothing (the default device), a device (its default stream), or a stream.
using StreamOrDevice = std::variant<std::monostate, Device, Stream>;

// Resolves a StreamOrDevice to the concrete stream an op uses.
Stream to_stream(const StreamOrDevice& s);

}  // namespace qmm
