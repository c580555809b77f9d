// Host interface of the fused Hopper kernels (CUTLASS instances in fused_*.cu). Plain C++ so
// the dispatcher and tests need no CUTLASS headers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace qmm::cuda::fused {

// One dense problem Y[M, N] = X[M, K] * dequant(W[N, K])^T, all row-major and contiguous.
struct Problem {
  const void* w = nullptr;         // packed codes, N rows of K * bits / 8 bytes
  const void* x = nullptr;         // [M, K] activations (bf16 / fp16)
  const void* scales_t = nullptr;  // [K / group_size, N] in the activation type
  const void* biases_t = nullptr;  // same; affine only
  void* out = nullptr;             // [M, N]
  int64_t M = 0, N = 0, K = 0;
  int group_size = 64;
  int device = 0;
  int sm_count = 132;
};

// A compiled instance: quant format x activation type x tile shape.
struct Instance {
  const char* name;
  bool (*can_run)(const Problem&);
  size_t (*workspace_bytes)(const Problem&);
  void (*run)(const Problem&, void* workspace, cudaStream_t);
};

// The expert-grouped problem of gather_qmm after device routing: segment s holds items
// order[seg_start[s] .. seg_start[s+1]) of one expert (widx of its first item), each of M rows.
// xs / ys hold the rows in segment order ([B * M, K] and [B * M, N]).
struct GroupedProblem {
  const void* w = nullptr;  // expert 0's packed codes; expert e starts e * w_bytes later
  int64_t w_bytes = 0;
  const void* xs = nullptr;
  void* ys = nullptr;
  const void* scales_t = nullptr;  // [E, K / group_size, N]
  const void* biases_t = nullptr;
  const int* order = nullptr;
  const int* seg_start = nullptr;
  const int* num_segments = nullptr;
  const int* widx = nullptr;
  int64_t M = 0, N = 0, K = 0;
  int group_size = 64;
  int max_groups = 1;  // upper bound of the segment count (host-known)
  int device = 0;
  int sm_count = 132;
};

struct GroupedInstance {
  const char* name;
  size_t (*workspace_bytes)(const GroupedProblem&);
  void (*run)(const GroupedProblem&, void* workspace, cudaStream_t);
};

[[noreturn]] void throw_fused_error(const char* what);

}  // namespace qmm::cuda::fused
