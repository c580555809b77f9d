#include "cpu/executor.h"

namespace qmm::cpu {

StreamExecutor::StreamExecutor() : thread_([this] { loop(); }) {}

StreamExecutor::~StreamExecutor() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<detail::Completion> StreamExecutor::submit(std::vector<Array> inputs,
                                                           std::function<void()> task) {
  auto done = std::make_shared<detail::HostCompletion>();
  auto run = [this, done, inputs = std::move(inputs), task = std::move(task)]() mutable {
    std::exception_ptr error;
    try {
      for (const Array& a : inputs) a.wait();
      task();
    } catch (...) {
      error = std::current_exception();
    }
    inputs.clear();  // release input buffers before signalling
    if (error) {
      std::lock_guard lock(mutex_);
      if (!first_error_) first_error_ = error;
    }
    done->set(error);
  };
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(run));
  }
  cv_.notify_one();
  return done;
}

void StreamExecutor::synchronize() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
  if (first_error_) {
    auto e = first_error_;
    first_error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void StreamExecutor::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop requested and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    task();
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

}  // namespace qmm::cpu
