// `qmm bench`: dispatches to the CPU or GPU benchmark driver.
#include <cstdio>

#include "commands.h"

namespace qmm_tools {

int run_bench(qmm::Device device, const std::vector<std::string>& args) {
  (void)args;
  std::fprintf(stderr, "qmm bench --device %s: not built yet.\n",
               device.type == qmm::DeviceType::cpu ? "cpu" : "gpu");
  return 2;
}

}  // namespace qmm_tools
