// Read-pattern lab (GPU machine): how fast can 264 CTAs x 8 warps stream a [N, row_bytes]
// weight matrix with the decode kernel's tile walk (16-row tiles, warps interleaved along the
// row, lane (g, c) reading rows g and g + 8), as a function of
//   RUN   bytes a lane reads per row per step (a quad of lanes reads 4 * RUN contiguous bytes),
//   PF    steps in flight per lane,
//   ASYNC registers (ld.global.cs) or a per-lane cp.async ring in shared memory,
//   PAIR  the step order: 1 = a warp's consecutive steps take adjacent 64-byte quad runs, 2 / 3 =
//         they take the two 16-byte halves of a lane's 32-byte run (ld.global.nc / .cs).
// The arithmetic is one XOR per word. Results: bench/gpu/README.md (session 5). Build: nvcc -O3
// -std=c++20 -arch=sm_90a -Iinclude -Isrc bench/gpu/lab/pattern_lab.cu -o build/pattern_lab
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/device_utils.cuh"
#include "lab_timing.cuh"

using namespace qmm::cuda;

// ---- asynchronous global -> shared copies (cp.async). A lane that copies a vector and later
// reads it back needs no barrier: cp.async.wait_group makes the lane's own copies visible to it.
// The L2 policy marks streamed weights evict-first (read once per call).
QMM_DEV uint64_t evict_first_policy() {
  uint64_t p;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
  return p;
}

// Copies Bytes (4, 8 or 16) from gmem to smem, or writes zeros when !ok (gmem is not read then,
// but must still be a valid address).
template <int Bytes>
QMM_DEV void cp_async(void* smem, const void* gmem, bool ok, uint64_t policy) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = ok ? Bytes : 0;
  if constexpr (Bytes == 16)  // .cg: L2 only (the data is read once)
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;" ::"r"(dst),
                 "l"(gmem), "r"(n), "l"(policy)
                 : "memory");
  else  // 4- and 8-byte copies exist only as .ca
    asm volatile("cp.async.ca.shared.global.L2::cache_hint [%0], [%1], %2, %3, %4;" ::"r"(dst),
                 "l"(gmem), "n"(Bytes), "r"(n), "l"(policy)
                 : "memory");
}
QMM_DEV void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most N of this thread's committed copy groups are still in flight.
template <int N>
QMM_DEV void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

template <int RUN, int PF, bool ASYNC, int PAIR = 0>
__global__ void __launch_bounds__(256, 2)
    pattern_kernel(const uint8_t* w, int64_t row_bytes, int tiles, uint32_t* sink) {
  extern __shared__ uint4 ring[];
  constexpr int kVec = RUN / 16;  // 16-byte vectors per lane per row
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int64_t step = 8 * 4 * RUN;  // bytes of a row per CTA step
  const int niter = static_cast<int>(row_bytes / step);
  const uint64_t pol = evict_first_policy();
  uint4* my = ring + (size_t(warp) * PF * 2 * kVec) * 32 + lane;
  uint32_t acc = 0;
  auto load = [](const uint4* p) { return PAIR == 2 ? __ldg(p) : __ldcs(p); };
  const int ntiles = (tiles - blockIdx.x + gridDim.x - 1) / gridDim.x;
  const int total = ntiles * niter;
  auto src_of = [&](int i, int h) {
    const int t = blockIdx.x + (i / niter) * gridDim.x;
    const int it = i % niter;
    if constexpr (PAIR >= 2) {
      // Steps 2j, 2j + 1 of a warp take the two 16-byte halves of the lane's 32 bytes in a
      // 128-byte quad run: the first load brings whole sectors into L1, the second hits.
      const int j = (it >> 1) * 8 + warp;
      return w + (int64_t(t) * 16 + g + 8 * h) * row_bytes + j * (8 * RUN) + c * 2 * RUN +
             (it & 1) * RUN;
    }
    if constexpr (PAIR == 1) {
      // Steps it, it + 1 of a warp read adjacent quads' runs: (sub-chunk 2w + it % 2 of each
      // 16-sub-chunk round).
      const int j = (it >> 1) * 16 + 2 * warp + (it & 1);
      return w + (int64_t(t) * 16 + g + 8 * h) * row_bytes + j * (4 * RUN) + c * RUN;
    }
    return w + (int64_t(t) * 16 + g + 8 * h) * row_bytes + it * step + (warp * 4 + c) * RUN;
  };
  if constexpr (ASYNC) {
#pragma unroll
    for (int s = 0; s < PF; ++s) {
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int v = 0; v < kVec; ++v)
          cp_async<16>(my + ((s * 2 + h) * kVec + v) * 32, src_of(s, h) + 16 * v, s < total, pol);
      cp_async_commit();
    }
    for (int i0 = 0; i0 < total; i0 += PF) {
#pragma unroll
      for (int s = 0; s < PF; ++s) {
        const int i = i0 + s;
        if (i < total) {
          cp_async_wait<PF - 1>();
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int v = 0; v < kVec; ++v) {
              const uint4 q = my[((s * 2 + h) * kVec + v) * 32];
              acc ^= q.x ^ q.y ^ q.z ^ q.w;
            }
          const int nx = i + PF;
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int v = 0; v < kVec; ++v)
              cp_async<16>(my + ((s * 2 + h) * kVec + v) * 32,
                           nx < total ? src_of(nx, h) + 16 * v : w, nx < total, pol);
          cp_async_commit();
        }
      }
    }
    cp_async_wait<0>();
  } else {
    uint4 st[PF][2][kVec];
#pragma unroll
    for (int s = 0; s < PF; ++s)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int v = 0; v < kVec; ++v)
          st[s][h][v] = s < total ? load(reinterpret_cast<const uint4*>(src_of(s, h)) + v)
                                  : make_uint4(0, 0, 0, 0);
    for (int i0 = 0; i0 < total; i0 += PF) {
#pragma unroll
      for (int s = 0; s < PF; ++s) {
        const int i = i0 + s;
        if (i < total) {
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int v = 0; v < kVec; ++v)
              acc ^= st[s][h][v].x ^ st[s][h][v].y ^ st[s][h][v].z ^ st[s][h][v].w;
          const int nx = i + PF;
          if (nx < total)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
              for (int v = 0; v < kVec; ++v)
                st[s][h][v] = load(reinterpret_cast<const uint4*>(src_of(nx, h)) + v);
        }
      }
    }
  }
  if (acc == 0x12345678u) sink[0] = acc;
}

// Plain stream: every warp reads 512 contiguous bytes per load (the copy-like ceiling).
__global__ void __launch_bounds__(256) stream_kernel(const uint4* w, int64_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 q = __ldcs(w + i);
    acc ^= q.x ^ q.y ^ q.z ^ q.w;
  }
  if (acc == 0x12345678u) sink[0] = acc;
}

struct Bufs {
  std::vector<uint8_t*> w;
  int64_t N, row_bytes;
  uint32_t* sink;
  cudaStream_t s;
};

template <int RUN, int PF, bool ASYNC, int PAIR = 0>
void run(const Bufs& b) {
  const int tiles = static_cast<int>(b.N / 16);
  const int grid = std::min(tiles, 264);
  const size_t smem = ASYNC ? size_t(PF) * 8 * 2 * RUN * 32 : 0;
  auto k = pattern_kernel<RUN, PF, ASYNC, PAIR>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const double us = time_graph(b.s, [&](int i) {
    k<<<grid, 256, smem, b.s>>>(b.w[i % b.w.size()], b.row_bytes, tiles, b.sink);
  });
  const double bytes = double(b.N) * b.row_bytes;
  std::printf(
      "%-6s%s run %3d B/lane (quad %4d B)  PF %d  in flight %5zu B/lane  %8.2f us  %6.0f GB/s\n",
      ASYNC ? "async" : "regs",
      PAIR == 1   ? "+pair"
      : PAIR == 2 ? "+sect"
      : PAIR == 3 ? "+sectcs"
                  : "     ",
      RUN, 4 * RUN, PF, size_t(PF) * 2 * RUN, us, bytes / us * 1e-3);
}

int main(int argc, char** argv) {
  Bufs b;
  b.N = argc > 1 ? std::atoll(argv[1]) : 8192;
  b.row_bytes = argc > 2 ? std::atoll(argv[2]) : 4096;
  const size_t bytes = size_t(b.N) * b.row_bytes;
  const int copies = int(std::max<size_t>(2, (size_t(200) << 20) / bytes + 1));
  for (int i = 0; i < copies; ++i) {
    uint8_t* p;
    CK(cudaMalloc(&p, bytes));
    CK(cudaMemset(p, i + 1, bytes));
    b.w.push_back(p);
  }
  CK(cudaMalloc(&b.sink, 4));
  CK(cudaStreamCreate(&b.s));
  std::printf("N %lld row_bytes %lld (%.1f MB, %d rotated copies)\n", (long long)b.N,
              (long long)b.row_bytes, bytes / 1e6, copies);
  {
    const int64_t n = int64_t(bytes / 16);
    const double us = time_graph(b.s, [&](int i) {
      stream_kernel<<<132 * 8, 256, 0, b.s>>>(reinterpret_cast<const uint4*>(b.w[i % b.w.size()]),
                                              n, b.sink);
    });
    std::printf("stream (512 B per warp load)                               %8.2f us  %6.0f GB/s\n",
                us, bytes / us * 1e-3);
  }
  run<16, 3, false>(b);
  run<16, 6, false>(b);
  run<32, 2, false>(b);
  run<32, 3, false>(b);
  run<64, 2, false>(b);
  run<16, 2, false, 2>(b);
  run<16, 3, false, 2>(b);
  run<16, 4, false, 2>(b);
  run<16, 3, false, 3>(b);
  run<16, 4, false, 3>(b);
  return 0;
}
