// CUDA runtime wrapper of the backend: devices, streams, events, the pooled stream-ordered
// allocator, completions, and the device-side error word that gather's index checks report to.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/array_impl.h"
#include "qmm/array.h"

namespace qmm::cuda {

// Throws std::runtime_error("[op] CUDA error: ...") when `e` is not cudaSuccess.
void check(cudaError_t e, const char* op);
// Checks the last launch error (after a kernel launch).
void check_launch(const char* op);

// Errors that kernels raise through the device error word. The first error wins (an atomic
// claim in device memory: atomics on host memory are not portable over PCIe); its details go
// to host-mapped memory with plain stores, `code` last. The host reads and clears it when a
// completion or stream of that device is waited on.
struct DeviceError {
  int code;  // 0 = none; kBadLhsIndex / kBadRhsIndex
  int pad;
  long long value;     // the offending index value
  long long position;  // its flat position
  long long limit;     // the valid range is [0, limit)
};
struct ErrorSink {
  int* claim;          // device memory, 0 = free
  DeviceError* error;  // host-mapped
};
enum : int { kBadLhsIndex = 1, kBadRhsIndex = 2 };

// Per-device state: streams (index 0 is created on first use), the memory pool, an event pool
// and the mapped error word.
class DeviceContext {
 public:
  explicit DeviceContext(int device);
  ~DeviceContext();
  int device() const { return device_; }
  cudaStream_t stream(int index);
  int new_stream();
  cudaMemPool_t pool() const { return pool_; }
  cudaEvent_t acquire_event();
  void release_event(cudaEvent_t e);
  // Device pointer of the error word (kernels write it) and a host check that throws.
  ErrorSink error_sink() const { return {claim_dev_, err_dev_}; }
  void raise_pending_error();
  int sm_count() const { return sm_count_; }
  size_t l2_bytes() const { return l2_bytes_; }
  void* cublas_handle();  // cublasHandle_t, created on first use

 private:
  int device_;
  std::mutex mutex_;
  std::vector<cudaStream_t> streams_;
  std::vector<cudaEvent_t> free_events_;
  cudaMemPool_t pool_ = nullptr;
  DeviceError* err_host_ = nullptr;
  DeviceError* err_dev_ = nullptr;
  int* claim_dev_ = nullptr;
  int sm_count_ = 0;
  size_t l2_bytes_ = 0;
  void* cublas_ = nullptr;
};

// The context of device `index` (created on first use; makes it the current device).
DeviceContext& context(int index);
// Number of usable GPUs; 0 when there is no GPU or no driver.
int device_count();

// Sets the current device for the calling thread.
void set_device(int index);

// A completion signalled by an event recorded on a stream; wait() also raises errors that
// kernels reported through the device error word.
class EventCompletion final : public detail::Completion {
 public:
  EventCompletion(DeviceContext& ctx, cudaStream_t stream);
  ~EventCompletion() override;
  void wait() override;
  cudaEvent_t event() const { return event_; }
  cudaStream_t stream() const { return stream_; }
  int device() const { return ctx_->device(); }

 private:
  DeviceContext* ctx_;
  cudaStream_t stream_;
  cudaEvent_t event_;
};

// Memory from the pool of device `ctx`, usable in stream order on `stream`. Other streams that
// use the buffer must be registered (note_use) so that the memory is freed only after them.
std::shared_ptr<detail::Buffer> allocate(DeviceContext& ctx, size_t bytes, cudaStream_t stream);
// Records that `buf` is used by work on `stream` (no-op for foreign or same-stream buffers).
void note_use(const detail::Buffer& buf, cudaStream_t stream);

// Makes `stream` wait for the computation of `a` (event wait across streams, host wait for
// non-CUDA completions) and registers the use of its buffer on `stream`.
void depend_on(const Array& a, cudaStream_t stream);

// Scratch memory from the pool for the duration of one op on `stream` (freed in stream order).
class Scratch {
 public:
  Scratch(DeviceContext& ctx, size_t bytes, cudaStream_t stream);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace qmm::cuda
