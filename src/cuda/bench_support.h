// Timing and baseline helpers for `qmm bench --device gpu` (tools/qmm/bench_gpu.cpp): the HBM
// ceilings, cuBLAS baselines and CUDA-graph timing. Not part of the library's API; the header
// has no CUDA types so host-only code can include it.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "qmm/array.h"

namespace qmm::cuda::bench {

struct DeviceInfo {
  std::string name;
  int sm_count = 0;
  size_t l2_bytes = 0;
  size_t total_mem = 0;
};
DeviceInfo device_info(int device);

// The kernel the library's dense dispatch runs a transposed (mode, bits, group) problem of
// M x N x K on, with aligned operands, on `device` ("qmv_mma", "fused/affine4/bf16/128x128",
// "dequant+cublas", ...): the dispatch's own decision, not a copy of it.
std::string dense_kernel_name(int device, const std::string& mode, int bits, int group_size,
                              Dtype dtype, int64_t M, int64_t N, int64_t K);
// The same for gather_qmm: `items` (token, expert) pairs of one row each over `experts` weight
// matrices ("qmv_mma(direct)", "route+fused(grouped)", ...).
std::string gather_kernel_name(int device, const std::string& mode, int bits, int group_size,
                               Dtype dtype, int64_t items, int64_t experts, int64_t N, int64_t K);

// Read-only bandwidth (GB/s) of a reduction over `bytes` of device memory, median of `iters`.
double read_bandwidth_GBps(int device, size_t bytes, int iters = 10);
// Device-to-device copy bandwidth (GB/s, read + write counted), median of `iters`.
double copy_bandwidth_GBps(int device, size_t bytes, int iters = 10);

// Captures `reps` calls of enqueue(rep) on qmm stream `stream_index` into one CUDA graph,
// replays it `iters` times (after a warm-up) and returns the median time per call in us.
double time_graph(int device, int stream_index, const std::function<void(int)>& enqueue, int reps,
                  int iters);

// Raw device memory for baselines.
void* device_alloc(int device, size_t bytes);
void device_free(void* p);
// Fills n bf16/fp16/fp32 values with normal(0, std) samples (on the device).
void fill_normal(void* p, Dtype t, size_t n, float std, unsigned long long seed, int device);

// out (M x N) = x (M x K) @ w^T, w (N x K) row-major, all of dtype t, float32 accumulation,
// enqueued with cuBLAS on qmm stream `stream_index`.
void cublas_gemm(int device, int stream_index, Dtype t, int64_t M, int64_t N, int64_t K,
                 const void* x, const void* w, void* out);

// The raw stream pointer (cudaStream_t) of a qmm stream, for synchronisation in the bench.
void stream_sync(int device, int stream_index);

}  // namespace qmm::cuda::bench
