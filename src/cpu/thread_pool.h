// A small persistent thread pool with static partitioning.
// parallel_for splits [0, n) into one contiguous chunk per thread, so which thread computes an
// element never changes how it is computed: results are bit-identical for any thread count.
#pragma once

#include <atomic>
#include <chrono>
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
  // job_, n_ and chunks_ are written under mutex_ before generation_ is bumped (release); a
  // worker reads them after seeing the new generation (acquire), spinning or woken.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

// Spins (with `pause`, yielding between rounds) until pred() holds or `limit` has passed;
// returns pred()'s last value. Waking a thread that sleeps on a futex costs ~50-100 us on the
// 2-vCPU VM this was tuned on (an idle vCPU halts and is woken through the hypervisor; a condvar
// round trip between two threads measured 50-107 us median), a large part of a decode GEMV
// (~0.6-1 ms), so pool threads that expect work soon spin briefly first.
template <class Pred>
bool spin_until(Pred pred, std::chrono::microseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() - t0 >= limit) return pred();
    // There are more threads than cores (the caller of an op, the stream's executor and the
    // workers on 2 vCPUs): a pure spin can keep the thread that would produce the awaited event
    // off the CPU, so give way between rounds (measured: spinning without this was slower than
    // not spinning at all).
    std::this_thread::yield();
  }
}

// How long pool workers spin for the next job, and the caller for the workers' chunks, before
// sleeping (QMM_SPIN_US overrides; 0 turns spinning off).
std::chrono::microseconds spin_limit();

// The process-wide pool, sized by num_threads() (QMM_NUM_THREADS or the hardware threads).
ThreadPool& thread_pool();

}  // namespace qmm::cpu
