// CPU streams: one worker thread per stream runs its tasks in order; small tasks submitted to an
// idle stream run on the submitting thread instead (see submit).
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
  // With `may_run_inline`, a task whose inputs are all computed and whose stream is idle (nothing
  // queued or running) runs on the calling thread before submit returns: the same order (the
  // stream counts as busy meanwhile, so work submitted by other threads queues behind it) and the
  // same error reporting (stored in the completion, not thrown here), without the two thread
  // wake-ups (caller -> executor -> caller) of the queued path.
  std::shared_ptr<detail::Completion> submit(std::vector<Array> inputs, std::function<void()> task,
                                             bool may_run_inline = false);
  // Waits for every queued task; rethrows the first error raised since the last synchronize.
  void synchronize();

 private:
  void loop();
  bool run_inline(std::vector<Array>& inputs, const std::function<void()>& task,
                  detail::HostCompletion& done);
  std::mutex mutex_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false;  // a task is running (on the executor thread or inline on a caller)
  bool stop_ = false;
  std::exception_ptr first_error_;
  std::thread thread_;
};

}  // namespace qmm::cpu
