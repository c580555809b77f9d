// Fused Hopper kernel instance: affine 4-bit codes, f16 activations, 128 x 128 tiles with
// stream-K (M = 65..256; fused_dispatch.cu says which grids).
#include "cuda/fused/fused_gemm.cuh"
#include "cuda/fused/instances.h"

namespace qmm::cuda::fused {

const Instance& affine4_f16_medium() {
  using G = FusedGemm<cutlass::uint4b_t, cutlass::half_t, true, 128, 128, 64, true>;
  static const Instance inst{"fused/affine4/f16/128x128", G::can_run, G::workspace_bytes, G::run};
  return inst;
}

}  // namespace qmm::cuda::fused
