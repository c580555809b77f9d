// The generic quantized matmul: every valid problem (all modes, bits, group sizes, dtypes, both
// orientations, any M/N/K, batched and gathered), on CUDA cores with float32 accumulation.
// It is the fallback that guarantees "no implementation" never happens; the fast paths
// (qmv_mma_*.cu, prefill.cu) take the common shapes.
#include <type_traits>

#include "core/formats.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace qmm::cuda {

using core::QuantMode;

namespace {

constexpr int kMb = 8;  // rows of x per pass (accumulators per thread)

struct GArgs : KernelOperands {
  QuantMode mode;
  int gs, bits;
  int64_t batch;
  float* partial;  // transpose=false split-K partial sums, or null
  int ksplit;
};

// Scale (and bias) of group `si` as floats.
template <class T>
QMM_DEV void load_scale(const GArgs& a, int64_t si, float& s, float& b) {
  if (a.mode == QuantMode::affine) {
    s = to_f32(static_cast<const T*>(a.scales)[si]);
    b = to_f32(static_cast<const T*>(a.biases)[si]);
  } else {
    uint8_t sb = static_cast<const uint8_t*>(a.scales)[si];
    s = a.mode == QuantMode::nvfp4 ? core::e4m3_to_float(sb) : core::e8m0_to_float(sb);
    b = 0.0f;
  }
}

QMM_DEV float weight_value(QuantMode mode, uint32_t q, float s, float b) {
  switch (mode) {
    case QuantMode::affine: return fmaf(static_cast<float>(q), s, b);
    case QuantMode::mxfp8: return core::e4m3_to_float(q) * s;
    default: return e2m1_value(q) * s;
  }
}

// transpose=true: one warp per output row n; lanes take whole groups of K.
template <class T>
__global__ void __launch_bounds__(256) qmm_t_generic(GArgs a) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t n = blockIdx.x * 8LL + warp;
  const int64_t item = blockIdx.y;
  const int64_t m0 = blockIdx.z * int64_t(kMb);
  if (n >= a.N) return;
  const int64_t xb = a.xidx ? a.xidx[item] : 0, wb = a.widx ? a.widx[item] : 0;
  const int mb = static_cast<int>((a.M - m0 < kMb ? a.M - m0 : int64_t(kMb)));
  const uint32_t* row = a.w + (wb * a.w_rows + n) * a.w_words;
  const int64_t srow = (wb * a.w_rows + n) * a.s_cols;
  const T* x = static_cast<const T*>(a.x) + (xb * a.M + m0) * a.K;
  float acc[kMb];
#pragma unroll
  for (int m = 0; m < kMb; ++m) acc[m] = 0.0f;
  const int64_t groups = a.K / a.gs;
  for (int64_t g = lane; g < groups; g += 32) {
    float s, b;
    load_scale<T>(a, srow + g, s, b);
    for (int i = 0; i < a.gs; ++i) {
      const int64_t k = g * a.gs + i;
      const float wv = weight_value(a.mode, core::unpack_code(row, k, a.bits), s, b);
#pragma unroll
      for (int m = 0; m < kMb; ++m)
        if (m < mb) acc[m] = fmaf(to_f32(x[m * a.K + k]), wv, acc[m]);
    }
  }
#pragma unroll
  for (int m = 0; m < kMb; ++m) {
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && m < mb)
      static_cast<T*>(a.out)[(item * a.M + m0 + m) * a.N + n] = from_f32<T>(v);
  }
}

// transpose=false: one thread per output column n, looping over a K range (split-K over
// blockIdx.z when the grid would be too small; partial sums reduced in order afterwards).
template <class T>
__global__ void __launch_bounds__(256) qmm_n_generic(GArgs a) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t item = blockIdx.y;
  const int64_t mblocks = (a.M + kMb - 1) / kMb;
  const int64_t split = blockIdx.z / mblocks;
  const int64_t m0 = (blockIdx.z % mblocks) * kMb;
  if (n >= a.N) return;
  const int64_t xb = a.xidx ? a.xidx[item] : 0, wb = a.widx ? a.widx[item] : 0;
  const int mb = static_cast<int>((a.M - m0 < kMb ? a.M - m0 : int64_t(kMb)));
  const int64_t kchunk = (a.K + a.ksplit - 1) / a.ksplit;
  const int64_t k0 = split * kchunk, k1 = (k0 + kchunk < a.K ? k0 + kchunk : a.K);
  const T* x = static_cast<const T*>(a.x) + (xb * a.M + m0) * a.K;
  float acc[kMb];
#pragma unroll
  for (int m = 0; m < kMb; ++m) acc[m] = 0.0f;
  for (int64_t k = k0; k < k1; ++k) {
    const uint32_t* row = a.w + (wb * a.w_rows + k) * a.w_words;
    float s, b;
    load_scale<T>(a, (wb * a.w_rows + k) * a.s_cols + n / a.gs, s, b);
    const float wv = weight_value(a.mode, core::unpack_code(row, n, a.bits), s, b);
#pragma unroll
    for (int m = 0; m < kMb; ++m)
      if (m < mb) acc[m] = fmaf(to_f32(x[m * a.K + k]), wv, acc[m]);
  }
#pragma unroll
  for (int m = 0; m < kMb; ++m) {
    if (m >= mb) break;
    const int64_t o = (item * a.M + m0 + m) * a.N + n;
    if (a.partial)
      a.partial[split * a.batch * a.M * a.N + o] = acc[m];
    else
      static_cast<T*>(a.out)[o] = from_f32<T>(acc[m]);
  }
}

// ---- the vectorised CUDA-core kernel (float32 activations, and fp16 with fp-mode weights) for
// what qmv_f32.cu does not take (M > 8, or x too long for its shared memory): one warp per
// weight row, each lane a 32-element chunk (vector loads of `Bits` words), the group sums
// s * sum(x*q) + b * sum(x) in float32.
enum class SimtMode { affine, mxfp4, nvfp4, mxfp8 };

template <int Bits>
QMM_DEV uint32_t chunk_element(const uint32_t* w, int i) {
  const int bit = i * Bits, word = bit / 32, sh = bit % 32;
  const uint32_t v =
      (sh + Bits <= 32) ? (w[word] >> sh) : __funnelshift_r(w[word], w[word + 1], sh);
  return v & ((1u << Bits) - 1u);
}

// 32 activations of one row as float (vector loads).
template <class T>
QMM_DEV void load_x32(float (&xv)[32], const T* p) {
  if constexpr (std::is_same_v<T, float>) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float4 v = __ldg(reinterpret_cast<const float4*>(p) + i);
      xv[4 * i] = v.x;
      xv[4 * i + 1] = v.y;
      xv[4 * i + 2] = v.z;
      xv[4 * i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint4 v = __ldg(reinterpret_cast<const uint4*>(p) + i);
      const T* h = reinterpret_cast<const T*>(&v);
#pragma unroll
      for (int j = 0; j < 8; ++j) xv[8 * i + j] = to_f32(h[j]);
    }
  }
}

template <class T, int Bits, SimtMode Mode>
__global__ void __launch_bounds__(256) qmv_simt(GArgs a) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t n = blockIdx.x * 8LL + warp;
  const int64_t item = blockIdx.y;
  const int64_t m0 = blockIdx.z * int64_t(kMb);
  if (n >= a.N) return;
  const int64_t xb = a.xidx ? a.xidx[item] : 0, wb = a.widx ? a.widx[item] : 0;
  const int mb = static_cast<int>(a.M - m0 < kMb ? a.M - m0 : int64_t(kMb));
  const uint32_t* row = a.w + (wb * a.w_rows + n) * a.w_words;
  const int64_t srow = (wb * a.w_rows + n) * a.s_cols;
  const T* x = static_cast<const T*>(a.x) + (xb * a.M + m0) * a.K;
  float acc[kMb];
#pragma unroll
  for (int m = 0; m < kMb; ++m) acc[m] = 0.0f;
  const int64_t nchunks = a.K / 32;
  for (int64_t ch = lane; ch < nchunks; ch += 32) {
    uint32_t w[Bits];
    load_words<Bits>(w, row + ch * Bits);
    const int64_t k0 = ch * 32;
    float s0, s1 = 0.0f, b = 0.0f;
    if constexpr (Mode == SimtMode::affine) {
      s0 = to_f32(static_cast<const T*>(a.scales)[srow + k0 / a.gs]);
      b = to_f32(static_cast<const T*>(a.biases)[srow + k0 / a.gs]);
    } else if constexpr (Mode == SimtMode::nvfp4) {
      const uint8_t* sp = static_cast<const uint8_t*>(a.scales) + srow + k0 / 16;
      s0 = core::e4m3_to_float(sp[0]);
      s1 = core::e4m3_to_float(sp[1]);
    } else {
      s0 = core::e8m0_to_float(static_cast<const uint8_t*>(a.scales)[srow + k0 / a.gs]);
    }
    float q[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const uint32_t e = chunk_element<Bits>(w, i);
      if constexpr (Mode == SimtMode::affine)
        q[i] = __uint_as_float(e | 0x4b000000u) - 8388608.0f;  // exact int -> float
      else if constexpr (Mode == SimtMode::mxfp8)
        q[i] = core::e4m3_to_float(e);
      else
        q[i] = e2m1_value(e);
    }
#pragma unroll
    for (int m = 0; m < kMb; ++m) {
      if (m < mb) {
        float xv[32];
        load_x32<T>(xv, x + m * a.K + k0);
        float d0 = 0.0f, d1 = 0.0f, sx = 0.0f;
#pragma unroll
        for (int i = 0; i < 16; ++i) d0 = fmaf(xv[i], q[i], d0);
#pragma unroll
        for (int i = 16; i < 32; ++i) d1 = fmaf(xv[i], q[i], d1);
        if constexpr (Mode == SimtMode::affine) {
#pragma unroll
          for (int i = 0; i < 32; ++i) sx += xv[i];
          acc[m] = fmaf(s0, d0 + d1, fmaf(b, sx, acc[m]));
        } else if constexpr (Mode == SimtMode::nvfp4) {
          acc[m] = fmaf(s0, d0, fmaf(s1, d1, acc[m]));
        } else {
          acc[m] = fmaf(s0, d0 + d1, acc[m]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kMb; ++m) {
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && m < mb)
      static_cast<T*>(a.out)[(item * a.M + m0 + m) * a.N + n] = from_f32<T>(v);
  }
}

template <class T, SimtMode Mode>
void launch_simt_bits(int bits, const GArgs& a, dim3 grid, cudaStream_t stream) {
  if constexpr (Mode == SimtMode::affine) {
    switch (bits) {
      case 2: qmv_simt<T, 2, Mode><<<grid, 256, 0, stream>>>(a); break;
      case 3: qmv_simt<T, 3, Mode><<<grid, 256, 0, stream>>>(a); break;
      case 4: qmv_simt<T, 4, Mode><<<grid, 256, 0, stream>>>(a); break;
      case 5: qmv_simt<T, 5, Mode><<<grid, 256, 0, stream>>>(a); break;
      case 6: qmv_simt<T, 6, Mode><<<grid, 256, 0, stream>>>(a); break;
      default: qmv_simt<T, 8, Mode><<<grid, 256, 0, stream>>>(a); break;
    }
  } else {
    qmv_simt<T, Mode == SimtMode::mxfp8 ? 8 : 4, Mode><<<grid, 256, 0, stream>>>(a);
  }
}

template <class T>
__global__ void reduce_splits(const float* partial, int ksplit, int64_t n, T* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < ksplit; ++k) s += partial[k * n + i];
    out[i] = from_f32<T>(s);
  }
}

int choose_ksplit(const MatmulArgs& a) {
  if (a.transpose) return 1;
  const int64_t mblocks = (a.M + kMb - 1) / kMb;
  const int64_t threads = ((a.N + 255) / 256) * 256 * a.batch * mblocks;
  const int64_t want = int64_t(a.sm_count) * 2048;  // enough threads to fill every SM
  int64_t ks = (want + threads - 1) / threads;
  ks = std::min<int64_t>(ks, std::max<int64_t>(1, a.K / 64));  // at least 64 rows of W each
  // Bound the partial-sum workspace to 256 MB.
  const int64_t per = a.batch * a.M * a.N * 4;
  if (per > 0) ks = std::min<int64_t>(ks, std::max<int64_t>(1, (int64_t(256) << 20) / per));
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(ks, 65535 / mblocks)));
}

template <class T>
void launch_typed(const MatmulArgs& m, float* workspace, cudaStream_t stream) {
  GArgs a;
  a.mode = m.spec.mode;
  a.gs = m.spec.group_size;
  a.bits = m.spec.bits;
  static_cast<KernelOperands&>(a) = operands_of(m);
  a.batch = m.batch;
  a.ksplit = choose_ksplit(m);
  a.partial = a.ksplit > 1 ? workspace : nullptr;
  const int64_t mblocks = (m.M + kMb - 1) / kMb;
  if (m.transpose) {
    dim3 grid(static_cast<unsigned>((m.N + 7) / 8), static_cast<unsigned>(m.batch),
              static_cast<unsigned>(mblocks));
    if (simt_supported(m)) {
      if constexpr (std::is_same_v<T, float>) {
        switch (m.spec.mode) {
          case QuantMode::affine:
            launch_simt_bits<T, SimtMode::affine>(m.spec.bits, a, grid, stream);
            break;
          case QuantMode::mxfp4: launch_simt_bits<T, SimtMode::mxfp4>(4, a, grid, stream); break;
          case QuantMode::nvfp4: launch_simt_bits<T, SimtMode::nvfp4>(4, a, grid, stream); break;
          default: launch_simt_bits<T, SimtMode::mxfp8>(8, a, grid, stream); break;
        }
      } else if constexpr (std::is_same_v<T, __half>) {
        switch (m.spec.mode) {
          case QuantMode::mxfp4: launch_simt_bits<T, SimtMode::mxfp4>(4, a, grid, stream); break;
          case QuantMode::nvfp4: launch_simt_bits<T, SimtMode::nvfp4>(4, a, grid, stream); break;
          default: launch_simt_bits<T, SimtMode::mxfp8>(8, a, grid, stream); break;
        }
      }
    } else {
      qmm_t_generic<T><<<grid, 256, 0, stream>>>(a);
    }
  } else {
    dim3 grid(static_cast<unsigned>((m.N + 255) / 256), static_cast<unsigned>(m.batch),
              static_cast<unsigned>(mblocks * a.ksplit));
    qmm_n_generic<T><<<grid, 256, 0, stream>>>(a);
    if (a.partial) {
      int64_t n = m.batch * m.M * m.N;
      reduce_splits<T>
          <<<grid_for(n, 256), 256, 0, stream>>>(a.partial, a.ksplit, n, static_cast<T*>(m.out));
    }
  }
  check_launch("quantized_matmul");
}

}  // namespace

// The vectorised CUDA-core kernel: float32 x (any mode), or fp16 x with fp-mode weights; K a
// multiple of 32 (a lane's chunk) and 16-byte aligned weights and activations.
bool simt_supported(const MatmulArgs& a) {
  if (!a.transpose || a.K % 32 != 0) return false;
  const bool f32 = a.dtype == Dtype::float32;
  const bool f16fp = a.dtype == Dtype::float16 && a.spec.mode != QuantMode::affine;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return (f32 || f16fp) && aligned(a.w) && aligned(a.x);
}

size_t generic_workspace_bytes(const MatmulArgs& a) {
  int ks = choose_ksplit(a);
  return ks > 1 ? static_cast<size_t>(ks) * a.batch * a.M * a.N * sizeof(float) : 0;
}

void launch_qmm_generic(const MatmulArgs& a, float* workspace, cudaStream_t stream) {
  if (a.batch == 0 || a.M == 0 || a.N == 0) return;
  if (launch_qmv_f32(a, stream)) return;  // float32 x at few rows: its own decode kernel
  if (a.batch > 65535 || (a.M + kMb - 1) / kMb > 65535)
    throw std::invalid_argument("[quantized_matmul] batch or M too large for the GPU grid");
  switch (a.dtype) {
    case Dtype::float16: launch_typed<__half>(a, workspace, stream); break;
    case Dtype::bfloat16: launch_typed<__nv_bfloat16>(a, workspace, stream); break;
    default: launch_typed<float>(a, workspace, stream); break;
  }
}

}  // namespace qmm::cuda
