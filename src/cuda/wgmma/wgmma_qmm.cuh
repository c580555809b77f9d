// Shared pieces of the hand-written Hopper fused prefill kernel (wgmma_ws.cuh): its parameters,
// the PTX wrappers (mbarriers, TMA, wgmma), the 4-bit decoder, the tensor maps and the k split
// rule. Y[M, N] = X[M, K] * dequant(W[N, K])^T with the weights converted once into shared
// memory and both wgmma operands read from there.
//
// Why not the CUTLASS mixed-input kernel (fused/): that one converts W in registers and feeds
// wgmma from them, and at 16-128 token rows it spends ~4x the tensor time per k step waiting on
// the convert -> wgmma -> wait chain of its two consumer warpgroups (ncu, M = 64 at 8192^2); and
// it needs the scales transposed first (a separate pass, ~7 us at 8192^2).
// The scales and biases come from MLX's [N, K / group] layout by TMA with each W chunk (a box
// of 8 groups per row; no transposition pass). Not by the converting threads: the proxy fence
// each of them executes per step (fence.proxy.async = MEMBAR + view fence) waits for all its
// outstanding global loads, which made every step wait a DRAM round trip; nor by a producer warp
// with plain loads, whose round trip per chunk then limited the stream.
// Few tiles: the k range is split over `splits` CTAs; each writes float32 partials and the last
// one to finish sums them in split order (deterministic) and writes the tile.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "cuda/wgmma/wgmma_ops.cuh"

namespace qmm::cuda::wgmma {

// Packed W moves in chunks of kWSteps k steps: 128 contiguous bytes per row for 4-bit codes
// (4x fewer TMA requests than one step each; no faster by itself, but it lets one 16-byte box
// of scales serve a whole chunk).
constexpr int kWSteps = 4;
constexpr int kBK = 64;  // k per step: one 128-byte swizzled row of 16-bit elements
constexpr int kSmemLimit = 227 * 1024;
// Groups of scales per row and W chunk: one 16-byte TMA box (the minimum), enough for the
// chunk's 256 k at group size 32; 64 and 128 load neighbouring groups too (from L2). The box
// must start 16-byte aligned in the row: a TMA whose inner start coordinate is not (4 groups
// in) stops the kernel with an illegal instruction (measured on the H100), so boxes start at a
// multiple of 8 groups and the chunks at multiples of 256 k.
constexpr int kChunkGroups = 8;
static_assert(kWSteps * kBK / 32 <= kChunkGroups, "scale box covers a W chunk");

struct Params {
  const uint16_t* scales;  // [N, groups], activation type
  const uint16_t* biases;
  void* out;        // [M, N], activation type
  float* partials;  // [splits, tiles, acc regs, MMA threads] when splits > 1
  int* counters;    // [tiles], zero before the launch; left zero
  int M, N, K, groups, group_size, group_shift, splits, ksteps;
#ifdef QMM_WGMMA_TRACE
  long long* trace;  // lab only, may be null: [steps][4] clocks of thread 0 of CTA 0
#endif
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nwait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
template <int R>
__device__ __forceinline__ void fence_regs(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// Shared-memory matrix descriptor: K-major rows of 128 bytes, 128-byte swizzle, 8-row groups
// 1024 bytes apart (the base must be 1024-aligned; k16 steps add 32 bytes to the address).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

template <class Act>
struct ActOps;
template <>
struct ActOps<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagicByte = 0x43434343u;  // bf16 0x43qq = 128 + q
  static __device__ __forceinline__ T2 magic() { return __floats2bfloat162_rn(128.f, 128.f); }
  template <int N>
  static __device__ __forceinline__ void mma(float (&d)[N], uint64_t a, uint64_t b) {
    if constexpr (N == 32) mma_bf16_m64n64k16(d, a, b);
    if constexpr (N == 64) mma_bf16_m64n128k16(d, a, b);
    if constexpr (N == 128) mma_bf16_m64n256k16(d, a, b);
  }
  static __device__ __forceinline__ T2 pack(float a, float b) {
    return __floats2bfloat162_rn(a, b);
  }
};
template <>
struct ActOps<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagicByte = 0x64646464u;  // f16 0x64qq = 1024 + q
  static __device__ __forceinline__ T2 magic() { return __floats2half2_rn(1024.f, 1024.f); }
  template <int N>
  static __device__ __forceinline__ void mma(float (&d)[N], uint64_t a, uint64_t b) {
    if constexpr (N == 32) mma_f16_m64n64k16(d, a, b);
    if constexpr (N == 64) mma_f16_m64n128k16(d, a, b);
    if constexpr (N == 128) mma_f16_m64n256k16(d, a, b);
  }
  static __device__ __forceinline__ T2 pack(float a, float b) { return __floats2half2_rn(a, b); }
};

template <class T2>
__device__ __forceinline__ uint32_t as_u32(T2 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <class T2>
__device__ __forceinline__ T2 as_t2(uint32_t v) {
  return *reinterpret_cast<T2*>(&v);
}

// Eight 4-bit codes (k = 0..7 of one MLX word) -> eight dequantized values as four pairs.
template <class Act>
__device__ __forceinline__ uint4 dequant8_4bit(uint32_t w, typename ActOps<Act>::T2 s2,
                                               typename ActOps<Act>::T2 b2) {
  using Ops = ActOps<Act>;
  const uint32_t t = w & 0x0F0F0F0Fu, u = (w >> 4) & 0x0F0F0F0Fu;
  const uint32_t lo = __byte_perm(t, u, 0x5140), hi = __byte_perm(t, u, 0x7362);  // k0..3, k4..7
  const auto m = Ops::magic();
  // (magic + q) - magic is q exactly; then one rounding of s * q + b.
  auto one = [&](uint32_t codes, uint32_t sel) {
    const auto q = __hsub2(as_t2<typename Ops::T2>(__byte_perm(codes, Ops::kMagicByte, sel)), m);
    return as_u32(__hfma2(q, s2, b2));
  };
  return make_uint4(one(lo, 0x4140), one(lo, 0x4342), one(hi, 0x4140), one(hi, 0x4342));
}

// Host side: tensor maps (encoded per call: the addresses change), launch.
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                 const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                 const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiled encode_tiled();  // the driver's cuTensorMapEncodeTiled (wgmma_host.cu)
bool make_map_2d(CUtensorMap* map, CUtensorMapDataType type, const void* ptr, uint64_t inner,
                 uint64_t rows, uint64_t row_bytes, uint32_t box_inner, uint32_t box_rows,
                 bool swizzle128);

// k splits for few tiles: the count that best fills whole waves of CTAs, with a small penalty
// per extra split (its partials) and a large one per extra wave (each pays the pipeline's fill
// again: 14336x4096 M=64 took 60 us in 6 waves of 7 splits), keeping at least 8 k steps (two W
// chunks) per split.
inline int choose_splits(int64_t tiles, int64_t ksteps, int sms) {
  int best = 1;
  double best_score = -1;
  const int64_t min_waves = (tiles + sms - 1) / sms;
  for (int s = 1; s <= 8 && ksteps / s >= 8; ++s) {
    const int64_t ctas = tiles * s, waves = (ctas + sms - 1) / sms;
    const double score =
        double(ctas) / double(waves * sms) - 0.02 * (s - 1) - 0.15 * double(waves - min_waves);
    if (score > best_score) best_score = score, best = s;
  }
  return best;
}

struct Launch {
  const void* x;  // [M, K]
  const void* w;  // [N, K * bits / 8] bytes
  Params p;
  int splits = 1;
};

// The four tensor maps of a launch: X [M, K] (TOK x 64 boxes, 128-byte swizzle), packed W
// [N, K bits / 8] bytes (BN rows x 128 bytes, swizzled), scales and biases [N, groups] (BN rows x
// kChunkGroups, plain).
template <int BN, int TOK, int Bits, class Act>
bool make_maps(const Launch& l, CUtensorMap (&maps)[4]) {
  const Params& p = l.p;
  const auto xtype = std::is_same_v<Act, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const uint64_t wrow = uint64_t(p.K) * Bits / 8;
  return make_map_2d(&maps[0], xtype, l.x, uint64_t(p.K), uint64_t(p.M), uint64_t(p.K) * 2, kBK,
                     TOK, true) &&
         make_map_2d(&maps[1], CU_TENSOR_MAP_DATA_TYPE_UINT8, l.w, wrow, uint64_t(p.N), wrow,
                     kWSteps * kBK * Bits / 8, BN, true) &&
         make_map_2d(&maps[2], CU_TENSOR_MAP_DATA_TYPE_UINT16, p.scales, uint64_t(p.groups),
                     uint64_t(p.N), uint64_t(p.groups) * 2, kChunkGroups, BN, false) &&
         make_map_2d(&maps[3], CU_TENSOR_MAP_DATA_TYPE_UINT16, p.biases, uint64_t(p.groups),
                     uint64_t(p.N), uint64_t(p.groups) * 2, kChunkGroups, BN, false);
}

// The dynamic shared memory attribute is per function and device; raising it is idempotent and
// cheap next to the encodes, but kept out of the common path (bit d of raised_on: device d).
inline cudaError_t raise_smem_limit(const void* kernel, int bytes,
                                    std::atomic<uint64_t>& raised_on) {
  int dev = 0;
  cudaGetDevice(&dev);
  const uint64_t bit = dev < 64 ? uint64_t(1) << dev : 0;
  if (bit && (raised_on.load(std::memory_order_relaxed) & bit)) return cudaSuccess;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e == cudaSuccess) raised_on.fetch_or(bit, std::memory_order_relaxed);
  return e;
}

}  // namespace qmm::cuda::wgmma
