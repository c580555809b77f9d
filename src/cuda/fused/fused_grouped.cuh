// The grouped form of the fused Hopper kernel for gather_qmm: one persistent CUTLASS ptr-array
// launch over every (expert segment, N tile, token tile) work item. The per-segment problem
// shapes and operand pointers live in device memory, written by a kernel after the device-side
// routing (fused_grouped_dispatch.cu), so the host never learns how many tokens each expert got:
// no synchronisation, capturable in graphs. Operands are swapped as in fused_gemm.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "cuda/fused/fused_gemm.h"

namespace qmm::cuda::fused {

// CUTLASS 4.2's ptr-array mixed-input mainloop, in its scale-and-zero mode, handles the scale
// and zero-point TMA descriptors with if / else-if chains, so only the zero-point descriptor is
// copied to shared memory, re-pointed at each group, released and acquired: the scale loads
// then run on a stale descriptor (an illegal-instruction fault on the H100). This wrapper does
// the same four steps for the scale descriptor after the library's own.
template <class Base>
struct ScaleAndZeroMainloop : Base {
  using Base::Base;
  using Params = typename Base::Params;

  template <class TensorMapStorage>
  CUTLASS_DEVICE auto tensormaps_init(Params const& params, TensorMapStorage& smem,
                                      int32_t sm_count, int32_t sm_idx) {
    auto maps = Base::tensormaps_init(params, smem, sm_count, sm_idx);
    if (cute::elect_one_sync()) {
      const auto* src = reinterpret_cast<const uint4*>(params.tma_load_scale.get_tma_descriptor());
      auto* dst = reinterpret_cast<uint4*>(&smem.smem_tensormap_scale);
      static_assert(sizeof(cute::TmaDescriptor) % sizeof(uint4) == 0);
      for (size_t i = 0; i < sizeof(cute::TmaDescriptor) / sizeof(uint4); ++i) dst[i] = src[i];
    }
    __syncwarp();
    return maps;
  }

  template <class TensorMapStorage, class... TMs, class ProblemShapeMNKL>
  CUTLASS_DEVICE void tensormaps_perform_update(TensorMapStorage& smem, Params const& params,
                                                cute::tuple<TMs...> const& maps,
                                                ProblemShapeMNKL shape, int32_t next_batch) {
    Base::tensormaps_perform_update(smem, params, maps, shape, next_batch);
    if (cute::elect_one_sync()) {
      cute::tma_descriptor_replace_addr_in_shared_mem(smem.smem_tensormap_scale,
                                                      params.ptr_S[next_batch]);
      // The scale tensor of this group: (rows of W, K / group, 1) with the group's strides,
      // in bytes for the descriptor (the operands are not swapped: W is A).
      const uint32_t rows = cute::get<0>(shape), k = cute::get<2>(shape);
      cute::array<uint32_t, 5> dims = {1, 1, 1, 1, 1};
      cute::array<uint64_t, 5> strides = {0, 0, 0, 0, 0};
      using Scale = typename Base::NonVoidElementScale;
      const Scale* none = nullptr;
      auto t = cute::make_tensor(
          cutlass::gemm::collective::detail::get_logical_ptr(none),
          cute::make_shape(rows, cute::ceil_div(k, params.chunk_size), cute::Int<1>{}),
          params.dS[next_batch]);
      cute::detail::fill_tma_gmem_shape_stride(params.tma_load_scale, t, dims, strides);
      for (uint64_t& st : strides) st = st * cute::sizeof_bits_v<Scale> / 8;
      cute::tma_descriptor_replace_dims_strides_in_shared_mem(smem.smem_tensormap_scale, dims,
                                                              strides);
    }
  }

  template <class TensorMapStorage, class... TMs>
  CUTLASS_DEVICE void tensormaps_cp_fence_release(TensorMapStorage& smem,
                                                  cute::tuple<TMs...> const& maps) {
    Base::tensormaps_cp_fence_release(smem, maps);
    cute::tma_descriptor_cp_fence_release(cute::get<2>(maps), smem.smem_tensormap_scale);
  }

  template <class... TMs>
  CUTLASS_DEVICE void tensormaps_fence_acquire(cute::tuple<TMs...> const& maps) {
    Base::tensormaps_fence_acquire(maps);
    cute::tma_descriptor_fence_acquire(cute::get<2>(maps));
  }
};

template <class Quant, class Act, int TileN, int TileM, int TileK, bool WithBias = true>
struct FusedGroupedGemm {
  using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;
  using TileShape = cute::Shape<cute::Int<TileN>, cute::Int<TileM>, cute::Int<TileK>>;
  using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
  static constexpr int kAlignQ = 128 / cutlass::sizeof_bits<Quant>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<Act>::value;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void,
      cutlass::layout::ColumnMajor*, kAlignX, Act, cutlass::layout::ColumnMajor*, kAlignX,
      cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using BuiltMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      std::conditional_t<WithBias, cute::tuple<Quant, Act, Act>, cute::tuple<Quant, Act>>,
      cutlass::layout::RowMajor*, kAlignQ, Act, cutlass::layout::ColumnMajor*, kAlignX, float,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Mainloop = std::conditional_t<WithBias, ScaleAndZeroMainloop<BuiltMainloop>, BuiltMainloop>;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;
  using StrideS = typename Mainloop::StrideScale;
  using Shape3 = typename ProblemShape::UnderlyingProblemShape;

  // The per-group device arrays the setup kernel fills, laid out in one scratch block.
  struct Tables {
    Shape3* shapes;
    const Quant** a;
    const Act** b;
    const Act** s;
    const Act** z;
    Act** d;
    StrideA* da;
    StrideB* db;
    StrideD* dd;
    StrideS* ds;
  };
  static size_t table_bytes(int groups) {
    const size_t g = static_cast<size_t>(groups);
    return g * (sizeof(Shape3) + 5 * sizeof(void*) + sizeof(StrideA) + sizeof(StrideB) +
                sizeof(StrideD) + sizeof(StrideS)) +
           16 * 10;
  }
  static Tables carve(void* base, int groups) {
    char* p = static_cast<char*>(base);
    auto take = [&](size_t bytes) {
      char* r = p;
      p += (bytes + 15) / 16 * 16;
      return r;
    };
    const size_t g = static_cast<size_t>(groups);
    Tables t;
    t.shapes = reinterpret_cast<Shape3*>(take(g * sizeof(Shape3)));
    t.a = reinterpret_cast<const Quant**>(take(g * sizeof(void*)));
    t.b = reinterpret_cast<const Act**>(take(g * sizeof(void*)));
    t.s = reinterpret_cast<const Act**>(take(g * sizeof(void*)));
    t.z = reinterpret_cast<const Act**>(take(g * sizeof(void*)));
    t.d = reinterpret_cast<Act**>(take(g * sizeof(void*)));
    t.da = reinterpret_cast<StrideA*>(take(g * sizeof(StrideA)));
    t.db = reinterpret_cast<StrideB*>(take(g * sizeof(StrideB)));
    t.dd = reinterpret_cast<StrideD*>(take(g * sizeof(StrideD)));
    t.ds = reinterpret_cast<StrideS*>(take(g * sizeof(StrideS)));
    return t;
  }

  // One thread per group slot g < groups: segment g of the routing (or an empty problem).
  static __device__ void fill_slot(const Tables& t, const GroupedProblem& p, int g) {
    const int segments = *p.num_segments;
    int rows = 0, expert = 0, first = 0;
    if (g < segments) {
      first = p.seg_start[g];
      rows = (p.seg_start[g + 1] - first) * static_cast<int>(p.M);
      expert = p.widx[p.order[first]];
    }
    const int n = static_cast<int>(p.N), k = static_cast<int>(p.K);
    const int groups_k = static_cast<int>(p.K / p.group_size);
    t.shapes[g] = Shape3{n, rows, k};
    const auto* w = static_cast<const char*>(p.w) + static_cast<int64_t>(expert) * p.w_bytes;
    t.a[g] = reinterpret_cast<const Quant*>(w);
    t.b[g] = static_cast<const Act*>(p.xs) + static_cast<int64_t>(first) * p.M * p.K;
    t.d[g] = static_cast<Act*>(p.ys) + static_cast<int64_t>(first) * p.M * p.N;
    const int64_t soff = static_cast<int64_t>(expert) * groups_k * p.N;
    t.s[g] = static_cast<const Act*>(p.scales_t) + soff;
    t.z[g] = static_cast<const Act*>(p.biases_t) + soff;
    t.da[g] = cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(n, k, 1));
    t.db[g] = cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(rows, k, 1));
    t.dd[g] = cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(n, rows, 1));
    t.ds[g] = cutlass::make_cute_packed_stride(StrideS{}, cute::make_shape(n, groups_k, 1));
  }

  static typename Gemm::Arguments arguments(const GroupedProblem& p, const Tables& t) {
    typename Gemm::Arguments args;
    args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
    args.problem_shape = {p.max_groups, t.shapes, nullptr};
    args.mainloop.ptr_A = t.a;
    args.mainloop.dA = t.da;
    args.mainloop.ptr_B = t.b;
    args.mainloop.dB = t.db;
    args.mainloop.ptr_S = t.s;
    args.mainloop.dS = t.ds;
    args.mainloop.chunk_size = p.group_size;
    if constexpr (WithBias) args.mainloop.ptr_Z = t.z;
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = t.dd;
    args.epilogue.ptr_D = t.d;
    args.epilogue.dD = t.dd;
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }
};

template <class G>
__global__ void fill_group_tables(typename G::Tables t, GroupedProblem p) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g < p.max_groups) G::fill_slot(t, p, g);
}

// The Instance functions of a grouped kernel.
template <class G>
struct GroupedEntry {
  static size_t workspace_bytes(const GroupedProblem& p) {
    const size_t tb = (G::table_bytes(p.max_groups) + 255) / 256 * 256;
    typename G::Tables t = G::carve(nullptr, p.max_groups);
    return tb + G::Gemm::get_workspace_size(G::arguments(p, t));
  }
  static void run(const GroupedProblem& p, void* workspace, cudaStream_t stream) {
    const size_t tb = (G::table_bytes(p.max_groups) + 255) / 256 * 256;
    typename G::Tables t = G::carve(workspace, p.max_groups);
    fill_group_tables<G><<<(p.max_groups + 127) / 128, 128, 0, stream>>>(t, p);
    auto args = G::arguments(p, t);
    typename G::Gemm gemm;
    if (G::Gemm::can_implement(args) != cutlass::Status::kSuccess)
      throw_fused_error("grouped can_implement");
    if (gemm.initialize(args, static_cast<char*>(workspace) + tb, stream) !=
        cutlass::Status::kSuccess)
      throw_fused_error("grouped initialize");
    if (gemm.run(stream) != cutlass::Status::kSuccess) throw_fused_error("grouped run");
  }
};

}  // namespace qmm::cuda::fused
