// `qmm bench --device cpu`: times qmm's CPU quantized_matmul / gather_qmm over the CPU shapes of
// docs/bench.md with, in the same run, the machine's measured read bandwidth and float32 FMA
// peak, OpenBLAS sgemm on the dequantized float32 weights (when built with OpenBLAS) and MLX's
// CPU quantized_matmul (bench/mlx_cpu_baseline.py, when `mlx` imports). Every case is checked
// against sgemm on the dequantized weights before it is timed. Prints a table and writes JSON
// (bench/results/cpu-<date>.json by default).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "cpu/fast_matmul.h"
#include "qmm/qmm.h"

#if defined(QMM_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace qmm_tools {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---- ceilings ---------------------------------------------------------------------------------
// Multi-threaded streaming read of a buffer (sum of 64-bit words); best of `reps`.
double measure_read_bw(int threads, size_t bytes = size_t{1} << 30, int reps = 5) {
  static std::vector<uint64_t> buf;
  const size_t n = bytes / 8;
  if (buf.size() < n) buf.assign(n, 1);
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<std::thread> th;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    double t0 = now_s();
    for (int t = 0; t < threads; ++t)
      th.emplace_back([&, t] {
        size_t b = n / threads * t, e = t == threads - 1 ? n : n / threads * (t + 1);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 4 <= e; i += 4) {
          s0 += buf[i];
          s1 += buf[i + 1];
          s2 += buf[i + 2];
          s3 += buf[i + 3];
        }
        sums[t] = s0 + s1 + s2 + s3;
      });
    for (auto& t : th) t.join();
    double dt = now_s() - t0;
    best = std::max(best, n * 8.0 / dt / 1e9);
  }
  return best;
}

__attribute__((target("avx2,fma"))) double fma_loop(long iters) {
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(1.0f + i);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < 10; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
    __asm__ volatile(""
                     : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]),
                       "+x"(a[6]), "+x"(a[7]), "+x"(a[8]), "+x"(a[9]));
  }
  float f[8];
  _mm256_storeu_ps(f, a[0]);
  return f[0];
}

__attribute__((target("avx512f"))) double fma_loop512(long iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.0f + i);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __asm__ volatile(""
                     : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]),
                       "+v"(a[6]), "+v"(a[7]), "+v"(a[8]), "+v"(a[9]), "+v"(a[10]), "+v"(a[11]));
  }
  return _mm512_reduce_add_ps(a[0]);
}

// float32 FMA peak (GFLOP/s) over `threads` threads, with the widest vectors the CPU has.
double measure_fma_peak(int threads, long iters = 20000000, int reps = 3) {
  const bool z = qmm::cpu::cpu_features().avx512f;
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<std::thread> th;
    double t0 = now_s();
    for (int t = 0; t < threads; ++t)
      th.emplace_back([&] {
        volatile double r = z ? fma_loop512(iters) : fma_loop(iters);
        (void)r;
      });
    for (auto& t : th) t.join();
    double dt = now_s() - t0;
    double flops = threads * static_cast<double>(iters) * (z ? 12 * 32 : 10 * 16);
    best = std::max(best, flops / dt / 1e9);
  }
  return best;
}

// ---- cases ------------------------------------------------------------------------------------
struct Case {
  std::string op = "quantized_matmul";
  std::string mode = "affine";
  int bits = 4, gs = 64;
  std::string dtype = "bfloat16";
  int64_t M = 1, N = 4096, K = 4096;
  int64_t experts = 0, top_k = 0, tokens = 0;
  bool sorted = false;
  bool cold = true;
  std::string tag;  // which goal the case serves
};

std::string key(const Case& c) {
  char b[256];
  std::snprintf(b, sizeof b, "%s|%s|%d|%d|%s|%lld|%lld|%lld|%lld|%lld|%lld|%d", c.op.c_str(),
                c.mode.c_str(), c.bits, c.gs, c.dtype.c_str(), (long long)c.M, (long long)c.N,
                (long long)c.K, (long long)c.experts, (long long)c.top_k, (long long)c.tokens,
                c.sorted ? 1 : 0);
  return b;
}

std::vector<Case> goal_cases() {
  std::vector<Case> v;
  for (std::string dt : {"float32", "bfloat16"}) {
    Case c;
    c.dtype = dt;
    c.tag = "goal:gemv";
    v.push_back(c);
    Case h = c;
    h.cold = false;
    h.tag = "goal:gemv-hot";
    v.push_back(h);
  }
  for (auto [mode, bits, gs] : std::vector<std::tuple<const char*, int, int>>{{"affine", 8, 64},
                                                                              {"affine", 2, 64},
                                                                              {"affine", 3, 64},
                                                                              {"affine", 5, 64},
                                                                              {"affine", 6, 64},
                                                                              {"affine", 4, 32},
                                                                              {"affine", 4, 128},
                                                                              {"mxfp4", 4, 32},
                                                                              {"nvfp4", 4, 16},
                                                                              {"mxfp8", 8, 32}}) {
    Case c;
    c.mode = mode;
    c.bits = bits;
    c.gs = gs;
    c.tag = "goal:gemv-modes";
    v.push_back(c);
  }
  {
    Case c;
    c.dtype = "float16";
    c.tag = "goal:gemv";
    v.push_back(c);
  }
  for (int64_t M : {8, 512})
    for (std::string dt : {"float32", "bfloat16"}) {
      Case c;
      c.M = M;
      c.dtype = dt;
      c.cold = false;
      c.tag = M == 512 ? "goal:gemm" : "goal:medium";
      v.push_back(c);
    }
  for (int64_t T : {1, 4, 16}) {
    Case c;
    c.op = "gather_qmm";
    c.experts = 128;
    c.top_k = 8;
    c.tokens = T;
    c.M = 1;
    c.N = 768;
    c.K = 2048;
    c.sorted = true;
    c.tag = "goal:moe-decode";
    v.push_back(c);
  }
  return v;
}

std::vector<Case> full_cases() {
  std::vector<Case> v;
  for (auto [N, K] :
       std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {11008, 4096}, {4096, 11008}})
    for (int64_t M : {1, 4, 16, 64, 256}) {
      Case c;
      c.M = M;
      c.N = N;
      c.K = K;
      c.cold = M <= 16;
      c.tag = "bench.md:dense";
      v.push_back(c);
    }
  // Qwen3-30B-A3B MoE: E=128, top-8, w13 N=1536 K=2048, w2 N=2048 K=768.
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1536, 2048}, {2048, 768}})
    for (int64_t T : {1, 16, 64})
      for (bool sorted : {true, false}) {
        Case c;
        c.op = "gather_qmm";
        c.experts = 128;
        c.top_k = 8;
        c.tokens = T;
        c.N = N;
        c.K = K;
        c.sorted = sorted;
        c.tag = "bench.md:moe";
        v.push_back(c);
      }
  return v;
}

qmm::Dtype parse_dt(const std::string& s) { return qmm::parse_dtype(s); }

// Bytes that must move: packed weights + scales (+ biases), x and y, each once. For gather,
// only the active experts' weights.
double case_bytes(const Case& c, int64_t active_experts) {
  const double elems = static_cast<double>(c.N) * c.K;
  const double ssize = c.mode == "affine" ? 2.0 * qmm::itemsize(parse_dt(c.dtype)) : 1.0;
  double w = elems * c.bits / 8 + elems / c.gs * ssize;
  const int64_t mats = c.op == "gather_qmm" ? active_experts : 1;
  const int64_t rows = c.op == "gather_qmm" ? c.tokens * c.top_k : c.M;
  const double xs = qmm::itemsize(parse_dt(c.dtype));
  return w * mats + rows * (c.K + c.N) * xs;
}

struct Measured {
  double time_us = 0, sgemm_us = -1, err = 0, floor_us = 0, bytes = 0, flops = 0;
  std::string kernel;
};

struct Env {
  int threads = 1;
  double read_gbps = 0, fma_gflops = 0, sgemm_gflops = 0;
  int reps = 7;
  bool blas = true;
};

std::vector<float> dequant_f32(const qmm::Quantized& q, const Case& c) {
  qmm::Array d = qmm::dequantize(q.w_q, q.scales, q.biases, c.gs, c.bits, c.mode, std::nullopt,
                                 qmm::Dtype::float32);
  return d.to_vector<float>();
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

#if defined(QMM_HAVE_OPENBLAS)
void sgemm_xwt(const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N),
              static_cast<int>(K), 1.0f, x, static_cast<int>(K), w, static_cast<int>(K), 0.0f, y,
              static_cast<int>(N));
}
#endif

Measured run_dense(const Case& c, const Env& env) {
  Measured r;
  const qmm::Dtype dt = parse_dt(c.dtype);
  const int64_t M = c.M, N = c.N, K = c.K;
  qmm::Array w = qmm::Array::random_normal({N, K}, dt, 1234);
  qmm::Quantized q = qmm::quantize(w, c.gs, c.bits, c.mode);
  qmm::Array x = qmm::Array::random_normal({M, K}, dt, 99, 0.0f, 1.0f);
  r.bytes = case_bytes(c, 1);
  r.flops = 2.0 * M * N * K;
  // Cold: enough copies of the quantized weights to exceed the last-level cache several times.
  const double wbytes =
      static_cast<double>(q.w_q.nbytes()) + q.scales.nbytes() + (q.biases ? q.biases->nbytes() : 0);
  int copies = c.cold ? static_cast<int>(std::ceil(160e6 / wbytes)) : 1;
  copies = std::max(1, std::min(copies, 64));
  std::vector<qmm::Quantized> qs;
  qs.push_back(q);
  for (int i = 1; i < copies; ++i) {
    qmm::Quantized cp{
        q.w_q.to(qmm::Device::cpu()), q.scales.to(qmm::Device::cpu()),
        q.biases ? std::optional<qmm::Array>(q.biases->to(qmm::Device::cpu())) : std::nullopt};
    qs.push_back(cp);
  }
  auto call = [&](int i) {
    const auto& qq = qs[static_cast<size_t>(i % copies)];
    qmm::Array y =
        qmm::quantized_matmul(x, qq.w_q, qq.scales, qq.biases, true, c.gs, c.bits, c.mode);
    y.wait();
    return y;
  };
  // Correctness first: against sgemm on the dequantized float32 weights (or the reference on
  // a slice when OpenBLAS is absent).
  qmm::Array y = call(0);
  std::vector<float> yq = y.to_float_vector();
  std::vector<float> xf = x.to_float_vector();
  std::vector<float> wd = dequant_f32(q, c);
  std::vector<float> yref(static_cast<size_t>(M * N));
#if defined(QMM_HAVE_OPENBLAS)
  if (env.blas) {
    sgemm_xwt(xf.data(), wd.data(), yref.data(), M, N, K);
  } else
#endif
  {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += static_cast<double>(xf[m * K + k]) * wd[n * K + k];
        yref[m * N + n] = static_cast<float>(s);
      }
  }
  r.err = rel_err(yq, yref);
  // Time qmm.
  int reps = env.reps;
  const double est = r.flops / 50e9;  // rough seconds per call
  if (est > 0.5) reps = std::max(3, reps / 2);
  for (int i = 0; i < copies && i < 3; ++i) call(i);  // warm-up
  // Samples of qmm and sgemm alternate, so that both see the same machine load.
  std::vector<double> ts, tb;
  int it = 3;
#if defined(QMM_HAVE_OPENBLAS)
  if (env.blas) sgemm_xwt(xf.data(), wd.data(), yref.data(), M, N, K);
#endif
  for (int rep = 0; rep < reps; ++rep) {
    // One qmm sample = a pass over all copies (cold) or 16 calls (hot), per call time.
    const int calls = std::max(copies, M <= 16 ? 16 : 1);
    double t0 = now_s();
    for (int k = 0; k < calls; ++k) call(it++);
    ts.push_back((now_s() - t0) / calls);
#if defined(QMM_HAVE_OPENBLAS)
    if (env.blas) {
      const int bcalls = M <= 16 ? 4 : 1;
      t0 = now_s();
      for (int k = 0; k < bcalls; ++k) sgemm_xwt(xf.data(), wd.data(), yref.data(), M, N, K);
      tb.push_back((now_s() - t0) / bcalls);
    }
#endif
  }
  r.time_us = median(ts) * 1e6;
  if (!tb.empty()) r.sgemm_us = median(tb) * 1e6;
  return r;
}

Measured run_gather(const Case& c, const Env& env, int64_t* active_out) {
  Measured r;
  const qmm::Dtype dt = parse_dt(c.dtype);
  const int64_t E = c.experts, T = c.tokens, k = c.top_k, N = c.N, K = c.K;
  qmm::Array w = qmm::Array::random_normal({E, N, K}, dt, 4321);
  qmm::Quantized q = qmm::quantize(w, c.gs, c.bits, c.mode);
  // Routing: top-k distinct experts per token, uniformly random (balanced on average). Calls
  // rotate over kRoutings routings so that, with the weight copies, the experts touched do not
  // stay in the last-level cache (cold weights).
  constexpr int kRoutings = 16;
  std::mt19937 rng(7);
  qmm::Array xr = qmm::Array::random_normal({T, 1, K}, dt, 77);
  struct Routing {
    std::vector<int32_t> lhs, rhs;
    qmm::Array li, ri;
    int64_t active = 0;
  };
  std::vector<Routing> routes(kRoutings);
  double active_sum = 0;
  for (Routing& rt : routes) {
    std::vector<int32_t> idx;
    for (int64_t t = 0; t < T; ++t) {
      std::vector<int32_t> all(static_cast<size_t>(E));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      for (int64_t j = 0; j < k; ++j) idx.push_back(all[j]);
    }
    // sorted: as mlx-lm does, flatten, argsort, and gather the x rows by the order.
    std::vector<int64_t> order(idx.size());
    std::iota(order.begin(), order.end(), 0);
    if (c.sorted)
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
    for (int64_t o : order) {
      rt.lhs.push_back(static_cast<int32_t>(o / k));
      rt.rhs.push_back(idx[o]);
    }
    const int64_t P = static_cast<int64_t>(rt.rhs.size());
    rt.li = qmm::Array::from_vector(rt.lhs, {P});
    rt.ri = qmm::Array::from_vector(rt.rhs, {P});
    std::vector<int32_t> u(rt.rhs.begin(), rt.rhs.end());
    std::sort(u.begin(), u.end());
    rt.active = std::unique(u.begin(), u.end()) - u.begin();
    active_sum += static_cast<double>(rt.active);
  }
  const int64_t P = T * k;
  *active_out = static_cast<int64_t>(std::lround(active_sum / kRoutings));
  r.bytes = case_bytes(c, 1) * 0 + 0;  // set below from the mean active experts
  {
    const double elems = static_cast<double>(N) * K;
    const double ssize = c.mode == "affine" ? 2.0 * qmm::itemsize(dt) : 1.0;
    const double wexp = elems * c.bits / 8 + elems / c.gs * ssize;
    r.bytes = wexp * active_sum / kRoutings + P * (K + N) * static_cast<double>(qmm::itemsize(dt));
  }
  r.flops = 2.0 * P * N * K;
  const double wbytes =
      static_cast<double>(q.w_q.nbytes()) + q.scales.nbytes() + (q.biases ? q.biases->nbytes() : 0);
  int copies = std::max(1, std::min(4, static_cast<int>(std::ceil(160e6 / wbytes))));
  std::vector<qmm::Quantized> qs{q};
  for (int i = 1; i < copies; ++i)
    qs.push_back(
        {q.w_q.to(qmm::Device::cpu()), q.scales.to(qmm::Device::cpu()),
         q.biases ? std::optional<qmm::Array>(q.biases->to(qmm::Device::cpu())) : std::nullopt});
  auto call = [&](int i) {
    const auto& qq = qs[static_cast<size_t>((i / kRoutings) % copies)];
    const Routing& rt = routes[static_cast<size_t>(i % kRoutings)];
    qmm::Array y = qmm::gather_qmm(xr, qq.w_q, qq.scales, qq.biases, rt.li, rt.ri, true, c.gs,
                                   c.bits, c.mode, c.sorted);
    y.wait();
    return y;
  };
  qmm::Array y = call(0);  // (P, 1, N), routing 0
  std::vector<float> yq = y.to_float_vector();
  std::vector<float> xf = xr.to_float_vector();
  const std::vector<int32_t>& lhs = routes[0].lhs;
  const std::vector<int32_t>& rhs = routes[0].rhs;
  std::vector<int32_t> uniq(rhs.begin(), rhs.end());
  std::sort(uniq.begin(), uniq.end());
  uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
  // Reference: per pair, x row against the dequantized expert (float64 sums).
  std::vector<float> yref(static_cast<size_t>(P * N));
  for (int32_t e : uniq) {
    qmm::Array we = q.w_q.slice(0, e, e + 1), se = q.scales.slice(0, e, e + 1);
    std::optional<qmm::Array> be;
    if (q.biases) be = q.biases->slice(0, e, e + 1);
    std::vector<float> wd =
        qmm::dequantize(we, se, be, c.gs, c.bits, c.mode, std::nullopt, qmm::Dtype::float32)
            .to_vector<float>();
    for (int64_t p = 0; p < P; ++p) {
      if (rhs[p] != e) continue;
      const float* xrow = xf.data() + lhs[p] * K;
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t kk = 0; kk < K; ++kk) s += static_cast<double>(xrow[kk]) * wd[n * K + kk];
        yref[p * N + n] = static_cast<float>(s);
      }
    }
  }
  r.err = rel_err(yq, yref);
  for (int i = 1; i < 3; ++i) call(i);
  std::vector<double> ts;
  int it = 3;
  for (int rep = 0; rep < env.reps; ++rep) {
    const int calls = kRoutings * copies;
    double t0 = now_s();
    for (int kk = 0; kk < calls; ++kk) call(it++);
    ts.push_back((now_s() - t0) / calls);
  }
  r.time_us = median(ts) * 1e6;
  return r;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  return "unknown CPU";
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d", std::gmtime(&t));
  return b;
}

const char* kUsage = R"(qmm bench --device cpu [options]
  --set goals|full|all   cases: the issue's goal cases (default), docs/bench.md CPU shapes, both
  --threads N            threads (default: QMM_NUM_THREADS or all hardware threads)
  --reps N               timed samples per case, median reported (default 7)
  --out FILE             JSON output (default bench/results/cpu-<date>.json)
  --filter TEXT          only cases whose key contains TEXT
  --no-blas              skip the OpenBLAS sgemm baseline
  --no-mlx               skip the MLX baseline
  --mlx-python PATH      python with mlx (default .venv/bin/python, then python3)
  --precision exact|fast numeric tier of qmm's kernels
)";

}  // namespace

int run_cpu_bench(const std::vector<std::string>& args) {
  std::string set = "goals", out, filter, py;
  Env env;
  env.threads = qmm::num_threads();
  bool mlx = true;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument("missing value after " + a);
      return args[++i];
    };
    if (a == "--set")
      set = next();
    else if (a == "--threads")
      env.threads = std::stoi(next());
    else if (a == "--reps")
      env.reps = std::stoi(next());
    else if (a == "--out")
      out = next();
    else if (a == "--filter")
      filter = next();
    else if (a == "--no-blas")
      env.blas = false;
    else if (a == "--no-mlx")
      mlx = false;
    else if (a == "--mlx-python")
      py = next();
    else if (a == "--precision")
      qmm::set_matmul_precision(next());
    else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "qmm bench: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  qmm::set_num_threads(env.threads);
#if defined(QMM_HAVE_OPENBLAS)
  openblas_set_num_threads(env.threads);
#else
  env.blas = false;
#endif
  std::vector<Case> cases;
  if (set == "goals" || set == "all") cases = goal_cases();
  if (set == "full" || set == "all") {
    auto f = full_cases();
    cases.insert(cases.end(), f.begin(), f.end());
  }
  if (!filter.empty())
    cases.erase(
        std::remove_if(cases.begin(), cases.end(),
                       [&](const Case& c) { return key(c).find(filter) == std::string::npos; }),
        cases.end());

  std::printf("qmm CPU benchmark: %s, %d threads, kernels %s, precision %s\n", cpu_model().c_str(),
              env.threads, qmm::cpu::active_kernels_name().c_str(),
              qmm::matmul_precision().c_str());
  env.read_gbps = measure_read_bw(env.threads);
  env.fma_gflops = measure_fma_peak(env.threads);
#if defined(QMM_HAVE_OPENBLAS)
  if (env.blas) {
    const int64_t S = 2048;
    std::vector<float> a(S * S, 0.5f), b(S * S, 0.25f), cc(S * S);
    sgemm_xwt(a.data(), b.data(), cc.data(), S, S, S);
    std::vector<double> ts;
    for (int r = 0; r < 3; ++r) {
      double t0 = now_s();
      sgemm_xwt(a.data(), b.data(), cc.data(), S, S, S);
      ts.push_back(now_s() - t0);
    }
    env.sgemm_gflops = 2.0 * S * S * S / median(ts) / 1e9;
  }
#endif
  std::printf(
      "ceilings: read %.1f GB/s, float32 FMA peak %.0f GFLOP/s, OpenBLAS sgemm 2048^3 %.0f "
      "GFLOP/s\n",
      env.read_gbps, env.fma_gflops, env.sgemm_gflops);

  // MLX baseline (a separate Python process, run before qmm's cases so the two never overlap).
  std::map<std::string, double> mlx_us;
  std::string mlx_version;
  if (mlx) {
    if (py.empty()) py = std::getenv("QMM_MLX_PYTHON") ? std::getenv("QMM_MLX_PYTHON") : "";
    if (py.empty()) py = std::ifstream(".venv/bin/python").good() ? ".venv/bin/python" : "python3";
    json req = json::array();
    for (const Case& c : cases)
      req.push_back({{"key", key(c)},
                     {"op", c.op},
                     {"mode", c.mode},
                     {"bits", c.bits},
                     {"group_size", c.gs},
                     {"dtype", c.dtype},
                     {"M", c.M},
                     {"N", c.N},
                     {"K", c.K},
                     {"experts", c.experts},
                     {"top_k", c.top_k},
                     {"tokens", c.tokens},
                     {"sorted", c.sorted}});
    const std::string in_path = "/tmp/qmm_bench_mlx_in.json",
                      out_path = "/tmp/qmm_bench_mlx_out.json";
    std::ofstream(in_path) << req.dump();
    std::remove(out_path.c_str());
    std::string script = "bench/mlx_cpu_baseline.py";
    std::string cmd = py + " " + script + " " + in_path + " " + out_path + " --threads " +
                      std::to_string(env.threads);
    std::printf("MLX baseline: %s\n", cmd.c_str());
    std::fflush(stdout);
    int rc = std::system(cmd.c_str());
    std::ifstream f(out_path);
    if (rc == 0 && f.good()) {
      json res = json::parse(f);
      mlx_version = res.value("mlx_version", "");
      for (auto& [k, v] : res["times_us"].items()) mlx_us[k] = v.get<double>();
    } else {
      std::printf("MLX baseline not available (rc %d)\n", rc);
    }
  }

  json rows = json::array();
  std::printf(
      "\n%-16s %-6s %2s %4s %-8s %5s %6s %6s %-10s %-15s %10s %7s %8s %5s %10s %7s %10s %7s %8s "
      "%7s\n",
      "op", "mode", "b", "gs", "dtype", "M", "N", "K", "moe", "kernel", "time_us", "GB/s",
      "GFLOP/s", "eff", "sgemm_us", "x_blas", "mlx_us", "x_mlx", "err", "BW_near");
  for (const Case& c : cases) {
    Measured r;
    int64_t active = 0;
    std::string kernel;
    double bw_near = env.read_gbps, fma_near = env.fma_gflops;
    try {
      qmm::core::MatmulProblem probe;  // for the kernel name
      probe.spec.mode = c.mode == "affine"  ? qmm::core::QuantMode::affine
                        : c.mode == "mxfp4" ? qmm::core::QuantMode::mxfp4
                        : c.mode == "mxfp8" ? qmm::core::QuantMode::mxfp8
                                            : qmm::core::QuantMode::nvfp4;
      probe.spec.bits = c.bits;
      probe.transpose = true;
      probe.M = c.op == "gather_qmm" ? 1 : c.M;
      kernel = qmm::cpu::describe_kernel(probe);
      // Ceilings measured right before the case (the machine's load changes over a run).
      bw_near = measure_read_bw(env.threads, size_t{256} << 20, 3);
      fma_near = measure_fma_peak(env.threads, 2000000, 3);
      r = c.op == "gather_qmm" ? run_gather(c, env, &active) : run_dense(c, env);
    } catch (const std::exception& e) {
      std::printf("%s: failed: %s\n", key(c).c_str(), e.what());
      continue;
    }
    const double t_bw = r.bytes / (bw_near * 1e9) * 1e6;
    const double t_fl = r.flops / (fma_near * 1e9) * 1e6;
    r.floor_us = std::max(t_bw, t_fl);
    const double gbps = r.bytes / (r.time_us * 1e-6) / 1e9;
    const double gflops = r.flops / (r.time_us * 1e-6) / 1e9;
    const double eff = r.floor_us / r.time_us;
    auto it = mlx_us.find(key(c));
    const double mu = it == mlx_us.end() ? -1 : it->second;
    char moe[32] = "";
    if (c.op == "gather_qmm")
      std::snprintf(moe, sizeof moe, "%lld/%lld/T%lld%s", (long long)c.experts, (long long)c.top_k,
                    (long long)c.tokens, c.sorted ? "s" : "");
    const double tol = c.dtype == "float32" ? 1e-5 : c.dtype == "bfloat16" ? 1e-2 : 2e-3;
    const bool fast = qmm::matmul_precision() == "fast";
    const bool ok = r.err <= (fast ? 2e-2 : tol);
    std::printf(
        "%-16s %-6s %2d %4d %-8s %5lld %6lld %6lld %-10s %-15s %10.1f %7.1f %8.1f %4.0f%% %10s %7s "
        "%10s %7s %8.1e %7.1f%s%s\n",
        c.op.c_str(), c.mode.c_str(), c.bits, c.gs, c.dtype.c_str(), (long long)c.M, (long long)c.N,
        (long long)c.K, moe, kernel.c_str(), r.time_us, gbps, gflops, eff * 100,
        r.sgemm_us > 0 ? std::to_string(static_cast<long long>(r.sgemm_us)).c_str() : "-",
        r.sgemm_us > 0 ? (std::to_string(r.sgemm_us / r.time_us).substr(0, 5)).c_str() : "-",
        mu > 0 ? std::to_string(static_cast<long long>(mu)).c_str() : "-",
        mu > 0 ? std::to_string(static_cast<long long>(mu / r.time_us)).c_str() : "-", r.err,
        bw_near, ok ? "" : " FAIL", c.cold ? "" : " (hot)");
    std::fflush(stdout);
    json row = {{"op", c.op},
                {"backend", "cpu"},
                {"mode", c.mode},
                {"bits", c.bits},
                {"group_size", c.gs},
                {"dtype", c.dtype},
                {"transpose", true},
                {"M", c.M},
                {"N", c.N},
                {"K", c.K},
                {"kernel", kernel},
                {"time_us", r.time_us},
                {"floor_us", r.floor_us},
                {"GBps", gbps},
                {"GFLOPps", gflops},
                {"efficiency", eff},
                {"rel_err", r.err},
                {"correct", ok},
                {"cold", c.cold},
                {"tag", c.tag},
                {"precision", qmm::matmul_precision()},
                {"bytes", r.bytes},
                {"read_GBps_near", bw_near},
                {"fma_gflops_near", fma_near},
                {"flops", r.flops}};
    if (c.op == "gather_qmm") {
      row["experts"] = c.experts;
      row["top_k"] = c.top_k;
      row["tokens"] = c.tokens;
      row["sorted"] = c.sorted;
      row["active_experts"] = active;
    } else {
      row["experts"] = nullptr;
      row["top_k"] = nullptr;
      row["tokens"] = nullptr;
      row["sorted"] = nullptr;
    }
    json base = json::object();
    if (r.sgemm_us > 0) base["openblas_sgemm"] = r.sgemm_us;
    if (mu > 0) base["mlx"] = mu;
    row["baselines_us"] = base;
    rows.push_back(row);
  }
  json doc = {{"device", cpu_model() + ", " + std::to_string(env.threads) + " threads"},
              {"date", today()},
              {"kernels", qmm::cpu::active_kernels_name()},
              {"precision", qmm::matmul_precision()},
              {"mlx_version", mlx_version},
              {"ceilings",
               {{"read_GBps", env.read_gbps},
                {"fma_gflops", env.fma_gflops},
                {"matmul_tflops", env.sgemm_gflops / 1000.0},
                {"openblas_sgemm_gflops", env.sgemm_gflops}}},
              {"rows", rows}};
  if (out.empty()) out = "bench/results/cpu-" + today() + ".json";
  std::ofstream(out) << doc.dump(1) << "\n";
  std::printf("\nwrote %s\n", out.c_str());
  return 0;
}

}  // namespace qmm_tools
