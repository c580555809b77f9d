// `qmm bench`: dispatches to the CPU or GPU benchmark driver.
#include <cstdio>

#include "commands.h"

namespace qmm_tools {

#if !defined(QMM_HAVE_CUDA_BENCH)
// Replaced by tools/qmm/bench_gpu.cpp in builds that define QMM_HAVE_CUDA_BENCH.
int run_gpu_bench(const std::vector<std::string>&) {
  std::fprintf(stderr, "qmm bench --device gpu: this build has no GPU benchmark.\n");
  return 2;
}
#endif

int run_bench(qmm::Device device, const std::vector<std::string>& args) {
  return device.type == qmm::DeviceType::cpu ? run_cpu_bench(args) : run_gpu_bench(args);
}

}  // namespace qmm_tools
