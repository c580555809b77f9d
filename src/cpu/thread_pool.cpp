#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <vector>

#include "qmm/config.h"

namespace qmm::cpu {

namespace {
// Default spin before sleeping, see spin_until. Measured on the 2-vCPU Zen 3 VM (a condvar
// round trip there: 50-107 us median); long enough to bridge the gap between two calls of a
// decode loop, short enough that an idle process stops burning a core quickly.
constexpr int kDefaultSpinUs = 200;
// [begin, end) of chunk c when n items are split into k nearly equal chunks.
std::pair<int64_t, int64_t> chunk_range(int64_t n, int k, int c) {
  int64_t base = n / k, extra = n % k;
  int64_t begin = c * base + std::min<int64_t>(c, extra);
  return {begin, begin + base + (c < extra ? 1 : 0)};
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  const auto limit = spin_limit();
  for (;;) {
    // Back-to-back calls (a decode step's matmuls) arrive within tens of microseconds: spin
    // for the next generation first, sleep only when none comes.
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, limit)) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock,
                 [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (stop_) return;
    }
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    int chunks;
    {
      // Under the mutex: the destructor's stop_ and a new job's fields are written under it.
      std::lock_guard lock(mutex_);
      if (stop_) return;
      seen = generation_.load(std::memory_order_relaxed);
      job = job_;
      n = n_;
      chunks = chunks_;
    }
    if (index < chunks) {
      auto [b, e] = chunk_range(n, chunks, index);
      (*job)(b, e);  // kernels do not throw; errors are reported through the caller's chunk
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The caller may be asleep on finished_ (it checks pending_ under the mutex): notify
      // under the mutex so the wake-up cannot fall between its check and its wait.
      std::lock_guard lock(mutex_);
      finished_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t min_per_thread,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int64_t want = std::max<int64_t>(1, n / std::max<int64_t>(min_per_thread, 1));
  int chunks = static_cast<int>(std::min<int64_t>(size(), want));
  std::unique_lock region(region_, std::try_to_lock);
  if (chunks <= 1 || !region.owns_lock()) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    n_ = n;
    chunks_ = chunks;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();  // no system call when every worker is still spinning
  auto [b, e] = chunk_range(n, chunks, 0);
  fn(b, e);
  // The chunks are about equal, so the others finish within microseconds of this one: spin.
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; }, spin_limit())) {
    std::unique_lock lock(mutex_);
    finished_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
}

std::chrono::microseconds spin_limit() {
  static const std::chrono::microseconds limit = [] {
    if (const char* env = std::getenv("QMM_SPIN_US")) {
      const int v = std::atoi(env);
      if (v >= 0) return std::chrono::microseconds(v);
    }
    return std::chrono::microseconds(kDefaultSpinUs);
  }();
  return limit;
}

namespace {
// The pools and their mutex live until the process ends (never destroyed): a stream executor
// (part of the backend, a static of another translation unit, destroyed in an unspecified order
// relative to this file's statics) may still run queued work on the pool while the process
// exits. With a pool destroyed first, that work locked a freed mutex (SIGILL in 7 % of exits of
// one test). The worker threads are left to the process's end, not joined.
std::mutex& g_pool_mutex = *new std::mutex;
ThreadPool* g_pool = nullptr;
int g_threads = 0;

int default_threads() {
  if (const char* env = std::getenv("QMM_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}
}  // namespace

ThreadPool& thread_pool() {
  std::lock_guard lock(g_pool_mutex);
  if (!g_pool) {
    if (g_threads == 0) g_threads = default_threads();
    g_pool = new ThreadPool(g_threads);
  }
  return *g_pool;
}

}  // namespace qmm::cpu

namespace qmm {

int num_threads() { return cpu::thread_pool().size(); }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("[set_num_threads] The thread count must be at least 1.");
  std::lock_guard lock(cpu::g_pool_mutex);
  // A kernel queued earlier may still be running on the current pool, so it is retired, not
  // destroyed: its idle threads live on until exit (resizing is rare), and every reference
  // thread_pool() handed out stays valid.
  static std::vector<cpu::ThreadPool*>& retired = *new std::vector<cpu::ThreadPool*>;
  if (cpu::g_pool) retired.push_back(cpu::g_pool);
  cpu::g_pool = nullptr;
  cpu::g_threads = n;
}

}  // namespace qmm
