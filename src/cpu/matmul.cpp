// quantized_matmul on the CPU: the double-precision reference and a threaded float32 kernel.
//
// The threaded kernel dequantizes a block of weight rows into float32 once and takes dot
// products with every row of x. For 2/4/8-bit weights (and the fp modes) it decodes each
// group in "lane-major" order (element per*i + j of a group goes to slot j*W + i, with
// per = 32/bits elements per word and W = words per group): every slot then comes from one
// shift and mask of consecutive words, which vectorises, and x is permuted the same way once
// per call, so the dot products are unchanged. 3/5/6-bit groups are decoded in natural order.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/convert.h"
#include "core/errors.h"
#include "core/formats.h"
#include "cpu/fast_matmul.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"

// Hot loops are compiled twice, for AVX2+FMA+F16C machines and for baseline x86-64, and picked
// at load time (GCC function multiversioning). The tuned kernels of issue "Fast CPU kernels"
// replace this with explicit per-ISA translation units.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) &&                                  \
    !defined(__SANITIZE_THREAD__)  // ifunc resolvers run before the sanitizer runtime starts
#define QMM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define QMM_CLONES
#endif

namespace qmm::cpu {

using core::QuantMode;

namespace {

bool lane_major(const core::QuantSpec& s) { return s.bits == 2 || s.bits == 4 || s.bits == 8; }

// Dequantized value of stored element (r, c) of weight batch wb, in double (reference).
double weight_at(const core::MatmulProblem& p, int64_t wb, int64_t r, int64_t c) {
  const int64_t rows = p.w.shape(1), words = p.w.shape(2), groups = p.scales.shape(2);
  const auto* row = static_cast<const uint32_t*>(p.w.raw_data()) + (wb * rows + r) * words;
  uint32_t q = core::unpack_code(row, c, p.spec.bits);
  int64_t si = (wb * rows + r) * groups + c / p.spec.group_size;
  switch (p.spec.mode) {
    case QuantMode::affine:
      return static_cast<double>(core::load_float(p.scales.raw_data(), p.scales.dtype(), si)) * q +
             core::load_float(p.biases->raw_data(), p.biases->dtype(), si);
    case QuantMode::nvfp4:
      return static_cast<double>(core::e2m1_to_float(q)) *
             core::e4m3_to_float(static_cast<const uint8_t*>(p.scales.raw_data())[si]);
    case QuantMode::mxfp4:
      return static_cast<double>(core::e2m1_to_float(q)) *
             core::e8m0_to_float(static_cast<const uint8_t*>(p.scales.raw_data())[si]);
    case QuantMode::mxfp8:
      return static_cast<double>(core::e4m3_to_float(q)) *
             core::e8m0_to_float(static_cast<const uint8_t*>(p.scales.raw_data())[si]);
  }
  return 0;
}

// Per-call lookup table of element values for the fp modes (code -> float).
struct ElementTable {
  float v[256];
  explicit ElementTable(QuantMode m) {
    for (int c = 0; c < 256; ++c)
      v[c] = m == QuantMode::mxfp8 ? core::e4m3_to_float(c) : core::e2m1_to_float(c & 15);
  }
};

// Dequantizes `count` consecutive elements of one stored row starting at column c0 (c0 and
// count multiples of the group size) into out, lane-major per group when lane_major(spec).
QMM_CLONES
void decode_row(const core::MatmulProblem& p, const ElementTable& table, int64_t wb, int64_t r,
                int64_t c0, int64_t count, float* out) {
  const int bits = p.spec.bits, gs = p.spec.group_size;
  const int64_t rows = p.w.shape(1), words = p.w.shape(2), groups = p.scales.shape(2);
  const auto* row = static_cast<const uint32_t*>(p.w.raw_data()) + (wb * rows + r) * words;
  const int64_t s0 = (wb * rows + r) * groups;
  const bool affine = p.spec.mode == QuantMode::affine;
  const Dtype st = p.scales.dtype();
  const int per = 32 / bits;
  const int W = gs * bits / 32;  // words per group
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t c = c0; c < c0 + count; c += gs) {
    const int64_t g = c / gs;
    float s, b = 0.0f;
    if (affine) {
      s = core::load_float(p.scales.raw_data(), st, s0 + g);
      b = core::load_float(p.biases->raw_data(), st, s0 + g);
    } else {
      uint8_t sb = static_cast<const uint8_t*>(p.scales.raw_data())[s0 + g];
      s = p.spec.mode == QuantMode::nvfp4 ? core::e4m3_to_float(sb) : core::e8m0_to_float(sb);
    }
    float* o = out + (c - c0);
    const uint32_t* gw = row + g * W;
    if (lane_major(p.spec)) {
      for (int j = 0; j < per; ++j) {
        const int shift = bits * j;
        if (affine) {
          for (int i = 0; i < W; ++i)
            o[j * W + i] = static_cast<float>((gw[i] >> shift) & mask) * s + b;
        } else {
          for (int i = 0; i < W; ++i) o[j * W + i] = table.v[(gw[i] >> shift) & mask] * s;
        }
      }
    } else {
      for (int i = 0; i < gs; ++i) {
        uint32_t q = core::unpack_code(gw, i, bits);
        o[i] = affine ? static_cast<float>(q) * s + b : table.v[q] * s;
      }
    }
  }
}

// Sum of a[k] * b[k] with 16 independent partial sums (breaks the add latency chain and lets
// the compiler use two 8-wide vectors).
QMM_CLONES
float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[k + j] * b[k + j];
  float tail = 0.0f;
  for (; k < n; ++k) tail += a[k] * b[k];
  float s = 0.0f;
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s + tail;
}

QMM_CLONES
void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void store_row(void* out, Dtype t, int64_t off, const float* v, int64_t n) {
  switch (t) {
    case Dtype::float32: std::copy(v, v + n, static_cast<float*>(out) + off); break;
    case Dtype::float16:
      for (int64_t i = 0; i < n; ++i)
        static_cast<uint16_t*>(out)[off + i] = float16::from_float(v[i]);
      break;
    case Dtype::bfloat16:
      for (int64_t i = 0; i < n; ++i)
        static_cast<uint16_t*>(out)[off + i] = bfloat16::from_float(v[i]);
      break;
    default: throw std::logic_error("quantized_matmul: non-floating output");
  }
}

std::vector<int64_t> resolve_map(const core::BatchMap& map, const core::MatmulProblem& p) {
  std::vector<int64_t> out(static_cast<size_t>(p.batch));
  const int64_t* idx = map.indices ? static_cast<const int64_t*>(map.indices->raw_data()) : nullptr;
  for (int64_t b = 0; b < p.batch; ++b) out[b] = core::map_batch(map, p.batch_shape, b, idx);
  return out;
}

// x as float32, every group permuted like the weights (lane-major) when that applies.
std::vector<float> prepare_x(const core::MatmulProblem& p, bool permute) {
  const int64_t rows = p.x_batches * p.M, K = p.K;
  std::vector<float> xf(static_cast<size_t>(rows * K));
  const void* x = p.x.raw_data();
  const Dtype t = p.x.dtype();
  const int gs = p.spec.group_size, per = 32 / p.spec.bits, W = gs * p.spec.bits / 32;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      int64_t dst = k;
      if (permute) {
        int64_t g = k / gs, e = k % gs;
        dst = g * gs + (e % per) * W + e / per;
      }
      xf[r * K + dst] = core::load_float(x, t, r * K + k);
    }
  }
  return xf;
}

void matmul_transposed(const core::MatmulProblem& p, const std::vector<int64_t>& xmap,
                       const std::vector<int64_t>& wmap) {
  const int64_t M = p.M, N = p.N, K = p.K;
  const bool permute = lane_major(p.spec);
  std::vector<float> xf = prepare_x(p, permute);
  ElementTable table(p.spec.mode);
  // Rows of W decoded per block: kNb rows of K floats stay in L2 while every row of x meets
  // them, so x is streamed N/kNb times instead of N times.
  constexpr int64_t kNb = 8;
  const int64_t nblocks = (N + kNb - 1) / kNb;
  const int64_t items = p.batch * nblocks;
  void* out = p.out.raw_data();
  const Dtype ot = p.out.dtype();
  // Below ~256K multiply-adds a second thread costs more than it saves.
  int64_t work_per_item = std::max<int64_t>(1, kNb * K * std::max<int64_t>(M, 1));
  int64_t min_items = std::max<int64_t>(1, (int64_t{1} << 18) / work_per_item);
  thread_pool().parallel_for(items, min_items, [&](int64_t i0, int64_t i1) {
    std::vector<float> wblock(static_cast<size_t>(kNb * K));
    std::vector<float> acc(static_cast<size_t>(kNb));
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / nblocks, n0 = (it % nblocks) * kNb;
      const int64_t nb = std::min(kNb, N - n0);
      const int64_t wb = wmap[b], xb = xmap[b];
      for (int64_t j = 0; j < nb; ++j) decode_row(p, table, wb, n0 + j, 0, K, &wblock[j * K]);
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = &xf[(xb * M + m) * K];
        for (int64_t j = 0; j < nb; ++j) acc[j] = dot(xr, &wblock[j * K], K);
        store_row(out, ot, (b * M + m) * N + n0, acc.data(), nb);
      }
    }
  });
}

void matmul_plain(const core::MatmulProblem& p, const std::vector<int64_t>& xmap,
                  const std::vector<int64_t>& wmap) {
  // W stored (K, N): groups run along N, so each thread owns a range of whole groups of
  // columns, decodes its part of every W row once and accumulates x[m, k] * row into acc.
  const int64_t M = p.M, N = p.N, K = p.K;
  const int gs = p.spec.group_size;
  std::vector<float> xf = prepare_x(p, false);
  ElementTable table(p.spec.mode);
  const int64_t ngroups = N / gs;
  constexpr int64_t kGroupsPerItem = 4;  // 4 groups = 128..512 columns per work item
  const int64_t citems = (ngroups + kGroupsPerItem - 1) / kGroupsPerItem;
  const int64_t items = p.batch * citems;
  void* out = p.out.raw_data();
  const Dtype ot = p.out.dtype();
  int64_t work_per_item = std::max<int64_t>(1, kGroupsPerItem * gs * K * std::max<int64_t>(M, 1));
  int64_t min_items = std::max<int64_t>(1, (int64_t{1} << 18) / work_per_item);
  thread_pool().parallel_for(items, min_items, [&](int64_t i0, int64_t i1) {
    std::vector<float> wrow(static_cast<size_t>(kGroupsPerItem * gs));
    std::vector<float> natural(wrow.size());
    std::vector<float> acc;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / citems, c0 = (it % citems) * kGroupsPerItem * gs;
      const int64_t nc = std::min<int64_t>(kGroupsPerItem * gs, N - c0);
      const int64_t wb = wmap[b], xb = xmap[b];
      acc.assign(static_cast<size_t>(M * nc), 0.0f);
      for (int64_t k = 0; k < K; ++k) {
        decode_row(p, table, wb, k, c0, nc, wrow.data());
        const float* row = wrow.data();
        if (lane_major(p.spec)) {  // undo the lane-major order: columns must stay in place
          const int per = 32 / p.spec.bits, W = gs * p.spec.bits / 32;
          for (int64_t c = 0; c < nc; ++c) {
            int64_t g = c / gs, e = c % gs;
            natural[c] = wrow[g * gs + (e % per) * W + e / per];
          }
          row = natural.data();
        }
        for (int64_t m = 0; m < M; ++m) axpy(xf[(xb * M + m) * K + k], row, &acc[m * nc], nc);
      }
      for (int64_t m = 0; m < M; ++m) store_row(out, ot, (b * M + m) * N + c0, &acc[m * nc], nc);
    }
  });
}

}  // namespace

void check_indices(const core::BatchMap& map, int64_t batch, int64_t limit, const char* which) {
  if (!map.indices) return;
  const auto* idx = static_cast<const int64_t*>(map.indices->raw_data());
  for (int64_t b = 0; b < batch; ++b)
    if (idx[b] < 0 || idx[b] >= limit)
      core::throw_invalid("gather_qmm", which, " contains ", idx[b], " at flat position ", b,
                          ", outside the valid range [0, ", limit, ").");
}

void reference_matmul(const core::MatmulProblem& p) {
  check_indices(p.x_map, p.batch, p.x_batches, "lhs_indices");
  check_indices(p.w_map, p.batch, p.w_batches, "rhs_indices");
  auto xmap = resolve_map(p.x_map, p), wmap = resolve_map(p.w_map, p);
  const void* x = p.x.raw_data();
  const Dtype xt = p.x.dtype(), ot = p.out.dtype();
  void* out = p.out.raw_data();
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t n = 0; n < p.N; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < p.K; ++k) {
          double wv = p.transpose ? weight_at(p, wmap[b], n, k) : weight_at(p, wmap[b], k, n);
          acc += static_cast<double>(core::load_float(x, xt, (xmap[b] * p.M + m) * p.K + k)) * wv;
        }
        float v = static_cast<float>(acc);
        store_row(out, ot, (b * p.M + m) * p.N + n, &v, 1);
      }
}

void generic_matmul(const core::MatmulProblem& p) {
  check_indices(p.x_map, p.batch, p.x_batches, "lhs_indices");
  check_indices(p.w_map, p.batch, p.w_batches, "rhs_indices");
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  auto xmap = resolve_map(p.x_map, p), wmap = resolve_map(p.w_map, p);
  if (p.transpose)
    matmul_transposed(p, xmap, wmap);
  else
    matmul_plain(p, xmap, wmap);
}

}  // namespace qmm::cpu
