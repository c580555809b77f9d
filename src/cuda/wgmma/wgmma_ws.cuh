// The hand-written Hopper fused prefill kernel (shared pieces in wgmma_qmm.cuh), warp-
// specialised: the roles are separate warpgroups joined only by mbarrier rings, so conversion
// and wgmma overlap.
//  - WG 0 (MMA): waits for a converted W buffer and an X tile, issues m64 n128 k16 x 4 (X is A,
//    64 token rows; converted W is B, 128 W rows; D is Y's tile), and releases the previous
//    step's buffers once its wgmma has completed;
//  - WG 1-2 (convert): 256 threads turn two k steps of 128 packed rows into 128-byte swizzled
//    bf16/fp16 buffers (s * q + b with one rounding, as the reference), fence them for the async
//    proxy and signal them full;
//  - WG 3 (producers): one thread streams W chunks (TMA, as stored, kWSteps k steps per chunk,
//    128-byte swizzle) with their scale/bias boxes, one the X tiles (TMA, 128-byte swizzle:
//    exactly wgmma's K-major layout).
// The first form of this kernel had the same two warpgroups issue the wgmma of step i, wait for
// step i-1, convert step i+1 and meet at a barrier: a step cost issue + convert + barrier, ~1100
// cycles at 128 x 64 where the tensor work is ~256 (8192^2 M=64: 46.8 us; this form 37.8).
// Tile: 128 W rows x 64 tokens (the MMA warpgroup's accumulator is 64 floats per thread; wider
// tiles need setmaxnreg to fit 512 threads).
#pragma once

#include "cuda/wgmma/wgmma_qmm.cuh"

namespace qmm::cuda::wgmma {

template <int Bits, class Act>
struct WsTile {
  static constexpr int BN = 128, TOK = 64;
  static constexpr int kThreads = 512;
  static constexpr int kMmaThreads = 128;
  static constexpr int kConverters = 256;
  static constexpr int kAcc = BN / 2;  // m64 n128: 64 floats per thread
  static constexpr int kXBytes = TOK * 128;
  static constexpr int kWRowBytes = kBK * Bits / 8;
  static constexpr int kWChunkRow = kWSteps * kWRowBytes;
  static_assert(kWChunkRow == 128, "the W chunk is one 128-byte swizzled row");
  static constexpr int kWBytes = BN * kWChunkRow;
  static constexpr int kSBBytes = 2 * BN * kChunkGroups * 2;
  static constexpr int kCvtBytes = BN * 128;
  // The converters work on pairs of k steps (one proxy fence and twice the independent work
  // per wait); the MMA warpgroup on single steps (pairs there measured slower: 44 vs 38.6 us at
  // 8192^2 M=64, lab session 7).
  static constexpr int kWStages = 4, kCvtPairs = 3, kXStages = 6;
  static constexpr int kBars = 2 * (kWStages + kCvtPairs + kXStages);
  static constexpr int kSmem = 1024 + 2 * kCvtPairs * kCvtBytes + kWStages * (kWBytes + kSBBytes) +
                               kXStages * kXBytes + kBars * 8 + 16;
  static_assert(kSmem <= kSmemLimit, "shared memory");
};

template <int Bits, class Act>
__global__ void __launch_bounds__(512, 1)
    fused_wgmma_ws_kernel(const __grid_constant__ CUtensorMap xmap,
                          const __grid_constant__ CUtensorMap wmap,
                          const __grid_constant__ CUtensorMap smap,
                          const __grid_constant__ CUtensorMap bmap, Params p) {
  static_assert(Bits == 4, "4-bit codes only so far");
  using T = WsTile<Bits, Act>;
  using Ops = ActOps<Act>;
  using T2 = typename Ops::T2;
  constexpr int BN = T::BN, TOK = T::TOK;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  uint8_t* const base_ptr = smem_raw + (base - smem_addr(smem_raw));
  const uint32_t cvt0 = base;  // [kCvtPairs][2][kCvtBytes]
  const uint32_t ws0 = cvt0 + 2 * T::kCvtPairs * T::kCvtBytes;
  const uint32_t sb0 = ws0 + T::kWStages * T::kWBytes;
  const uint32_t xs0 = sb0 + T::kWStages * T::kSBBytes;
  const uint32_t bar0 = xs0 + T::kXStages * T::kXBytes;
  int* const last_flag = reinterpret_cast<int*>(base_ptr + (bar0 - base) + T::kBars * 8);
  auto wfull = [&](int s) { return bar0 + 8u * s; };
  auto wempty = [&](int s) { return bar0 + 8u * (T::kWStages + s); };
  auto cfull = [&](int s) { return bar0 + 8u * (2 * T::kWStages + s); };
  auto cempty = [&](int s) { return bar0 + 8u * (2 * T::kWStages + T::kCvtPairs + s); };
  auto xfull = [&](int s) { return bar0 + 8u * (2 * T::kWStages + 2 * T::kCvtPairs + s); };
  auto xempty = [&](int s) {
    return bar0 + 8u * (2 * T::kWStages + 2 * T::kCvtPairs + T::kXStages + s);
  };

  const int n0 = blockIdx.x * BN, m0 = blockIdx.y * TOK, split = blockIdx.z;
  const int chunks_total = (p.ksteps + kWSteps - 1) / kWSteps;
  const int k_begin = int(int64_t(chunks_total) * split / p.splits) * kWSteps;
  const int k_end = min(p.ksteps, int(int64_t(chunks_total) * (split + 1) / p.splits) * kWSteps);
  const int nk = k_end - k_begin;
  const int tid = threadIdx.x, lane = tid & 31;

  if (tid == 0) {
    for (int s = 0; s < T::kWStages; ++s) {
      mbar_init(wfull(s), 1);
      mbar_init(wempty(s), T::kConverters / 32);
    }
    for (int s = 0; s < T::kCvtPairs; ++s) {
      mbar_init(cfull(s), T::kConverters / 32);
      mbar_init(cempty(s), T::kMmaThreads / 32);
    }
    for (int s = 0; s < T::kXStages; ++s) {
      mbar_init(xfull(s), 1);
      mbar_init(xempty(s), T::kMmaThreads / 32);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (tid >= T::kMmaThreads + T::kConverters) {  // producers: one thread each
    const int pt = tid - T::kMmaThreads - T::kConverters;
    if (pt == 0) {  // W stream: packed chunk, its scales and biases
      const int chunks = (nk + kWSteps - 1) / kWSteps;
      for (int t = 0; t < chunks; ++t) {
        const int s = t % T::kWStages;
        if (t >= T::kWStages) mbar_wait(wempty(s), ((t / T::kWStages) - 1) & 1);
        const int k0 = (k_begin + t * kWSteps) * kBK;
        mbar_expect_tx(wfull(s), T::kWBytes + T::kSBBytes);
        tma_load_2d(ws0 + s * T::kWBytes, &wmap, k0 * Bits / 8, n0, wfull(s));
        const uint32_t sb = sb0 + s * T::kSBBytes;
        const int g0 = (k0 >> p.group_shift) & ~(kChunkGroups - 1);
        tma_load_2d(sb, &smap, g0, n0, wfull(s));
        tma_load_2d(sb + T::kSBBytes / 2, &bmap, g0, n0, wfull(s));
      }
    } else if (pt == 32) {  // X stream
      for (int i = 0; i < nk; ++i) {
        const int s = i % T::kXStages;
        if (i >= T::kXStages) mbar_wait(xempty(s), ((i / T::kXStages) - 1) & 1);
        mbar_expect_tx(xfull(s), T::kXBytes);
        tma_load_2d(xs0 + s * T::kXBytes, &xmap, (k_begin + i) * kBK, m0, xfull(s));
      }
    }
    return;
  }

  if (tid >= T::kMmaThreads) {  // converters
    const int ct = tid - T::kMmaThreads;
    // Row r of the W tile, k elements [koff, koff + 32) of each step. Steps go in pairs (one
    // proxy fence and twice the independent work per wait: a lone step was latency-bound).
    const int r = ct >> 1, koff = (ct & 1) * 32;
    for (int step0 = 0; step0 < nk; step0 += 2) {
      const int t = step0 / kWSteps, s = t % T::kWStages;  // pairs never straddle a chunk
      mbar_wait(wfull(s), (t / T::kWStages) & 1);
      const int pair = step0 / 2, cp = pair % T::kCvtPairs, c0 = 2 * cp;
      if (pair >= T::kCvtPairs) mbar_wait(cempty(cp), ((pair / T::kCvtPairs) - 1) & 1);
      const int steps = min(2, nk - step0);
      const uint16_t* sc =
          reinterpret_cast<const uint16_t*>(base_ptr + (sb0 - base) + s * T::kSBBytes) +
          r * kChunkGroups;
      const uint16_t* bi = sc + BN * kChunkGroups;
      const int box_g0 = (((k_begin + t * kWSteps) * kBK) >> p.group_shift) & ~(kChunkGroups - 1);
      const uint32_t row = ws0 + s * T::kWBytes + r * T::kWChunkRow;
      uint32_t w[2][4];
      T2 s2[2], b2[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (h < steps) {
          const int step = step0 + h;
          const int gl = ((((k_begin + step) * kBK + koff) >> p.group_shift)) - box_g0;
          const uint32_t sbv = uint32_t(sc[gl]) | (uint32_t(bi[gl]) << 16);
          s2[h] = as_t2<T2>(__byte_perm(sbv, sbv, 0x1010));
          b2[h] = as_t2<T2>(__byte_perm(sbv, sbv, 0x3232));
          const int piece = ((step % kWSteps) * T::kWRowBytes + koff / 2) / 16;
          asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];"
                       : "=r"(w[h][0]), "=r"(w[h][1]), "=r"(w[h][2]), "=r"(w[h][3])
                       : "r"(row + ((piece ^ (r & 7)) << 4)));
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (h < steps) {
          const uint32_t dst = cvt0 + (c0 + h) * T::kCvtBytes + r * 128;
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const uint4 v = dequant8_4bit<Act>(w[h][q], s2[h], b2[h]);
            const int chunk = koff / 8 + q;
            asm volatile(
                "st.shared.v4.b32 [%0], {%1, %2, %3, %4};" ::"r"(dst + ((chunk ^ (r & 7)) << 4)),
                "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                : "memory");
          }
        }
      }
      fence_proxy_async();  // the wgmma reads the buffers through the async proxy
      __syncwarp();
      if (lane == 0) {
        mbar_arrive(cfull(cp));
        if ((step0 + steps) % kWSteps == 0 || step0 + steps == nk) mbar_arrive(wempty(s));
      }
    }
    return;
  }

  // ---- MMA warpgroup
  float acc[T::kAcc];
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) acc[i] = 0.f;
  for (int i = 0; i < nk; ++i) {
#ifdef QMM_WGMMA_TRACE
    const bool tr =
        p.trace && tid == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && i < 64;
    if (tr) p.trace[i * 4 + 0] = clock64();
#endif
    const int xs = i % T::kXStages, cp = (i / 2) % T::kCvtPairs;
    mbar_wait(xfull(xs), (i / T::kXStages) & 1);
    if (i % 2 == 0) mbar_wait(cfull(cp), (i / 2 / T::kCvtPairs) & 1);
#ifdef QMM_WGMMA_TRACE
    if (tr) p.trace[i * 4 + 1] = clock64();
#endif
    const uint32_t a = xs0 + xs * T::kXBytes;
    const uint32_t b = cvt0 + (2 * cp + i % 2) * T::kCvtBytes;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk)
      Ops::template mma<T::kAcc>(acc, desc_sw128(a + kk * 32), desc_sw128(b + kk * 32));
    wgmma_commit();
#ifdef QMM_WGMMA_TRACE
    if (tr) p.trace[i * 4 + 2] = clock64();
#endif
    wgmma_wait<1>();
#ifdef QMM_WGMMA_TRACE
    if (tr) p.trace[i * 4 + 3] = clock64();
#endif
    if (i >= 1 && lane == 0) {  // step i-1's wgmma has completed: release its X tile
      mbar_arrive(xempty((i - 1) % T::kXStages));
      // and, after the second step of a pair, the pair's converted buffers
      if (i % 2 == 0) mbar_arrive(cempty(((i - 1) / 2) % T::kCvtPairs));
    }
  }
  wgmma_wait<0>();
  fence_regs(acc);

  // Fragment of the m64 x n128 accumulator this thread holds: rows 16 * warp + lane / 4 (+ 8),
  // columns 8 j + 2 (lane % 4) (+ 1).
  const int tok0 = m0 + 16 * (tid / 32) + lane / 4;
  const int col0 = n0 + 2 * (lane % 4);
  Act* out = static_cast<Act*>(p.out);
  auto store = [&](const float* v) {
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
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
  auto mma_sync = [] { asm volatile("bar.sync 1, %0;" ::"n"(T::kMmaThreads) : "memory"); };
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  const int tiles = gridDim.x * gridDim.y;
  constexpr int kTileFloats = T::kAcc * T::kMmaThreads;
  float* mine = p.partials + (int64_t(split) * tiles + tile) * kTileFloats;
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) mine[i * T::kMmaThreads + tid] = acc[i];
  __threadfence();
  mma_sync();
  if (tid == 0) *last_flag = atomicAdd(p.counters + tile, 1) == p.splits - 1;
  mma_sync();
  if (!*last_flag) return;
  __threadfence();
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) acc[i] = 0.f;
  for (int z = 0; z < p.splits; ++z) {
    const float* part = p.partials + (int64_t(z) * tiles + tile) * kTileFloats;
#pragma unroll
    for (int i = 0; i < T::kAcc; ++i) acc[i] += __ldcg(part + i * T::kMmaThreads + tid);
  }
  store(acc);
  if (tid == 0) p.counters[tile] = 0;
}

template <int Bits, class Act>
cudaError_t launch_ws(const Launch& l, cudaStream_t stream) {
  using T = WsTile<Bits, Act>;
  const Params& p = l.p;
  CUtensorMap maps[4];
  if (!make_maps<T::BN, T::TOK, Bits, Act>(l, maps)) return cudaErrorInvalidValue;
  auto kernel = fused_wgmma_ws_kernel<Bits, Act>;
  static std::atomic<uint64_t> raised_on{0};  // bit d: raised on device d (< 64)
  if (cudaError_t e = raise_smem_limit(reinterpret_cast<const void*>(kernel), T::kSmem, raised_on);
      e != cudaSuccess)
    return e;
  dim3 grid((p.N + T::BN - 1) / T::BN, (p.M + T::TOK - 1) / T::TOK, l.splits);
  Params q = p;
  q.splits = l.splits;
  kernel<<<grid, T::kThreads, T::kSmem, stream>>>(maps[0], maps[1], maps[2], maps[3], q);
  return cudaGetLastError();
}

}  // namespace qmm::cuda::wgmma
