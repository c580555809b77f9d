// Fused Hopper kernel instance: affine 8-bit codes, f16 activations, large token tile.
#include "cuda/fused/fused_gemm.cuh"
#include "cuda/fused/instances.h"

namespace qmm::cuda::fused {

const Instance& affine8_f16_large() {
  using G = FusedGemm<uint8_t, cutlass::half_t, true, 128, 256, 64, false>;
  static const Instance inst{"fused/affine8/f16/128x256", G::can_run, G::workspace_bytes, G::run};
  return inst;
}

}  // namespace qmm::cuda::fused
