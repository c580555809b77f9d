// Tests of the fast CPU matmul kernels (src/cpu/fast_matmul.*, kernels_isa.inc) against the
// double-precision reference_matmul, for every kernel set this CPU supports: every mode, bit
// width, group size and dtype, GEMV/GEMM/transpose=false paths, edge shapes, batches, gather
// with repeated and unsorted indices, and bit-identical results for any thread count.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/backend.h"
#include "cpu/executor.h"
#include "cpu/fast_matmul.h"
#include "cpu/kernels.h"
#include "qmm/qmm.h"

namespace {

using qmm::Array;
using qmm::Dtype;
using qmm::core::MatmulProblem;
using qmm::core::QuantMode;

struct Format {
  QuantMode mode;
  int gs, bits;
  const char* name;
};

std::vector<Format> all_formats() {
  std::vector<Format> f;
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) f.push_back({QuantMode::affine, gs, bits, "affine"});
  f.push_back({QuantMode::mxfp4, 32, 4, "mxfp4"});
  f.push_back({QuantMode::mxfp8, 32, 8, "mxfp8"});
  f.push_back({QuantMode::nvfp4, 16, 4, "nvfp4"});
  return f;
}

// Kernel sets to test: every SIMD set this CPU supports, and the generic fallback.
std::vector<std::string> kernel_sets() {
  std::vector<std::string> k;
  for (const char* n : {"avx512", "avx2"})
    if (qmm::cpu::select_kernels(n)) k.push_back(n);
  k.push_back("generic");
  qmm::cpu::select_kernels("");
  return k;
}

struct Weights {
  Array w, scales;
  std::optional<Array> biases;
};

// Random normal weights (w_batches, rows, cols) quantized in `dt`.
Weights make_weights(const Format& f, int64_t w_batches, int64_t rows, int64_t cols, Dtype dt,
                     uint64_t seed) {
  Array w = Array::random_normal({w_batches, rows, cols}, dt, seed);
  auto q = qmm::quantize(w, f.gs, f.bits, qmm::core::mode_name(f.mode));
  Weights out{q.w_q, q.scales, q.biases};
  out.w.wait();
  out.scales.wait();
  if (out.biases) out.biases->wait();
  return out;
}

MatmulProblem make_problem(const Format& f, bool transpose, int64_t M, int64_t N, int64_t K,
                           Dtype dt, const Weights& W, int64_t x_batches, int64_t batch,
                           uint64_t seed) {
  MatmulProblem p;
  p.spec.mode = f.mode;
  p.spec.group_size = f.gs;
  p.spec.bits = f.bits;
  p.transpose = transpose;
  p.M = M;
  p.N = N;
  p.K = K;
  p.batch = batch;
  p.x_batches = x_batches;
  p.w_batches = W.w.shape(0);
  p.batch_shape = {batch};
  p.x_map.strides = {x_batches == 1 ? 0 : 1};
  p.w_map.strides = {W.w.shape(0) == 1 ? 0 : 1};
  p.x = Array::random_normal({x_batches, M, K}, dt, seed);
  p.x.wait();
  p.w = W.w;
  p.scales = W.scales;
  p.biases = W.biases;
  p.out = Array::zeros({batch, M, N}, dt);
  p.out.wait();
  return p;
}

// A sorted gather_qmm decode problem: one row per item, item b = (x batch lhs[b], expert
// rhs[b]) over E experts of N x K and 3 x batches, bf16.
MatmulProblem gather_decode_problem(const Format& f, int64_t E, int64_t N, int64_t K,
                                    const std::vector<int64_t>& lhs,
                                    const std::vector<int64_t>& rhs, uint64_t seed) {
  const Weights W = make_weights(f, E, N, K, Dtype::bfloat16, seed);
  const int64_t B = static_cast<int64_t>(rhs.size());
  MatmulProblem p = make_problem(f, true, 1, N, K, Dtype::bfloat16, W, 3, B, seed + 1);
  p.x_map.indices = Array::from_vector(lhs, {B});
  p.w_map.indices = Array::from_vector(rhs, {B});
  p.sorted_indices = true;
  return p;
}

Array fresh_out(const MatmulProblem& p) {
  Array a = Array::zeros({p.batch, p.M, p.N}, p.out.dtype());
  a.wait();
  return a;
}

// The output bytes of fast_matmul(p) with 1, 2, 3 and 4 threads (the thread count is left at 4).
std::vector<std::vector<uint8_t>> outputs_for_1_to_4_threads(const MatmulProblem& p) {
  std::vector<std::vector<uint8_t>> results;
  for (int t : {1, 2, 3, 4}) {
    qmm::set_num_threads(t);
    MatmulProblem q = p;
    q.out = fresh_out(p);
    qmm::cpu::fast_matmul(q);
    std::vector<uint8_t> bytes(q.out.nbytes());
    q.out.copy_to_host(bytes.data());
    results.push_back(std::move(bytes));
  }
  return results;
}

// Relative Frobenius error of `got` against `ref`.
double rel_err(const Array& got, const Array& ref) {
  auto g = got.to_double_vector(), r = ref.to_double_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double d = g[i] - r[i];
    num += d * d;
    den += r[i] * r[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

double tolerance(Dtype dt) {
  // float32: the Decisions' 1e-5. Half outputs: both results are rounded once to the output
  // type, so they differ by at most an ulp where the float32 sums straddle a rounding boundary.
  switch (dt) {
    case Dtype::float32: return 1e-5;
    case Dtype::bfloat16: return 4e-3;
    default: return 5e-4;
  }
}

// Runs the fast kernel and the reference on p; returns the relative error.
double check(MatmulProblem p) {
  MatmulProblem r = p;
  r.out = fresh_out(p);
  qmm::cpu::fast_matmul(p);
  qmm::cpu::reference_matmul(r);
  return rel_err(p.out, r.out);
}

const char* dtname(Dtype t) {
  return t == Dtype::float32 ? "f32" : t == Dtype::bfloat16 ? "bf16" : "f16";
}

class CpuKernels : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(qmm::cpu::select_kernels(GetParam())); }
  void TearDown() override { qmm::cpu::select_kernels(""); }
};

// Every format x dtype x M edge case, transpose=true (GEMV for M <= 3, GEMM above).
TEST_P(CpuKernels, TransposedAllFormats) {
  uint64_t seed = 1;
  for (const Format& f : all_formats())
    for (Dtype dt : {Dtype::float32, Dtype::bfloat16, Dtype::float16}) {
      // K: one group, and several KC blocks with a remainder; N: not a tile multiple.
      for (int64_t K : {int64_t{f.gs}, int64_t{f.gs} * 11}) {
        const int64_t N = K == f.gs ? 13 : 37;
        Weights W = make_weights(f, 1, N, K, dt, seed++);
        for (int64_t M : {1, 2, 3, 4, 15, 16, 17}) {
          MatmulProblem p = make_problem(f, true, M, N, K, dt, W, 1, 1, seed++);
          double e = check(p);
          EXPECT_LE(e, tolerance(dt)) << f.name << " bits " << f.bits << " gs " << f.gs << " "
                                      << dtname(dt) << " M " << M << " N " << N << " K " << K;
        }
      }
    }
}

// transpose=false: W stored (K, N), groups along N.
TEST_P(CpuKernels, PlainAllFormats) {
  uint64_t seed = 1000;
  for (const Format& f : all_formats())
    for (Dtype dt : {Dtype::float32, Dtype::bfloat16, Dtype::float16}) {
      const int64_t N = f.gs * 3, K = 45;  // N: 3 groups (not a multiple of 32 for gs=16..)
      Weights W = make_weights(f, 1, K, N, dt, seed++);
      for (int64_t M : {1, 2, 3, 4, 7, 16, 17}) {
        MatmulProblem p = make_problem(f, false, M, N, K, dt, W, 1, 1, seed++);
        double e = check(p);
        EXPECT_LE(e, tolerance(dt))
            << f.name << " bits " << f.bits << " gs " << f.gs << " " << dtname(dt) << " M " << M;
      }
    }
}

// Large enough for several MC and KC blocks and all microkernel edge tiles.
TEST_P(CpuKernels, LargeGemm) {
  Format f{QuantMode::affine, 64, 4, "affine"};
  for (bool transpose : {true, false}) {
    const int64_t M = 251, N = 64 * 3 + (transpose ? 5 : 0), K = 64 * 17;
    Weights W = transpose ? make_weights(f, 1, N, K, Dtype::float32, 7)
                          : make_weights(f, 1, K, N, Dtype::float32, 7);
    MatmulProblem p = make_problem(f, transpose, M, N, K, Dtype::float32, W, 1, 1, 8);
    EXPECT_LE(check(p), 1e-5) << "transpose " << transpose;
  }
}

// Batches with broadcasting through strides: x (2 batches) against w (3 batches).
TEST_P(CpuKernels, Batches) {
  for (const Format& f :
       {Format{QuantMode::affine, 32, 3, "affine"}, Format{QuantMode::nvfp4, 16, 4, "nvfp4"}})
    for (bool transpose : {true, false})
      for (int64_t M : {1, 5}) {
        const int64_t N = 64, K = 96;
        Weights W = transpose ? make_weights(f, 3, N, K, Dtype::bfloat16, 11)
                              : make_weights(f, 3, K, N, Dtype::bfloat16, 11);
        MatmulProblem p = make_problem(f, transpose, M, N, K, Dtype::bfloat16, W, 2, 6, 12);
        p.batch_shape = {2, 3};
        p.x_map.strides = {1, 0};
        p.w_map.strides = {0, 1};
        EXPECT_LE(check(p), tolerance(Dtype::bfloat16)) << transpose << " " << M;
      }
}

// gather_qmm: repeated and unsorted expert indices, with and without the sorted hint (which
// must not change the answer even when the indices are not sorted).
TEST_P(CpuKernels, GatherRepeatedUnsorted) {
  Format f{QuantMode::affine, 64, 4, "affine"};
  const int64_t E = 5, N = 128, K = 128;
  for (bool transpose : {true, false})
    for (int64_t M : {1, 2, 6})
      for (bool hint : {false, true}) {
        Weights W = transpose ? make_weights(f, E, N, K, Dtype::float32, 21)
                              : make_weights(f, E, K, N, Dtype::float32, 21);
        std::vector<int64_t> rhs = {3, 1, 3, 0, 4, 3, 1, 3, 2, 3};
        std::vector<int64_t> lhs = {0, 1, 1, 2, 3, 4, 5, 6, 6, 7};
        const int64_t B = static_cast<int64_t>(rhs.size());
        MatmulProblem p = make_problem(f, transpose, M, N, K, Dtype::float32, W, 8, B, 22);
        p.x_map.indices = Array::from_vector(lhs, {B});
        p.w_map.indices = Array::from_vector(rhs, {B});
        p.sorted_indices = hint;
        EXPECT_LE(check(p), 1e-5) << transpose << " M " << M << " hint " << hint;
      }
}

TEST_P(CpuKernels, GatherSortedDecode) {
  // MoE decode shape in miniature: 16 experts, top-4, 3 tokens, sorted.
  MatmulProblem p = gather_decode_problem({QuantMode::mxfp4, 32, 4, "mxfp4"}, 16, 96, 256,
                                          {1, 0, 2, 1, 0, 1, 2, 0, 2, 1, 0, 2},
                                          {0, 2, 2, 5, 7, 7, 7, 9, 11, 12, 15, 15}, 31);
  EXPECT_LE(check(p), tolerance(Dtype::bfloat16));
}

// Activations so small that the lane-major AVX2 GEMV's power-of-two x scaling would leave the
// normal range (here |x| ~ 2^-118): that kernel hands the call to the natural decode, which must
// stay exact; also one tiny row next to a normal one (the whole item falls back).
TEST_P(CpuKernels, TinyActivations) {
  uint64_t seed = 7000;
  for (const Format& f : all_formats())
    for (int64_t M : {1, 2}) {
      const int64_t N = 19, K = int64_t{f.gs} * 9;
      Weights W = make_weights(f, 1, N, K, Dtype::float32, seed++);
      MatmulProblem p = make_problem(f, true, M, N, K, Dtype::float32, W, 1, 1, seed++);
      std::vector<float> xv = p.x.to_float_vector();
      for (int64_t i = 0; i < (M == 1 ? K : K / 2); ++i) xv[i] *= 0x1p-118f;
      p.x = Array::from_vector(xv, {1, M, K});
      p.x.wait();
      EXPECT_LE(check(p), 1e-5) << f.name << " bits " << f.bits << " gs " << f.gs << " M " << M;
    }
}

// Results are bit-identical for any number of threads (each output element is computed by one
// work item with the same instructions, whichever thread runs it).
TEST_P(CpuKernels, BitIdenticalAcrossThreadCounts) {
  struct Case {
    Format f;
    bool transpose;
    int64_t M, N, K;
    Dtype dt;
  };
  const Case cases[] = {
      {{QuantMode::affine, 64, 4, "affine"}, true, 1, 700, 2048, Dtype::float32},
      {{QuantMode::affine, 32, 3, "affine"}, true, 3, 300, 1024, Dtype::bfloat16},
      {{QuantMode::mxfp4, 32, 4, "mxfp4"}, true, 20, 500, 1024, Dtype::float16},
      {{QuantMode::affine, 128, 8, "affine"}, false, 9, 512, 600, Dtype::float32},
      // GEMM with several column blocks per thread (a thread's items run as one call, so the
      // blocks start at different columns for different thread counts) and several x blocks.
      {{QuantMode::affine, 64, 4, "affine"}, true, 61, 1000, 640, Dtype::bfloat16},
      {{QuantMode::affine, 32, 4, "affine"}, false, 50, 1024, 320, Dtype::float32},
  };
  const int before = qmm::num_threads();
  for (const Case& c : cases) {
    Weights W = c.transpose ? make_weights(c.f, 1, c.N, c.K, c.dt, 41)
                            : make_weights(c.f, 1, c.K, c.N, c.dt, 41);
    MatmulProblem p = make_problem(c.f, c.transpose, c.M, c.N, c.K, c.dt, W, 1, 1, 42);
    const auto results = outputs_for_1_to_4_threads(p);
    for (size_t i = 1; i < results.size(); ++i)
      EXPECT_EQ(results[i], results[0])
          << "threads " << i + 1 << " differ from 1 thread, M " << c.M;
  }
  {
    // gather_qmm decode: many one- and two-row GEMV buckets whose items the threads claim
    // dynamically (which thread runs an item varies from call to call), bf16 output.
    MatmulProblem p = gather_decode_problem({QuantMode::affine, 64, 4, "affine"}, 16, 320, 1024,
                                            {1, 0, 2, 1, 1, 0, 2, 0, 2, 1, 0, 2},
                                            {0, 2, 2, 3, 5, 7, 7, 9, 11, 12, 15, 15}, 43);
    for (int rep = 0; rep < 3; ++rep) {
      const auto results = outputs_for_1_to_4_threads(p);
      for (size_t i = 1; i < results.size(); ++i)
        EXPECT_EQ(results[i], results[0]) << "gather: threads " << i + 1 << " differ, rep " << rep;
    }
  }
  qmm::set_num_threads(before);
}

// The opt-in fast tier (int8 activations) against its own bound: <= 2e-2 relative.
TEST_P(CpuKernels, FastTier) {
  qmm::set_matmul_precision("fast");
  uint64_t seed = 5000;
  for (const Format& f :
       {Format{QuantMode::affine, 32, 4, "affine"}, Format{QuantMode::affine, 64, 4, "affine"},
        Format{QuantMode::affine, 128, 4, "affine"}, Format{QuantMode::mxfp4, 32, 4, "mxfp4"},
        Format{QuantMode::nvfp4, 16, 4, "nvfp4"}, Format{QuantMode::affine, 64, 3, "affine"}})
    for (Dtype dt : {Dtype::float32, Dtype::bfloat16})
      for (int64_t K : {int64_t{f.gs}, int64_t{f.gs} * 7, int64_t{1024}})
        for (int64_t M : {1, 2, 3, 5}) {
          const int64_t N = 21;
          Weights W = make_weights(f, 1, N, K, dt, seed++);
          MatmulProblem p = make_problem(f, true, M, N, K, dt, W, 1, 1, seed++);
          EXPECT_LE(check(p), 2e-2)
              << f.name << " gs " << f.gs << " " << dtname(dt) << " K " << K << " M " << M;
        }
  qmm::set_matmul_precision("exact");
}

// The fast tier's GEMM (>= 16 rows; int8 x per group, affine 4-bit) against the same bound:
// several KC blocks with a remainder, more rows than one x block (96), more columns than one
// prepared block (1024) with a partial panel; other formats and transpose=false run exact.
TEST_P(CpuKernels, FastTierGemm) {
  qmm::set_matmul_precision("fast");
  const bool simd = GetParam() != "generic";
  uint64_t seed = 7000;
  double worst = 0;
  struct Shape {
    int64_t M, N, Kgroups;
  };
  for (const Format& f :
       {Format{QuantMode::affine, 32, 4, "affine"}, Format{QuantMode::affine, 64, 4, "affine"},
        Format{QuantMode::affine, 128, 4, "affine"}, Format{QuantMode::mxfp4, 32, 4, "mxfp4"}})
    for (Dtype dt : {Dtype::float32, Dtype::bfloat16, Dtype::float16})
      for (const Shape& s :
           {Shape{16, 21, 1}, Shape{17, 40, 11}, Shape{23, 16, 7}, Shape{101, 1100, 5}}) {
        if (s.M > 100 && dt != Dtype::bfloat16) continue;  // the float64 reference is slow
        const int64_t K = s.Kgroups * f.gs;
        Weights W = make_weights(f, 1, s.N, K, dt, seed++);
        MatmulProblem p = make_problem(f, true, s.M, s.N, K, dt, W, 1, 1, seed++);
        const bool fast = simd && f.mode == QuantMode::affine;
        EXPECT_EQ(qmm::cpu::describe_kernel(p).find("fast_gemm") != std::string::npos, fast);
        const double e = check(p);
        EXPECT_LE(e, 2e-2) << f.name << " gs " << f.gs << " " << dtname(dt) << " M " << s.M << " N "
                           << s.N << " K " << K;
        if (fast) {
          EXPECT_GT(e, 1e-5) << "the int8 kernel did not run";
          worst = std::max(worst, e);
        }
      }
  // Bit-identical for any thread count, as the exact kernels.
  {
    const Format f{QuantMode::affine, 64, 4, "affine"};
    Weights W = make_weights(f, 1, 1100, 640, Dtype::bfloat16, 77);
    MatmulProblem p = make_problem(f, true, 61, 1100, 640, Dtype::bfloat16, W, 1, 1, 78);
    const int before = qmm::num_threads();
    const auto results = outputs_for_1_to_4_threads(p);
    qmm::set_num_threads(before);
    for (size_t i = 1; i < results.size(); ++i) EXPECT_EQ(results[i], results[0]);
  }
  // transpose=false has no fast kernel: exact.
  {
    const Format f{QuantMode::affine, 64, 4, "affine"};
    Weights W = make_weights(f, 1, 128, 64, Dtype::float32, 79);
    MatmulProblem p = make_problem(f, false, 20, 64, 128, Dtype::float32, W, 1, 1, 80);
    EXPECT_LE(check(p), 1e-5);
  }
  qmm::set_matmul_precision("exact");
  if (simd) std::printf("[ fast GEMM ] worst relative error %.2e\n", worst);
}

INSTANTIATE_TEST_SUITE_P(Sets, CpuKernels, ::testing::ValuesIn(kernel_sets()),
                         [](const auto& info) { return info.param; });

TEST(CpuKernelsApi, PrecisionSetting) {
  EXPECT_EQ(qmm::matmul_precision(),
            std::getenv("QMM_PRECISION") && std::string(std::getenv("QMM_PRECISION")) == "fast"
                ? "fast"
                : "exact");
  qmm::set_matmul_precision("fast");
  EXPECT_EQ(qmm::matmul_precision(), "fast");
  qmm::set_matmul_precision("exact");
  EXPECT_EQ(qmm::matmul_precision(), "exact");
  EXPECT_THROW(qmm::set_matmul_precision("medium"), std::invalid_argument);
}

TEST(CpuKernelsApi, DispatchReportsKernel) {
  const auto& f = qmm::cpu::cpu_features();
  std::string name = qmm::cpu::active_kernels_name();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma && f.f16c)
    EXPECT_EQ(name, "avx512");
  else if (f.avx2 && f.fma && f.f16c)
    EXPECT_EQ(name, "avx2");
  else
    EXPECT_EQ(name, "generic");
  EXPECT_FALSE(qmm::cpu::select_kernels("nonexistent"));
  qmm::cpu::select_kernels("");
}

// ---- stream executor: tasks run inline on an idle stream -------------------------------------
// A task allowed to run inline (small matmuls and conversions) runs on the caller's thread when
// the stream is idle and its inputs are computed; otherwise it queues. Either way a stream's
// tasks run one at a time, in submission order, and errors surface when the result is read.

using qmm::cpu::StreamExecutor;

TEST(StreamExecutor, RunsInlineWhenIdle) {
  StreamExecutor ex;
  std::thread::id ran_on;
  auto done = ex.submit(
      {}, [&] { ran_on = std::this_thread::get_id(); }, true);
  EXPECT_EQ(ran_on, std::this_thread::get_id());  // already ran, on this thread
  done->wait();
  // Not allowed inline: the executor's thread runs it.
  auto queued = ex.submit(
      {}, [&] { ran_on = std::this_thread::get_id(); }, false);
  queued->wait();
  EXPECT_NE(ran_on, std::this_thread::get_id());
  ex.synchronize();
}

TEST(StreamExecutor, InlineTaskQueuesBehindQueuedWork) {
  StreamExecutor ex;
  std::mutex m;
  std::vector<std::string> log;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  auto a = ex.submit({}, [&, gate] {
    gate.wait();
    std::lock_guard lock(m);
    log.push_back("A");
  });
  std::thread::id b_thread;
  auto b = ex.submit(
      {},
      [&] {
        b_thread = std::this_thread::get_id();
        std::lock_guard lock(m);
        log.push_back("B");
      },
      true);
  {
    std::lock_guard lock(m);
    EXPECT_TRUE(log.empty());  // B returned without running: A still holds the stream
  }
  release.set_value();
  b->wait();
  EXPECT_NE(b_thread, std::this_thread::get_id());
  // The stream is idle again: C runs inline, after B.
  auto c = ex.submit(
      {},
      [&] {
        std::lock_guard lock(m);
        log.push_back("C");
      },
      true);
  a->wait();
  c->wait();
  EXPECT_EQ(log, (std::vector<std::string>{"A", "B", "C"}));
  ex.synchronize();
}

TEST(StreamExecutor, InlineTaskWaitsForPendingInputs) {
  // An input still being computed (here by a task of another stream) sends the task to the queue
  // instead of blocking the caller; the task then waits for it there.
  StreamExecutor other, ex;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> produced{false};
  Array in = Array::zeros({1}, Dtype::float32);
  in.impl()->done = other.submit({}, [&, gate] {
    gate.wait();
    produced = true;
  });
  std::thread::id ran_on;
  bool saw_input = false;
  auto done = ex.submit(
      {in},
      [&] {
        ran_on = std::this_thread::get_id();
        saw_input = produced.load();
      },
      true);
  release.set_value();
  done->wait();
  EXPECT_TRUE(saw_input);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(StreamExecutor, WorkSubmittedDuringAnInlineTaskRunsAfterIt) {
  StreamExecutor ex;
  std::vector<std::string> log;  // written by one task at a time (the stream runs them in order)
  std::shared_ptr<qmm::detail::Completion> second;
  auto first = ex.submit(
      {},
      [&] {
        log.push_back("inline start");
        // Another thread submits while this task runs inline: it must queue, not overlap.
        std::thread t([&] {
          second = ex.submit(
              {}, [&] { log.push_back("second"); }, true);
        });
        t.join();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        log.push_back("inline end");
      },
      true);
  second->wait();
  first->wait();
  EXPECT_EQ(log, (std::vector<std::string>{"inline start", "inline end", "second"}));
}

TEST(StreamExecutor, InlineErrorsSurfaceWhenRead) {
  StreamExecutor ex;
  std::shared_ptr<qmm::detail::Completion> done;
  EXPECT_NO_THROW(done = ex.submit(
                      {}, [] { throw std::invalid_argument("inline failure"); }, true));
  EXPECT_THROW(done->wait(), std::invalid_argument);
  EXPECT_THROW(ex.synchronize(), std::invalid_argument);  // the first error since the last sync
  EXPECT_NO_THROW(ex.synchronize());                      // reported once
  // A task reading a failed array fails too, inline or queued.
  Array in = Array::zeros({1}, Dtype::float32);
  in.impl()->done = done;
  bool ran = false;
  auto dependent = ex.submit(
      {in}, [&] { ran = true; }, true);
  EXPECT_THROW(dependent->wait(), std::invalid_argument);
  EXPECT_FALSE(ran);
  EXPECT_THROW(ex.synchronize(), std::invalid_argument);
}

TEST(StreamExecutor, ConcurrentSubmittersKeepOrderAndNeverOverlap) {
  StreamExecutor ex;
  constexpr int kThreads = 3, kTasks = 300;
  std::atomic<int> running{0};
  std::atomic<bool> overlap{false};
  std::vector<std::vector<int>> seen(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      std::shared_ptr<qmm::detail::Completion> last;
      for (int i = 0; i < kTasks; ++i)
        last = ex.submit(
            {},
            [&, t, i] {
              if (running.fetch_add(1) != 0) overlap = true;
              seen[t].push_back(i);  // one task at a time: no lock needed
              if (i % 7 == 0) std::this_thread::yield();
              running.fetch_sub(1);
            },
            i % 3 != 0);  // a mix of inline-eligible and queue-only tasks
      last->wait();
    });
  for (auto& th : ts) th.join();
  ex.synchronize();
  EXPECT_FALSE(overlap.load());
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), size_t{kTasks});
    for (int i = 0; i < kTasks; ++i) EXPECT_EQ(seen[t][i], i) << "thread " << t;
  }
}

TEST(StreamExecutor, DecodeCallsThroughTheApiRunInlineAndInOrder) {
  // The public API: a chain of small matmuls, each reading the previous result, on a fresh
  // stream, then a large one (queued) followed by small ones (queued behind it): same values as
  // the same calls made one at a time with a wait after each.
  qmm::Stream s = qmm::new_stream(qmm::Device::cpu());
  Array w = Array::random_normal({256, 256}, Dtype::float32, 3);
  qmm::Quantized q = qmm::quantize(w, 64, 4, "affine", std::nullopt, s);
  Array x0 = Array::random_normal({1, 256}, Dtype::float32, 4);
  // 8192 x 256 x 256 multiply-adds: above the inline limit, so it queues.
  Array big_x = Array::random_normal({8192, 256}, Dtype::float32, 5);
  auto step = [&](const Array& x) {
    return qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, true, 64, 4, "affine", s);
  };
  std::vector<std::vector<float>> want;
  {
    Array x = x0;
    for (int i = 0; i < 4; ++i) {
      x = step(x);
      want.push_back(x.to_vector<float>());
    }
  }
  Array x = x0;
  std::vector<Array> got;
  Array big = qmm::quantized_matmul(big_x, q.w_q, q.scales, q.biases, true, 64, 4, "affine", s);
  for (int i = 0; i < 4; ++i) got.push_back(x = step(x));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i].to_vector<float>(), want[i]) << "step " << i;
  EXPECT_EQ(big.shape(), (qmm::Shape{8192, 256}));
  qmm::synchronize(s);
}

}  // namespace
