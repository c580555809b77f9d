// The CUDA backend: device memory from a stream-ordered pool, one CUDA stream per qmm stream,
// event completions, and the dispatch of each op to its kernels. Every op only enqueues work
// (no host synchronisation, no allocation outside the pool), so ops can be captured in graphs.
#include "cuda/backend.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/errors.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"

namespace qmm::cuda {

namespace {

using core::QuantMode;

// Dense problems with at most this many rows of x per weight matrix take the decode kernel
// (row chunks of 16 that share the weight tile through L2); larger ones dequantize + cuBLAS.
// Measured on H100 (8192^2, 4-bit): decode 38 us at M=16, 161 us at M=64; dequant + cuBLAS
// about 65 us + the GEMM.
constexpr int64_t kDecodeMaxRows = 32;
// Without the tensor-core decode kernel (float32, fp16 with fp modes, odd alignments), the
// CUDA-core kernels serve up to this many rows (float32 x: up to kF32DecodeMaxRows where
// qmv_f32 takes the problem); beyond it, dequantize + cuBLAS.
constexpr int64_t kGenericMaxRows = 8;
// gather_qmm with at most this many rows in all (items x M: one token's top-8) skips the routing
// kernel: the decode kernel takes one item per slot and checks the indices itself.
constexpr int64_t kDirectGatherMaxRows = 8;

// Where the fused Hopper kernel runs (dense), from the H100 sweeps of
// scripts/gpu-dispatch-sweep.sh (4-bit g64, bf16; every M from 1 to 8192 on five shapes,
// bench/gpu/README.md "dispatch table"): the decode kernel up to M = 16; the fused kernel for
// M = 17..4096 (8192^2: 42 us at M = 24..64 against 64-117 us for decode / dequantize + cuBLAS;
// 0.91-1.07x cuBLAS from M = 512); dequantize + cuBLAS at M > 4096 (0.96-1.0x cuBLAS there).
// Small matrices (N * K <= 4096^2) keep dequantize + cuBLAS up to M = 512: the fused kernel has
// too few tiles there (4096^2, M = 24..512: 24-47 us against 21-41 us).
constexpr int64_t kFusedMinRows = 16;
constexpr int64_t kFusedMaxRows = 4096;
// Where the table picks a fused kernel and M <= this, the hand-written warp-specialised kernel
// (wgmma/) runs instead of the CUTLASS instance when it takes the problem: H100, M = 17..64,
// 4-bit g64 bf16, `qmm bench --sweep` both ways in one run (bench/gpu/README.md, "Session 7"):
// 8192^2 37.7-38.8 vs 41.3-44.2 us, 14336x4096 32.3-33.5 vs 35.3-36.1, 4096x14336 35.3-36.3
// vs 40.6-41.3, 28672x8192 114.9-117.8 vs 123.8-124.6, 8192x28672 102.1-106.4 vs 114.6-116.7.
// Above 64 rows it converts W once per 64-token tile and loses (8192^2 M=96: 59.5 vs 48.9).
constexpr int64_t kWgmmaMaxRows = 64;
constexpr int64_t kSmallMatrixElems = int64_t(4096) * 4096;
constexpr int64_t kSmallMatrixMaxRows = 512;

bool fused_by_table(int64_t M, int64_t N, int64_t K) {
  if (M <= kFusedMinRows || M > kFusedMaxRows) return false;
  return !(N * K <= kSmallMatrixElems && M <= kSmallMatrixMaxRows);
}

// gather_qmm takes the grouped fused kernel when the rows per active expert average at least
// this many (fewer: the grouped decode kernel, which streams each expert once). Measured on the
// H100 (bench/gpu/README.md): from 8 rows per expert on the grouped kernel is faster (16 rows:
// Qwen3 T=256 213 vs 406 us, Mixtral T=64 224 vs 338 us; 32 rows: Qwen3 T=512 227 vs 707 us).
// QMM_CUDA_GROUPED_MIN_ROWS overrides it (benchmarks).
int64_t grouped_min_rows() {
  static const int64_t rows = [] {
    const char* v = std::getenv("QMM_CUDA_GROUPED_MIN_ROWS");
    return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t(8);
  }();
  return rows;
}

// Which path runs where the fused kernel could: QMM_CUDA_PREFILL=cublas turns the fused kernels
// off (decode + dequantize/cuBLAS as before), =fused uses the CUTLASS instances for every M
// above the decode range, =wgmma the hand-written Hopper kernel there where it takes the
// problem (the table elsewhere); unset, the measured table above decides.
// Benchmarks use it to compare the paths.
enum class PrefillChoice { table, fused, cublas, wgmma };
PrefillChoice parse_prefill(const std::string& v) {
  if (v == "cublas") return PrefillChoice::cublas;
  if (v == "fused") return PrefillChoice::fused;
  if (v == "table") return PrefillChoice::table;
  if (v == "wgmma") return PrefillChoice::wgmma;
  throw std::invalid_argument("[set_prefill_path] unknown path '" + v +
                              "' (expected table, fused, wgmma or cublas)");
}
std::atomic<int> g_prefill_choice{-1};  // -1: not set yet (read QMM_CUDA_PREFILL)
PrefillChoice prefill_choice() {
#if QMM_HAVE_FUSED
  int c = g_prefill_choice.load(std::memory_order_relaxed);
  if (c < 0) {
    const char* v = std::getenv("QMM_CUDA_PREFILL");
    c = static_cast<int>(v && *v ? parse_prefill(v) : PrefillChoice::table);
    g_prefill_choice.store(c, std::memory_order_relaxed);
  }
  return static_cast<PrefillChoice>(c);
#else
  return PrefillChoice::cublas;
#endif
}
bool use_fused_prefill() { return prefill_choice() != PrefillChoice::cublas; }

// The kernel family of a dense (not gathered) problem: the one decision matmul() takes, also
// named for the benchmark's labels (dense_kernel_name) so that no copy of it lives elsewhere.
enum class DenseKernel { decode, cuda_core, wgmma, fused, prefill };
DenseKernel choose_dense(const MatmulArgs& a) {
  const bool fast = mma_supported(a);
  // The measured table (or QMM_CUDA_PREFILL=fused / wgmma) picks a fused kernel; where it does,
  // it takes over from the decode kernel above M = kFusedMinRows.
  const PrefillChoice choice = prefill_choice();
  const bool table_fused = choice == PrefillChoice::table && fused_by_table(a.M, a.N, a.K);
  const bool wgmma = a.M > kFusedMinRows && wgmma_takes(a) &&
                     (choice == PrefillChoice::wgmma || (table_fused && a.M <= kWgmmaMaxRows));
  const bool fused =
      wgmma || (use_fused_prefill() && fused_supported(a) &&
                (choice == PrefillChoice::fused ? a.M > kFusedMinRows : table_fused));
  if (fast && (a.M <= kFusedMinRows || (!fused && a.M <= kDecodeMaxRows)))
    return DenseKernel::decode;
  if (!fast && (a.M <= kGenericMaxRows || qmv_f32_takes(a))) return DenseKernel::cuda_core;
  if (wgmma) return DenseKernel::wgmma;
  return fused ? DenseKernel::fused : DenseKernel::prefill;
}

// The same for gather_qmm (a.batch items of a.M rows over `experts` weight matrices).
enum class GatherKernel { direct_decode, grouped_decode, grouped_fused, routed_cuda_core };
GatherKernel choose_gather(const MatmulArgs& a, int64_t experts) {
  const int64_t B = a.batch;
  if (!mma_supported(a)) return GatherKernel::routed_cuda_core;
  // At most one chunk of rows in all (one token's top-k experts): no routing launch.
  if (B * a.M <= kDirectGatherMaxRows) return GatherKernel::direct_decode;
  // Many rows per expert: the grouped fused kernel (one launch over all experts' tiles).
  if (use_fused_prefill() && fused_supported(a) &&
      B * a.M >= grouped_min_rows() * std::min(B, experts))
    return GatherKernel::grouped_fused;
  return GatherKernel::grouped_decode;
}

// Collapses a strided view: merges axes that are contiguous with each other, drops size-1 axes.
StridedView view_of(const Array& a) {
  const auto& impl = *a.impl();
  StridedView v;
  v.base = detail::element_ptr(impl);
  int nd = 0;
  int64_t shape[64], strides[64];
  for (size_t i = 0; i < impl.shape.size(); ++i) {
    if (impl.shape[i] == 1) continue;
    if (nd > 0 && strides[nd - 1] == impl.strides[i] * impl.shape[i]) {
      shape[nd - 1] *= impl.shape[i];
      strides[nd - 1] = impl.strides[i];
    } else {
      shape[nd] = impl.shape[i];
      strides[nd] = impl.strides[i];
      ++nd;
    }
  }
  if (nd > kMaxDims)
    throw std::invalid_argument(core::concat("[astype] Arrays with more than ", kMaxDims,
                                             " non-mergeable strided axes are not supported on "
                                             "the GPU."));
  v.ndim = nd;
  for (int i = 0; i < nd; ++i) {
    v.shape[i] = shape[i];
    v.strides[i] = strides[i];
  }
  return v;
}

BatchMapView map_view(const core::BatchMap& m, const Shape& batch_shape, int64_t limit, int code) {
  BatchMapView v;
  v.limit = limit;
  v.code = code;
  if (m.indices) {
    v.indices = static_cast<const int64_t*>(m.indices->raw_data());
    return v;
  }
  if (batch_shape.size() > static_cast<size_t>(kMaxDims))
    throw std::invalid_argument("[quantized_matmul] Too many batch axes for the GPU backend.");
  v.ndim = static_cast<int>(batch_shape.size());
  for (int i = 0; i < v.ndim; ++i) {
    v.shape[i] = batch_shape[i];
    v.strides[i] = m.strides[i];
  }
  return v;
}

class CudaBackend final : public core::Backend {
 public:
  DeviceType type() const override { return DeviceType::gpu; }
  int device_count() override { return cuda::device_count(); }

  int new_stream(Device d) override { return context(d.index).new_stream(); }

  void synchronize(Stream s) override {
    DeviceContext& ctx = context(s.device().index);
    check(cudaStreamSynchronize(ctx.stream(s.index())), "synchronize");
    ctx.raise_pending_error();
  }

  std::shared_ptr<core::Buffer> allocate(size_t bytes, Stream s) override {
    DeviceContext& ctx = context(s.device().index);
    return cuda::allocate(ctx, bytes, ctx.stream(s.index()));
  }

  void copy_from_host(const void* src, void* dst, size_t bytes, Device d) override {
    DeviceContext& ctx = context(d.index);
    cudaStream_t st = ctx.stream(0);
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st), "array");
    check(cudaStreamSynchronize(st), "array");
  }

  void copy_to_host(const void* src, void* dst, size_t bytes, Device d) override {
    DeviceContext& ctx = context(d.index);
    cudaStream_t st = ctx.stream(0);
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st), "array");
    check(cudaStreamSynchronize(st), "array");
  }

  std::shared_ptr<core::Completion> convert(const core::ConvertProblem& p, Stream s) override {
    DeviceContext& ctx = context(s.device().index);
    cudaStream_t st = ctx.stream(s.index());
    depend_on(p.src, st);
    note_use(*p.dst.impl()->buffer, st);
    launch_convert(view_of(p.src), p.src.dtype(), p.dst.raw_data(), p.dst.dtype(), p.dst.size(),
                   st);
    return std::make_shared<EventCompletion>(ctx, st);
  }

  std::shared_ptr<core::Completion> quantize(const core::QuantizeProblem& p, Stream s) override {
    DeviceContext& ctx = context(s.device().index);
    cudaStream_t st = ctx.stream(s.index());
    depend_on(p.w, st);
    if (p.global_scale) depend_on(*p.global_scale, st);
    launch_quantize(p, st);
    return std::make_shared<EventCompletion>(ctx, st);
  }

  std::shared_ptr<core::Completion> dequantize(const core::DequantizeProblem& p,
                                               Stream s) override {
    DeviceContext& ctx = context(s.device().index);
    cudaStream_t st = ctx.stream(s.index());
    depend_on(p.w_q, st);
    depend_on(p.scales, st);
    if (p.biases) depend_on(*p.biases, st);
    if (p.global_scale) depend_on(*p.global_scale, st);
    launch_dequantize(p, st);
    return std::make_shared<EventCompletion>(ctx, st);
  }

  std::shared_ptr<core::Completion> quantized_matmul(const core::MatmulProblem& p,
                                                     Stream s) override {
    DeviceContext& ctx = context(s.device().index);
    cudaStream_t st = ctx.stream(s.index());
    for (const Array* in : {&p.x, &p.w, &p.scales}) depend_on(*in, st);
    if (p.biases) depend_on(*p.biases, st);
    if (p.x_map.indices) depend_on(*p.x_map.indices, st);
    if (p.w_map.indices) depend_on(*p.w_map.indices, st);
    run_matmul(ctx, p, st);
    return std::make_shared<EventCompletion>(ctx, st);
  }

 private:
  void run_matmul(DeviceContext& ctx, const core::MatmulProblem& p, cudaStream_t st) {
    MatmulArgs a;
    a.spec = p.spec;
    a.transpose = p.transpose;
    a.M = p.M;
    a.N = p.N;
    a.K = p.K;
    a.batch = p.batch;
    a.dtype = p.x.dtype();
    a.x = p.x.raw_data();
    a.w = static_cast<const uint32_t*>(p.w.raw_data());
    a.scales = p.scales.raw_data();
    a.biases = p.biases ? p.biases->raw_data() : nullptr;
    a.out = p.out.raw_data();
    a.w_rows = p.w.shape(1);
    a.w_words = p.w.shape(2);
    a.s_cols = p.scales.shape(2);
    a.sm_count = ctx.sm_count();
    if (p.batch == 0 || p.M == 0 || p.N == 0) return;

    const bool gathered = p.x_map.indices.has_value() || p.w_map.indices.has_value();
    const bool fast = mma_supported(a);

    if (!gathered) {
      const DenseKernel kernel = choose_dense(a);
      const bool decode = kernel == DenseKernel::decode;
      const bool generic = kernel == DenseKernel::cuda_core;
      if (!decode && !generic) {
        // Large M: dequantize + cuBLAS, batch maps computed on the host from the strides.
        std::vector<int64_t> xb(p.batch), wb(p.batch);
        for (int64_t b = 0; b < p.batch; ++b) {
          xb[b] = p.batch == 1 ? 0 : core::map_batch(p.x_map, p.batch_shape, b, nullptr);
          wb[b] = p.batch == 1 ? 0 : core::map_batch(p.w_map, p.batch_shape, b, nullptr);
        }
        if (kernel == DenseKernel::wgmma) {
          for (int64_t b = 0; b < p.batch; ++b) launch_wgmma(a, b, xb[b], wb[b], ctx, st);
        } else if (kernel == DenseKernel::fused) {
          for (int64_t b = 0; b < p.batch; ++b) launch_fused(a, b, xb[b], wb[b], ctx, st);
        } else {
          launch_prefill(a, xb, wb, ctx, st);
        }
        return;
      }
      std::unique_ptr<Scratch> maps;
      if (p.batch > 1 && decode) {
        // The decode kernel resolves each item's batches from the strides itself.
        set_direct_maps(a, p, ctx);
      } else if (p.batch > 1) {
        // Per-item batch indices from the broadcast strides (on the device: capturable).
        maps = std::make_unique<Scratch>(ctx, 2 * p.batch * sizeof(int), st);
        Routing r;
        r.xidx = maps->as<int>();
        r.widx = r.xidx + p.batch;
        launch_route(map_view(p.x_map, p.batch_shape, p.x_batches, kBadLhsIndex),
                     map_view(p.w_map, p.batch_shape, p.w_batches, kBadRhsIndex), p.batch,
                     p.w_batches, p.M, false, false, 16, r, ctx.error_sink(), st);
        a.xidx = r.xidx;
        a.widx = r.widx;
      }
      if (decode) {
        a.rows_per_chunk = p.M <= 8 ? 8 : 16;
        a.work_slots = p.batch * ((p.M + a.rows_per_chunk - 1) / a.rows_per_chunk);
        launch_qmv_mma(a, st);
      } else {
        run_generic(ctx, a, st);
      }
      return;
    }

    // gather_qmm: route on the device (index checks; expert grouping for the decode kernel).
    const bool group = fast;
    const int64_t B = p.batch;
    const int64_t E = p.w_batches;
    const GatherKernel kernel = choose_gather(a, E);
    if (kernel == GatherKernel::direct_decode) {
      // At most one chunk of rows in all (one token's top-k experts): each item is its own
      // slot and the decode kernel resolves and checks the indices itself, so no routing
      // launch precedes it. Items are not grouped by expert: a repeated index re-reads that
      // expert's weights (top-k indices of one token are distinct).
      set_direct_maps(a, p, ctx);
      a.rows_per_chunk = 8;
      a.work_slots = B;
      launch_qmv_mma(a, st);
      return;
    }
    const int rows_per_chunk = B * p.M <= 8 ? 8 : 16;
    // Upper bound of the work list: sum over segments of ceil(rows/R) <= B*M/R + segments,
    // with at most min(B, E) segments (runs of a sorted input, or experts after the sort).
    const int64_t max_segments = std::min(B, E);
    const int64_t work_slots =
        group ? (B * p.M + rows_per_chunk - 1) / rows_per_chunk + max_segments : 0;
    // Layout of the routing scratch (ints): xidx, widx, order, seg_start, counts, num, work.
    const int64_t ints = 2 * B + B + (B + 1) + (E + 1) + 2 + 2 * work_slots + 2;
    Scratch scratch(ctx, static_cast<size_t>(ints) * sizeof(int), st);
    int* base = scratch.as<int>();
    Routing r;
    r.xidx = base;
    r.widx = base + B;
    if (group) {
      r.order = base + 2 * B;
      r.seg_start = r.order + B;
      r.counts = r.seg_start + B + 1;
      r.num_segments = r.counts + E + 1;
      r.num_work = r.num_segments + 1;
      int* w = r.num_work + 1;
      if (reinterpret_cast<uintptr_t>(w) % 8) ++w;  // int2 alignment
      r.work = reinterpret_cast<int2*>(w);
    }
    launch_route(map_view(p.x_map, p.batch_shape, p.x_batches, kBadLhsIndex),
                 map_view(p.w_map, p.batch_shape, p.w_batches, kBadRhsIndex), B, E, p.M, group,
                 p.sorted_indices, rows_per_chunk, r, ctx.error_sink(), st);
    a.xidx = r.xidx;
    a.widx = r.widx;
    if (group) {
      a.order = r.order;
      a.seg_start = r.seg_start;
      a.num_segments = r.num_segments;
      a.work = r.work;
      a.num_work = r.num_work;
      a.work_slots = work_slots;
      a.rows_per_chunk = rows_per_chunk;
      if (kernel == GatherKernel::grouped_fused) {
        launch_fused_grouped(a, E, max_segments, ctx, st);
        return;
      }
      launch_qmv_mma(a, st);
    } else {
      run_generic(ctx, a, st);
    }
  }

  static void set_direct_maps(MatmulArgs& a, const core::MatmulProblem& p, DeviceContext& ctx) {
    a.direct_maps = true;
    a.xmap = map_view(p.x_map, p.batch_shape, p.x_batches, kBadLhsIndex);
    a.wmap = map_view(p.w_map, p.batch_shape, p.w_batches, kBadRhsIndex);
    a.err = ctx.error_sink();
  }

  void run_generic(DeviceContext& ctx, const MatmulArgs& a, cudaStream_t st) {
    size_t ws = generic_workspace_bytes(a);
    std::unique_ptr<Scratch> scratch;
    if (ws) scratch = std::make_unique<Scratch>(ctx, ws, st);
    launch_qmm_generic(a, scratch ? scratch->as<float>() : nullptr, st);
  }
};

}  // namespace

std::unique_ptr<core::Backend> make_backend() { return std::make_unique<CudaBackend>(); }

namespace {
// launch_qmm_generic's order: qmv_f32, then the vectorised kernel, then the plain one.
std::string cuda_core_kernel_name(const MatmulArgs& a) {
  return qmv_f32_takes(a) ? "qmv_f32" : simt_supported(a) ? "qmv_simt" : "generic";
}
}  // namespace

std::string dense_kernel_name(const MatmulArgs& a) {
  switch (choose_dense(a)) {
    case DenseKernel::decode: return "qmv_mma";
    case DenseKernel::cuda_core: return cuda_core_kernel_name(a);
    case DenseKernel::wgmma: return wgmma_tile_name();
    case DenseKernel::fused: {
      const char* name = fused_instance_name(a.spec.bits, a.dtype, a.M, a.N, a.sm_count);
      return name ? name : "fused";
    }
    default: return "dequant+cublas";
  }
}

std::string gather_kernel_name(const MatmulArgs& a, int64_t experts) {
  switch (choose_gather(a, experts)) {
    case GatherKernel::direct_decode: return "qmv_mma(direct)";
    case GatherKernel::grouped_decode: return "route+qmv_mma(grouped)";
    case GatherKernel::grouped_fused: return "route+fused(grouped)";
    default: return "route+" + cuda_core_kernel_name(a);
  }
}

void set_prefill_path(const char* name) {
  g_prefill_choice.store(static_cast<int>(parse_prefill(name ? name : "table")),
                         std::memory_order_relaxed);
}

}  // namespace qmm::cuda
