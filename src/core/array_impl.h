// Array internals shared by the core and the backends: storage buffers and completion events.
#pragma once

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>

#include "qmm/array.h"

namespace qmm::detail {

// A block of memory on one device. `owner` releases it when the last reference goes.
struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device{};
  std::shared_ptr<void> owner;
};

// Signals that the work producing an array has finished. wait() rethrows the error it raised.
class Completion {
 public:
  virtual ~Completion() = default;
  virtual void wait() = 0;
};

// A completion set from host code (CPU streams): a flag, a condition variable and an error.
class HostCompletion final : public Completion {
 public:
  void wait() override;
  void set(std::exception_ptr error = nullptr);
  bool done() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

struct ArrayImpl {
  std::shared_ptr<Buffer> buffer;
  int64_t offset = 0;  // elements from buffer->ptr to the first element
  Shape shape;
  Strides strides;
  Dtype dtype = Dtype::float32;
  std::shared_ptr<Completion> done;  // null: data is ready
};

// Row-major strides for a shape.
Strides contiguous_strides(const Shape& shape);
int64_t shape_size(const Shape& shape);
// Pointer to the first element (no waiting).
inline void* element_ptr(const ArrayImpl& a) {
  return static_cast<char*>(a.buffer->ptr) + a.offset * static_cast<int64_t>(itemsize(a.dtype));
}
// A new, contiguous array whose data is still to be written by `done`'s work.
Array make_array(std::shared_ptr<Buffer> buffer, Shape shape, Dtype dtype);

}  // namespace qmm::detail
