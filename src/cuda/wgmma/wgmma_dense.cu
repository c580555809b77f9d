// Dense problems on the hand-written Hopper kernel (wgmma_ws.cuh): which problems it takes, the
// k split, the workspace.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <memory>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "cuda/wgmma/wgmma_ws.cuh"

namespace qmm::cuda {

namespace {

template <class Act>
void run(const MatmulArgs& a, int64_t b, int64_t xb, int64_t wb, DeviceContext& ctx,
         cudaStream_t stream) {
  using T = wgmma::WsTile<4, Act>;
  const int64_t groups = a.K / a.spec.group_size;
  const int64_t tiles = ((a.N + T::BN - 1) / T::BN) * ((a.M + T::TOK - 1) / T::TOK);
  const int64_t ksteps = a.K / wgmma::kBK;
  const int splits = wgmma::choose_splits(tiles, ksteps, ctx.sm_count());
  wgmma::Launch l;
  l.x = static_cast<const char*>(a.x) + xb * a.M * a.K * 2;
  l.w = a.w + wb * a.w_rows * a.w_words;
  l.splits = splits;
  wgmma::Params& p = l.p;
  p.scales = static_cast<const uint16_t*>(a.scales) + wb * a.w_rows * a.s_cols;
  p.biases = static_cast<const uint16_t*>(a.biases) + wb * a.w_rows * a.s_cols;
  p.out = static_cast<char*>(a.out) + b * a.M * a.N * 2;
  p.M = int(a.M), p.N = int(a.N), p.K = int(a.K);
  p.groups = int(groups), p.group_size = a.spec.group_size;
  p.group_shift = __builtin_ctz(unsigned(a.spec.group_size));
  p.ksteps = int(ksteps);
  std::unique_ptr<Scratch> ws;
  if (splits > 1) {
    const size_t partial_bytes =
        size_t(splits) * size_t(tiles) * T::kAcc * T::kMmaThreads * sizeof(float);
    ws = std::make_unique<Scratch>(ctx, partial_bytes + size_t(tiles) * sizeof(int), stream);
    p.partials = ws->as<float>();
    p.counters = reinterpret_cast<int*>(ws->as<char>() + partial_bytes);
    check(cudaMemsetAsync(p.counters, 0, size_t(tiles) * sizeof(int), stream), "quantized_matmul");
  }
  check(wgmma::launch_ws<4, Act>(l, stream), "quantized_matmul");
}

bool aligned(const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

}  // namespace

bool wgmma_takes(const MatmulArgs& a) {
  const int gs = a.spec.group_size;
  if (!(a.transpose && a.spec.mode == core::QuantMode::affine && a.spec.bits == 4 &&
        (a.dtype == Dtype::bfloat16 || a.dtype == Dtype::float16) && a.biases != nullptr &&
        (gs == 32 || gs == 64 || gs == 128)))
    return false;
  const int64_t groups = a.K / gs;
  // Every address the TMA reads stays 16-byte aligned for every batch item: rows of K / 2
  // (codes), 2 K (x) and 2 * groups (scales) bytes are multiples of 16 given these.
  return a.K % wgmma::kBK == 0 && groups % 8 == 0 && a.N % 8 == 0 && a.M <= INT32_MAX &&
         a.N <= INT32_MAX && a.K <= INT32_MAX && aligned(a.x, 16) && aligned(a.w, 16) &&
         aligned(a.scales, 16) && aligned(a.biases, 16) && aligned(a.out, 4);
}

void launch_wgmma(const MatmulArgs& a, int64_t b, int64_t xb, int64_t wb, DeviceContext& ctx,
                  cudaStream_t stream) {
  if (a.dtype == Dtype::bfloat16)
    run<__nv_bfloat16>(a, b, xb, wb, ctx, stream);
  else
    run<__half>(a, b, xb, wb, ctx, stream);
}

const char* wgmma_tile_name() { return "wgmma/affine4/128x64"; }

}  // namespace qmm::cuda
