// One fused-kernel configuration for fused_lab.cu, chosen by macros so that each configuration
// compiles as its own translation unit (CUTLASS instances take minutes each):
//   LAB_TN, LAB_TM, LAB_TK: tile (W rows, token rows, k step); LAB_SK: stream-K; LAB_BITS: 4 or 8.
// (Session 6 also tried clusters of 2 CTAs sharing X by multicast, through a cluster parameter of
// FusedGemm that was not kept: slower everywhere.)
#include "cuda/fused/fused_gemm.cuh"

#include <string>
#include <vector>

namespace lab {
std::vector<qmm::cuda::fused::Instance>& registry();
}

namespace {
using Quant = std::conditional_t<LAB_BITS == 4, cutlass::uint4b_t, uint8_t>;
using G = qmm::cuda::fused::FusedGemm<Quant, cutlass::bfloat16_t, true, LAB_TN, LAB_TM, LAB_TK,
                                      LAB_SK != 0>;
const std::string kName = std::to_string(LAB_BITS) + "b/" + std::to_string(LAB_TN) + "x" +
                          std::to_string(LAB_TM) + "x" + std::to_string(LAB_TK) +
                          (LAB_SK ? "/sk" : "");
const bool kRegistered = [] {
  lab::registry().push_back({kName.c_str(), G::can_run, G::workspace_bytes, G::run});
  return true;
}();
}  // namespace
