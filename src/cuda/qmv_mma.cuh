// The decode kernel: y[m, n] = sum_k x[m, k] * W[n, k] for few rows m (tokens), reading MLX's
// packed layout as it is, on tensor cores (mma.sync m16n8k16, float32 accumulation).
//
// Work split. A CTA (8 warps) owns one chunk of 8*NG token rows (grid x: a work slot) and walks
// 16-row weight tiles y, y + gridDim.y, ... (grid y sized so every CTA is resident: persistent);
// its warps split K into 128-element sub-chunks (warp w takes sub-chunks w, w+8, ...) and reduce
// through shared memory at the end of each tile, in a fixed order (deterministic), double-
// buffered so one barrier per tile suffices. In a sub-chunk, lane (g = lane/4, c = lane%4) loads
// the 32 consecutive elements [32c, 32c+32) of weight rows g and g+8 (one 16-byte load for
// 4-bit), so a quad reads 64 contiguous bytes of a row. Each warp's loads run PF sub-chunks ahead
// with the evict-first hint, across tile boundaries: a CTA pays the memory latency once, not once
// per tile (the one-tile-per-CTA form of this kernel waited for its first loads in every wave:
// 25.9 -> 21.3 us at M=1, 8192^2). A stage is consumed before its registers are reloaded, so no
// register copies of stages are made.
//
// Dequantization without a repack. The mma A fragment gives lane (g, c) the logical k columns
// {2c, 2c+1} and {2c+8, 2c+9} of each 16-wide step. Any bijection between logical and
// physical k works as long as x (the B fragment, same c) uses the same one, so each format
// picks the pairs its cheapest bit trick produces: 4-bit takes nibbles (j, j+4) of a word with
// one mask (0x000F000F) and a magic exponent, i.e. pos(p, e) = 8*(p/4) + p%4 + 4e, and x is
// permuted to match with one byte-permute per pair. Then w = s*q + b is one packed FMA in the
// activation type (the magic is removed exactly first; it is never folded into b).
//
// x is permuted into the pair order once per CTA, into shared memory, when the CTA walks several
// tiles and the rows fit (x_smem_budget); the main loop then reads B fragments with 16-byte
// shared loads instead of global loads plus byte permutes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdlib>
#include <type_traits>

#include "cuda/batch_map.cuh"

namespace qmm::cuda {

struct MmaArgs : KernelOperands {
  int gs_shift;  // log2(group size): group index by shift, not division
  const int* order;
  const int* seg_start;
  const int2* work;
  const int* num_work;
  int nchunks;  // row chunks per segment when the work list is implicit
  bool direct;  // resolve batches from xmap / wmap (checked) instead of xidx / widx
  Map xmap, wmap;
  ErrorSink err;
  int sm_count;            // host side: sizes the persistent grid
  int prefetch_row_bytes;  // L2 prefetch per weight row before the inputs are ready (0: none)
};

// ---- packed half-precision arithmetic on 32-bit registers
template <class T>
struct H2;
template <>
struct H2<__nv_bfloat16> {
  static constexpr uint32_t kMagic = 0x43004300u;  // 128.0 in both halves: 128 + q is exact
  QMM_DEV static uint32_t sub(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  QMM_DEV static uint32_t fma(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  QMM_DEV static uint32_t mul(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  QMM_DEV static void mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                          uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  QMM_DEV static uint16_t from_float(float v) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
};
template <>
struct H2<__half> {
  static constexpr uint32_t kMagic = 0x64006400u;  // 1024.0: 1024 + q exact for q < 1024
  QMM_DEV static uint32_t sub(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  QMM_DEV static uint32_t fma(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  QMM_DEV static uint32_t mul(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  QMM_DEV static void mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                          uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  QMM_DEV static uint16_t from_float(float v) { return __half_as_ushort(__float2half_rn(v)); }
};

QMM_DEV uint32_t dup16(uint32_t h) { return (h & 0xffffu) | (h << 16); }

// ---- formats. kWords: 32-bit words holding a lane's 32 elements; pos(p, e): physical offset
// (0..31) of element e of pair p (0..15); scale_slot(p): which of the lane's scales pair p uses.
// decode(): pair p as two activation-type values w = s*q + b (affine) or code*s (fp modes).

// Affine, 2/4 bits: one mask + magic per pair; pairs (j, j + 32/bits/2) of a word.
template <int Bits>
struct AffinePow2 {
  static constexpr int kWords = Bits;
  static constexpr int kPerWord = 32 / Bits;  // 8 (4-bit) or 16 (2-bit)
  static constexpr int kPairsPerWord = kPerWord / 2;
  static constexpr bool kAffine = true;
  static constexpr int kScales = 1;
  static constexpr int pos(int p, int e) {
    return kPerWord * (p / kPairsPerWord) + p % kPairsPerWord + kPairsPerWord * e;
  }
  QMM_DEV static int scale_slot(int) { return 0; }
  template <class T>
  QMM_DEV static uint32_t decode(const uint32_t* w, int p, uint32_t s2, uint32_t b2) {
    constexpr uint32_t mask = ((1u << Bits) - 1u) * 0x00010001u;
    uint32_t v = and_or(w[p / kPairsPerWord] >> (Bits * (p % kPairsPerWord)), mask, H2<T>::kMagic);
    return H2<T>::fma(H2<T>::sub(v, H2<T>::kMagic), s2, b2);
  }
};

// Affine, 3/5/6 bits (elements straddle words): natural pairs, funnel-shift extraction.
template <int Bits>
struct AffineOdd {
  static constexpr int kWords = Bits;
  static constexpr bool kAffine = true;
  static constexpr int kScales = 1;
  static constexpr int pos(int p, int e) { return 2 * p + e; }
  QMM_DEV static int scale_slot(int) { return 0; }
  QMM_DEV static uint32_t element(const uint32_t* w, int i) {
    const int bit = i * Bits, word = bit / 32, sh = bit % 32;
    uint32_t v = (sh + Bits <= 32) ? (w[word] >> sh) : __funnelshift_r(w[word], w[word + 1], sh);
    return v & ((1u << Bits) - 1u);
  }
  template <class T>
  QMM_DEV static uint32_t decode(const uint32_t* w, int p, uint32_t s2, uint32_t b2) {
    uint32_t v = element(w, 2 * p) | (element(w, 2 * p + 1) << 16) | H2<T>::kMagic;
    return H2<T>::fma(H2<T>::sub(v, H2<T>::kMagic), s2, b2);
  }
};

// Affine 8-bit. fp16: a byte-permute puts bytes under the 1024 magic. bf16: 128 + q is not
// exact for q >= 128, so each byte goes through float32 (2^23 magic), then a packed convert.
struct Affine8 {
  static constexpr int kWords = 8;
  static constexpr bool kAffine = true;
  static constexpr int kScales = 1;
  static constexpr int pos(int p, int e) { return 2 * p + e; }
  QMM_DEV static int scale_slot(int) { return 0; }
  template <class T>
  QMM_DEV static uint32_t decode(const uint32_t* w, int p, uint32_t s2, uint32_t b2) {
    const uint32_t word = w[p / 2];
    const int a = 2 * (p % 2);
    uint32_t v;
    if constexpr (std::is_same_v<T, __half>) {
      v = __byte_perm(word, 0x64646464u, a | (4 << 4) | ((a + 1) << 8) | (4 << 12));
    } else {
      float f0 = __uint_as_float(__byte_perm(word, 0x4b000000u, 0x7440 | a)) - 8388608.0f;
      float f1 = __uint_as_float(__byte_perm(word, 0x4b000000u, 0x7440 | (a + 1))) - 8388608.0f;
      __nv_bfloat162 h = __floats2bfloat162_rn(f0, f1);
      v = *reinterpret_cast<uint32_t*>(&h);
      return H2<T>::fma(v, s2, b2);  // q is exact in bf16 already: no magic to remove
    }
    return H2<T>::fma(H2<T>::sub(v, H2<T>::kMagic), s2, b2);
  }
};

// E2M1 (mxfp4 / nvfp4), bf16 only: the 3 magnitude bits go under the bf16 exponent/mantissa
// (value * 2^-126, exact also for the subnormal code 0.5), the sign to bit 15; then * 2^126 and
// * scale, both exact in bf16. Nibble pairs (j, j+4) as for affine 4-bit.
template <int Gs>
struct Fp4 {
  static constexpr int kWords = 4;
  static constexpr bool kAffine = false;
  static constexpr int kScales = Gs == 16 ? 2 : 1;  // nvfp4: two groups of 16 per lane
  static constexpr int pos(int p, int e) { return 8 * (p / 4) + p % 4 + 4 * e; }
  QMM_DEV static int scale_slot(int p) { return Gs == 16 ? (p / 4) / 2 : 0; }
  template <class T>
  QMM_DEV static uint32_t decode(const uint32_t* w, int p, uint32_t s2, uint32_t) {
    const uint32_t t = w[p / 4] >> (4 * (p % 4));
    const uint32_t v = ((t & 0x00070007u) << 6) | ((t & 0x00080008u) << 12);
    return H2<T>::mul(H2<T>::mul(v, 0x7e807e80u /* 2^126 */), s2);
  }
};

// E4M3 (mxfp8), bf16 only: the 7 low bits shifted under the bf16 exponent (value * 2^-120,
// exact for subnormals), sign to bit 15; 0x7F/0xFF decode to NaN as in MLX 0.32.4.
struct Fp8 {
  static constexpr int kWords = 8;
  static constexpr bool kAffine = false;
  static constexpr int kScales = 1;
  static constexpr int pos(int p, int e) { return 4 * (p / 2) + p % 2 + 2 * e; }
  QMM_DEV static int scale_slot(int) { return 0; }
  template <class T>
  QMM_DEV static uint32_t decode(const uint32_t* w, int p, uint32_t s2, uint32_t) {
    const uint32_t t = w[p / 2] >> (8 * (p % 2));
    const uint32_t m = t & 0x007f007fu;
    const uint32_t nan = __vcmpeq2(m, 0x007f007fu) & 0x7fc07fc0u;  // NaN lanes for code 0x7F
    const uint32_t v = (m << 4) | ((t & 0x00800080u) << 8) | nan;
    return H2<T>::mul(H2<T>::mul(v, 0x7b807b80u /* 2^120 */), s2);
  }
};

// Scale bits (as a packed pair of activation-type values) from the stored scale.
template <class T, class F>
QMM_DEV uint32_t scale_pair(uint32_t raw) {
  if constexpr (F::kAffine) {
    return dup16(raw);
  } else if constexpr (std::is_same_v<F, Fp4<16>>) {
    // nvfp4: e4m3 is exact in bf16. Its 7 low bits shifted under the bf16 exponent give the
    // value * 2^-120 (subnormals included), the sign goes to bit 15, then one exact multiply by
    // 2^120; code 0x7F is NaN as in core::e4m3_to_float. (The float conversion with branches it
    // replaces: nvfp4 8192^2 M=1 25.7 -> 21.4 us in bench/gpu/lab, affine 4-bit 20.7.)
    if ((raw & 0x7fu) == 0x7fu) return 0x7fc07fc0u;
    const uint32_t t = ((raw & 0x7fu) << 4) | ((raw & 0x80u) << 8);
    return H2<T>::mul(dup16(t), 0x7b807b80u /* 2^120 */);
  } else {  // e8m0 -> bf16 bits s << 7 (s = 0: 2^-127, the bf16 subnormal 0x0040)
    return dup16(raw == 0 ? 0x0040u : raw << 7);
  }
}

template <class F>
struct Stage {
  uint32_t w[2][F::kWords];
  uint32_t s[2][F::kScales];
  uint32_t b[2];
};

constexpr int kMmaWarps = 8;
constexpr int kSub = 128;  // elements of K per warp step (4 lanes x 32)

// Sub-chunks of weights in flight per lane (registers: the kernel must stay within 128
// registers for 2 CTAs per SM).
template <class F, int NG>
constexpr int prefetch_depth() {
  return NG == 1 ? (F::kWords <= 4 ? 3 : 2) : 2;
}

// x permuted for lane block b (32 consecutive k) of one token row: word p holds the elements
// (pos(p, 0), pos(p, 1)) of the block, i.e. the B fragment order the format's decode produces.
template <class F>
QMM_DEV void permute_x_block(const uint32_t (&X)[16], uint32_t (&xp)[16]) {
#pragma unroll
  for (int p = 0; p < 16; ++p) {
    const int e0 = F::pos(p, 0), e1 = F::pos(p, 1);
    if (e1 == e0 + 1 && e0 % 2 == 0) {
      xp[p] = X[e0 / 2];
    } else {
      const uint32_t sel = (2 * (e0 % 2)) | ((2 * (e0 % 2) + 1) << 4) | ((4 + 2 * (e1 % 2)) << 8) |
                           ((5 + 2 * (e1 % 2)) << 12);
      xp[p] = __byte_perm(X[e0 / 2], X[e1 / 2], sel);
    }
  }
}

QMM_DEV void load_x_block(const uint16_t* src, uint32_t (&X)[16]) {
  const uint4* s = reinterpret_cast<const uint4*>(src);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint4 v = __ldg(s + i);
    X[4 * i] = v.x;
    X[4 * i + 1] = v.y;
    X[4 * i + 2] = v.z;
    X[4 * i + 3] = v.w;
  }
}

// Bytes of dynamic shared memory the kernel may take for x: what the default 48 KiB per CTA
// leaves next to the static reduction buffer and row offsets, so no launch needs an attribute
// set per device (NG = 1: ~40 KiB, M=1 up to K=20448; NG = 2: ~32 KiB).
template <int NG>
constexpr size_t x_smem_budget() {
  return 48 * 1024 - sizeof(float) * 2 * kMmaWarps * NG * 4 * 32 - sizeof(int64_t) * (8 * NG + 1);
}

template <class T, class F, int NG, int PF, bool XSmem>
__global__ void __launch_bounds__(256, 2) qmv_mma_kernel(MmaArgs a, int tiles) {
  extern __shared__ uint4 xs[];  // XSmem: [valid token rows][K / 32 blocks][4 x uint4]
  constexpr int kRows = 8 * NG;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, c = lane & 3;

  __shared__ float red[2][kMmaWarps][NG][4][32];
  __shared__ int64_t chunk_batch[kRows + 1];  // x row offsets (elements), then the w batch
  // One slot's walk over tiles ty0, ty0 + tys, ... (ntiles of them). Every thread of the CTA
  // makes the same calls (the barriers inside need it).
  auto walk = [&](int slot, int ty0, int tys, int ntiles) {
    int seg, chunk;
    if (a.work) {
      const int2 wk = a.work[slot];
      seg = wk.x;
      chunk = wk.y;
    } else {
      seg = slot / a.nchunks;
      chunk = slot % a.nchunks;
    }
    int s0, nitems;
    if (a.seg_start) {
      s0 = a.seg_start[seg];
      nitems = a.seg_start[seg + 1] - s0;
    } else {
      s0 = seg;
      nitems = 1;
    }
    const int64_t seg_rows = int64_t(nitems) * a.M;
    const int64_t row0 = int64_t(chunk) * kRows;
    if (row0 >= seg_rows) return;
    const int rows_valid = static_cast<int>(seg_rows - row0 < kRows ? seg_rows - row0 : kRows);
    auto item_of = [&](int64_t r) -> int {
      int i = s0 + static_cast<int>(r / a.M);
      return a.order ? a.order[i] : i;
    };
    // The chunk's x row offsets and its w batch, resolved once per walk into shared memory
    // (resolve() divides by 64-bit shapes; out of line, its registers do not count against the
    // main loop's).
    if (threadIdx.x <= kRows) {
      const int r = threadIdx.x < kRows ? threadIdx.x : 0;
      const bool is_w = threadIdx.x == kRows;
      int64_t v = 0;
      if (is_w || r < rows_valid) {
        const int64_t rr = row0 + r;
        const int item = item_of(rr);
        const int* idx = is_w ? a.widx : a.xidx;
        const int64_t b = a.direct ? resolve_out_of_line(is_w ? a.wmap : a.xmap, item, a.err)
                          : idx    ? idx[item]
                                   : 0;
        v = is_w ? b : (b * a.M + rr % a.M) * a.K;
      }
      chunk_batch[threadIdx.x] = v;
    }
    __syncthreads();
    const int64_t wb = chunk_batch[kRows];
    auto x_row = [&](int r) -> const uint16_t* {
      return static_cast<const uint16_t*>(a.x) + chunk_batch[r];
    };

    const int K32 = static_cast<int>(a.K);
    const int nblk = K32 / 32;
    const uint16_t* xrow[NG];
    bool x_ok[NG];
#pragma unroll
    for (int j = 0; j < NG; ++j) {
      x_ok[j] = 8 * j + g < rows_valid;
      xrow[j] = x_ok[j] ? x_row(8 * j + g) : nullptr;
    }

    const int nsub = (K32 + kSub - 1) / kSub;
    const int niter = (nsub + kMmaWarps - 1) / kMmaWarps;  // the same for every warp
    const int total = ntiles * niter;
    const int kbase = warp * kSub + 32 * c;
    constexpr int kStep = kMmaWarps * kSub;

    // Load cursor: tile ordinal lt and iteration lit of the next stage to load; row pointers of
    // that tile (this lane's rows g and g+8).
    int lt = 0, lit = 0;
    const uint32_t* wrow[2];
    const uint16_t* srow16[2];
    const uint16_t* brow16[2];
    const uint8_t* srow8[2];
    bool row_ok[2];
    auto set_tile = [&](int t) {
      const int64_t n_base = int64_t(ty0 + int64_t(t) * tys) * 16 + g;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t n = n_base + 8 * h;
        row_ok[h] = t < ntiles && n < a.N;
        const int64_t rr = wb * a.w_rows + (row_ok[h] ? n : 0);
        wrow[h] = a.w + rr * a.w_words + (kbase / 32) * F::kWords;
        if constexpr (F::kAffine) {
          srow16[h] = static_cast<const uint16_t*>(a.scales) + rr * a.s_cols;
          brow16[h] = static_cast<const uint16_t*>(a.biases) + rr * a.s_cols;
        } else {
          srow8[h] = static_cast<const uint8_t*>(a.scales) + rr * a.s_cols;
        }
      }
    };
    set_tile(0);
    auto load_next = [&](Stage<F>& st) {
      const int k = kbase + lit * kStep;
      const bool kok = k < K32;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (kok && row_ok[h]) {
          load_words<F::kWords>(st.w[h], wrow[h] + lit * (kStep / 32 * F::kWords));
          const int gi = k >> a.gs_shift;
          if constexpr (F::kAffine) {
            st.s[h][0] = __ldg(srow16[h] + gi);
            st.b[h] = __ldg(brow16[h] + gi);
          } else {
#pragma unroll
            for (int q = 0; q < F::kScales; ++q) st.s[h][q] = __ldg(srow8[h] + gi + q);
            st.b[h] = 0;
          }
        } else {
#pragma unroll
          for (int i = 0; i < F::kWords; ++i) st.w[h][i] = 0;
#pragma unroll
          for (int q = 0; q < F::kScales; ++q) st.s[h][q] = 0;
          st.b[h] = 0;
        }
      }
      if (++lit == niter) {
        lit = 0;
        set_tile(++lt);
      }
    };

    float acc[NG][4];
#pragma unroll
    for (int j = 0; j < NG; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] = 0.0f;

    Stage<F> st[PF];
#pragma unroll
    for (int i = 0; i < PF; ++i) load_next(st[i]);
    if constexpr (XSmem) {
      // Permute this chunk's token rows into shared memory once, while the first weight
      // stages are in flight.
      for (int t = threadIdx.x; t < rows_valid * nblk; t += blockDim.x) {
        const int r = t / nblk, b = t - r * nblk;
        uint32_t X[16], xp[16];
        load_x_block(x_row(r) + 32 * b, X);
        permute_x_block<F>(X, xp);
        uint4* d = xs + 4 * t;
#pragma unroll
        for (int i = 0; i < 4; ++i)
          d[i] = make_uint4(xp[4 * i], xp[4 * i + 1], xp[4 * i + 2], xp[4 * i + 3]);
      }
      __syncthreads();
    }

    int ct = 0, cit = 0;  // consume cursor: tile ordinal, iteration
    for (int i0 = 0; i0 < total; i0 += PF) {
#pragma unroll
      for (int jj = 0; jj < PF; ++jj) {
        if (i0 + jj < total) {
          const int k = kbase + cit * kStep;
          uint32_t xp[NG][16];
#pragma unroll
          for (int j = 0; j < NG; ++j) {
            if constexpr (XSmem) {
              if (x_ok[j] && k < K32) {
                const uint4* src = xs + 4 * ((8 * j + g) * nblk + k / 32);
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                  const uint4 v = src[q];
                  xp[j][4 * q] = v.x;
                  xp[j][4 * q + 1] = v.y;
                  xp[j][4 * q + 2] = v.z;
                  xp[j][4 * q + 3] = v.w;
                }
              } else {
#pragma unroll
                for (int q = 0; q < 16; ++q) xp[j][q] = 0;
              }
            } else {
              uint32_t X[16];
              if (x_ok[j] && k < K32) {
                load_x_block(xrow[j] + k, X);
              } else {
#pragma unroll
                for (int q = 0; q < 16; ++q) X[q] = 0;
              }
              permute_x_block<F>(X, xp[j]);
            }
          }
          uint32_t s2[2][F::kScales], b2[2];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
#pragma unroll
            for (int q = 0; q < F::kScales; ++q) s2[h][q] = scale_pair<T, F>(st[jj].s[h][q]);
            b2[h] = dup16(st[jj].b[h]);
          }
#pragma unroll
          for (int s = 0; s < 8; ++s) {
            const int p0 = 2 * s, p1 = 2 * s + 1;
            const uint32_t a0 =
                F::template decode<T>(st[jj].w[0], p0, s2[0][F::scale_slot(p0)], b2[0]);
            const uint32_t a1 =
                F::template decode<T>(st[jj].w[1], p0, s2[1][F::scale_slot(p0)], b2[1]);
            const uint32_t a2 =
                F::template decode<T>(st[jj].w[0], p1, s2[0][F::scale_slot(p1)], b2[0]);
            const uint32_t a3 =
                F::template decode<T>(st[jj].w[1], p1, s2[1][F::scale_slot(p1)], b2[1]);
#pragma unroll
            for (int j = 0; j < NG; ++j) H2<T>::mma(acc[j], a0, a1, a2, a3, xp[j][p0], xp[j][p1]);
          }
          load_next(st[jj]);

          if (++cit == niter) {
            // End of a tile: reduce the warps' partial sums in a fixed order and store.
            const int buf = ct & 1;
#pragma unroll
            for (int j = 0; j < NG; ++j)
#pragma unroll
              for (int q = 0; q < 4; ++q) {
                red[buf][warp][j][q][lane] = acc[j][q];
                acc[j][q] = 0.0f;
              }
            __syncthreads();
            const int o = threadIdx.x;
            if (o < 16 * kRows) {
              const int rr = o % 16, tt = o / 16;
              const int j = tt / 8, n8 = tt % 8;
              const int q = (rr / 8) * 2 + (n8 % 2);
              const int src_lane = (rr % 8) * 4 + n8 / 2;
              float v = 0.0f;
#pragma unroll
              for (int w = 0; w < kMmaWarps; ++w) v += red[buf][w][j][q][src_lane];
              const int64_t n = int64_t(ty0 + int64_t(ct) * tys) * 16 + rr;
              if (tt < rows_valid && n < a.N) {
                const int64_t r = row0 + tt;
                const int64_t orow = int64_t(item_of(r)) * a.M + r % a.M;
                static_cast<uint16_t*>(a.out)[orow * a.N + n] = H2<T>::from_float(v);
              }
            }
            cit = 0;
            ++ct;
          }
        }
      }
    }
  };

  // Programmatic dependent launch (launch_mma_typed): this grid may become resident while the
  // previous kernel of the stream finishes. Until griddepcontrol.wait returns, nothing that
  // kernel may write is read (x, indices, weights quantized on the fly) and nothing is written
  // (our output may reuse a buffer it still reads); only the L2 prefetch of this CTA's first
  // weight rows (a hint, coherent whatever the previous kernel writes) runs before it. Dense
  // weights only: a gathered expert is known only after the wait.
  if (!a.work && !a.direct && !a.widx && threadIdx.x < 16) {
    const int64_t n = int64_t(blockIdx.y) * 16 + threadIdx.x;  // the first tile's rows
    const int64_t row_bytes = a.w_words * 4;
    if (a.prefetch_row_bytes && n < a.N && row_bytes % 16 == 0 &&
        reinterpret_cast<uintptr_t>(a.w) % 16 == 0) {
      // The first stages of the walk read the first bytes of each row.
      const uint32_t bytes = static_cast<uint32_t>(
          row_bytes < a.prefetch_row_bytes ? row_bytes : a.prefetch_row_bytes);
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a.w + n * a.w_words),
                   "r"(bytes)
                   : "memory");
    }
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  // The next kernel (if launched the same way) may start its own prologue now; it waits for
  // this grid to complete before it reads anything.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");

  // Gathered (a device-side work list): the CTAs split the num_work * tiles (slot, tile) units
  // into contiguous ranges, so a CTA walks consecutive tiles of one slot or two, and every CTA
  // has work however few slots the routing produced. Otherwise one walk: slot blockIdx.x, tiles
  // blockIdx.y + k * gridDim.y. (One call site of walk: it is inlined.)
  int64_t u = 0, end = 1;
  if (a.work) {
    const int64_t units = int64_t(*a.num_work) * tiles;
    u = units * blockIdx.x / gridDim.x;
    end = units * (blockIdx.x + 1) / gridDim.x;
  }
  while (u < end) {
    int slot, t0, tys, cnt;
    if (a.work) {
      slot = static_cast<int>(u / tiles);
      t0 = static_cast<int>(u - int64_t(slot) * tiles);
      tys = 1;
      cnt = static_cast<int>(end - u < tiles - t0 ? end - u : tiles - t0);
      u += cnt;
    } else {
      slot = blockIdx.x;
      t0 = blockIdx.y;
      tys = gridDim.y;
      cnt = (tiles - t0 + tys - 1) / tys;
      u = end;
    }
    walk(slot, t0, tys, cnt);
    __syncthreads();  // the next walk reuses x, the row offsets and the reduction buffers
  }
}

// Whether decode launches may overlap the previous kernel (QMM_CUDA_PDL=0: no).
inline bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("QMM_CUDA_PDL");
    return !(v && v[0] == '0');
  }();
  return on;
}

// Bytes of each of its first 16 weight rows a CTA prefetches into L2 before its inputs are
// ready (QMM_CUDA_PDL_PREFETCH overrides; 0: none). H100 lab A/B (bench/gpu/lab, us, base
// without PDL -> PDL with 0 / 1024 / 2048 bytes): 4096^2 8.8 -> 8.4 / 8.0 / 8.3, 1536x2048
// 4.9 -> 4.45 / 4.1 / 4.1, 8192^2 20.5 -> 20.4 / 19.9 / 20.0, 16384^2 71.1 -> 72.1 / 72.4 /
// 73.0 (the one shape that loses).
inline int pdl_prefetch_row_bytes() {
  static const int bytes = [] {
    const char* v = std::getenv("QMM_CUDA_PDL_PREFETCH");
    return v ? std::atoi(v) / 16 * 16 : 1024;
  }();
  return bytes;
}

// Launches one (T, F) instantiation, one resident wave of CTAs. Without a work list: grid x =
// slots, y = CTAs sharing a slot's weight tiles (each walks tiles y, y + gridDim.y, ...). With
// one (gather): a 1-D grid splitting the (slot, tile) units on the device.
template <class T, class F>
void launch_mma_typed(const MmaArgs& a, int64_t tiles, int64_t slots, int rows_per_chunk,
                      cudaStream_t stream) {
  constexpr int kCtasPerSm = 2;  // 256 threads x <= 128 registers
  const int64_t resident = int64_t(a.sm_count) * kCtasPerSm;
  dim3 grid;
  int64_t tiles_per_cta;
  if (a.work) {
    // A device-side work list (slots is only an upper bound): one resident wave of CTAs splits
    // the (slot, tile) units on the device.
    const int64_t units = slots * tiles;
    grid = dim3(static_cast<unsigned>(units < resident ? units : resident), 1);
    tiles_per_cta = units / grid.x;
  } else {
    int64_t ty = resident / (slots > 0 ? slots : 1);
    ty = ty < 1 ? 1 : ty > tiles ? tiles : ty > 65535 ? 65535 : ty;
    grid = dim3(static_cast<unsigned>(slots), static_cast<unsigned>(ty));
    tiles_per_cta = tiles / ty;
  }
  // x in shared memory pays when a CTA walks several tiles (the permute runs once per CTA);
  // with one tile per CTA the prologue only delays the first stages (4096^2: 8.6 -> 9.5 us).
  const int64_t xrows = rows_per_chunk <= 8 ? (a.M < 8 && !a.seg_start ? a.M : 8) : 16;
  const size_t xbytes = size_t(xrows) * size_t(a.K) * 2;
  const size_t budget = rows_per_chunk <= 8 ? x_smem_budget<1>() : x_smem_budget<2>();
  const bool xsmem = xbytes <= budget && tiles_per_cta >= 2;
  const int t = static_cast<int>(tiles);
  auto go = [&](auto kernel, size_t smem) {
    // Programmatic dependent launch: the grid may start while the previous kernel of the
    // stream drains (its CTAs retire over microseconds at the end of a decode step), so the
    // launch, the row-offset setup and the first weight rows' trip to L2 overlap that tail.
    // The kernel waits (griddepcontrol.wait) before touching anything the previous kernel may
    // write. QMM_CUDA_PDL=0 launches it plainly.
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(256);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    check(cudaLaunchKernelEx(&cfg, kernel, a, t), "quantized_matmul");
  };
  if (rows_per_chunk <= 8) {
    if (xsmem)
      go(qmv_mma_kernel<T, F, 1, prefetch_depth<F, 1>(), true>, xbytes);
    else
      go(qmv_mma_kernel<T, F, 1, prefetch_depth<F, 1>(), false>, 0);
  } else {
    if (xsmem)
      go(qmv_mma_kernel<T, F, 2, prefetch_depth<F, 2>(), true>, xbytes);
    else
      go(qmv_mma_kernel<T, F, 2, prefetch_depth<F, 2>(), false>, 0);
  }
  check_launch("quantized_matmul");
}

// Builds the kernel arguments from a MatmulArgs (shared by the translation units).
inline MmaArgs make_mma_args(const MatmulArgs& m) {
  MmaArgs a;
  static_cast<KernelOperands&>(a) = operands_of(m);
  a.gs_shift = group_shift(m);
  a.order = m.order;
  a.seg_start = m.seg_start;
  a.work = m.work;
  a.num_work = m.num_work;
  a.nchunks = static_cast<int>((m.M + m.rows_per_chunk - 1) / m.rows_per_chunk);
  a.sm_count = m.sm_count;
  a.prefetch_row_bytes = pdl_prefetch_row_bytes();
  a.direct = m.direct_maps;
  a.xmap = to_map(m.xmap);
  a.wmap = to_map(m.wmap);
  a.err = m.err;
  return a;
}

// Affine weights of every bit width with activations T: the body of the per-dtype entry
// points below (each translation unit instantiates it for one T).
template <class T>
void launch_mma_affine(const MatmulArgs& m, int64_t tiles, cudaStream_t stream) {
  const MmaArgs a = make_mma_args(m);
  const int64_t slots = m.work_slots;
  const int rows = m.rows_per_chunk;
  switch (m.spec.bits) {
    case 2: launch_mma_typed<T, AffinePow2<2>>(a, tiles, slots, rows, stream); break;
    case 3: launch_mma_typed<T, AffineOdd<3>>(a, tiles, slots, rows, stream); break;
    case 4: launch_mma_typed<T, AffinePow2<4>>(a, tiles, slots, rows, stream); break;
    case 5: launch_mma_typed<T, AffineOdd<5>>(a, tiles, slots, rows, stream); break;
    case 6: launch_mma_typed<T, AffineOdd<6>>(a, tiles, slots, rows, stream); break;
    default: launch_mma_typed<T, Affine8>(a, tiles, slots, rows, stream); break;
  }
}

// Per-dtype entry points (one translation unit each).
void launch_mma_bf16_affine(const MatmulArgs& m, int64_t tiles, cudaStream_t stream);
void launch_mma_bf16_fp(const MatmulArgs& m, int64_t tiles, cudaStream_t stream);
void launch_mma_f16_affine(const MatmulArgs& m, int64_t tiles, cudaStream_t stream);

}  // namespace qmm::cuda
