// Decode kernel instances: bfloat16 activations, mxfp4 / nvfp4 / mxfp8 weights.
#include "cuda/qmv_mma.cuh"

namespace qmm::cuda {

void launch_mma_bf16_fp(const MatmulArgs& m, int64_t tiles, cudaStream_t stream) {
  using T = __nv_bfloat16;
  MmaArgs a = make_mma_args(m);
  switch (m.spec.mode) {
    case core::QuantMode::mxfp4:
      launch_mma_typed<T, Fp4<32>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    case core::QuantMode::nvfp4:
      launch_mma_typed<T, Fp4<16>>(a, tiles, m.work_slots, m.rows_per_chunk, stream);
      break;
    default: launch_mma_typed<T, Fp8>(a, tiles, m.work_slots, m.rows_per_chunk, stream); break;
  }
}

}  // namespace qmm::cuda
