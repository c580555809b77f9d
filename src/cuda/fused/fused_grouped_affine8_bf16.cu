// Grouped fused Hopper kernel instance (gather_qmm): affine 8-bit codes, bf16 activations.
#include "cuda/fused/fused_grouped.cuh"
#include "cuda/fused/instances.h"

namespace qmm::cuda::fused {

const GroupedInstance& grouped_affine8_bf16() {
  using G = FusedGroupedGemm<uint8_t, cutlass::bfloat16_t, 128, 64, 64>;
  static const GroupedInstance inst{"fused-grouped/affine8/bf16/128x64",
                                    GroupedEntry<G>::workspace_bytes, GroupedEntry<G>::run};
  return inst;
}

}  // namespace qmm::cuda::fused
