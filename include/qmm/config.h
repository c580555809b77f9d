// Process-wide settings.
#pragma once

namespace qmm {

// Threads the CPU backend uses (the caller counts as one). Defaults to QMM_NUM_THREADS or the
// number of hardware threads.
int num_threads();
void set_num_threads(int n);

}  // namespace qmm
