// Process-wide settings.
#pragma once

#include <string>
#include <string_view>

namespace qmm {

// Threads the CPU backend uses (the caller counts as one). Defaults to QMM_NUM_THREADS or the
// number of hardware threads.
int num_threads();
void set_num_threads(int n);

// Numeric tier of the CPU quantized matmul: "exact" (the default: float32 accumulation, exact
// products) or "fast" (opt-in: activations quantized to int8 per group, about 1e-2 relative
// error; used where a kernel exists, otherwise the exact kernel runs). Defaults to the
// environment variable QMM_PRECISION. Throws std::invalid_argument for other names.
void set_matmul_precision(std::string_view tier);
std::string matmul_precision();

}  // namespace qmm
