// Grouped fused Hopper kernel instance (gather_qmm): affine 4-bit codes, f16 activations,
// 128 x 256 tiles for experts with hundreds of rows (prefill).
#include "cuda/fused/fused_grouped.cuh"
#include "cuda/fused/instances.h"

namespace qmm::cuda::fused {

const GroupedInstance& grouped_affine4_f16_large() {
  using G = FusedGroupedGemm<cutlass::uint4b_t, cutlass::half_t, 128, 256, 64>;
  static const GroupedInstance inst{"fused-grouped/affine4/f16/128x256",
                                    GroupedEntry<G>::workspace_bytes, GroupedEntry<G>::run};
  return inst;
}

}  // namespace qmm::cuda::fused
