// Host-side entry points of the CUDA kernels (one family per .cu file). Every function only
// enqueues work on `stream`; none synchronises or allocates outside the pool.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/quant_spec.h"
#include "cuda/runtime.h"

namespace qmm::cuda {

// ---- convert.cu
// dst (contiguous, n elements of dst_t) = src (ndim <= kMaxDims after collapsing) converted.
constexpr int kMaxDims = 10;
struct StridedView {
  const void* base = nullptr;  // first element
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // elements
};
void launch_convert(const StridedView& src, Dtype src_t, void* dst, Dtype dst_t, int64_t n,
                    cudaStream_t stream);

// ---- codecs.cu
void launch_quantize(const core::QuantizeProblem& p, cudaStream_t stream);
void launch_dequantize(const core::DequantizeProblem& p, cudaStream_t stream);

// ---- route.cu
// Per output batch item b: the x batch and w batch it uses (int32), from index arrays (checked
// on the device: out-of-range entries are reported through `err` and replaced by 0) or from
// broadcast strides. Optionally groups items by w batch (counting sort or runs of equal
// indices when `sorted`), producing segments.
struct BatchMapView {
  const int64_t* indices = nullptr;  // device, one per item; null: use strides
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  int64_t limit = 1;  // valid range [0, limit)
  int code = 0;       // kBadLhsIndex / kBadRhsIndex
};
struct Routing {
  int* xidx = nullptr;          // [batch]
  int* widx = nullptr;          // [batch]
  int* order = nullptr;         // [batch]   items grouped by segment (only when grouping)
  int* seg_start = nullptr;     // [batch+1] segment s = order[seg_start[s] .. seg_start[s+1])
  int* num_segments = nullptr;  // [1]
  int* counts = nullptr;        // [w_batches + 1] scratch for the counting sort
  int2* work = nullptr;         // [work_slots] (segment, row chunk) pairs for the decode kernel
  int* num_work = nullptr;      // [1]
};
// rows_per_chunk: rows of a segment one CTA of the decode kernel takes (items * M per segment).
void launch_route(const BatchMapView& xmap, const BatchMapView& wmap, int64_t batch,
                  int64_t w_batches, int64_t M, bool group, bool sorted, int rows_per_chunk,
                  const Routing& r, ErrorSink err, cudaStream_t stream);

// ---- matmul kernels. The common description of a launch.
struct MatmulArgs {
  core::QuantSpec spec;
  bool transpose = true;
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1;
  Dtype dtype = Dtype::float32;  // x, out (and affine scales/biases)
  const void* x = nullptr;
  const uint32_t* w = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;
  void* out = nullptr;
  int64_t w_rows = 0, w_words = 0,
          s_cols = 0;  // stored matrix: rows, words per row, groups per row
  // Per item b: x batch xidx[b], w batch widx[b] (null: 0). Segments (null: one per item).
  const int* xidx = nullptr;
  const int* widx = nullptr;
  const int* order = nullptr;
  const int* seg_start = nullptr;
  const int* num_segments = nullptr;
  const int2* work = nullptr;  // (segment, chunk) per work slot (gather), null: implicit
  const int* num_work = nullptr;
  int64_t work_slots = 1;  // grid size over work slots (an upper bound when gathered)
  // Decode kernel only: resolve each item's x / w batch from these maps itself (index checks
  // through `err`) instead of reading xidx / widx written by a routing kernel (one launch less).
  bool direct_maps = false;
  BatchMapView xmap, wmap;
  ErrorSink err{};
  int rows_per_chunk = 8;  // 8 or 16 token rows per CTA
  int sm_count = 132;
};

// qmv_f32.cu: the CUDA-core decode kernel for float32 x (and fp16 x with fp-mode weights, M <= 8),
// M <= kF32DecodeMaxRows (2 rows of x per CTA, more rows on grid z), transpose, K % 32 == 0,
// 16-byte aligned x and w, x rows within its shared memory. Measured on H100 8192^2 4-bit:
// M = 8 109 us, M = 16 about twice that, dequantize + cuBLAS SGEMM 302 us at M = 16.
constexpr int64_t kF32DecodeMaxRows = 16;
// The operands the CUDA-core vector kernels read (qmm_generic.cu): transpose, K % 32 == 0,
// 16-byte aligned x and w, float32 x (any mode) or fp16 x with fp-mode weights.
bool simt_supported(const MatmulArgs& a);
bool qmv_f32_takes(const MatmulArgs& a);
// Launches it where qmv_f32_takes(a); returns false (nothing launched) otherwise.
bool launch_qmv_f32(const MatmulArgs& a, cudaStream_t stream);

// The operands every kernel's argument struct carries (kernel arguments are copied by value:
// plain pointers and sizes), and their copy from MatmulArgs.
struct KernelOperands {
  int64_t M, N, K;
  const void* x;
  const uint32_t* w;
  const void* scales;
  const void* biases;
  void* out;
  int64_t w_rows, w_words, s_cols;  // stored matrix: rows, words per row, groups per row
  const int* xidx;                  // per item: x batch, w batch (null: 0)
  const int* widx;
};
inline KernelOperands operands_of(const MatmulArgs& m) {
  return {m.M,   m.N,      m.K,       m.x,      m.w,    m.scales, m.biases,
          m.out, m.w_rows, m.w_words, m.s_cols, m.xidx, m.widx};
}

// log2 of the group size (a power of two): kernels find a group by shift, not division.
inline int group_shift(const MatmulArgs& m) {
  int s = 0;
  while ((1 << s) < m.spec.group_size) ++s;
  return s;
}

// qmm_generic.cu: any problem, CUDA cores, float32 accumulation.
void launch_qmm_generic(const MatmulArgs& a, float* workspace, cudaStream_t stream);
size_t generic_workspace_bytes(const MatmulArgs& a);

// qmv_mma_*.cu: the decode kernel (tensor cores, mma.sync m16n8k16), transpose only.
bool mma_supported(const MatmulArgs& a);
void launch_qmv_mma(const MatmulArgs& a, cudaStream_t stream);

// prefill.cu: dequantize tiles of W into a pooled scratch and multiply with cuBLAS.
// xb/wb: each item's x and w batch (host, from broadcast strides; not for gathered indices).
void launch_prefill(const MatmulArgs& a, const std::vector<int64_t>& xb,
                    const std::vector<int64_t>& wb, DeviceContext& ctx, cudaStream_t stream);
// Dequantizes rows [r0, r1) x columns [c0, c1) of stored matrix wb into dst (row-major,
// leading dimension ld) in the compute dtype (one rounding of s*q + b computed in float32).
void launch_dequant_tile(const MatmulArgs& a, int64_t wb, int64_t r0, int64_t r1, int64_t c0,
                         int64_t c1, void* dst, int64_t ld, cudaStream_t stream);

// wgmma/wgmma_dense.cu: the hand-written Hopper prefill kernel (warp-specialised, 128 W rows x
// 64 tokens per CTA; bench/gpu/README.md, "Session 7"). wgmma_takes: affine 4-bit,
// transpose, bf16/fp16, group 32/64/128, K % 64 == 0, K / group % 8 == 0 (TMA row strides),
// N % 8 == 0, 16-byte aligned operands. launch_wgmma runs item b of a dense problem.
bool wgmma_takes(const MatmulArgs& a);
void launch_wgmma(const MatmulArgs& a, int64_t b, int64_t xb, int64_t wb, DeviceContext& ctx,
                  cudaStream_t stream);
// Its name in benchmark labels.
const char* wgmma_tile_name();

// backend.cpp: the kernel the dense dispatch runs `a` on ("qmv_mma", "qmv_f32", "qmv_simt",
// "generic", a fused or wgmma instance name, "dequant+cublas"); benchmark labels.
std::string dense_kernel_name(const MatmulArgs& a);
// The same for gather_qmm: a.batch items of a.M rows over `experts` weight matrices.
std::string gather_kernel_name(const MatmulArgs& a, int64_t experts);

// fused/fused_dispatch.cu (built when CUTLASS is found: QMM_HAVE_FUSED): the fused Hopper
// prefill kernel. fused_supported: affine 4/8-bit, transpose, bf16/fp16, group % 64 == 0,
// N % 8 == 0. launch_fused runs item b (x batch xb, w batch wb) of a dense problem.
#if QMM_HAVE_FUSED
bool fused_supported(const MatmulArgs& a);
void launch_fused(const MatmulArgs& a, int64_t b, int64_t xb, int64_t wb, DeviceContext& ctx,
                  cudaStream_t stream);
// gather_qmm after grouping routing (a.order, a.seg_start, a.num_segments, a.xidx, a.widx set):
// rows gathered per expert segment, one grouped fused launch, rows scattered back.
void launch_fused_grouped(const MatmulArgs& a, int64_t experts, int64_t max_segments,
                          DeviceContext& ctx, cudaStream_t stream);
// The name of the dense instance launch_fused picks for (bits, dtype, M, N), or null (for
// benchmark labels: the one place the tile rule lives).
const char* fused_instance_name(int bits, Dtype dtype, int64_t M, int64_t N, int sm_count);
#else
// Built without CUTLASS: no problem is supported, so the launches are never reached.
inline bool fused_supported(const MatmulArgs&) { return false; }
inline void launch_fused(const MatmulArgs&, int64_t, int64_t, int64_t, DeviceContext&,
                         cudaStream_t) {}
inline void launch_fused_grouped(const MatmulArgs&, int64_t, int64_t, DeviceContext&,
                                 cudaStream_t) {}
inline const char* fused_instance_name(int, Dtype, int64_t, int64_t, int) { return nullptr; }
#endif

}  // namespace qmm::cuda
