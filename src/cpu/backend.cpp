// The CPU backend: host memory, one executor thread per stream, and the CPU kernels.
#include "cpu/backend.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "core/errors.h"
#include "cpu/executor.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"

namespace qmm::cpu {

namespace {

class CpuBackend final : public core::Backend {
 public:
  DeviceType type() const override { return DeviceType::cpu; }
  int device_count() override { return 1; }

  int new_stream(Device) override {
    std::lock_guard lock(mutex_);
    int id = next_id_++;
    executors_[id] = std::make_unique<StreamExecutor>();
    return id;
  }

  void synchronize(Stream s) override { executor(s).synchronize(); }

  std::shared_ptr<core::Buffer> allocate(size_t bytes, Stream) override {
    // 64-byte alignment: a cache line, and the widest (AVX-512) vector load.
    constexpr size_t kAlign = 64;
    size_t rounded = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded);
    if (!p) throw std::bad_alloc();
    auto buf = std::make_shared<core::Buffer>();
    buf->ptr = p;
    buf->bytes = bytes;
    buf->device = Device::cpu();
    buf->owner = std::shared_ptr<void>(p, std::free);
    return buf;
  }

  void copy_from_host(const void* src, void* dst, size_t bytes, Device) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(const void* src, void* dst, size_t bytes, Device) override {
    std::memcpy(dst, src, bytes);
  }

  std::shared_ptr<core::Completion> convert(const core::ConvertProblem& p, Stream s) override {
    return executor(s).submit({p.src}, [p] { convert_strided(p); });
  }

  std::shared_ptr<core::Completion> quantize(const core::QuantizeProblem& p, Stream s) override {
    std::vector<Array> in{p.w};
    if (p.global_scale) in.push_back(*p.global_scale);
    return executor(s).submit(std::move(in), [p] {
      thread_pool().parallel_for(p.rows, rows_per_thread(p.cols),
                                 [&](int64_t r0, int64_t r1) { quantize_rows(p, r0, r1); });
    });
  }

  std::shared_ptr<core::Completion> dequantize(const core::DequantizeProblem& p,
                                               Stream s) override {
    std::vector<Array> in{p.w_q, p.scales};
    if (p.biases) in.push_back(*p.biases);
    if (p.global_scale) in.push_back(*p.global_scale);
    return executor(s).submit(std::move(in), [p] {
      thread_pool().parallel_for(p.rows, rows_per_thread(p.cols),
                                 [&](int64_t r0, int64_t r1) { dequantize_rows(p, r0, r1); });
    });
  }

  std::shared_ptr<core::Completion> quantized_matmul(const core::MatmulProblem& p,
                                                     Stream s) override {
    std::vector<Array> in{p.x, p.w, p.scales};
    if (p.biases) in.push_back(*p.biases);
    if (p.x_map.indices) in.push_back(*p.x_map.indices);
    if (p.w_map.indices) in.push_back(*p.w_map.indices);
    return executor(s).submit(std::move(in), [p] { threaded_matmul(p); });
  }

 private:
  // Rows per thread so that each thread gets at least ~64K elements of work.
  static int64_t rows_per_thread(int64_t cols) {
    return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(cols, 1));
  }

  StreamExecutor& executor(Stream s) {
    std::lock_guard lock(mutex_);
    auto it = executors_.find(s.index());
    if (it == executors_.end()) {
      if (s.index() != 0)
        core::throw_invalid("stream", "Unknown CPU stream ", s.index(), ".");
      it = executors_.emplace(0, std::make_unique<StreamExecutor>()).first;
    }
    return *it->second;
  }

  std::mutex mutex_;
  std::map<int, std::unique_ptr<StreamExecutor>> executors_;
  int next_id_ = 1;
};

}  // namespace

std::unique_ptr<core::Backend> make_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace qmm::cpu
