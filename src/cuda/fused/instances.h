// The compiled fused-kernel instances, one per translation unit (fused_<bits>_<dtype>_<tile>.cu)
// so a 2-core machine compiles them in parallel.
#pragma once

#include "cuda/fused/fused_gemm.h"

namespace qmm::cuda::fused {

const Instance& affine4_bf16_small();
const Instance& affine4_bf16_large();
const Instance& affine4_f16_small();
const Instance& affine4_f16_large();
// 128 x 128 stream-K tiles for M = 65..256 (fused_dispatch.cu says which grids).
const Instance& affine4_bf16_medium();
const Instance& affine4_f16_medium();
const Instance& affine8_bf16_medium();
const Instance& affine8_f16_medium();
const Instance& affine8_bf16_small();
const Instance& affine8_bf16_large();
const Instance& affine8_f16_small();
const Instance& affine8_f16_large();

// Grouped (gather_qmm) instances: 128 x 64 tiles (experts rarely get hundreds of rows).
const GroupedInstance& grouped_affine4_bf16();
const GroupedInstance& grouped_affine4_f16();
const GroupedInstance& grouped_affine8_bf16();
const GroupedInstance& grouped_affine8_f16();
// 128 x 256 tiles (4-bit only, to bound the build): many rows per expert.
const GroupedInstance& grouped_affine4_bf16_large();
const GroupedInstance& grouped_affine4_f16_large();

}  // namespace qmm::cuda::fused
