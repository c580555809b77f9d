// The fast matmul kernels compiled for AVX-512 F/BW/VL/DQ (+ FMA, F16C; 16 float lanes).
#define QMM_ISA_NS avx512
#define QMM_ISA_NAME "avx512"
#define QMM_ISA_LEVEL 512
#include "cpu/kernels_isa.inc"

namespace qmm::cpu {
const KernelSet* avx512_kernels() {
  static const KernelSet set{"avx512",
                             &avx512::run,
                             &avx512::has_fast,
                             &avx512::has_fast_gemm,
                             &avx512::fast_block,
                             &avx512::to_f32,
                             &avx512::from_f32};
  return &set;
}
}  // namespace qmm::cpu
