// Shared by the GPU labs (decode, pattern, fused, wgmma): error checks, graph timing, fills.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                         \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

// Microseconds per launch: a graph of `reps` calls of enqueue(i), median of 15 replays after 2
// warm-up replays (events around each replay).
template <class Enqueue>
double time_graph(cudaStream_t s, Enqueue enqueue) {
  const int reps = 20;
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < reps; ++i) enqueue(i);
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int it = 0; it < 17; ++it) {
    CK(cudaEventRecord(e0, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float v;
    CK(cudaEventElapsedTime(&v, e0, e1));
    if (it >= 2) ms.push_back(v);
  }
  std::sort(ms.begin(), ms.end());
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms[ms.size() / 2] * 1000.0 / reps;
}

// Deterministic random fills (splitmix64 of the index): weights and activations of the labs.
__device__ inline uint32_t mix(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
static __global__ void fill_words(uint32_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = mix(i, seed);
}
// bf16 values uniform in [lo, hi)
static __global__ void fill_bf16(uint16_t* p, int64_t n, uint32_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float u = (mix(i, seed) >> 8) * (1.0f / 16777216.0f);
    p[i] = __bfloat16_as_ushort(__float2bfloat16_rn(lo + (hi - lo) * u));
  }
}

// Random packed codes (`bits` per weight) with scales in [0.002, 0.01) and biases in
// [-0.04, 0.04) ([N, groups] bf16), in enough copies that a graph of 20 calls reads beyond the
// 50 MB L2: the fused and wgmma labs rotate through them.
struct RotatedWeights {
  std::vector<uint32_t*> w;
  std::vector<uint16_t*> scales, biases;
  RotatedWeights(int64_t N, int64_t K, int bits, int64_t groups, cudaStream_t s) {
    const size_t wbytes = size_t(N) * K * bits / 8;
    const int copies = int(std::max<size_t>(2, (size_t(160) << 20) / wbytes + 1));
    w.resize(copies), scales.resize(copies), biases.resize(copies);
    for (int i = 0; i < copies; ++i) {
      CK(cudaMalloc(&w[i], wbytes));
      CK(cudaMalloc(&scales[i], groups * N * 2));
      CK(cudaMalloc(&biases[i], groups * N * 2));
      fill_words<<<1024, 256, 0, s>>>(w[i], int64_t(wbytes / 4), 11 + i);
      fill_bf16<<<1024, 256, 0, s>>>(scales[i], groups * N, 21 + i, 0.002f, 0.01f);
      fill_bf16<<<1024, 256, 0, s>>>(biases[i], groups * N, 31 + i, -0.04f, 0.04f);
    }
  }
  ~RotatedWeights() {
    for (size_t i = 0; i < w.size(); ++i) {
      cudaFree(w[i]);
      cudaFree(scales[i]);
      cudaFree(biases[i]);
    }
  }
  RotatedWeights(const RotatedWeights&) = delete;
  RotatedWeights& operator=(const RotatedWeights&) = delete;
  int copies() const { return int(w.size()); }
};
