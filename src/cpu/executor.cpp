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

namespace {
// True when every input is computed. Only host completions can be asked without blocking; any
// other kind (another backend's event) counts as pending and sends the task to the queue.
bool inputs_ready(const std::vector<Array>& inputs) {
  for (const Array& a : inputs) {
    const auto& done = a.impl()->done;
    if (!done) continue;
    auto* host = dynamic_cast<const detail::HostCompletion*>(done.get());
    if (!host || !host->done()) return false;
  }
  return true;
}
}  // namespace

bool StreamExecutor::run_inline(std::vector<Array>& inputs, const std::function<void()>& task,
                                detail::HostCompletion& done) {
  if (!inputs_ready(inputs)) return false;
  {
    std::lock_guard lock(mutex_);
    if (stop_ || busy_ || !queue_.empty()) return false;
    busy_ = true;  // from here on, other submitters queue behind this task
  }
  std::exception_ptr error;
  try {
    for (const Array& a : inputs) a.wait();  // computed already: rethrows an input's error
    task();
  } catch (...) {
    error = std::current_exception();
  }
  inputs.clear();  // release input buffers before signalling, as the queued path does
  bool wake_loop;
  {
    std::lock_guard lock(mutex_);
    if (error && !first_error_) first_error_ = error;
    done.set(error);
    busy_ = false;
    // The executor thread sleeps through a run of inline tasks; wake it only when another
    // thread queued work meanwhile (or the executor is being destroyed).
    wake_loop = stop_ || !queue_.empty();
  }
  if (wake_loop) cv_.notify_one();
  idle_cv_.notify_all();
  return true;
}

std::shared_ptr<detail::Completion> StreamExecutor::submit(std::vector<Array> inputs,
                                                           std::function<void()> task,
                                                           bool may_run_inline) {
  auto done = std::make_shared<detail::HostCompletion>();
  if (may_run_inline && run_inline(inputs, task, *done)) return done;
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
      // busy_ may be set by a task running inline on a caller thread: wait for it to finish.
      cv_.wait(lock, [&] { return !busy_ && (stop_ || !queue_.empty()); });
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
