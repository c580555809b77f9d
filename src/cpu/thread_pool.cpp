#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>

#include "qmm/config.h"

namespace qmm::cpu {

namespace {
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
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    int chunks;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = n_;
      chunks = chunks_;
    }
    if (index < chunks) {
      auto [b, e] = chunk_range(n, chunks, index);
      (*job)(b, e);  // kernels do not throw; errors are reported through the caller's chunk
    }
    {
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) finished_.notify_one();
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
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  auto [b, e] = chunk_range(n, chunks, 0);
  fn(b, e);
  std::unique_lock lock(mutex_);
  finished_.wait(lock, [&] { return pending_ == 0; });
}

namespace {
std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool> g_pool;
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
    g_pool = std::make_unique<ThreadPool>(g_threads);
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
  static std::vector<std::unique_ptr<cpu::ThreadPool>> retired;
  if (cpu::g_pool) retired.push_back(std::move(cpu::g_pool));
  cpu::g_threads = n;
}

}  // namespace qmm
