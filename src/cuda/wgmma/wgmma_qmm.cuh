// Hand-written Hopper fused prefill kernel: Y[M, N] = X[M, K] * dequant(W[N, K])^T with the
// weights converted once into shared memory and both wgmma operands read from there.
// Status (2026-11-23): built and checked only by bench/gpu/lab/wgmma_lab.sh; correct, not yet
// faster than the CUTLASS instances (bench/gpu/README.md, "Session 6"), not called by the library.
//
// Why not the CUTLASS mixed-input kernel (fused/): that one converts W in registers and feeds
// wgmma from them, and at 16-128 token rows it spends ~4x the tensor time per k step waiting on
// the convert -> wgmma -> wait chain of its two consumer warpgroups (ncu, M = 64 at 8192^2).
// Here the conversion of k step i+1 runs while the wgmma of step i is in flight:
//  - two producer warps stream, through two rings of mbarriers, the packed W rows with their
//    scales and biases (TMA, as stored, kWSteps k steps per chunk; a chunk is released once its
//    last step is converted) and the X tiles (TMA, 128-byte swizzle, exactly wgmma's K-major
//    layout; released when the wgmma that read them completes);
//  - 256 consumer threads (two warpgroups) read the packed rows, dequantize (s * q + b with one
//    rounding to the activation type, as the reference) and store them swizzled into one of
//    three converted-W buffers; three, so that one barrier per k step suffices: the buffer
//    written at step i+1 was last read by the wgmma of step i-2, which every warpgroup waited
//    for before the barrier of step i-1;
//  - X is wgmma's A operand (64 token rows per warpgroup), converted W is B (N = W rows, up to
//    256 per instruction), so D is Y's row-major tile directly.
// The scales and biases come from MLX's [N, K / group] layout by TMA with each W chunk (a box
// of 8 groups per row; no transposition pass). Not by the converting threads: the proxy fence
// each of them executes per step (fence.proxy.async = MEMBAR + view fence) waits for all its
// outstanding global loads, which made every step wait a DRAM round trip; nor by the producer
// warp with plain loads, whose round trip per chunk then limited the stream.
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
constexpr int kCvtBuffers = 3;  // converted-W ring, see the header comment
constexpr int kBK = 64;         // k per step: one 128-byte swizzled row of 16-bit elements
constexpr int kConsumers = 256;
constexpr int kThreads = kConsumers + 64;  // + two producer warps (W ring, X ring)
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
  float* partials;  // [splits, tiles, acc regs, kConsumers] when splits > 1
  int* counters;    // [tiles], zero before the launch; left zero
  int M, N, K, groups, group_size, group_shift, splits, ksteps;
#ifdef QMM_WGMMA_TRACE
  long long* trace;  // lab only, may be null: [steps][4] clocks of thread 0 of CTA 0
#endif
};

// Tile of one CTA: BN W rows x TOK tokens (64: the warpgroups split the W rows; 128: they split
// the tokens and share all BN rows).
template <int BN, int TOK, int Bits, class Act>
struct Tile {
  static_assert(TOK == 64 || TOK == 128, "token tile");
  static_assert(BN == 128 || BN == 256, "W row tile");
  static constexpr int kN = TOK == 64 ? BN / 2 : BN;  // wgmma N per warpgroup
  static constexpr int kAcc = kN / 2;                 // float accumulators per thread
  static constexpr int kXBytes = TOK * 128;
  static constexpr int kWRowBytes = kBK * Bits / 8;        // one step of one row
  static constexpr int kWChunkRow = kWSteps * kWRowBytes;  // one TMA chunk of one row
  static_assert(kWChunkRow == 128, "the W chunk is one 128-byte swizzled row");
  static constexpr int kWBytes = BN * kWChunkRow;
  static constexpr int kWStages = BN == 256 ? 2 : 4;  // 64 KB of weights in flight
  // Scales then biases of one W chunk: [BN rows][kChunkGroups] each.
  static constexpr int kSBBytes = 2 * BN * kChunkGroups * 2;
  static constexpr int kCvtBytes = BN * 128;
  static constexpr int kCover = BN == 256 ? 64 : 32;  // k elements one thread converts per step
  static constexpr int kFixed =
      kCvtBuffers * kCvtBytes + kWStages * (kWBytes + kSBBytes) + 1024 + 256;
  // X ring: as deep as the rest of shared memory allows, at most 6 (L2-resident tiles).
  static constexpr int kXStages =
      (kSmemLimit - kFixed) / kXBytes < 6 ? (kSmemLimit - kFixed) / kXBytes : 6;
  static_assert(kXStages >= 3, "shared memory");
  static constexpr int kSmem = kFixed + kXStages * kXBytes;
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
__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumers) : "memory");
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

template <int BN, int TOK, int Bits, class Act>
__global__ void __launch_bounds__(kThreads, 1)
    fused_wgmma_kernel(const __grid_constant__ CUtensorMap xmap,
                       const __grid_constant__ CUtensorMap wmap,
                       const __grid_constant__ CUtensorMap smap,
                       const __grid_constant__ CUtensorMap bmap, Params p) {
  static_assert(Bits == 4, "4-bit codes only so far");
  using T = Tile<BN, TOK, Bits, Act>;
  using Ops = ActOps<Act>;
  using T2 = typename Ops::T2;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  uint8_t* const base_ptr = smem_raw + (base - smem_addr(smem_raw));
  constexpr int kXStages = T::kXStages, kWStages = T::kWStages;
  const uint32_t cvt0 = base;
  const uint32_t ws0 = cvt0 + kCvtBuffers * T::kCvtBytes;
  const uint32_t sb0 = ws0 + kWStages * T::kWBytes;
  const uint32_t xs0 = sb0 + kWStages * T::kSBBytes;
  const uint32_t bar0 = xs0 + kXStages * T::kXBytes;
  int* const last_flag = reinterpret_cast<int*>(base_ptr + (bar0 - base) + 240);
  auto wfull = [&](int s) { return bar0 + 8u * s; };
  auto wempty = [&](int s) { return bar0 + 8u * (kWStages + s); };
  auto xfull = [&](int s) { return bar0 + 8u * (2 * kWStages + s); };
  auto xempty = [&](int s) { return bar0 + 8u * (2 * kWStages + kXStages + s); };

  const int n0 = blockIdx.x * BN, m0 = blockIdx.y * TOK, split = blockIdx.z;
  // Splits start on W chunk boundaries, so every chunk starts at a multiple of 256 k and its
  // groups lie in one 8-group scale box that starts 16-byte aligned (see kChunkGroups).
  const int chunks_total = (p.ksteps + kWSteps - 1) / kWSteps;
  const int k_begin = int(int64_t(chunks_total) * split / p.splits) * kWSteps;
  const int k_end = min(p.ksteps, int(int64_t(chunks_total) * (split + 1) / p.splits) * kWSteps);
  const int nk = k_end - k_begin;
  const int tid = threadIdx.x;

  if (tid == 0) {
    for (int s = 0; s < kWStages; ++s) {
      mbar_init(wfull(s), 1);
      mbar_init(wempty(s), kConsumers / 32);
    }
    for (int s = 0; s < kXStages; ++s) {
      mbar_init(xfull(s), 1);
      mbar_init(xempty(s), kConsumers / 32);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (tid >= kConsumers) {    // producer warps: one thread each
    if (tid == kConsumers) {  // W stream: packed chunk, its scales and biases
      const int chunks = (nk + kWSteps - 1) / kWSteps;
      for (int t = 0; t < chunks; ++t) {
        const int s = t % kWStages;
        if (t >= kWStages) mbar_wait(wempty(s), ((t / kWStages) - 1) & 1);
        const int k0 = (k_begin + t * kWSteps) * kBK;
        mbar_expect_tx(wfull(s), T::kWBytes + T::kSBBytes);
        tma_load_2d(ws0 + s * T::kWBytes, &wmap, k0 * Bits / 8, n0, wfull(s));
        const uint32_t sb = sb0 + s * T::kSBBytes;
        const int g0 = (k0 >> p.group_shift) & ~(kChunkGroups - 1);
        tma_load_2d(sb, &smap, g0, n0, wfull(s));
        tma_load_2d(sb + T::kSBBytes / 2, &bmap, g0, n0, wfull(s));
      }
    } else if (tid == kConsumers + 32) {
      for (int i = 0; i < nk; ++i) {
        const int s = i % kXStages;
        if (i >= kXStages) mbar_wait(xempty(s), ((i / kXStages) - 1) & 1);
        mbar_expect_tx(xfull(s), T::kXBytes);
        tma_load_2d(xs0 + s * T::kXBytes, &xmap, (k_begin + i) * kBK, m0, xfull(s));
      }
    }
    return;
  }

  // ---- consumers ----
  const int wg = tid / 128;
  // Conversion assignment: row r of the W tile, k elements [koff, koff + kCover) of each step.
  const int r = T::kCover == 64 ? tid : tid >> 1;
  const int koff = T::kCover == 64 ? 0 : (tid & 1) * 32;
  // Two groups per step only when one thread covers 64 k of 32-wide groups.
  const bool two_groups = T::kCover == 64 && p.group_size == 32;
  const int lane = tid & 31;
  // Waits for step's packed rows, converts them into its buffer, releases the W stage after the
  // chunk's last step.
  auto convert = [&](int step) {
    const int t = step / kWSteps, s = t % kWStages;
    mbar_wait(wfull(s), (t / kWStages) & 1);
    const uint16_t* sc =
        reinterpret_cast<const uint16_t*>(base_ptr + (sb0 - base) + s * T::kSBBytes) +
        r * kChunkGroups;
    const uint16_t* bi = sc + BN * kChunkGroups;
    // Group within the chunk's box, which starts at the 8-aligned group below the chunk's first.
    const int chunk_k0 = (k_begin + t * kWSteps) * kBK;
    const int gl = (((k_begin + step) * kBK + koff) >> p.group_shift) -
                   ((chunk_k0 >> p.group_shift) & ~(kChunkGroups - 1));
    const uint32_t sbA = uint32_t(sc[gl]) | (uint32_t(bi[gl]) << 16);
    const uint32_t sbB = two_groups ? uint32_t(sc[gl + 1]) | (uint32_t(bi[gl + 1]) << 16) : sbA;
    // 16-byte pieces of this thread's row, 128-byte swizzled by the TMA.
    const uint32_t row = ws0 + s * T::kWBytes + r * T::kWChunkRow;
    const int piece0 = ((step % kWSteps) * T::kWRowBytes + koff / 2) / 16;
    const uint32_t dst = cvt0 + (step % kCvtBuffers) * T::kCvtBytes + r * 128;
    constexpr int kWords = T::kCover / 8;
    uint32_t w[kWords];
#pragma unroll
    for (int q = 0; q < kWords; q += 4)
      asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];"
                   : "=r"(w[q]), "=r"(w[q + 1]), "=r"(w[q + 2]), "=r"(w[q + 3])
                   : "r"(row + (((piece0 + q / 4) ^ (r & 7)) << 4)));
#pragma unroll
    for (int q = 0; q < kWords; ++q) {
      const uint32_t sb = (q < 4) ? sbA : sbB;
      const T2 s2 = as_t2<T2>(__byte_perm(sb, sb, 0x1010));
      const T2 b2 = as_t2<T2>(__byte_perm(sb, sb, 0x3232));
      const uint4 v = dequant8_4bit<Act>(w[q], s2, b2);
      const int chunk = (koff / 8) + q;
      asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" ::"r"(dst + ((chunk ^ (r & 7)) << 4)),
                   "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                   : "memory");
    }
    if (step % kWSteps == kWSteps - 1 || step == nk - 1) {
      __syncwarp();
      if (lane == 0) mbar_arrive(wempty(s));
    }
  };

  float acc[T::kAcc];
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) acc[i] = 0.f;

  const uint32_t a_off = TOK == 128 ? wg * 64 * 128 : 0;    // this warpgroup's token rows
  const uint32_t b_off = TOK == 64 ? wg * T::kN * 128 : 0;  // this warpgroup's W rows

  if (nk > 0) {
    convert(0);
    fence_proxy_async();
    consumers_sync();
  }
  {
    for (int i = 0; i < nk; ++i) {
#ifdef QMM_WGMMA_TRACE
      const bool tr =
          p.trace && tid == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && i < 64;
      if (tr) p.trace[i * 4 + 0] = clock64();
#endif
      const int s = i % kXStages;
      mbar_wait(xfull(s), (i / kXStages) & 1);
      const uint32_t a = xs0 + s * T::kXBytes + a_off;
      const uint32_t b = cvt0 + (i % kCvtBuffers) * T::kCvtBytes + b_off;
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk)
        Ops::template mma<T::kAcc>(acc, desc_sw128(a + kk * 32), desc_sw128(b + kk * 32));
      wgmma_commit();
#ifdef QMM_WGMMA_TRACE
      if (tr) p.trace[i * 4 + 1] = clock64();
#endif
      wgmma_wait<1>();
#ifdef QMM_WGMMA_TRACE
      if (tr) p.trace[i * 4 + 2] = clock64();
#endif
      if (i >= 1 && lane == 0) mbar_arrive(xempty((i - 1) % kXStages));
      if (i + 1 < nk) {
        convert(i + 1);
#ifdef QMM_WGMMA_TRACE
        if (tr) p.trace[i * 4 + 3] = clock64();
#endif
        fence_proxy_async();
      }
      consumers_sync();
    }
  }
  wgmma_wait<0>();
  fence_regs(acc);

  // Fragment of the m64 x kN accumulator this thread holds: rows 16 * warp + lane / 4 (+ 8),
  // columns 8 j + 2 (lane % 4) (+ 1).
  const int wi = (tid % 128) / 32;
  const int tok0 = m0 + (TOK == 128 ? wg * 64 : 0) + 16 * wi + lane / 4;
  const int col0 = n0 + (TOK == 64 ? wg * T::kN : 0) + 2 * (lane % 4);
  Act* out = static_cast<Act*>(p.out);
  auto store = [&](const float* v) {
#pragma unroll
    for (int j = 0; j < T::kN / 8; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int m = tok0 + 8 * h, n = col0 + 8 * j;
        if (m < p.M && n < p.N)
          *reinterpret_cast<T2*>(out + int64_t(m) * p.N + n) =
              Ops::pack(v[4 * j + 2 * h], v[4 * j + 2 * h + 1]);
      }
    }
  };
  if (p.splits == 1) {
    store(acc);
    return;
  }
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  const int tiles = gridDim.x * gridDim.y;
  float* mine = p.partials + (int64_t(split) * tiles + tile) * T::kAcc * kConsumers;
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) mine[i * kConsumers + tid] = acc[i];
  __threadfence();
  consumers_sync();
  if (tid == 0) *last_flag = atomicAdd(p.counters + tile, 1) == p.splits - 1;
  consumers_sync();
  if (!*last_flag) return;
  __threadfence();
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) acc[i] = 0.f;
  for (int z = 0; z < p.splits; ++z) {
    const float* part = p.partials + (int64_t(z) * tiles + tile) * T::kAcc * kConsumers;
#pragma unroll
    for (int i = 0; i < T::kAcc; ++i) acc[i] += __ldcg(part + i * kConsumers + tid);
  }
  store(acc);
  if (tid == 0) p.counters[tile] = 0;
}

}  // namespace qmm::cuda::wgmma

namespace qmm::cuda::wgmma {

// Host side: tensor maps (encoded per call: the addresses change), launch.
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                 const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                 const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiled encode_tiled();  // the driver's cuTensorMapEncodeTiled (wgmma_host.cu)
bool make_map_2d(CUtensorMap* map, CUtensorMapDataType type, const void* ptr, uint64_t inner,
                 uint64_t rows, uint64_t row_bytes, uint32_t box_inner, uint32_t box_rows,
                 bool swizzle128);

// k splits for few tiles: the count that best fills whole waves of CTAs (a small penalty per
// extra split for its partials), keeping at least 8 k steps (two W chunks) per split.
inline int choose_splits(int64_t tiles, int64_t ksteps, int sms) {
  int best = 1;
  double best_score = -1;
  for (int s = 1; s <= 8 && ksteps / s >= 8; ++s) {
    const int64_t ctas = tiles * s, waves = (ctas + sms - 1) / sms;
    const double score = double(ctas) / double(waves * sms) - 0.02 * (s - 1);
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

template <int BN, int TOK, int Bits, class Act>
cudaError_t launch(const Launch& l, cudaStream_t stream) {
  using T = Tile<BN, TOK, Bits, Act>;
  const Params& p = l.p;
  CUtensorMap xmap, wmap, smap, bmap;
  const auto xtype = std::is_same_v<Act, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  if (!make_map_2d(&xmap, xtype, l.x, uint64_t(p.K), uint64_t(p.M), uint64_t(p.K) * 2, kBK, TOK,
                   true) ||
      !make_map_2d(&wmap, CU_TENSOR_MAP_DATA_TYPE_UINT8, l.w, uint64_t(p.K) * Bits / 8,
                   uint64_t(p.N), uint64_t(p.K) * Bits / 8, T::kWChunkRow, BN, true) ||
      !make_map_2d(&smap, CU_TENSOR_MAP_DATA_TYPE_UINT16, p.scales, uint64_t(p.groups),
                   uint64_t(p.N), uint64_t(p.groups) * 2, kChunkGroups, BN, false) ||
      !make_map_2d(&bmap, CU_TENSOR_MAP_DATA_TYPE_UINT16, p.biases, uint64_t(p.groups),
                   uint64_t(p.N), uint64_t(p.groups) * 2, kChunkGroups, BN, false))
    return cudaErrorInvalidValue;
  auto kernel = fused_wgmma_kernel<BN, TOK, Bits, Act>;
  // The attribute is per function and device; raising it is idempotent and cheap next to the
  // encode above, but keep it out of the common path.
  static std::atomic<uint64_t> raised_on{0};  // bit d: raised on device d (< 64)
  int dev = 0;
  cudaGetDevice(&dev);
  const uint64_t bit = dev < 64 ? uint64_t(1) << dev : 0;
  if (!bit || !(raised_on.load(std::memory_order_relaxed) & bit)) {
    cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmem);
    if (e != cudaSuccess) return e;
    raised_on.fetch_or(bit, std::memory_order_relaxed);
  }
  dim3 grid((p.N + BN - 1) / BN, (p.M + TOK - 1) / TOK, l.splits);
  Params q = p;
  q.splits = l.splits;
  kernel<<<grid, kThreads, T::kSmem, stream>>>(xmap, wmap, smap, bmap, q);
  return cudaGetLastError();
}

}  // namespace qmm::cuda::wgmma
