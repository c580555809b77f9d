// Sub-commands of the qmm command line.
#pragma once

#include <string>
#include <vector>

#include "qmm/device.h"

namespace qmm_tools {
int run_demo(qmm::Device device);
int run_bench(qmm::Device device, const std::vector<std::string>& args);
// `qmm bench --device cpu` (tools/qmm/bench_cpu.cpp).
int run_cpu_bench(const std::vector<std::string>& args);
// `qmm bench --device gpu` (tools/qmm/bench_gpu.cpp when QMM_HAVE_CUDA_BENCH is defined).
int run_gpu_bench(const std::vector<std::string>& args);
}  // namespace qmm_tools
