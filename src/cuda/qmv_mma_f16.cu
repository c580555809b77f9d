// Decode kernel instances: float16 activations, affine weights (all bit widths).
#include "cuda/qmv_mma.cuh"

namespace qmm::cuda {

void launch_mma_f16_affine(const MatmulArgs& m, int64_t tiles, cudaStream_t stream) {
  using T = __half;
  MmaArgs a = make_mma_args(m);
  switch (m.spec.bits) {
    case 2:
      launch_mma_typed<T, AffinePow2<2>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    case 3:
      launch_mma_typed<T, AffineOdd<3>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    case 4:
      launch_mma_typed<T, AffinePow2<4>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    case 5:
      launch_mma_typed<T, AffineOdd<5>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    case 6:
      launch_mma_typed<T, AffineOdd<6>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    default: launch_mma_typed<T, Affine8>(a, tiles, m.work_slots, m.rows_per_chunk, stream); break;
  }
}

}  // namespace qmm::cuda
