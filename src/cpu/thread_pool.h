// A small persistent thread pool with static partitioning.
// parallel_for splits [0, n) into one contiguous chunk per thread, so which thread computes an
// element never changes how it is computed: results are bit-identical for any thread count.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qmm::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) on disjoint chunks covering [0, n); the caller runs the first chunk.
  // Work smaller than `min_per_thread` items per thread uses fewer threads. If another
  // parallel_for is running (two streams at once), this one runs on the caller alone.
  void parallel_for(int64_t n, int64_t min_per_thread,
                    const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex region_;  // one parallel region at a time
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// The process-wide pool, sized by num_threads() (QMM_NUM_THREADS or the hardware threads).
ThreadPool& thread_pool();

}  // namespace qmm::cpu
