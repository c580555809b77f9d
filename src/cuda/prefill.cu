// The first prefill path (large M): dequantize tiles of W into a pooled scratch buffer in the
// compute dtype, then one cuBLAS GEMM per tile (float32 accumulation; no TF32 for float32).
// Scratch is bounded (kScratchBytes) by tiling N; everything is stream-ordered and capturable.
// The fused Hopper kernel of the next issue replaces this where it wins.
#include <cublas_v2.h>

#include <mutex>
#include <stdexcept>

#include "core/formats.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace qmm::cuda {

using core::QuantMode;

namespace {

constexpr size_t kScratchBytes = size_t(256) << 20;

struct TileArgs {
  QuantMode mode;
  int gs, bits;
  const uint32_t* w;  // batch wb's first row
  const void* scales;
  const void* biases;
  int64_t w_words, s_cols;
  int64_t r0, c0, rows, cols, ld;
  void* dst;
};

template <class T>
__global__ void dequant_tile_kernel(TileArgs a) {
  const int64_t total = a.rows * a.cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = a.r0 + i / a.cols, col = a.c0 + i % a.cols;
    const uint32_t q = core::unpack_code(a.w + r * a.w_words, col, a.bits);
    const int64_t si = r * a.s_cols + col / a.gs;
    float v;
    if (a.mode == QuantMode::affine) {
      v = fmaf(static_cast<float>(q), to_f32(static_cast<const T*>(a.scales)[si]),
               to_f32(static_cast<const T*>(a.biases)[si]));
    } else {
      const uint8_t sb = static_cast<const uint8_t*>(a.scales)[si];
      const float s =
          a.mode == QuantMode::nvfp4 ? core::e4m3_to_float(sb) : core::e8m0_to_float(sb);
      v = (a.mode == QuantMode::mxfp8 ? core::e4m3_to_float(q) : e2m1_value(q)) * s;
    }
    static_cast<T*>(a.dst)[(i / a.cols) * a.ld + i % a.cols] = from_f32<T>(v);
  }
}

// Bits in {2, 4, 8}: one thread per packed word (32/Bits values of one group), one vector
// store of the dequantized values. The hot path of the prefill: memory-bound.
template <class T, int Bits>
__global__ void dequant_tile_words(TileArgs a) {
  constexpr int kPer = 32 / Bits;
  const int64_t w0 = a.c0 / kPer, wpr = a.cols / kPer;
  const int64_t total = a.rows * wpr;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t rr = i / wpr, wi = i % wpr;
    const int64_t r = a.r0 + rr, col = (w0 + wi) * kPer;
    const uint32_t word = __ldcs(a.w + r * a.w_words + w0 + wi);
    const int64_t si = r * a.s_cols + col / a.gs;
    float s, b = 0.0f;
    if (a.mode == QuantMode::affine) {
      s = to_f32(static_cast<const T*>(a.scales)[si]);
      b = to_f32(static_cast<const T*>(a.biases)[si]);
    } else {
      const uint8_t sb = static_cast<const uint8_t*>(a.scales)[si];
      s = a.mode == QuantMode::nvfp4 ? core::e4m3_to_float(sb) : core::e8m0_to_float(sb);
    }
    T v[kPer];
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const uint32_t q = (word >> (Bits * j)) & ((1u << Bits) - 1u);
      float f;
      if (a.mode == QuantMode::affine)
        f = fmaf(static_cast<float>(q), s, b);
      else if (a.mode == QuantMode::mxfp8)
        f = core::e4m3_to_float(q) * s;
      else
        f = e2m1_value(q) * s;
      v[j] = from_f32<T>(f);
    }
    T* dst = static_cast<T*>(a.dst) + rr * a.ld + wi * kPer;
    constexpr int kBytes = kPer * sizeof(T);
    if constexpr (kBytes % 16 == 0) {
#pragma unroll
      for (int j = 0; j < kBytes / 16; ++j)
        reinterpret_cast<uint4*>(dst)[j] = reinterpret_cast<const uint4*>(v)[j];
    } else if constexpr (kBytes % 8 == 0) {
      reinterpret_cast<uint2*>(dst)[0] = reinterpret_cast<const uint2*>(v)[0];
    } else {
#pragma unroll
      for (int j = 0; j < kPer; ++j) dst[j] = v[j];
    }
  }
}

template <class T>
void launch_tile(const TileArgs& t, int bits, unsigned grid, cudaStream_t stream) {
  // Vector stores need 16/8-byte aligned rows of the scratch (ld and dst aligned).
  const bool aligned = (t.ld * sizeof(T)) % 16 == 0 && reinterpret_cast<uintptr_t>(t.dst) % 16 == 0;
  if (aligned && bits == 4)
    dequant_tile_words<T, 4><<<grid, 256, 0, stream>>>(t);
  else if (aligned && bits == 8)
    dequant_tile_words<T, 8><<<grid, 256, 0, stream>>>(t);
  else if (aligned && bits == 2)
    dequant_tile_words<T, 2><<<grid, 256, 0, stream>>>(t);
  else
    dequant_tile_kernel<T><<<grid, 256, 0, stream>>>(t);
}

void check_cublas(cublasStatus_t s, const char* op) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("[") + op + "] cuBLAS error " + std::to_string(int(s)));
}

cudaDataType_t cuda_type(Dtype t) {
  switch (t) {
    case Dtype::float16: return CUDA_R_16F;
    case Dtype::bfloat16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

std::mutex g_cublas_mutex;

}  // namespace

void launch_dequant_tile(const MatmulArgs& a, int64_t wb, int64_t r0, int64_t r1, int64_t c0,
                         int64_t c1, void* dst, int64_t ld, cudaStream_t stream) {
  TileArgs t;
  t.mode = a.spec.mode;
  t.gs = a.spec.group_size;
  t.bits = a.spec.bits;
  t.w = a.w + wb * a.w_rows * a.w_words;
  const size_t ssz = a.spec.mode == QuantMode::affine ? itemsize(a.dtype) : 1;
  t.scales = static_cast<const char*>(a.scales) + wb * a.w_rows * a.s_cols * ssz;
  t.biases =
      a.biases ? static_cast<const char*>(a.biases) + wb * a.w_rows * a.s_cols * ssz : nullptr;
  t.w_words = a.w_words;
  t.s_cols = a.s_cols;
  t.r0 = r0;
  t.c0 = c0;
  t.rows = r1 - r0;
  t.cols = c1 - c0;
  t.ld = ld;
  t.dst = dst;
  const int64_t total = t.rows * t.cols;
  if (total == 0) return;
  unsigned grid = grid_for(total, 256, 132 * 64);
  switch (a.dtype) {
    case Dtype::float16: launch_tile<__half>(t, a.spec.bits, grid, stream); break;
    case Dtype::bfloat16: launch_tile<__nv_bfloat16>(t, a.spec.bits, grid, stream); break;
    default: launch_tile<float>(t, a.spec.bits, grid, stream); break;
  }
  check_launch("quantized_matmul");
}

void launch_prefill(const MatmulArgs& a, const std::vector<int64_t>& xb,
                    const std::vector<int64_t>& wb, DeviceContext& ctx, cudaStream_t stream) {
  if (a.batch == 0 || a.M == 0 || a.N == 0) return;
  const size_t es = itemsize(a.dtype);
  // Tile of N: as many columns of the dequantized matrix as fit the scratch, a multiple of 128.
  int64_t tile = static_cast<int64_t>(kScratchBytes / (es * std::max<int64_t>(a.K, 1)));
  tile = std::max<int64_t>(128, tile / 128 * 128);
  tile = std::min(tile, a.N);
  Scratch scratch(ctx, static_cast<size_t>(tile) * a.K * es, stream);
  auto handle = static_cast<cublasHandle_t>(ctx.cublas_handle());
  std::lock_guard lock(g_cublas_mutex);
  check_cublas(cublasSetStream(handle, stream), "quantized_matmul");
  const float one = 1.0f, zero = 0.0f;
  const cudaDataType_t ty = cuda_type(a.dtype);
  int64_t last_wb = -1;
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t n0 = 0; n0 < a.N; n0 += tile) {
      const int64_t n1 = std::min(a.N, n0 + tile), tn = n1 - n0;
      const bool reuse = tile == a.N && wb[b] == last_wb;
      if (!reuse) {
        if (a.transpose)
          launch_dequant_tile(a, wb[b], n0, n1, 0, a.K, scratch.get(), a.K, stream);
        else
          launch_dequant_tile(a, wb[b], 0, a.K, n0, n1, scratch.get(), tn, stream);
      }
      last_wb = tile == a.N ? wb[b] : -1;
      const char* x = static_cast<const char*>(a.x) + xb[b] * a.M * a.K * es;
      char* out = static_cast<char*>(a.out) + (b * a.M * a.N + n0) * es;
      // Column-major view: out^T (tn x M, ld N) = Wtile (tn x K) * x^T (K x M, ld K).
      check_cublas(cublasGemmEx(handle, a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                                static_cast<int>(tn), static_cast<int>(a.M), static_cast<int>(a.K),
                                &one, scratch.get(), ty, static_cast<int>(a.transpose ? a.K : tn),
                                x, ty, static_cast<int>(a.K), &zero, out, ty, static_cast<int>(a.N),
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "quantized_matmul");
    }
  }
}

}  // namespace qmm::cuda
