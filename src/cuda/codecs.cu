// quantize / dequantize on the GPU, bit-identical with the CPU backend (src/cpu/codecs.cpp):
// the same float32 operations in the same order, each rounded where the CPU code rounds
// (__fmul_rn/__fadd_rn/__fdiv_rn keep nvcc from contracting or approximating), and the same
// tie and NaN rules (std::min/std::max written out as the comparisons they are).
#include <cmath>

#include "core/formats.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace qmm::cuda {

using core::QuantMode;

namespace {

// std::min / std::max as libstdc++ defines them: (b < a) ? b : a and (a < b) ? b : a.
QMM_DEV float std_min(float a, float b) { return (b < a) ? b : a; }
QMM_DEV float std_max(float a, float b) { return (a < b) ? b : a; }

// std::ldexp(1.0f, n): exact powers of two, 0 below the subnormal range, inf above.
QMM_DEV float pow2f(int n) {
  if (n > 127) return __uint_as_float(0x7f800000u);
  if (n >= -126) return __uint_as_float(static_cast<uint32_t>(n + 127) << 23);
  if (n >= -149) return __uint_as_float(1u << (n + 149));
  return 0.0f;
}

// The E8M0 exponent (codecs.cpp e8m0_exponent): the smallest e with 2^e >= x, from the float's
// bits (core::ceil_log2); 0 for zero, inf and NaN.
QMM_DEV int e8m0_exponent(float x) {
  if (x == 0.0f || !isfinite(x)) return 0;
  const uint32_t b = __float_as_uint(x);
  const int exp = static_cast<int>((b >> 23) & 0xffu);
  const uint32_t mant = b & 0x7fffffu;
  if (exp == 0) {  // subnormal: x = mant * 2^-149
    const int top = 31 - __clz(mant);
    return top - 149 + ((mant & (mant - 1u)) ? 1 : 0);
  }
  return exp - 127 + (mant ? 1 : 0);
}

struct QuantArgs {
  QuantMode mode;
  int gs, bits;
  int64_t rows, cols;
  Dtype t;
  const void* w;
  const float* global;  // device scalar or null
  uint32_t* wq;
  void* scales;
  void* biases;
};

__global__ void quantize_kernel(QuantArgs a) {
  const int64_t groups = a.cols / a.gs;
  const int64_t total = a.rows * groups;
  const int64_t words = a.cols * a.bits / 32;
  const int64_t group_words = a.gs * a.bits / 32;
  for (int64_t gi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; gi < total;
       gi += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = gi / groups, g = gi % groups;
    const int64_t base = r * a.cols + g * a.gs;
    uint32_t* out = a.wq + r * words + g * group_words;
    // Codes are produced in order and packed as a bit stream (core::pack_codes, streamed).
    uint64_t acc = 0;
    int filled = 0;
    auto emit = [&](uint32_t code) {
      acc |= static_cast<uint64_t>(code) << filled;
      filled += a.bits;
      if (filled >= 32) {
        *out++ = static_cast<uint32_t>(acc);
        acc >>= 32;
        filled -= 32;
      }
    };
    if (a.mode == QuantMode::affine) {
      const float n_bins = static_cast<float>((1 << a.bits) - 1);
      const float kEps = 1e-7f;
      float w_min = INFINITY, w_max = -INFINITY;
      for (int i = 0; i < a.gs; ++i) {
        float v = load_float(a.w, a.t, base + i);
        w_min = std_min(w_min, v);
        w_max = std_max(w_max, v);
      }
      bool mask = fabsf(w_min) > fabsf(w_max);
      float scale = std_max(__fdiv_rn(__fsub_rn(w_max, w_min), n_bins), kEps);
      scale = mask ? scale : -scale;
      float edge = mask ? w_min : w_max;
      float q0 = rintf(__fdiv_rn(edge, scale));
      float bias = 0.0f;
      if (q0 != 0.0f) {
        scale = __fdiv_rn(edge, q0);
        bias = edge;
      }
      for (int i = 0; i < a.gs; ++i) {
        float v = load_float(a.w, a.t, base + i);
        float q = rintf(__fdiv_rn(__fsub_rn(v, bias), scale));
        q = std_min(std_max(q, 0.0f), n_bins);
        emit(static_cast<uint32_t>(static_cast<uint8_t>(q)));
      }
      store_float(a.scales, a.t, gi, scale);
      store_float(a.biases, a.t, gi, bias);
    } else {
      // NaN-propagating max(|w|), as MLX reduces (unlike the affine min/max).
      float amax = 0.0f;
      for (int i = 0; i < a.gs; ++i) {
        const float v = load_float(a.w, a.t, base + i);
        amax = isnan(v) || isnan(amax) ? NAN : std_max(amax, fabsf(v));
      }
      if (a.mode == QuantMode::nvfp4) {
        uint8_t sbyte;
        float enc = 0.0f;
        if (a.global) {
          enc = __fdiv_rn(448.0f * 6.0f, *a.global);
          sbyte = core::float_to_e4m3(__fmul_rn(round_to(a.t, __fdiv_rn(amax, 6.0f)), enc));
        } else {
          sbyte = core::float_to_e4m3(round_to(a.t, __fdiv_rn(amax, 6.0f)));
        }
        float sval = core::e4m3_to_float(sbyte);
        for (int i = 0; i < a.gs; ++i) {
          float v = round_to(a.t, __fdiv_rn(load_float(a.w, a.t, base + i), sval));
          if (a.global) v = __fmul_rn(v, enc);
          emit(core::float_to_e2m1_argmin(v));
        }
        static_cast<uint8_t*>(a.scales)[gi] = sbyte;
      } else {
        float maxval = a.mode == QuantMode::mxfp4 ? 6.0f : 448.0f;
        int e = e8m0_exponent(round_to(a.t, __fdiv_rn(amax, maxval)));
        float inv = pow2f(-e);
        for (int i = 0; i < a.gs; ++i) {
          float v = round_to(a.t, __fmul_rn(load_float(a.w, a.t, base + i), inv));
          emit(a.mode == QuantMode::mxfp4 ? core::float_to_e2m1_argmin(v) : core::float_to_e4m3(v));
        }
        // uint8(e + 127) unclamped, as MLX stores it (exponents below -127 wrap around).
        static_cast<uint8_t*>(a.scales)[gi] = static_cast<uint8_t>(static_cast<unsigned>(e + 127));
      }
    }
  }
}

struct DequantArgs {
  QuantMode mode;
  int gs, bits;
  int64_t rows, cols;
  Dtype st, ot;
  const uint32_t* wq;
  const void* scales;
  const void* biases;
  const float* global;
  void* out;
};

__global__ void dequantize_kernel(DequantArgs a) {
  const int64_t total = a.rows * a.cols;
  const int64_t words = a.cols * a.bits / 32;
  const int64_t groups = a.cols / a.gs;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / a.cols, j = idx % a.cols;
    const uint32_t q = core::unpack_code(a.wq + r * words, j, a.bits);
    const int64_t si = r * groups + j / a.gs;
    float v;
    switch (a.mode) {
      case QuantMode::affine: {
        float prod =
            round_to(a.st, __fmul_rn(static_cast<float>(q), load_float(a.scales, a.st, si)));
        v = round_to(a.st, __fadd_rn(prod, load_float(a.biases, a.st, si)));
        break;
      }
      case QuantMode::nvfp4: {
        const float s = core::e4m3_to_float(static_cast<const uint8_t*>(a.scales)[si]);
        if (a.global)  // MLX: in float32, code * (scale * (G / 2688))
          v = round_to(a.ot,
                       __fmul_rn(e2m1_value(q), __fmul_rn(s, __fdiv_rn(*a.global, 448.0f * 6.0f))));
        else
          v = round_to(a.ot, __fmul_rn(e2m1_value(q), round_to(a.ot, s)));
        break;
      }
      default: {
        float s = round_to(a.ot, core::e8m0_to_float(static_cast<const uint8_t*>(a.scales)[si]));
        float e = a.mode == QuantMode::mxfp4 ? e2m1_value(q) : core::e4m3_to_float(q);
        v = round_to(a.ot, __fmul_rn(e, s));
        break;
      }
    }
    store_float(a.out, a.ot, idx, v);
  }
}

}  // namespace

void launch_quantize(const core::QuantizeProblem& p, cudaStream_t stream) {
  QuantArgs a;
  a.mode = p.spec.mode;
  a.gs = p.spec.group_size;
  a.bits = p.spec.bits;
  a.rows = p.rows;
  a.cols = p.cols;
  a.t = p.w.dtype();
  a.w = p.w.raw_data();
  a.global = p.global_scale ? static_cast<const float*>(p.global_scale->raw_data()) : nullptr;
  a.wq = static_cast<uint32_t*>(p.w_q.raw_data());
  a.scales = p.scales.raw_data();
  a.biases = p.biases ? p.biases->raw_data() : nullptr;
  int64_t total = p.rows * (p.cols / p.spec.group_size);
  if (total == 0) return;
  constexpr int kThreads = 128;
  quantize_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(a);
  check_launch("quantize");
}

void launch_dequantize(const core::DequantizeProblem& p, cudaStream_t stream) {
  DequantArgs a;
  a.mode = p.spec.mode;
  a.gs = p.spec.group_size;
  a.bits = p.spec.bits;
  a.rows = p.rows;
  a.cols = p.cols;
  a.st = p.scales.dtype();
  a.ot = p.out.dtype();
  a.wq = static_cast<const uint32_t*>(p.w_q.raw_data());
  a.scales = p.scales.raw_data();
  a.biases = p.biases ? p.biases->raw_data() : nullptr;
  a.global = p.global_scale ? static_cast<const float*>(p.global_scale->raw_data()) : nullptr;
  a.out = p.out.raw_data();
  int64_t total = p.rows * p.cols;
  if (total == 0) return;
  constexpr int kThreads = 256;
  dequantize_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(a);
  check_launch("dequantize");
}

}  // namespace qmm::cuda
