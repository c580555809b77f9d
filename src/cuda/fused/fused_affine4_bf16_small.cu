// Fused Hopper kernel instance: affine 4-bit codes, bf16 activations, small token tile.
#include "cuda/fused/fused_gemm.cuh"
#include "cuda/fused/instances.h"

namespace qmm::cuda::fused {

const Instance& affine4_bf16_small() {
  using G = FusedGemm<cutlass::uint4b_t, cutlass::bfloat16_t, true, 128, 64, 64, true>;
  static const Instance inst{"fused/affine4/bf16/128x64", G::can_run, G::workspace_bytes, G::run};
  return inst;
}

}  // namespace qmm::cuda::fused
