// Decode kernel instances: float16 activations, affine weights (all bit widths).
#include "cuda/qmv_mma.cuh"

namespace qmm::cuda {

void launch_mma_f16_affine(const MatmulArgs& m, int64_t tiles, cudaStream_t stream) {
  launch_mma_affine<__half>(m, tiles, stream);
}

}  // namespace qmm::cuda
