// quantize / dequantize on the CPU, bit-exact with MLX 0.32.4's CPU backend.
// MLX computes fp-mode quantization as a graph of elementwise ops in w's dtype, so each step
// below rounds to that dtype (round_to) exactly where MLX's graph does.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/convert.h"
#include "core/formats.h"
#include "cpu/kernels.h"

namespace qmm::cpu {

using core::QuantMode;

namespace {

// v rounded to dtype t's precision and range (float32: unchanged).
float round_to(Dtype t, float v) {
  switch (t) {
    case Dtype::float16: return float16::to_float(float16::from_float(v));
    case Dtype::bfloat16: return bfloat16::to_float(bfloat16::from_float(v));
    default: return v;
  }
}

// MLX's affine quantization of one group (CPU algorithm; see mlx-semantics.md §3.1).
void quantize_affine_group(const float* w, int gs, int bits, uint8_t* codes, float* scale_out,
                           float* bias_out) {
  const float n_bins = static_cast<float>((1 << bits) - 1);
  constexpr float kEps = 1e-7f;  // MLX's floor on the scale, so constant groups stay finite
  float w_min = INFINITY, w_max = -INFINITY;
  for (int i = 0; i < gs; ++i) {
    w_min = std::min(w_min, w[i]);
    w_max = std::max(w_max, w[i]);
  }
  bool mask = std::abs(w_min) > std::abs(w_max);
  float scale = std::max((w_max - w_min) / n_bins, kEps);
  scale = mask ? scale : -scale;
  float edge = mask ? w_min : w_max;
  float q0 = std::rint(edge / scale);
  float bias = 0.0f;
  if (q0 != 0.0f) {
    scale = edge / q0;  // makes `edge` exactly representable (it gets code 0)
    bias = edge;
  }
  for (int i = 0; i < gs; ++i) {
    float q = std::rint((w[i] - bias) / scale);
    q = std::min(std::max(q, 0.0f), n_bins);
    codes[i] = static_cast<uint8_t>(q);
  }
  *scale_out = scale;
  *bias_out = bias;
}

// The E8M0 exponent MLX 0.32.4 picks for a group: 2^e is the smallest power of two at or above
// amax / maxval (already rounded to w's dtype); an all-zero group gets e = 0.
int e8m0_exponent(float scaled_amax) {
  if (scaled_amax == 0.0f || !std::isfinite(scaled_amax)) return 0;
  return core::ceil_log2(scaled_amax);
}

}  // namespace

void quantize_rows(const core::QuantizeProblem& p, int64_t r0, int64_t r1) {
  const int gs = p.spec.group_size, bits = p.spec.bits;
  const Dtype t = p.w.dtype();
  const int64_t cols = p.cols, groups = cols / gs, words = p.spec.packed_cols(cols);
  const void* w = p.w.raw_data();
  auto* wq = static_cast<uint32_t*>(p.w_q.raw_data());
  void* scales = p.scales.raw_data();
  void* biases = p.biases ? p.biases->raw_data() : nullptr;
  std::vector<float> vals(gs);
  std::vector<uint8_t> codes(gs);
  const int64_t group_words = gs * bits / 32;
  float global = p.global_scale ? *static_cast<const float*>(p.global_scale->raw_data()) : 0.0f;

  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      for (int i = 0; i < gs; ++i) vals[i] = core::load_float(w, t, r * cols + g * gs + i);
      uint32_t* out_words = wq + r * words + g * group_words;
      int64_t si = r * groups + g;
      if (p.spec.mode == QuantMode::affine) {
        float s, b;
        quantize_affine_group(vals.data(), gs, bits, codes.data(), &s, &b);
        core::store_float(scales, t, si, s);
        core::store_float(biases, t, si, b);
      } else {
        // MLX takes max(|w|) with a NaN-propagating reduction (unlike the affine min/max).
        float amax = 0.0f;
        for (float v : vals)
          amax = std::isnan(v) || std::isnan(amax) ? NAN : std::max(amax, std::abs(v));
        if (p.spec.mode == QuantMode::nvfp4) {
          uint8_t sbyte;
          float enc = 0.0f;
          if (p.global_scale) {
            enc = (448.0f * 6.0f) / global;  // maps the tensor max onto the e4m3 x e2m1 range
            sbyte = core::float_to_e4m3(round_to(t, amax / 6.0f) * enc);
          } else {
            sbyte = core::float_to_e4m3(round_to(t, amax / 6.0f));
          }
          float sval = core::e4m3_to_float(sbyte);
          for (int i = 0; i < gs; ++i) {
            float v = round_to(t, vals[i] / sval);
            if (p.global_scale) v *= enc;
            codes[i] = core::float_to_e2m1_argmin(v);
          }
          static_cast<uint8_t*>(scales)[si] = sbyte;
        } else {
          float maxval = p.spec.mode == QuantMode::mxfp4 ? 6.0f : 448.0f;
          int e = e8m0_exponent(round_to(t, amax / maxval));
          float inv = std::ldexp(1.0f, -e);
          for (int i = 0; i < gs; ++i) {
            float v = round_to(t, vals[i] * inv);
            codes[i] = p.spec.mode == QuantMode::mxfp4 ? core::float_to_e2m1_argmin(v)
                                                       : core::float_to_e4m3(v);
          }
          // MLX stores uint8(e + 127) unclamped: exponents below -127 wrap around (e.g. to 255).
          static_cast<uint8_t*>(scales)[si] = static_cast<uint8_t>(static_cast<unsigned>(e + 127));
        }
      }
      core::pack_codes(codes.data(), gs, bits, out_words);
    }
  }
}

void dequantize_rows(const core::DequantizeProblem& p, int64_t r0, int64_t r1) {
  const int gs = p.spec.group_size, bits = p.spec.bits;
  const int64_t cols = p.cols, groups = cols / gs, words = p.spec.packed_cols(cols);
  const auto* wq = static_cast<const uint32_t*>(p.w_q.raw_data());
  const void* scales = p.scales.raw_data();
  const void* biases = p.biases ? p.biases->raw_data() : nullptr;
  const Dtype st = p.scales.dtype(), ot = p.out.dtype();
  void* out = p.out.raw_data();
  float global = p.global_scale ? *static_cast<const float*>(p.global_scale->raw_data()) : 0.0f;

  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* row = wq + r * words;
    for (int64_t g = 0; g < groups; ++g) {
      int64_t si = r * groups + g;
      for (int i = 0; i < gs; ++i) {
        int64_t j = g * gs + i;
        uint32_t q = core::unpack_code(row, j, bits);
        float v;
        switch (p.spec.mode) {
          case QuantMode::affine: {
            // MLX: (q * scale) rounded to the scales' dtype, then + bias rounded again.
            float prod = round_to(st, static_cast<float>(q) * core::load_float(scales, st, si));
            v = round_to(st, prod + core::load_float(biases, st, si));
            break;
          }
          case QuantMode::nvfp4: {
            float s = core::e4m3_to_float(static_cast<const uint8_t*>(scales)[si]);
            if (p.global_scale) {  // MLX: in float32, code * (scale * (G / 2688))
              v = core::e2m1_to_float(q) * (s * (global / (448.0f * 6.0f)));
              v = round_to(ot, v);
            } else {
              v = round_to(ot, core::e2m1_to_float(q) * round_to(ot, s));
            }
            break;
          }
          default: {
            float s = round_to(ot, core::e8m0_to_float(static_cast<const uint8_t*>(scales)[si]));
            float e =
                p.spec.mode == QuantMode::mxfp4 ? core::e2m1_to_float(q) : core::e4m3_to_float(q);
            v = round_to(ot, e * s);
            break;
          }
        }
        core::store_float(out, ot, r * cols + j, v);
      }
    }
  }
}

void convert_strided(const core::ConvertProblem& p) {
  const auto& src = *p.src.impl();
  const Dtype st = src.dtype, dt = p.dst.dtype();
  const int64_t n = p.dst.size();
  const int nd = static_cast<int>(src.shape.size());
  const char* base = static_cast<const char*>(src.buffer->ptr);
  char* dst = static_cast<char*>(p.dst.raw_data());
  const size_t sz = itemsize(st);
  std::vector<int64_t> idx(nd, 0);
  int64_t off = src.offset;
  for (int64_t i = 0; i < n; ++i) {
    const void* e = base + off * static_cast<int64_t>(sz);
    if (st == dt) {
      std::memcpy(dst + i * sz, e, sz);
    } else if (is_floating(st) && is_floating(dt)) {
      core::store_float(dst, dt, i, core::load_float(e, st, 0));
    } else {
      core::store_from_double(dst, dt, i, core::load_as_double(e, st, 0));
    }
    for (int k = nd - 1; k >= 0; --k) {  // advance the multi-index (odometer)
      off += src.strides[k];
      if (++idx[k] < src.shape[k]) break;
      off -= src.strides[k] * src.shape[k];
      idx[k] = 0;
    }
  }
}

}  // namespace qmm::cpu
