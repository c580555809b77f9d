// Decode kernel instances: bfloat16 activations, affine weights (all bit widths), and the
// dispatch entry points of the decode kernel.
#include "cuda/qmv_mma.cuh"

namespace qmm::cuda {

void launch_mma_bf16_affine(const MatmulArgs& m, int64_t tiles, cudaStream_t stream) {
  launch_mma_affine<__nv_bfloat16>(m, tiles, stream);
}

bool mma_supported(const MatmulArgs& a) {
  if (!a.transpose) return false;
  if (a.dtype != Dtype::bfloat16 && a.dtype != Dtype::float16) return false;
  // fp16 with fp-mode scales can leave the fp16 range (e8m0 spans 2^-127..2^127): generic path.
  if (a.dtype == Dtype::float16 && a.spec.mode != core::QuantMode::affine) return false;
  if (a.K % 32 != 0) return false;  // a lane owns 32 consecutive elements
  auto aligned = [](const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  if (!aligned(a.w, 16) || !aligned(a.x, 16)) return false;
  if (a.N > 16 * 65535LL) return false;  // tiles on grid y
  return true;
}

void launch_qmv_mma(const MatmulArgs& m, cudaStream_t stream) {
  const int64_t tiles = (m.N + 15) / 16;
  if (tiles == 0 || m.work_slots == 0 || m.M == 0) return;
  if (m.dtype == Dtype::float16)
    launch_mma_f16_affine(m, tiles, stream);
  else if (m.spec.mode == core::QuantMode::affine)
    launch_mma_bf16_affine(m, tiles, stream);
  else
    launch_mma_bf16_fp(m, tiles, stream);
}

}  // namespace qmm::cuda
