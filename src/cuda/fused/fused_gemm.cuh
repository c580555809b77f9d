// The fused Hopper prefill kernel: a CUTLASS 3 warp-specialised TMA + wgmma GEMM whose quantized
// operand is converted in registers ("mixed input", RS mainloop), reading MLX's packed layout as
// it is stored.
//
// Why the operands are swapped: the collective converts the narrow type on its way through the
// register file, and wgmma takes only its A operand from registers. So the kernel computes
//   D'[N, M] = W[N, K] * X^T[K, M]
// with W (MLX's [N, K/8] uint32 rows = a row-major stream of 4-bit codes, element k in nibble
// k % 2 of byte k / 2, which is CUTLASS's uint4b_t packing) as A, X row-major [M, K] as a
// K-major B, and D' column-major, which is Y row-major [M, N].
//
// Affine dequantization is `convert(q) * s + b` (CUTLASS's ConvertAndScaleWithZero computes
// exactly MLX's s*q + b, with the "zero" being MLX's bias). CUTLASS wants scales N-major
// ([K/g, N]); MLX stores them [N, K/g], so the dispatcher transposes them into scratch first.
#pragma once

#include <cuda_runtime.h>

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "cuda/fused/fused_gemm.h"

namespace qmm::cuda::fused {

// TileN: rows of W per CTA tile; TileM: token rows per tile; TileK: one k step (a divisor of
// the group size, as the collective reloads scales once per group).
template <class Quant, class Act, bool WithBias, int TileN, int TileM, int TileK, bool StreamK>
struct FusedGemm {
  using TileShape = cute::Shape<cute::Int<TileN>, cute::Int<TileM>, cute::Int<TileK>>;
  using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
  // Cooperative: two consumer warpgroups split a 128-row tile; pingpong for 64-row tiles.
  using Schedule =
      std::conditional_t<TileN >= 128, cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                         cutlass::gemm::KernelTmaWarpSpecializedPingpong>;
  using EpiSchedule =
      std::conditional_t<TileN >= 128, cutlass::epilogue::TmaWarpSpecializedCooperative,
                         cutlass::epilogue::TmaWarpSpecialized>;
  static constexpr int kAlignQ = 128 / cutlass::sizeof_bits<Quant>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<Act>::value;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void,
      cutlass::layout::ColumnMajor, kAlignX,  // no C operand (beta = 0)
      Act, cutlass::layout::ColumnMajor, kAlignX, EpiSchedule>::CollectiveOp;

  using QuantOperand =
      std::conditional_t<WithBias, cute::tuple<Quant, Act, Act>, cute::tuple<Quant, Act>>;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, QuantOperand, cutlass::layout::RowMajor,
      kAlignQ, Act, cutlass::layout::ColumnMajor, kAlignX, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      Schedule>::CollectiveOp;

  using Scheduler = std::conditional_t<StreamK, cutlass::gemm::StreamKScheduler, void>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, Mainloop,
                                                      Epilogue, Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const Problem& p) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    using StrideS = typename Mainloop::StrideScale;
    const int n = static_cast<int>(p.N), m = static_cast<int>(p.M), k = static_cast<int>(p.K);
    auto dA = cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(n, k, 1));
    auto dB = cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(m, k, 1));
    auto dD = cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(n, m, 1));
    auto dS = cutlass::make_cute_packed_stride(
        StrideS{}, cute::make_shape(n, static_cast<int>(p.K / p.group_size), 1));
    typename Gemm::Arguments args;
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = {n, m, k, 1};
    args.mainloop.ptr_A = static_cast<const Quant*>(p.w);
    args.mainloop.dA = dA;
    args.mainloop.ptr_B = static_cast<const Act*>(p.x);
    args.mainloop.dB = dB;
    args.mainloop.ptr_S = static_cast<const Act*>(p.scales_t);
    args.mainloop.dS = dS;
    args.mainloop.group_size = p.group_size;
    if constexpr (WithBias) args.mainloop.ptr_Z = static_cast<const Act*>(p.biases_t);
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = dD;
    args.epilogue.ptr_D = static_cast<Act*>(p.out);
    args.epilogue.dD = dD;
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }

  static bool can_run(const Problem& p) {
    auto args = arguments(p);
    return Gemm::can_implement(args) == cutlass::Status::kSuccess;
  }
  static size_t workspace_bytes(const Problem& p) { return Gemm::get_workspace_size(arguments(p)); }
  static void run(const Problem& p, void* workspace, cudaStream_t stream) {
    auto args = arguments(p);
    Gemm gemm;
    if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess)
      throw_fused_error("initialize");
    if (gemm.run(stream) != cutlass::Status::kSuccess) throw_fused_error("run");
  }
};

}  // namespace qmm::cuda::fused
