// The qmm command line: `qmm demo`, `qmm --help`.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "qmm/qmm.h"

namespace {

const char* kUsage = R"(qmm - MLX-compatible quantized matrix multiplication

Usage:
  qmm demo [--device cpu|gpu]   Run the documented mlx_quantized_matmul example (x 4x64,
                                w 128x64, group size 32: automatic quantization, then
                                pre-quantized weights) and a small Mixture-of-Experts
                                gather_qmm (8 experts, top-2, 16 tokens, sorted and unsorted),
                                printing shapes, the max error against float64 references and
                                the time per call.
  qmm --help                    Show this text.
  qmm --version                 Print the library version.

Options:
  --device cpu|gpu              Where the ops run (default cpu). gpu needs a build with the
                                CUDA backend and an NVIDIA GPU.

Environment:
  QMM_NUM_THREADS               Threads of the CPU backend (default: all hardware threads).
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 1 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "qmm " << qmm::version() << "\n";
    return 0;
  }
  std::string device = "cpu";
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--device" && i + 1 < args.size()) {
      device = args[++i];
    } else if (args[i].rfind("--device=", 0) == 0) {
      device = args[i].substr(9);
    } else {
      rest.push_back(args[i]);
    }
  }
  try {
    qmm::Device dev = qmm::parse_device(device);
    if (!qmm::is_available(dev)) {
      std::cerr << "qmm: device '" << device << "' is not available: "
                << (dev.type == qmm::DeviceType::gpu
                        ? "this build has no CUDA backend or no NVIDIA GPU was found"
                        : "unknown device")
                << ".\n";
      return 2;
    }
    if (args[0] == "demo") return qmm_tools::run_demo(dev);
    if (args[0] == "bench") return qmm_tools::run_bench(dev, rest);
  } catch (const std::exception& e) {
    std::cerr << "qmm: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "qmm: unknown command '" << args[0] << "'. See qmm --help.\n";
  return 1;
}
