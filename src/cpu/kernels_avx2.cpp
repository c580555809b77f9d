// The fast matmul kernels compiled for AVX2 + FMA + F16C (8 float lanes).
#define QMM_ISA_NS avx2
#define QMM_ISA_NAME "avx2"
#define QMM_ISA_LEVEL 2
#include "cpu/kernels_isa.inc"

namespace qmm::cpu {
const KernelSet* avx2_kernels() {
  static const KernelSet set{
      "avx2",        &avx2::run,     &avx2::has_fast, &avx2::has_fast_gemm, &avx2::fast_block,
      &avx2::to_f32, &avx2::from_f32};
  return &set;
}
}  // namespace qmm::cpu
