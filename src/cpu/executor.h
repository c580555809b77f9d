// CPU streams: one worker thread per stream runs its tasks in order.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/array_impl.h"
#include "qmm/array.h"

namespace qmm::cpu {

class StreamExecutor {
 public:
  StreamExecutor();
  ~StreamExecutor();
  // Queues `task` after everything queued before; it first waits for `inputs` (arrays that may
  // come from other streams). Returns the completion of the task's outputs: an error thrown by
  // the task, or by an input's computation, is stored there and rethrown by wait().
  std::shared_ptr<detail::Completion> submit(std::vector<Array> inputs, std::function<void()> task);
  // Waits for every queued task; rethrows the first error raised since the last synchronize.
  void synchronize();

 private:
  void loop();
  std::mutex mutex_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::exception_ptr first_error_;
  std::thread thread_;
};

}  // namespace qmm::cpu
