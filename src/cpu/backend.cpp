// The CPU backend: host memory, one executor thread per stream, and the CPU kernels.
#include "cpu/backend.h"

#include <sys/mman.h>

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
    // 64-byte alignment: a cache line, and the widest (AVX-512) vector load. Large buffers
    // (weights) are 2 MiB aligned and asked to be backed by transparent huge pages, which this
    // kernel config (THP "madvise") only grants on request: a decode GEMV streams its weights
    // once per call from DRAM, and with 4 KiB pages every 4 KiB streamed costs a TLB miss and a
    // page walk (bench/CPU.md, 2026-11-23 session 5).
    const bool huge = bytes >= kHugeMin;
    const size_t align = huge ? kHugePage : 64;
    size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded);
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advisory: failure just keeps small pages
#endif
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
    const bool small = p.dst.size() <= kInlineMaxElements;
    return executor(s).submit(
        {p.src}, [p] { convert_strided(p); }, small);
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
    const double macs = static_cast<double>(p.batch) * p.M * p.N * p.K;
    return executor(s).submit(
        std::move(in), [p] { threaded_matmul(p); }, macs <= kInlineMaxMacs);
  }

 private:
  // Work small enough to run on the caller's thread when its stream is idle (StreamExecutor::
  // submit). The queued path costs two thread wake-ups per call (caller -> executor -> caller),
  // each 50-100 us on the 2-vCPU VM this was measured on (an idle vCPU halts and is woken through
  // the hypervisor): 10-30 % of a decode GEMV (N = K = 4096: 16.8M multiply-adds, 0.6-1 ms) and
  // more of a small MoE step. 2^28 multiply-adds (a 4-bit 16384 x 16384 GEMV, a top-8 MoE step of
  // 16 tokens on 768 x 2048 experts: ~2-10 ms) covers decode; larger work (prefill GEMMs) keeps
  // the asynchronous hop, whose cost is then < 1 %, so a caller can still overlap it with its own.
  static constexpr double kInlineMaxMacs = double(int64_t{1} << 28);
  static constexpr int64_t kInlineMaxElements = int64_t{1} << 20;
  // Huge pages from 4 MiB up: the rounding to whole 2 MiB pages then wastes < 1/3.
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kHugeMin = size_t{4} << 20;

  // Rows per thread so that each thread gets at least ~64K elements of work.
  static int64_t rows_per_thread(int64_t cols) {
    return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(cols, 1));
  }

  StreamExecutor& executor(Stream s) {
    std::lock_guard lock(mutex_);
    auto it = executors_.find(s.index());
    if (it == executors_.end()) {
      if (s.index() != 0) core::throw_invalid("stream", "Unknown CPU stream ", s.index(), ".");
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
