// The fast CPU matmul driver: CPU feature detection, kernel-set choice, the precision tier,
// bucketing by weight matrix (gather_qmm), x preparation and the static thread partition.
#include "cpu/fast_matmul.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "qmm/config.h"

namespace qmm::cpu {

namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_os) return f;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.fma = fma;
  f.f16c = f16c;
  f.avx2 = (b & (1u << 5)) != 0;
  if (zmm_os) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vbmi = c & (1u << 1);
    f.avx512vnni = c & (1u << 11);
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512bf16 = a1 & (1u << 5);
  }
  return f;
}

bool avx2_ok(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool avx512_ok(const CpuFeatures& f) {
  return avx2_ok(f) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
}

const KernelSet* best_kernels(const std::string& want) {
  const CpuFeatures& f = cpu_features();
  if (want == "generic") return nullptr;
  if (want == "avx2") return avx2_ok(f) ? avx2_kernels() : nullptr;
  if (want == "avx512") return avx512_ok(f) ? avx512_kernels() : nullptr;
  if (avx512_ok(f)) return avx512_kernels();
  if (avx2_ok(f)) return avx2_kernels();
  return nullptr;
}

std::mutex g_select_mutex;
std::atomic<const KernelSet*> g_kernels{nullptr};
std::atomic<bool> g_kernels_set{false};

std::atomic<int> g_precision{-1};  // -1 = not read from the environment yet

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const KernelSet* active_kernels() {
  if (!g_kernels_set.load(std::memory_order_acquire)) {
    std::lock_guard lock(g_select_mutex);
    if (!g_kernels_set.load(std::memory_order_relaxed)) {
      const char* env = std::getenv("QMM_CPU_KERNELS");
      g_kernels.store(best_kernels(env ? env : ""), std::memory_order_relaxed);
      g_kernels_set.store(true, std::memory_order_release);
    }
  }
  return g_kernels.load(std::memory_order_acquire);
}

bool select_kernels(const std::string& name) {
  if (!name.empty() && name != "generic" && name != "avx2" && name != "avx512") return false;
  const KernelSet* k = best_kernels(name);
  if (!name.empty() && name != "generic" && k == nullptr) return false;
  std::lock_guard lock(g_select_mutex);
  g_kernels.store(k, std::memory_order_relaxed);
  g_kernels_set.store(true, std::memory_order_release);
  return true;
}

std::string active_kernels_name() {
  const KernelSet* k = active_kernels();
  return k ? k->name : "generic";
}

Precision matmul_precision() {
  int v = g_precision.load(std::memory_order_acquire);
  if (v < 0) {
    const char* env = std::getenv("QMM_PRECISION");
    v = (env && std::string(env) == "fast") ? 1 : 0;
    int expected = -1;
    g_precision.compare_exchange_strong(expected, v);
    v = g_precision.load();
  }
  return v == 1 ? Precision::fast : Precision::exact;
}

namespace {

std::vector<int64_t> resolve(const core::BatchMap& map, const core::MatmulProblem& p) {
  std::vector<int64_t> out(static_cast<size_t>(p.batch));
  const int64_t* idx = map.indices ? static_cast<const int64_t*>(map.indices->raw_data()) : nullptr;
  for (int64_t b = 0; b < p.batch; ++b) out[b] = core::map_batch(map, p.batch_shape, b, idx);
  return out;
}

// Rows of x per weight matrix up to which the GEMV kernel runs (one pass), and from which the
// panel GEMM replaces the medium-M GEMV passes.
constexpr int64_t kGemvMaxRows = 3;
constexpr int64_t kGemmMinRows = 16;

struct Item {
  int32_t bucket;
  int64_t n0, n1;
  double cost;
};

}  // namespace

std::string describe_kernel(const core::MatmulProblem& p) {
  const KernelSet* ks = active_kernels();
  if (!ks) return "generic";
  std::string name = ks->name;
  if (!p.transpose) return name + "/gemm_nt";
  // The rows per bucket are M for dense problems (one weight matrix per batch).
  int64_t rows = p.M;
  if (p.w_batches == 1 && p.batch > 1) rows = p.M * p.batch;
  MatmulPlan P;
  P.mode = p.spec.mode;
  P.bits = p.spec.bits;
  P.gs = p.spec.group_size;
  P.transpose = p.transpose;
  const bool fast = matmul_precision() == Precision::fast;
  if (rows < kGemmMinRows) {
    if (fast && rows <= kGemvMaxRows && ks->has_fast(P)) return name + "/fast_gemv";
    return name + (rows <= kGemvMaxRows ? "/gemv" : "/gemv_medium");
  }
  if (fast && ks->has_fast_gemm(P)) return name + "/fast_gemm";
  return name + "/gemm";
}

void fast_matmul(const core::MatmulProblem& p) {
  check_indices(p.x_map, p.batch, p.x_batches, "lhs_indices");
  check_indices(p.w_map, p.batch, p.w_batches, "rhs_indices");
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  const KernelSet* ks = active_kernels();
  if (!ks) {
    generic_matmul(p);
    return;
  }
  const int64_t M = p.M, N = p.N, K = p.K, B = p.batch;
  std::vector<int64_t> xmap = resolve(p.x_map, p), wmap = resolve(p.w_map, p);

  // Buckets: output batches ordered by weight matrix (stable), consecutive runs share it.
  std::vector<int64_t> order(static_cast<size_t>(B));
  std::iota(order.begin(), order.end(), 0);
  if (!std::is_sorted(wmap.begin(), wmap.end()))  // sorted_indices: already in order
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return wmap[a] < wmap[b]; });
  std::vector<int64_t> xrows, orows;
  xrows.reserve(static_cast<size_t>(B * M));
  orows.reserve(static_cast<size_t>(B * M));
  std::vector<Bucket> buckets;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t b = order[i];
    if (buckets.empty() || buckets.back().wb != wmap[b]) {
      Bucket bk;
      bk.wb = wmap[b];
      bk.begin = static_cast<int64_t>(xrows.size());
      buckets.push_back(bk);
    }
    for (int64_t m = 0; m < M; ++m) {
      xrows.push_back(xmap[b] * M + m);
      orows.push_back(b * M + m);
    }
    buckets.back().count += M;
  }

  MatmulPlan P;
  static std::atomic<uint64_t> calls{0};
  P.call_id = ++calls;
  P.mode = p.spec.mode;
  P.bits = p.spec.bits;
  P.gs = p.spec.group_size;
  P.transpose = p.transpose;
  P.precision = matmul_precision();
  P.M = M;
  P.N = N;
  P.K = K;
  P.rows = p.w.shape(1);
  P.row_bytes = p.w.shape(2) * 4;
  P.groups = p.scales.shape(2);
  P.row_elems = P.groups * P.gs;
  P.w = static_cast<const uint8_t*>(p.w.raw_data());
  P.sdt = p.scales.dtype();
  P.scales = p.scales.raw_data();
  P.biases = p.biases ? p.biases->raw_data() : nullptr;
  const bool affine = P.mode == core::QuantMode::affine;

  // x as float32 rows.
  const int64_t xrows_total = p.x_batches * M;
  std::vector<float> xf;
  if (p.x.dtype() == Dtype::float32) {
    P.x = static_cast<const float*>(p.x.raw_data());
  } else {
    xf.resize(static_cast<size_t>(xrows_total * K));
    ks->to_f32(p.x.raw_data(), p.x.dtype(), xf.data(), xrows_total * K);
    P.x = xf.data();
  }
  // Sum of x per (row, group of K) for the bias term of the GEMV kernels.
  std::vector<float> xsum;
  if (P.transpose && affine) {
    const int64_t G = K / P.gs;
    xsum.resize(static_cast<size_t>(xrows_total * G));
    for (int64_t r = 0; r < xrows_total; ++r)
      for (int64_t g = 0; g < G; ++g) {
        const float* xr = P.x + r * K + g * P.gs;
        float s = 0.0f;
        for (int i = 0; i < P.gs; ++i) s += xr[i];
        xsum[r * G + g] = s;
      }
    P.xsum = xsum.data();
  }
  // Fast tier: x as int8 per (row, group) in the kernel set's block layout.
  std::vector<int8_t> xq;
  std::vector<float> xqs;
  std::vector<int32_t> xqsum;
  // The fast GEMM (buckets of >= 16 rows) quantizes x itself, block by block; the fast GEMV
  // (<= 3 rows) reads the rows prepared here. Without either, the call runs exact.
  bool any_gemv = false;
  for (const Bucket& bk : buckets) any_gemv = any_gemv || bk.count <= kGemvMaxRows;
  const bool fast_gemm = P.precision == Precision::fast && ks->has_fast_gemm(P);
  if (P.precision == Precision::fast && ks->has_fast(P)) {
    if (any_gemv) {
      const int64_t blk = ks->fast_block(), half = blk / 2;
      const int64_t Kp = (K + blk - 1) / blk * blk, G = K / P.gs;
      xq.assign(static_cast<size_t>(xrows_total * Kp), 0);
      xqs.assign(static_cast<size_t>(xrows_total * (Kp / 8)), 0.0f);
      xqsum.assign(static_cast<size_t>(xrows_total * (Kp / 8)), 0);
      std::vector<float> gscale(static_cast<size_t>(G));
      for (int64_t r = 0; r < xrows_total; ++r) {
        const float* xr = P.x + r * K;
        int8_t* q = xq.data() + r * Kp;
        for (int64_t g = 0; g < G; ++g) {
          float amax = 0.0f;
          for (int i = 0; i < P.gs; ++i) amax = std::max(amax, std::fabs(xr[g * P.gs + i]));
          gscale[g] = amax / 127.0f;
        }
        for (int64_t k = 0; k < K; ++k) {
          const float sc = gscale[k / P.gs];
          const float v = sc > 0.0f ? std::nearbyint(xr[k] / sc) : 0.0f;
          const int64_t b0 = k / blk * blk, e = k - b0;
          q[b0 + (e & 1) * half + e / 2] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
        }
        for (int64_t k = 0; k < K; k += 8) {
          xqs[r * (Kp / 8) + k / 8] = gscale[k / P.gs];
          // The kernel's int32 lane i of a block covers elements 8i..8i+7 of that block.
          int32_t sum = 0;
          for (int j = 0; j < 8; ++j) {
            const int64_t kk = k + j, b0 = kk / blk * blk, e = kk - b0;
            sum += q[b0 + (e & 1) * half + e / 2];
          }
          xqsum[r * (Kp / 8) + k / 8] = 8 * sum;
        }
      }
      P.xq = xq.data();
      P.xq_scale = xqs.data();
      P.xq_sum8 = xqsum.data();
    } else if (!fast_gemm) {
      P.precision = Precision::exact;
    }
  } else {
    P.precision = Precision::exact;
  }
  // float32 results: directly in the output, or in a scratch converted by each item.
  std::vector<float> accbuf;
  P.out = p.out.raw_data();
  P.out_dtype = p.out.dtype();
  if (P.out_dtype == Dtype::float32) {
    P.acc = static_cast<float*>(P.out);
  } else {
    accbuf.resize(static_cast<size_t>(B * M * N));
    P.acc = accbuf.data();
  }

  // Work items: (bucket, column block). Column blocks are multiples of 32 (the widest
  // transpose=false panel) and small enough to give every thread several items. A thread runs
  // consecutive GEMM items of one bucket as one call (below), so their blocks can be narrow
  // (an even split) without packing x more often.
  std::vector<Item> items;
  double total = 0;
  for (size_t bi = 0; bi < buckets.size(); ++bi) {
    const Bucket& bk = buckets[bi];
    const int64_t nb = 64;
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
      const int64_t n1 = std::min(N, n0 + nb);
      // Cost ~ multiply-adds plus the decode work (about 8 multiply-adds per weight).
      double c = static_cast<double>(n1 - n0) * K * (bk.count + 8);
      items.push_back({static_cast<int32_t>(bi), n0, n1, c});
      total += c;
    }
  }
  // Threads: below ~1M multiply-add equivalents one thread is faster than waking another.
  ThreadPool& pool = thread_pool();
  int threads = pool.size();
  threads = static_cast<int>(std::min<double>(threads, std::max(1.0, total / (1 << 20))));
  threads = std::min<int>(threads, static_cast<int>(items.size()));
  // Contiguous item ranges of about equal cost.
  std::vector<size_t> split(static_cast<size_t>(threads) + 1, items.size());
  split[0] = 0;
  {
    double acc = 0;
    int t = 1;
    for (size_t i = 0; i < items.size() && t < threads; ++i) {
      acc += items[i].cost;
      while (t < threads && acc >= total * t / threads) split[t++] = i + 1;
    }
  }
  // GEMM kernels compute every output element with the same operations whatever the column
  // range of a call, so a thread's consecutive items of one GEMM bucket run as one call (x is
  // packed once per call and column block); GEMV items run one by one.
  auto is_gemm = [&](const Bucket& bk) { return !P.transpose || bk.count >= kGemmMinRows; };
  // Runs items [i, j) of one bucket as one kernel call and converts their outputs.
  auto run_range = [&](size_t i, size_t j) {
    const Item& it = items[i];
    const Bucket& bk = buckets[it.bucket];
    const int64_t n0 = it.n0, n1 = items[j - 1].n1;
    ks->run(P, bk, xrows.data() + bk.begin, orows.data() + bk.begin, n0, n1);
    if (P.out_dtype != Dtype::float32) {
      for (int64_t r = 0; r < bk.count; ++r) {
        const int64_t o = orows[bk.begin + r];
        char* dst = static_cast<char*>(P.out) + (o * N + n0) * 2;
        ks->from_f32(P.acc + o * N + n0, P.out_dtype, dst, n1 - n0);
      }
    }
  };
  auto run_items = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (size_t i = split[t]; i < split[t + 1];) {
        size_t j = i + 1;
        if (is_gemm(buckets[items[i].bucket]))
          while (j < split[t + 1] && items[j].bucket == items[i].bucket &&
                 items[j].n0 == items[j - 1].n1)
            ++j;
        run_range(i, j);
        i = j;
      }
  };
  bool any_gemm = false;
  for (const Bucket& bk : buckets) any_gemm = any_gemm || is_gemm(bk);
  if (threads <= 1) {
    run_items(0, 1);
  } else if (!any_gemm) {
    // GEMV items (decode) are claimed in small blocks from a shared counter instead of a fixed
    // half each: they are compute-bound on 2 cores, and on a shared VM one core often runs
    // slower (a busy neighbour, a late wake-up of the worker), so a static split waits for the
    // slower half. Blocks of about 1/8 of a thread's share keep each thread's weight reads in
    // long contiguous runs (hardware prefetch) while still balancing. Each item computes its
    // columns alone with the same instructions, so the results stay bit-identical whichever
    // thread runs it.
    const size_t nit = items.size();
    const size_t blk = std::max<size_t>(1, nit / (static_cast<size_t>(threads) * 8));
    std::atomic<size_t> next{0};
    pool.parallel_for(threads, 1, [&](int64_t, int64_t) {
      for (size_t b; (b = next.fetch_add(blk, std::memory_order_relaxed)) < nit;)
        for (size_t i = b; i < std::min(nit, b + blk); ++i) run_range(i, i + 1);
    });
  } else {
    pool.parallel_for(threads, 1, run_items);
  }
}

void threaded_matmul(const core::MatmulProblem& p) { fast_matmul(p); }

}  // namespace qmm::cpu

namespace qmm {

void set_matmul_precision(std::string_view tier) {
  if (tier == "exact")
    cpu::g_precision.store(0);
  else if (tier == "fast")
    cpu::g_precision.store(1);
  else
    throw std::invalid_argument(
        "[set_matmul_precision] The precision must be \"exact\" or \"fast\" but got \"" +
        std::string(tier) + "\".");
}

std::string matmul_precision() {
  return cpu::matmul_precision() == cpu::Precision::fast ? "fast" : "exact";
}

}  // namespace qmm
