// Dispatch of dense prefill problems to the fused Hopper kernels: which problems they take, the
// per-call transposition of MLX's [N, K/g] scales and biases into the [K/g, N] layout the
// CUTLASS collective loads with TMA, and the choice of tile shape by M.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/device_utils.cuh"
#include "cuda/fused/fused_gemm.h"
#include "cuda/fused/instances.h"
#include "cuda/kernels.h"

namespace qmm::cuda {

namespace fused {

void throw_fused_error(const char* what) {
  throw std::runtime_error(std::string("[quantized_matmul] fused Hopper kernel: ") + what +
                           " failed");
}

namespace {

// Tile shape by token rows M (4- and 8-bit alike), measured on the H100 with
// bench/gpu/lab/fused_lab (GEMM alone, weights beyond L2; 2026-11-23, session 6):
//  - M <= 64: 128 x 64 stream-K tiles. 8192^2 M=64: 33.8 us (128 x 128: 45.3, 256 x 64: 38.4,
//    clusters of 2 sharing X by multicast: 36.3).
//  - M = 65..128: 128 x 128 stream-K tiles whatever the grid. At M = 96 / 128, us:
//    8192^2 42.8 / 43.2 (128 x 64: 55.6 / 55.7), 14336x4096 35.1 / 34.3 (128 x 256: 52.5 / 47.6),
//    28672x8192 128.6 / 130.9 (128 x 64: 177.6 / 186.1), 8192x28672 121.0 / 123.4 (128 x 64:
//    187.0 / 186.4); 8-bit 8192^2 M=128 42.5 (54.5), 28672x8192 129.3 (187.1).
//  - M = 129..256: 128 x 128 while a 128 x 256 grid would fill less than kMediumTileMaxFill of
//    the SMs, else 128 x 256. M = 192, 128 x 128 (128 x 256): 8192^2 65.1 (83.4, fill 0.48),
//    14336x4096 66.3 (44.0, fill 0.85), 28672x8192 235.4 (177.6, fill 1.7); 8-bit 8192^2 M=256
//    64.8 (82.8).
//  - Above: 128 x 256 tiles.
constexpr int64_t kSmallTileMaxRows = 64;
constexpr int64_t kMediumTileAlwaysRows = 128;
constexpr int64_t kMediumTileMaxRows = 256;
constexpr double kMediumTileMaxFill = 0.75;

// dst[g, n] = src[n, g] for two arrays at once (scales and biases), through a padded shared
// tile so both the reads and the writes are coalesced. 2-byte elements.
__global__ void transpose_groups(const uint16_t* s, const uint16_t* b, uint16_t* st, uint16_t* bt,
                                 int64_t n, int64_t g, int64_t src_batch, int64_t dst_batch) {
  __shared__ uint16_t ts[32][33], tb[32][33];
  s += blockIdx.z * src_batch;
  b += blockIdx.z * src_batch;
  st += blockIdx.z * dst_batch;
  bt += blockIdx.z * dst_batch;
  const int64_t n0 = int64_t(blockIdx.x) * 32, g0 = int64_t(blockIdx.y) * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = n0 + i, c = g0 + threadIdx.x;
    if (r < n && c < g) {
      ts[i][threadIdx.x] = s[r * g + c];
      if (b) tb[i][threadIdx.x] = b[r * g + c];
    }
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = g0 + i, c = n0 + threadIdx.x;
    if (r < g && c < n) {
      st[r * n + c] = ts[threadIdx.x][i];
      if (b) bt[r * n + c] = tb[threadIdx.x][i];
    }
  }
}

// Copies rows of 2-byte elements, 16 bytes per thread: dst row i <- src row map(i).
// gather: dst row (j * M + m) <- x row (xidx[order[j]] * M + m); scatter: out row
// (order[j] * M + m) <- ys row (j * M + m). `cols` is a multiple of 8.
template <bool Gather>
__global__ void move_rows(const uint16_t* src, uint16_t* dst, const int* order, const int* xidx,
                          int64_t items, int64_t M, int64_t cols) {
  const int64_t vec = cols / 8;
  const int64_t total = items * M * vec;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / vec, v = i % vec;
    const int64_t j = row / M, m = row % M;
    const int item = order[j];
    const int64_t from = Gather ? (int64_t(xidx[item]) * M + m) : row;
    const int64_t to = Gather ? row : (int64_t(item) * M + m);
    reinterpret_cast<uint4*>(dst + to * cols)[v] =
        reinterpret_cast<const uint4*>(src + from * cols)[v];
  }
}

// The instance for a problem: (bits, dtype) picks the family, M the tile shape.
const Instance* pick(int bits, Dtype dtype, int64_t M, int64_t N, int sm_count) {
  if (bits != 4 && bits != 8) return nullptr;
  const bool bf16 = dtype == Dtype::bfloat16;
  const double wide_fill = double((N + 127) / 128) * double((M + 255) / 256) / sm_count;
  enum { kSmall, kMedium, kLarge } tile = kLarge;
  if (M <= kSmallTileMaxRows)
    tile = kSmall;
  else if (M <= kMediumTileAlwaysRows ||
           (M <= kMediumTileMaxRows && wide_fill < kMediumTileMaxFill))
    tile = kMedium;
  if (bits == 4) {
    if (tile == kSmall) return bf16 ? &affine4_bf16_small() : &affine4_f16_small();
    if (tile == kMedium) return bf16 ? &affine4_bf16_medium() : &affine4_f16_medium();
    return bf16 ? &affine4_bf16_large() : &affine4_f16_large();
  }
  if (tile == kSmall) return bf16 ? &affine8_bf16_small() : &affine8_f16_small();
  if (tile == kMedium) return bf16 ? &affine8_bf16_medium() : &affine8_f16_medium();
  return bf16 ? &affine8_bf16_large() : &affine8_f16_large();
}

// Rows per active expert (a host-side estimate: all rows spread over min(items, experts))
// from which the 128 x 256 grouped tiles run.
constexpr int64_t kGroupedLargeTileRows = 192;

const GroupedInstance* pick_grouped(int bits, Dtype dtype, int64_t rows_per_expert) {
  const bool bf16 = dtype == Dtype::bfloat16;
  const bool large = rows_per_expert >= kGroupedLargeTileRows;
  if (bits == 4 && large)
    return bf16 ? &grouped_affine4_bf16_large() : &grouped_affine4_f16_large();
  if (bits == 4) return bf16 ? &grouped_affine4_bf16() : &grouped_affine4_f16();
  if (bits == 8) return bf16 ? &grouped_affine8_bf16() : &grouped_affine8_f16();
  return nullptr;
}

// Transposes the [rows, groups] scales and biases of `batches` consecutive matrices into
// [groups, rows] each (grid z = matrix).
void transpose_scales(const MatmulArgs& a, int64_t first, int64_t batches, void* st, void* bt,
                      cudaStream_t stream) {
  const int64_t groups = a.K / a.spec.group_size;
  const int64_t per = a.w_rows * a.s_cols;
  const auto* s = static_cast<const uint16_t*>(a.scales) + first * per;
  const auto* b = static_cast<const uint16_t*>(a.biases) + first * per;
  for (int64_t z0 = 0; z0 < batches; z0 += 65535) {
    const int64_t nz = std::min<int64_t>(65535, batches - z0);
    dim3 grid(static_cast<unsigned>((a.N + 31) / 32), static_cast<unsigned>((groups + 31) / 32),
              static_cast<unsigned>(nz));
    transpose_groups<<<grid, dim3(32, 8), 0, stream>>>(
        s + z0 * per, b + z0 * per, static_cast<uint16_t*>(st) + z0 * groups * a.N,
        static_cast<uint16_t*>(bt) + z0 * groups * a.N, a.N, groups, per, groups * a.N);
    check_launch("quantized_matmul");
  }
}

}  // namespace
}  // namespace fused

const char* fused_instance_name(int bits, Dtype dtype, int64_t M, int64_t N, int sm_count) {
  const fused::Instance* inst = fused::pick(bits, dtype, M, N, sm_count);
  return inst ? inst->name : nullptr;
}

bool fused_supported(const MatmulArgs& a) {
  // Affine 4/8-bit, transpose (W rows along K), 16-bit activations, groups a multiple of the
  // 64-wide k step, N a multiple of 8 (16-byte rows of the column-major D' and of the
  // transposed scales for TMA).
  return a.transpose && a.spec.mode == core::QuantMode::affine &&
         (a.spec.bits == 4 || a.spec.bits == 8) &&
         (a.dtype == Dtype::bfloat16 || a.dtype == Dtype::float16) && a.spec.group_size % 64 == 0 &&
         a.K % a.spec.group_size == 0 && a.N % 8 == 0 && a.biases != nullptr && a.M <= INT32_MAX &&
         a.N <= INT32_MAX && a.K <= INT32_MAX &&
         // TMA needs 16-byte aligned global addresses (rows are multiples of 16 bytes here).
         reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && reinterpret_cast<uintptr_t>(a.w) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(a.out) % 16 == 0;
}

void launch_fused(const MatmulArgs& a, int64_t b, int64_t xb, int64_t wb, DeviceContext& ctx,
                  cudaStream_t stream) {
  const fused::Instance* inst = fused::pick(a.spec.bits, a.dtype, a.M, a.N, ctx.sm_count());
  if (!inst) fused::throw_fused_error("dispatch");
  const int64_t groups = a.K / a.spec.group_size;
  const size_t es = 2;
  const size_t sbytes = static_cast<size_t>(groups * a.N) * es;
  fused::Problem p;
  p.M = a.M;
  p.N = a.N;
  p.K = a.K;
  p.group_size = a.spec.group_size;
  p.device = ctx.device();
  p.sm_count = ctx.sm_count();
  p.w = a.w + wb * a.w_rows * a.w_words;
  p.x = static_cast<const char*>(a.x) + xb * a.M * a.K * es;
  p.out = static_cast<char*>(a.out) + b * a.M * a.N * es;
  const size_t ws = inst->workspace_bytes(p);
  // One scratch: transposed scales, transposed biases (256-byte aligned), the kernel workspace.
  const size_t sb_pad = (sbytes + 255) / 256 * 256;
  Scratch scratch(ctx, 2 * sb_pad + ws, stream);
  char* base = scratch.as<char>();
  fused::transpose_scales(a, wb, 1, base, base + sb_pad, stream);
  p.scales_t = base;
  p.biases_t = base + sb_pad;
  if (!inst->can_run(p)) fused::throw_fused_error("can_implement");
  inst->run(p, ws ? base + 2 * sb_pad : nullptr, stream);
  check_launch("quantized_matmul");
}

}  // namespace qmm::cuda

namespace qmm::cuda {

void launch_fused_grouped(const MatmulArgs& a, int64_t experts, int64_t max_segments,
                          DeviceContext& ctx, cudaStream_t stream) {
  const fused::GroupedInstance* inst = fused::pick_grouped(
      a.spec.bits, a.dtype, a.batch * a.M / std::max<int64_t>(1, std::min(a.batch, experts)));
  if (!inst) fused::throw_fused_error("dispatch");
  const int64_t rows = a.batch * a.M, groups = a.K / a.spec.group_size;
  auto pad = [](size_t b) { return (b + 255) / 256 * 256; };
  const size_t xs_b = pad(size_t(rows * a.K) * 2), ys_b = pad(size_t(rows * a.N) * 2);
  const size_t sc_b = pad(size_t(experts * groups * a.N) * 2);
  fused::GroupedProblem p;
  p.w = a.w;
  p.w_bytes = a.w_rows * a.w_words * 4;
  p.order = a.order;
  p.seg_start = a.seg_start;
  p.num_segments = a.num_segments;
  p.widx = a.widx;
  p.M = a.M;
  p.N = a.N;
  p.K = a.K;
  p.group_size = a.spec.group_size;
  p.max_groups = static_cast<int>(max_segments);
  p.device = ctx.device();
  p.sm_count = ctx.sm_count();
  const size_t ws = inst->workspace_bytes(p);
  Scratch scratch(ctx, xs_b + ys_b + 2 * sc_b + ws, stream);
  char* base = scratch.as<char>();
  auto* xs = reinterpret_cast<uint16_t*>(base);
  p.xs = xs;
  p.ys = base + xs_b;
  p.scales_t = base + xs_b + ys_b;
  p.biases_t = base + xs_b + ys_b + sc_b;
  const unsigned grid = static_cast<unsigned>(
      std::min<int64_t>(ctx.sm_count() * 8, std::max<int64_t>(1, (rows * (a.K / 8) + 255) / 256)));
  fused::move_rows<true><<<grid, 256, 0, stream>>>(static_cast<const uint16_t*>(a.x), xs, a.order,
                                                   a.xidx, a.batch, a.M, a.K);
  check_launch("gather_qmm");
  fused::transpose_scales(a, 0, experts, const_cast<void*>(p.scales_t),
                          const_cast<void*>(p.biases_t), stream);
  inst->run(p, base + xs_b + ys_b + 2 * sc_b, stream);
  check_launch("gather_qmm");
  const unsigned grid_out = static_cast<unsigned>(
      std::min<int64_t>(ctx.sm_count() * 8, std::max<int64_t>(1, (rows * (a.N / 8) + 255) / 256)));
  fused::move_rows<false><<<grid_out, 256, 0, stream>>>(static_cast<const uint16_t*>(p.ys),
                                                        static_cast<uint16_t*>(a.out), a.order,
                                                        a.xidx, a.batch, a.M, a.N);
  check_launch("gather_qmm");
}

}  // namespace qmm::cuda
