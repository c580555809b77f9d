// The float32-activation decode kernel (and float16 x with fp-mode weights): y = x W^T for one
// or two rows of x on CUDA cores, float32 throughout (the 1e-5 contract of float32 x: tensor
// cores would round x or w to 8-10 mantissa bits).
//
// Why a kernel of its own. The generic CUDA-core kernel (qmm_generic.cu, one warp per weight
// row) ran 8192^2 M=1 in 82 us, 17 % of the bytes floor: every lane re-read 128 bytes of x from
// L1 and re-added them into sum(x) for every row, and nothing was loaded ahead. Here:
// * x is staged once per CTA in shared memory, as float, with the sum of every 32-element chunk
//   (the bias term b * sum(x) then costs one shared load per chunk);
// * a warp takes 2 weight rows at a time, so each x value read from shared memory serves both;
// * lane l takes the 32-element chunks l, l + 32, ... of the rows: one warp step reads 32
//   consecutive chunks of each row (512 contiguous bytes at 4 bits), and the next PF steps of
//   weights, scales and biases are in flight while one is computed (persistent warps: loads
//   run on across row blocks);
// * an affine code becomes the float 1 + q 2^-Bits (one SHF + one LOP3, exact; code_value),
//   then one FFMA with x; per chunk y += s 2^Bits (dot - sum(x)) + b sum(x). Four independent
//   dot-product chains per row and half chunk keep the FFMA latency hidden (mxfp8 90 -> 43 us).
// The x chunks are stored with their 16-byte quads XOR-swizzled by the chunk index, so the 8
// lanes of a shared-memory phase (8 consecutive chunks, same quad) hit 8 different bank groups.
#include <atomic>
#include <type_traits>

#include "core/formats.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace qmm::cuda {

using core::QuantMode;

namespace {

constexpr int kWarps = 8;
// Weight rows of one warp step. 3 or 4 rows (fewer steps in flight) measured no better at
// 8192^2 M=1 (24.9 / 23.3 us vs 23.3 us).
constexpr int kRowsPerWarp = 2;
// x (+ chunk sums) per CTA: up to 96 KiB two CTAs share an SM; up to the 227 KiB a CTA may
// have, one (M=1 up to K = 56320, M >= 2 up to K = 28160: the down projections of 70B models;
// 8192x28672 M=1 in 91 us).
constexpr size_t kTwoCtaSmem = 96 * 1024;
constexpr size_t kMaxSmem = 227 * 1024;
constexpr int kMaxDevices = 64;  // devices whose raised shared-memory limit is remembered

struct F32Args : KernelOperands {
  int gs_shift;
};

template <int Bits>
struct Step {
  uint32_t w[kRowsPerWarp][Bits];
  uint32_t s[kRowsPerWarp][2];  // raw scale bits (float32 for affine, bytes for fp modes)
  uint32_t b[kRowsPerWarp];     // raw bias bits (affine)
};

// E4M3 byte -> float by bit placement: the 7 magnitude bits under the float exponent give the
// value * 2^-120 (subnormals included), the sign goes to bit 31, then one exact multiply by
// 2^120; code 0x7F is NaN as in core::e4m3_to_float (this is its branch-free form).
QMM_DEV float e4m3_value(uint32_t v) {
  const float f =
      __uint_as_float(((v & 0x7fu) << 20) | ((v & 0x80u) << 24)) * __uint_as_float(0x7b800000u);
  return (v & 0x7fu) == 0x7fu ? __uint_as_float(0x7fc00000u) : f;
}

// Code i (0..31) of a lane's chunk as float. Affine: the code is shifted to the top of the
// float mantissa under the exponent of 1.0 (one SHF + one LOP3), so the value is 1 + q 2^-Bits,
// exact, and no subtraction of a magic constant is needed: per chunk, sum (1 + q 2^-Bits) x minus
// sum(x) is sum(q x) 2^-Bits (its terms are of the size of x, so nothing cancels badly). E2M1
// and E4M3 go through their exact decoders.
template <int Bits, QuantMode Mode>
QMM_DEV float code_value(const uint32_t (&w)[Bits], int i) {
  const int bit = i * Bits, word = bit / 32, sh = bit % 32;
  if constexpr (Mode == QuantMode::affine) {
    constexpr int top = 23 - Bits;  // mantissa bits [top, 23)
    uint32_t v;
    if (sh + Bits <= 32)
      v = sh <= top ? w[word] << (top - sh) : w[word] >> (sh - top);
    else
      v = __funnelshift_r(w[word], w[word + 1], sh) << top;
    return __uint_as_float(and_or(v, ((1u << Bits) - 1u) << top, 0x3f800000u));
  } else {
    const uint32_t v =
        (sh + Bits <= 32) ? (w[word] >> sh) : __funnelshift_r(w[word], w[word + 1], sh);
    if constexpr (Mode == QuantMode::mxfp8)
      return e4m3_value(v & 0xffu);
    else
      return e2m1_value(v & 0xfu);
  }
}

QMM_DEV int swizzled_quad(int chunk, int q) { return chunk * 8 + (q ^ (chunk & 7)); }

template <class T, int Bits, QuantMode Mode, int MB, int PF, int MinBlocks>
__global__ void __launch_bounds__(kWarps * 32, MinBlocks) qmv_f32_kernel(F32Args a) {
  extern __shared__ float4 xs[];  // [MB][chunks][8 quads], then float sums[MB][chunks]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nch = static_cast<int>(a.K / 32);
  float* sums = reinterpret_cast<float*>(xs + MB * nch * 8);
  const int64_t item = blockIdx.y;
  const int64_t xb = a.xidx ? a.xidx[item] : 0, wb = a.widx ? a.widx[item] : 0;
  const int64_t m0 = int64_t(blockIdx.z) * MB;
  const int mb = static_cast<int>(a.M - m0 < MB ? a.M - m0 : MB);

  // Warp-persistent walk over row blocks rb = warp0, warp0 + warps, ...; steps (rb, it) in
  // order, loads PF steps ahead.
  const int64_t row_blocks = (a.N + kRowsPerWarp - 1) / kRowsPerWarp;
  const int64_t warp0 = int64_t(blockIdx.x) * kWarps + warp, wstride = int64_t(gridDim.x) * kWarps;
  const int nblocks =
      warp0 < row_blocks ? static_cast<int>((row_blocks - warp0 + wstride - 1) / wstride) : 0;
  const int niter = (nch + 31) / 32;
  const int total = nblocks * niter;

  int lb = 0, lit = 0;  // load cursor: row block ordinal, step within the rows
  auto load_next = [&](Step<Bits>& st) {
    const int ch = lane + 32 * lit;
    const int64_t n0 = (warp0 + int64_t(lb) * wstride) * kRowsPerWarp;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t n = n0 + r;
      if (lb < nblocks && n < a.N && ch < nch) {
        const int64_t row = wb * a.w_rows + n;
        load_words<Bits>(st.w[r], a.w + row * a.w_words + int64_t(ch) * Bits);
        const int64_t srow = row * a.s_cols;
        if constexpr (Mode == QuantMode::affine) {
          const int gi = (ch * 32) >> a.gs_shift;
          st.s[r][0] = __float_as_uint(__ldg(static_cast<const float*>(a.scales) + srow + gi));
          st.b[r] = __float_as_uint(__ldg(static_cast<const float*>(a.biases) + srow + gi));
        } else {
          const uint8_t* sp =
              static_cast<const uint8_t*>(a.scales) + srow + ((ch * 32) >> a.gs_shift);
          st.s[r][0] = __ldg(sp);
          st.s[r][1] = Mode == QuantMode::nvfp4 ? __ldg(sp + 1) : 0u;
          st.b[r] = 0;
        }
      } else {
#pragma unroll
        for (int i = 0; i < Bits; ++i) st.w[r][i] = 0;
        st.s[r][0] = st.s[r][1] = st.b[r] = 0;
      }
    }
    if (++lit == niter) {
      lit = 0;
      ++lb;
    }
  };

  Step<Bits> st[PF];
#pragma unroll
  for (int i = 0; i < PF; ++i) load_next(st[i]);  // in flight while x is staged
  // Stage x (rows m0 .. m0 + mb) as float, then the chunk sums.
  const T* xg = static_cast<const T*>(a.x) + (xb * a.M + m0) * a.K;
  for (int t = threadIdx.x; t < mb * nch * 8; t += blockDim.x) {
    const int m = t / (nch * 8), r = t - m * nch * 8, ch = r / 8, q = r % 8;
    const T* src = xg + int64_t(m) * a.K + ch * 32 + q * 4;
    float4 v;
    if constexpr (std::is_same_v<T, float>) {
      v = __ldg(reinterpret_cast<const float4*>(src));
    } else {
      const uint2 h = __ldg(reinterpret_cast<const uint2*>(src));
      const T* hv = reinterpret_cast<const T*>(&h);
      v = make_float4(to_f32(hv[0]), to_f32(hv[1]), to_f32(hv[2]), to_f32(hv[3]));
    }
    xs[m * nch * 8 + swizzled_quad(ch, q)] = v;
  }
  __syncthreads();
  for (int t = threadIdx.x; t < mb * nch; t += blockDim.x) {
    const int m = t / nch, ch = t - m * nch;
    float s = 0.0f;
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const float4 v = xs[m * nch * 8 + swizzled_quad(ch, q)];
      s += (v.x + v.y) + (v.z + v.w);
    }
    sums[t] = s;
  }
  __syncthreads();

  if (nblocks == 0) return;

  float acc[kRowsPerWarp][MB];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
    for (int m = 0; m < MB; ++m) acc[r][m] = 0.0f;

  int cb = 0, cit = 0;  // consume cursor
  for (int i0 = 0; i0 < total; i0 += PF) {
#pragma unroll
    for (int j = 0; j < PF; ++j) {
      if (i0 + j >= total) break;
      const int ch = lane + 32 * cit;
      if (ch < nch) {
        // Per quad of 4 consecutive elements: the x values of every row once, then both weight
        // rows' codes (few live registers, so more steps fit in flight). Four dot-product
        // chains per (row, half of the chunk), one per element of a quad: FFMA latency is
        // hidden within the warp.
        float d[2][kRowsPerWarp][MB][4];
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
            for (int m = 0; m < MB; ++m)
#pragma unroll
              for (int e = 0; e < 4; ++e) d[h][r][m][e] = 0.0f;
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          float xq[MB][4];
#pragma unroll
          for (int m = 0; m < MB; ++m) {
            const float4 v =
                m < mb ? xs[m * nch * 8 + swizzled_quad(ch, q)] : make_float4(0, 0, 0, 0);
            xq[m][0] = v.x;
            xq[m][1] = v.y;
            xq[m][2] = v.z;
            xq[m][3] = v.w;
          }
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const float code = code_value<Bits, Mode>(st[j].w[r], 4 * q + e);
#pragma unroll
              for (int m = 0; m < MB; ++m)
                d[q / 4][r][m][e] = fmaf(code, xq[m][e], d[q / 4][r][m][e]);
            }
        }
        float d0[kRowsPerWarp][MB], d1[kRowsPerWarp][MB];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
          for (int m = 0; m < MB; ++m) {
            d0[r][m] = (d[0][r][m][0] + d[0][r][m][1]) + (d[0][r][m][2] + d[0][r][m][3]);
            d1[r][m] = (d[1][r][m][0] + d[1][r][m][1]) + (d[1][r][m][2] + d[1][r][m][3]);
          }
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
          for (int m = 0; m < MB; ++m) {
            const float sx = m < mb ? sums[m * nch + ch] : 0.0f;
            if constexpr (Mode == QuantMode::affine) {
              // y += s * sum(q x) + b * sum(x), with sum(q x) = 2^Bits (sum(v x) - sum(x)).
              const float qx = (d0[r][m] + d1[r][m]) - sx;
              acc[r][m] = fmaf(__uint_as_float(st[j].s[r][0]) * float(1 << Bits), qx,
                               fmaf(__uint_as_float(st[j].b[r]), sx, acc[r][m]));
            } else if constexpr (Mode == QuantMode::nvfp4) {
              acc[r][m] = fmaf(e4m3_value(st[j].s[r][0]), d0[r][m],
                               fmaf(e4m3_value(st[j].s[r][1]), d1[r][m], acc[r][m]));
            } else {
              acc[r][m] = fmaf(core::e8m0_to_float(st[j].s[r][0]), d0[r][m] + d1[r][m], acc[r][m]);
            }
          }
        }
      }
      load_next(st[j]);
      if (++cit == niter) {
        // End of a row block: reduce over the lanes (fixed order) and store.
        const int64_t n0 = (warp0 + int64_t(cb) * wstride) * kRowsPerWarp;
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
          for (int m = 0; m < MB; ++m) {
            float v = acc[r][m];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            acc[r][m] = 0.0f;
            if (lane == 0 && m < mb && n0 + r < a.N)
              static_cast<T*>(a.out)[(item * a.M + m0 + m) * a.N + n0 + r] = from_f32<T>(v);
          }
        cit = 0;
        ++cb;
      }
    }
  }
}

size_t smem_bytes(int mb, int64_t K) { return size_t(mb) * size_t(K / 32) * (32 + 1) * 4; }

template <class T, int Bits, QuantMode Mode, int MB>
void launch_f32(const F32Args& a, int64_t batch, int sm_count, cudaStream_t stream) {
  // Steps in flight: 3 (2 for 5..8 bits) within 128 registers, two CTAs per SM. Measured at
  // 8192^2 M=1 (4-bit): 3, 4, 5, 6 steps within 6 %; three CTAs per SM (80 registers) slower.
  constexpr int PF = Bits <= 4 ? 3 : 2;
  auto kernel = qmv_f32_kernel<T, Bits, Mode, MB, PF, 2>;
  const size_t smem = smem_bytes(MB, a.K);
  const int ctas_per_sm = smem <= kTwoCtaSmem ? 2 : 1;
  // Beyond 48 KiB a kernel needs its limit raised, per device (the attribute belongs to the
  // device's context). Raised only when a launch needs more than this instantiation was given,
  // so the driver call stays off the per-call path.
  static std::atomic<size_t> allowed[kMaxDevices];
  if (smem > 48 * 1024) {
    int dev = 0;
    check(cudaGetDevice(&dev), "quantized_matmul");
    if (dev >= kMaxDevices || allowed[dev].load(std::memory_order_relaxed) < smem) {
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)),
            "quantized_matmul");
      if (dev < kMaxDevices) {
        size_t cur = allowed[dev].load(std::memory_order_relaxed);
        while (cur < smem && !allowed[dev].compare_exchange_weak(cur, smem)) {
        }
      }
    }
  }
  const int64_t row_blocks = (a.N + kRowsPerWarp - 1) / kRowsPerWarp;
  const int64_t want = (row_blocks + kWarps - 1) / kWarps;
  // One resident wave in all: the row-block CTAs of every (item, row block of x) share the SMs.
  const int64_t zb = (a.M + MB - 1) / MB;
  int64_t gx = int64_t(sm_count) * ctas_per_sm / (batch * zb);
  gx = gx < 1 ? 1 : gx > want ? want : gx;
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(batch),
                  static_cast<unsigned>(zb));
  kernel<<<grid, kWarps * 32, smem, stream>>>(a);
}

template <class T, QuantMode Mode, int MB>
void launch_bits(int bits, const F32Args& a, int64_t batch, int sm, cudaStream_t st) {
  if constexpr (Mode == QuantMode::affine) {
    switch (bits) {
      case 2: launch_f32<T, 2, Mode, MB>(a, batch, sm, st); break;
      case 3: launch_f32<T, 3, Mode, MB>(a, batch, sm, st); break;
      case 4: launch_f32<T, 4, Mode, MB>(a, batch, sm, st); break;
      case 5: launch_f32<T, 5, Mode, MB>(a, batch, sm, st); break;
      case 6: launch_f32<T, 6, Mode, MB>(a, batch, sm, st); break;
      default: launch_f32<T, 8, Mode, MB>(a, batch, sm, st); break;
    }
  } else {
    launch_f32<T, Mode == QuantMode::mxfp8 ? 8 : 4, Mode, MB>(a, batch, sm, st);
  }
}

template <class T, int MB>
void launch_modes(const MatmulArgs& m, const F32Args& a, cudaStream_t st) {
  const int sm = m.sm_count;
  switch (m.spec.mode) {
    case QuantMode::affine:
      if constexpr (std::is_same_v<T, float>)
        launch_bits<T, QuantMode::affine, MB>(m.spec.bits, a, m.batch, sm, st);
      break;
    case QuantMode::mxfp4: launch_bits<T, QuantMode::mxfp4, MB>(4, a, m.batch, sm, st); break;
    case QuantMode::nvfp4: launch_bits<T, QuantMode::nvfp4, MB>(4, a, m.batch, sm, st); break;
    default: launch_bits<T, QuantMode::mxfp8, MB>(8, a, m.batch, sm, st); break;
  }
}

}  // namespace

bool qmv_f32_takes(const MatmulArgs& m) {
  if (!simt_supported(m)) return false;  // the same operands as the vectorised generic kernel
  const bool f32 = m.dtype == Dtype::float32;
  // fp16 x with fp modes: above 8 rows, dequantize + cuBLAS fp16 wins (M=16, 8192^2 mxfp4:
  // 116 against 273 us here); float32 x: up to 16 rows (212 against 302-349 us for SGEMM).
  if (m.M > (f32 ? kF32DecodeMaxRows : 8) || m.batch > 65535) return false;
  const int mb = m.M == 1 ? 1 : 2;  // rows of x per CTA; more rows take more CTAs (grid z)
  // Beyond 96 KiB of x, one CTA per SM: still ahead of dequantize + SGEMM at 4096x14336 M=16
  // (237 against 271 us; cuBLAS SGEMM alone 135 us).
  return smem_bytes(mb, m.K) <= kMaxSmem;
}

bool launch_qmv_f32(const MatmulArgs& m, cudaStream_t stream) {
  if (!qmv_f32_takes(m)) return false;
  const bool f32 = m.dtype == Dtype::float32;
  const int mb = m.M == 1 ? 1 : 2;
  F32Args a;
  static_cast<KernelOperands&>(a) = operands_of(m);
  a.gs_shift = group_shift(m);
  if (mb == 1)
    f32 ? launch_modes<float, 1>(m, a, stream) : launch_modes<__half, 1>(m, a, stream);
  else
    f32 ? launch_modes<float, 2>(m, a, stream) : launch_modes<__half, 2>(m, a, stream);
  check_launch("quantized_matmul");
  return true;
}

}  // namespace qmm::cuda
