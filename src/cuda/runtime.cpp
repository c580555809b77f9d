#include "cuda/runtime.h"

#include <cublas_v2.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "core/errors.h"

namespace qmm::cuda {

void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear sticky-free errors so later calls are not blamed
    throw std::runtime_error(
        core::concat("[", op, "] CUDA error: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
  }
}

void check_launch(const char* op) { check(cudaGetLastError(), op); }

namespace {

// CUDA ordinals of the devices qmm uses: compute capability 9.0 (the kernels are sm_90a code).
const std::vector<int>& ordinals() {
  static const std::vector<int> list = [] {
    std::vector<int> out;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return out;
    }
    for (int i = 0; i < n; ++i) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
        cudaGetLastError();
        continue;
      }
      if (prop.major == 9 && prop.minor == 0) out.push_back(i);
    }
    return out;
  }();
  return list;
}

constexpr int kMaxDevices = 64;
DeviceContext* g_contexts[kMaxDevices] = {};
std::once_flag g_once[kMaxDevices];

}  // namespace

int device_count() { return static_cast<int>(ordinals().size()); }

void set_device(int index) { check(cudaSetDevice(ordinals().at(index)), "gpu"); }

DeviceContext& context(int index) {
  if (index < 0 || index >= device_count() || index >= kMaxDevices)
    throw std::invalid_argument(core::concat("[gpu] Device gpu:", index, " is not available."));
  // Contexts live until the process ends (buffers freed during static destruction still need
  // their pool and streams).
  std::call_once(g_once[index], [index] { g_contexts[index] = new DeviceContext(index); });
  set_device(index);
  return *g_contexts[index];
}

DeviceContext::DeviceContext(int device) : device_(device) {
  int ord = ordinals().at(device);
  check(cudaSetDevice(ord), "gpu");
  check(cudaDeviceGetDefaultMemPool(&pool_, ord), "gpu");
  // Keep freed memory in the pool: no cudaMalloc/cudaFree on the hot path after warm-up.
  uint64_t keep = UINT64_MAX;
  check(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep), "gpu");
  check(
      cudaHostAlloc(reinterpret_cast<void**>(&err_host_), sizeof(DeviceError), cudaHostAllocMapped),
      "gpu");
  std::memset(err_host_, 0, sizeof(DeviceError));
  check(cudaHostGetDevicePointer(reinterpret_cast<void**>(&err_dev_), err_host_, 0), "gpu");
  check(cudaMalloc(reinterpret_cast<void**>(&claim_dev_), sizeof(int)), "gpu");
  check(cudaMemset(claim_dev_, 0, sizeof(int)), "gpu");
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, ord), "gpu");
  sm_count_ = prop.multiProcessorCount;
  l2_bytes_ = static_cast<size_t>(prop.l2CacheSize);
}

DeviceContext::~DeviceContext() = default;  // never destroyed (see context())

cudaStream_t DeviceContext::stream(int index) {
  std::lock_guard lock(mutex_);
  if (streams_.empty()) {
    cudaStream_t s;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
    streams_.push_back(s);
  }
  if (index < 0 || index >= static_cast<int>(streams_.size()))
    core::throw_invalid("stream", "Unknown GPU stream ", index, " on gpu:", device_, ".");
  return streams_[index];
}

int DeviceContext::new_stream() {
  stream(0);
  std::lock_guard lock(mutex_);
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "new_stream");
  streams_.push_back(s);
  return static_cast<int>(streams_.size()) - 1;
}

cudaEvent_t DeviceContext::acquire_event() {
  {
    std::lock_guard lock(mutex_);
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
  }
  cudaEvent_t e;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  return e;
}

void DeviceContext::release_event(cudaEvent_t e) {
  std::lock_guard lock(mutex_);
  free_events_.push_back(e);
}

void DeviceContext::raise_pending_error() {
  volatile DeviceError* err = err_host_;
  if (err->code == 0) return;
  DeviceError copy;
  copy.code = err->code;
  copy.value = err->value;
  copy.position = err->position;
  copy.limit = err->limit;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  err->code = 0;
  // Re-arm the claim (only after an error, off the hot path). A synchronous copy: it has
  // completed when it returns, so work enqueued afterwards on any stream sees it.
  const int zero = 0;
  cudaMemcpy(claim_dev_, &zero, sizeof(int), cudaMemcpyHostToDevice);
  const char* which = copy.code == kBadLhsIndex ? "lhs_indices" : "rhs_indices";
  const char* operand = copy.code == kBadLhsIndex ? "x" : "w";
  core::throw_invalid("gather_qmm", which, " contains ", copy.value, " at flat position ",
                      copy.position, ", outside the valid range [0, ", copy.limit, ") of ", operand,
                      "'s batch (detected on gpu:", device_, ").");
}

void* DeviceContext::cublas_handle() {
  std::lock_guard lock(mutex_);
  if (!cublas_) {
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error("[quantized_matmul] cublasCreate failed");
    // A workspace of our own, so cuBLAS never allocates while a graph is being captured.
    constexpr size_t kWorkspace = size_t(32) << 20;
    void* ws = nullptr;
    check(cudaMalloc(&ws, kWorkspace), "quantized_matmul");
    if (cublasSetWorkspace(h, ws, kWorkspace) != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error("[quantized_matmul] cublasSetWorkspace failed");
    cublas_ = h;
  }
  return cublas_;
}

EventCompletion::EventCompletion(DeviceContext& ctx, cudaStream_t stream)
    : ctx_(&ctx), stream_(stream), event_(ctx.acquire_event()) {
  check(cudaEventRecord(event_, stream), "event");
}

EventCompletion::~EventCompletion() { ctx_->release_event(event_); }

void EventCompletion::wait() {
  check(cudaEventSynchronize(event_), "wait");
  ctx_->raise_pending_error();
}

namespace {

// What a pooled buffer remembers: where it was allocated and which other streams used it.
struct UseState {
  DeviceContext* ctx;
  cudaStream_t stream;
  std::mutex mutex;
  std::vector<cudaStream_t> others;
};

struct PoolDeleter {
  std::shared_ptr<UseState> state;
  void operator()(void* p) const {
    if (!p) return;
    UseState& st = *state;
    cudaSetDevice(ordinals()[st.ctx->device()]);
    for (cudaStream_t u : st.others) {
      // Free only after the other streams' work queued so far (stream-ordered, no host wait).
      cudaEvent_t e = st.ctx->acquire_event();
      if (cudaEventRecord(e, u) == cudaSuccess) cudaStreamWaitEvent(st.stream, e, 0);
      st.ctx->release_event(e);
    }
    cudaFreeAsync(p, st.stream);
    cudaGetLastError();  // a deleter cannot throw; errors here only leak pool memory
  }
};

}  // namespace

std::shared_ptr<detail::Buffer> allocate(DeviceContext& ctx, size_t bytes, cudaStream_t stream) {
  // 256-byte granules keep every buffer aligned for 16-byte vector loads and TMA.
  size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  void* p = nullptr;
  check(cudaMallocFromPoolAsync(&p, rounded, ctx.pool(), stream), "allocate");
  auto state = std::make_shared<UseState>();
  state->ctx = &ctx;
  state->stream = stream;
  auto buf = std::make_shared<detail::Buffer>();
  buf->ptr = p;
  buf->bytes = bytes;
  buf->device = Device::gpu(ctx.device());
  buf->owner = std::shared_ptr<void>(p, PoolDeleter{std::move(state)});
  return buf;
}

void note_use(const detail::Buffer& buf, cudaStream_t stream) {
  auto* d = std::get_deleter<PoolDeleter>(buf.owner);
  if (!d) return;
  UseState& st = *d->state;
  if (st.stream == stream) return;
  std::lock_guard lock(st.mutex);
  if (std::find(st.others.begin(), st.others.end(), stream) == st.others.end())
    st.others.push_back(stream);
}

void depend_on(const Array& a, cudaStream_t stream) {
  const auto& impl = *a.impl();
  if (impl.done) {
    if (auto* ec = dynamic_cast<EventCompletion*>(impl.done.get())) {
      // Another stream's work: wait in stream order, unless it has already finished (which
      // also keeps graph capture free of waits on events recorded outside the capture).
      if (ec->stream() != stream && cudaEventQuery(ec->event()) != cudaSuccess) {
        cudaGetLastError();
        check(cudaStreamWaitEvent(stream, ec->event(), 0), "wait");
      }
    } else {
      impl.done->wait();  // produced by host code: wait on the host
    }
  }
  note_use(*impl.buffer, stream);
}

Scratch::Scratch(DeviceContext& ctx, size_t bytes, cudaStream_t stream) : stream_(stream) {
  size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  check(cudaMallocFromPoolAsync(&ptr_, rounded, ctx.pool(), stream), "scratch");
}

Scratch::~Scratch() {
  if (ptr_) cudaFreeAsync(ptr_, stream_);
}

}  // namespace qmm::cuda
