// main() of the GPU test executables: the GPU becomes the default device, so every op of a test
// runs on it; without a GPU every test is skipped with a message (CI has no GPU).
#include <gtest/gtest.h>

#include <cstdio>

#include "qmm/qmm.h"

namespace {

class GpuEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!qmm::is_available(qmm::Device::gpu()))
      GTEST_SKIP() << "No usable GPU (CUDA device of compute capability 9.0) on this machine: "
                      "GPU tests skipped.";
    qmm::set_default_device(qmm::Device::gpu());
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new GpuEnvironment);
  return RUN_ALL_TESTS();
}
