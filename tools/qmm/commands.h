// Sub-commands of the qmm command line.
#pragma once

#include <string>
#include <vector>

#include "qmm/device.h"

namespace qmm_tools {
int run_demo(qmm::Device device);
int run_bench(qmm::Device device, const std::vector<std::string>& args);
}  // namespace qmm_tools
