// `qmm bench --device gpu`: the GPU benchmark of bench.md. For every case: check the result
// against cuBLAS on the dequantized weight (fresh random data, never zeros), then time qmm and
// the cuBLAS baseline side by side with CUDA-graph replays over weight copies that together
// exceed 4x L2 (medians), and report the floors from the ceilings measured in the same run.
// Writes bench/results/gpu-<date>.json (torch baselines are merged in by
// bench/gpu/torch_baselines.py on the same machine).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/array_impl.h"
#include "cuda/bench_support.h"
#include "qmm/qmm.h"

namespace qmm_tools {

namespace {

using json = nlohmann::json;
using qmm::Array;
using qmm::Device;
using qmm::Dtype;
namespace gb = qmm::cuda::bench;

const Device kGpu = Device::gpu(0);

struct Case {
  std::string op = "quantized_matmul";
  std::string mode = "affine";
  int bits = 4, gs = 64;
  Dtype dt = Dtype::bfloat16;
  int64_t M = 1, N = 4096, K = 4096;
  // gather_qmm
  std::string model;
  int64_t E = 0, top_k = 0, T = 0;
  bool sorted = false;
};

struct Env {
  double read_gbps = 0, copy_gbps = 0, matmul_tflops = 0;
  size_t l2 = 0;
  int sm = 0;
};

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

// Packed bytes of one N x K weight matrix (codes + scales + biases).
double weight_bytes(const Case& c, int64_t N, int64_t K) {
  const double codes = double(N) * K * c.bits / 8.0;
  const double groups = double(N) * K / c.gs;
  const double sb = c.mode == "affine" ? 2.0 * qmm::itemsize(c.dt) : 1.0;
  return codes + groups * sb;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double rel_err(const Array& a, const Array& b) {
  auto x = a.to_double_vector(), y = b.to_double_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

Array random_gpu(qmm::Shape s, Dtype t, float std, uint64_t seed) {
  Array a = Array::empty(s, t, kGpu);
  gb::fill_normal(a.raw_data(), t, static_cast<size_t>(a.size()), std, seed, 0);
  return a;
}

Array copy_of(const Array& a) { return a.astype(a.dtype(), kGpu); }

struct Measured {
  double qmm_us = 0, cublas_us = 0, err = 0, floor_us = 0, bytes = 0, flops = 0;
  std::string kernel;
};

// The kernel label comes from the library's own dispatch (QMM_CUDA_PREFILL included).
std::string dense_kernel(const Case& c) {
  return gb::dense_kernel_name(0, c.mode, c.bits, c.gs, c.dt, c.M, c.N, c.K);
}

Measured run_dense(const Case& c, const Env& env, uint64_t seed) {
  Measured m;
  const float sd = 1.0f / std::sqrt(float(c.K));
  // Weights quantized on the GPU from random normal values, then copied past 4x L2.
  auto q = qmm::quantize(random_gpu({c.N, c.K}, c.dt, sd, seed), c.gs, c.bits, c.mode, {}, kGpu);
  const double wb = weight_bytes(c, c.N, c.K);
  const int copies = static_cast<int>(std::clamp<double>(std::ceil(4.0 * env.l2 / wb), 2, 64));
  std::vector<qmm::Quantized> qs{q};
  for (int i = 1; i < copies; ++i)
    qs.push_back({copy_of(q.w_q), copy_of(q.scales),
                  q.biases ? std::optional<Array>(copy_of(*q.biases)) : std::nullopt});
  Array x = random_gpu({c.M, c.K}, c.dt, 1.0f, seed + 1);
  qmm::Stream s = qmm::new_stream(kGpu);
  // Correctness: against cuBLAS on the dequantized weight.
  Array wd = qmm::dequantize(q.w_q, q.scales, q.biases, c.gs, c.bits, c.mode, {}, c.dt, kGpu);
  Array yref = Array::empty({c.M, c.N}, c.dt, kGpu);
  wd.wait();
  gb::cublas_gemm(0, 0, c.dt, c.M, c.N, c.K, x.raw_data(), wd.raw_data(), yref.raw_data());
  gb::stream_sync(0, 0);
  Array y = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, true, c.gs, c.bits, c.mode, kGpu);
  m.err = rel_err(y, yref);
  // qmm timing: one graph of `copies` calls, each on the next weight copy.
  const int iters = 15;
  m.qmm_us = gb::time_graph(
      0, s.index(),
      [&](int r) {
        const auto& w = qs[r % copies];
        Array out =
            qmm::quantized_matmul(x, w.w_q, w.scales, w.biases, true, c.gs, c.bits, c.mode, s);
        (void)out;  // freed inside the capture: the graph allocates and frees it on each replay
      },
      copies, iters);
  // cuBLAS on dequantized copies (>= 2 and beyond 4x L2 together).
  const double wdb = double(c.N) * c.K * qmm::itemsize(c.dt);
  const int dcopies = static_cast<int>(std::clamp<double>(std::ceil(4.0 * env.l2 / wdb), 2, 16));
  std::vector<Array> wds{wd};
  for (int i = 1; i < dcopies; ++i) wds.push_back(copy_of(wd));
  Array ybuf = Array::empty({c.M, c.N}, c.dt, kGpu);
  for (auto& a : wds) a.wait();
  m.cublas_us = gb::time_graph(
      0, s.index(),
      [&](int r) {
        gb::cublas_gemm(0, s.index(), c.dt, c.M, c.N, c.K, x.raw_data(),
                        wds[r % dcopies].raw_data(), ybuf.raw_data());
      },
      dcopies, iters);
  m.bytes = wb + double(c.M) * (c.K + c.N) * qmm::itemsize(c.dt);
  m.flops = 2.0 * c.M * c.N * c.K;
  m.floor_us = std::max(m.bytes / (env.read_gbps * 1e3), m.flops / (env.matmul_tflops * 1e6));
  m.kernel = dense_kernel(c);
  return m;
}

Measured run_moe(const Case& c, const Env& env, uint64_t seed) {
  Measured m;
  const float sd = 1.0f / std::sqrt(float(c.K));
  auto q =
      qmm::quantize(random_gpu({c.E, c.N, c.K}, c.dt, sd, seed), c.gs, c.bits, c.mode, {}, kGpu);
  const double wb_all = weight_bytes(c, c.N, c.K) * c.E;
  const int copies = static_cast<int>(std::clamp<double>(std::ceil(4.0 * env.l2 / wb_all), 1, 8));
  std::vector<qmm::Quantized> qs{q};
  for (int i = 1; i < copies; ++i)
    qs.push_back({copy_of(q.w_q), copy_of(q.scales),
                  q.biases ? std::optional<Array>(copy_of(*q.biases)) : std::nullopt});
  // Routings: top-k of Gaussian logits per token (balanced); several, rotated.
  constexpr int kRoutings = 8;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> nd;
  const int64_t B = c.T * c.top_k;
  struct Routing {
    Array x, rhs;  // x (T,1,1,K) + rhs (T, top_k)  or sorted: x (B,1,K) + rhs (B)
    double active_bytes;
    std::vector<int64_t> order;
  };
  std::vector<Routing> routings;
  Array x = random_gpu({c.T, 1, 1, c.K}, c.dt, 1.0f, seed + 7);
  auto xv = x.astype(Dtype::float32, kGpu).to_vector<float>();
  for (int r = 0; r < kRoutings; ++r) {
    std::vector<int32_t> idx;
    for (int64_t t = 0; t < c.T; ++t) {
      std::vector<std::pair<float, int>> lg(c.E);
      for (int e = 0; e < c.E; ++e) lg[e] = {nd(rng), e};
      std::partial_sort(lg.begin(), lg.begin() + c.top_k, lg.end(), std::greater<>());
      for (int k = 0; k < c.top_k; ++k) idx.push_back(lg[k].second);
    }
    std::vector<char> used(c.E, 0);
    for (auto e : idx) used[e] = 1;
    const double active = std::count(used.begin(), used.end(), 1);
    Routing ro;
    ro.active_bytes = active * weight_bytes(c, c.N, c.K);
    if (!c.sorted) {
      ro.x = x;
      ro.rhs = Array::from_vector(idx, {c.T, c.top_k}, kGpu);
    } else {
      std::vector<int64_t> order(B);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
      std::vector<int32_t> sidx;
      std::vector<float> xg;
      for (auto o : order) {
        sidx.push_back(idx[o]);
        const int64_t t = o / c.top_k;
        xg.insert(xg.end(), xv.begin() + t * c.K, xv.begin() + (t + 1) * c.K);
      }
      ro.x = Array::from_vector(xg, {B, 1, c.K}, kGpu).astype(c.dt, kGpu);
      ro.rhs = Array::from_vector(sidx, {B}, kGpu);
      ro.order = order;
    }
    routings.push_back(std::move(ro));
  }
  qmm::Stream s = qmm::new_stream(kGpu);
  // Correctness against the CPU backend at small T (its cost grows with T*top_k*N*K).
  const auto& r0 = routings[0];
  Array y = qmm::gather_qmm(r0.x, q.w_q, q.scales, q.biases, {}, r0.rhs, true, c.gs, c.bits, c.mode,
                            c.sorted, kGpu);
  if (B * c.N * c.K <= (int64_t(1) << 33)) {
    Device cpu = Device::cpu();
    Array yc = qmm::gather_qmm(r0.x.to(cpu), q.w_q.to(cpu), q.scales.to(cpu),
                               q.biases ? std::optional<Array>(q.biases->to(cpu)) : std::nullopt,
                               {}, r0.rhs.to(cpu), true, c.gs, c.bits, c.mode, c.sorted, cpu);
    m.err = rel_err(y, yc);
  } else {
    m.err = -1;  // not checked against the CPU here (too slow); the tests cover these paths
  }
  const int reps = std::max(kRoutings, copies);
  m.qmm_us = gb::time_graph(
      0, s.index(),
      [&](int r) {
        const auto& w = qs[r % copies];
        const auto& ro = routings[r % kRoutings];
        Array out = qmm::gather_qmm(ro.x, w.w_q, w.scales, w.biases, {}, ro.rhs, true, c.gs, c.bits,
                                    c.mode, c.sorted, s);
        (void)out;
      },
      reps, 15);
  double active = 0;
  for (auto& ro : routings) active += ro.active_bytes;
  active /= routings.size();
  m.bytes = active + double(B) * (c.K + c.N) * qmm::itemsize(c.dt);
  m.flops = 2.0 * B * c.N * c.K;
  m.floor_us = std::max(m.bytes / (env.read_gbps * 1e3), m.flops / (env.matmul_tflops * 1e6));
  m.kernel = gb::gather_kernel_name(0, c.mode, c.bits, c.gs, c.dt, B, c.E, c.N, c.K);
  return m;
}

std::vector<Case> dense_cases(bool quick) {
  std::vector<Case> v;
  using NK = std::pair<int64_t, int64_t>;
  const std::vector<NK> decode_shapes =
      quick ? std::vector<NK>{{4096, 4096}, {8192, 8192}, {14336, 4096}}
            : std::vector<NK>{{4096, 4096}, {14336, 4096}, {4096, 14336},
                              {8192, 8192}, {28672, 8192}, {16384, 16384}};
  const std::vector<int64_t> decode_m =
      quick ? std::vector<int64_t>{1, 16} : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64};
  for (auto [N, K] : decode_shapes)
    for (int64_t M : decode_m) {
      Case c;
      c.M = M;
      c.N = N;
      c.K = K;
      v.push_back(c);
    }
  const std::vector<NK> prefill_shapes =
      quick ? std::vector<NK>{{8192, 8192}}
            : std::vector<NK>{{4096, 4096}, {8192, 8192}, {28672, 8192}};
  for (auto [N, K] : prefill_shapes)
    for (int64_t M : quick ? std::vector<int64_t>{512, 2048}
                           : std::vector<int64_t>{128, 256, 512, 2048, 8192}) {
      Case c;
      c.M = M;
      c.N = N;
      c.K = K;
      v.push_back(c);
    }
  // Modes and activation dtypes on the 8192^2 row.
  struct Mode {
    const char* mode;
    int bits, gs;
  };
  for (Mode md :
       {Mode{"affine", 4, 32}, Mode{"affine", 4, 128}, Mode{"affine", 8, 64}, Mode{"affine", 2, 64},
        Mode{"affine", 3, 64}, Mode{"affine", 5, 64}, Mode{"affine", 6, 64}, Mode{"mxfp4", 4, 32},
        Mode{"mxfp8", 8, 32}, Mode{"nvfp4", 4, 16}})
    for (int64_t M : {int64_t(1), int64_t(16)}) {
      Case c;
      c.mode = md.mode;
      c.bits = md.bits;
      c.gs = md.gs;
      c.M = M;
      c.N = c.K = 8192;
      v.push_back(c);
    }
  for (Dtype dt : {Dtype::float16, Dtype::float32})
    for (int64_t M : {int64_t(1), int64_t(16)}) {
      Case c;
      c.dt = dt;
      c.M = M;
      c.N = c.K = 8192;
      v.push_back(c);
    }
  // Odd shapes.
  for (auto [N, K] : std::vector<NK>{{4, 4096}, {1000, 4096}, {5760, 2880}, {4096, 128}})
    for (int64_t M : {int64_t(1), int64_t(16)}) {
      Case c;
      c.M = M;
      c.N = N;
      c.K = K;
      v.push_back(c);
    }
  return v;
}

std::vector<Case> moe_cases(bool quick, const std::vector<int64_t>& token_list) {
  struct Model {
    const char* name;
    int64_t E, top, N, K;
    const char* mode;
    int bits, gs;
  };
  std::vector<Model> models = {
      {"qwen3-30b-a3b.w13", 128, 8, 1536, 2048, "affine", 4, 64},
      {"qwen3-30b-a3b.w2", 128, 8, 2048, 768, "affine", 4, 64},
      {"mixtral-8x7b.w1", 8, 2, 14336, 4096, "affine", 4, 64},
      {"mixtral-8x7b.w13", 8, 2, 28672, 4096, "affine", 4, 64},
      {"deepseek-v3.w13-slice", 32, 8, 4096, 7168, "affine", 4, 64},
      {"gpt-oss-20b.w13", 32, 4, 5760, 2880, "mxfp4", 4, 32},
  };
  std::vector<int64_t> tokens =
      quick ? std::vector<int64_t>{1, 16} : std::vector<int64_t>{1, 4, 16, 64, 256, 1024};
  if (!token_list.empty()) tokens = token_list;
  std::vector<Case> v;
  for (const auto& md : models)
    for (int64_t T : tokens)
      for (bool sorted : {false, true}) {
        if (quick && sorted && T == 1) continue;
        Case c;
        c.op = "gather_qmm";
        c.model = md.name;
        c.E = md.E;
        c.top_k = md.top;
        c.T = T;
        c.N = md.N;
        c.K = md.K;
        c.mode = md.mode;
        c.bits = md.bits;
        c.gs = md.gs;
        c.sorted = sorted;
        c.M = 1;
        v.push_back(c);
      }
  return v;
}

// "M,N,K[,mode,bits,group_size,dtype]" into a dense case (defaults: affine 4-bit g64 bf16).
bool parse_dense_case(const std::string& text, Case& c) {
  char mode[16] = "affine", dt[16] = "bfloat16";
  long long M, N, K;
  if (std::sscanf(text.c_str(), "%lld,%lld,%lld,%15[^,],%d,%d,%15s", &M, &N, &K, mode, &c.bits,
                  &c.gs, dt) < 3)
    return false;
  c.M = M;
  c.N = N;
  c.K = K;
  c.mode = mode;
  c.dt = qmm::parse_dtype(dt);
  return true;
}

}  // namespace

int run_gpu_bench(const std::vector<std::string>& args) {
  bool quick = false;
  std::string out, filter;
  std::optional<Case> one;
  std::vector<Case> sweep;  // shapes of --sweep (M filled in below)
  std::vector<int64_t> sweep_rows = {1,  2,   4,   8,   12,  16,  24,   32,   48,   64,
                                     96, 128, 192, 256, 384, 512, 1024, 2048, 4096, 8192};
  std::vector<int64_t> token_list;
  bool moe_only = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--quick")
      quick = true;
    else if (args[i] == "--out" && i + 1 < args.size())
      out = args[++i];
    else if (args[i] == "--filter" && i + 1 < args.size())
      filter = args[++i];
    else if (args[i] == "--case" && i + 1 < args.size()) {
      // One dense case: M,N,K[,mode,bits,group_size,dtype] (for profilers).
      Case c;
      if (!parse_dense_case(args[++i], c)) {
        std::fprintf(stderr, "--case M,N,K[,mode,bits,group_size,dtype]\n");
        return 2;
      }
      one = c;
    } else if (args[i] == "--tokens" && i + 1 < args.size()) {
      // gather_qmm rows only, at these token counts (comma-separated).
      moe_only = true;
      for (const char* p = args[++i].c_str(); *p;) {
        char* end;
        token_list.push_back(std::strtoll(p, &end, 10));
        p = *end ? end + 1 : end;
      }
    } else if (args[i] == "--sweep" && i + 1 < args.size()) {
      // Every M of the dispatch table on one shape: N,K[,mode,bits,group_size,dtype].
      Case base;
      if (!parse_dense_case("1," + args[++i], base)) {
        std::fprintf(stderr, "--sweep N,K[,mode,bits,group_size,dtype]\n");
        return 2;
      }
      sweep.push_back(base);
    } else if (args[i] == "--rows" && i + 1 < args.size()) {
      // The M values of --sweep instead of the dispatch table's (comma-separated).
      sweep_rows.clear();
      for (const char* p = args[++i].c_str(); *p;) {
        char* end;
        sweep_rows.push_back(std::strtoll(p, &end, 10));
        p = *end ? end + 1 : end;
      }
    } else if (args[i] == "--help" || args[i] == "-h") {
      std::printf(
          "qmm bench --device gpu [--quick] [--filter TEXT] [--case M,N,K[,mode,bits,gs,dtype]] "
          "[--sweep N,K[,mode,bits,gs,dtype] [--rows M1,M2,...]] [--tokens T1,T2,...] "
          "[--out FILE]\n");
      return 0;
    }
  }
  if (!qmm::is_available(kGpu)) {
    std::fprintf(stderr, "qmm bench --device gpu: no usable GPU.\n");
    return 2;
  }
  auto info = gb::device_info(0);
  Env env;
  env.l2 = info.l2_bytes;
  env.sm = info.sm_count;
  env.read_gbps = gb::read_bandwidth_GBps(0, size_t(2) << 30);
  env.copy_gbps = gb::copy_bandwidth_GBps(0, size_t(1) << 30);
  {
    // Matrix rate: cuBLAS bf16 8192^3 (median of graph replays).
    const int64_t n = 8192;
    Array a = random_gpu({n, n}, Dtype::bfloat16, 1.0f, 1),
          b = random_gpu({n, n}, Dtype::bfloat16, 1.0f, 2);
    Array c = Array::empty({n, n}, Dtype::bfloat16, kGpu);
    qmm::Stream s = qmm::new_stream(kGpu);
    double us = gb::time_graph(
        0, s.index(),
        [&](int) {
          gb::cublas_gemm(0, s.index(), Dtype::bfloat16, n, n, n, a.raw_data(), b.raw_data(),
                          c.raw_data());
        },
        2, 10);
    env.matmul_tflops = 2.0 * n * n * n / (us * 1e-6) / 1e12;
  }
  std::printf("device: %s, %d SMs, L2 %.1f MB\n", info.name.c_str(), info.sm_count,
              info.l2_bytes / 1e6);
  std::printf("ceilings: read %.0f GB/s, copy %.0f GB/s (read+write), cuBLAS bf16 %.0f TFLOP/s\n",
              env.read_gbps, env.copy_gbps, env.matmul_tflops);

  std::vector<Case> cases;
  if (one) {
    cases.push_back(*one);
  } else if (!sweep.empty()) {
    for (const Case& base : sweep)
      for (int64_t M : sweep_rows) {
        Case c = base;
        c.M = M;
        cases.push_back(c);
      }
  } else {
    if (!moe_only) cases = dense_cases(quick);
    for (auto& c : moe_cases(quick, token_list)) cases.push_back(c);
  }
  json rows = json::array();
  std::printf("%-16s %-7s %-5s %-9s %6s %6s %6s %-22s %9s %9s %9s %7s %7s %8s %8s\n", "op", "mode",
              "b/g", "dtype", "M/T", "N", "K", "model/kernel", "time_us", "floor_us", "cublas_us",
              "eff", "x_cublas", "GB/s", "rel_err");
  uint64_t seed = 100;
  for (const Case& c : cases) {
    std::string tag = c.op + " " + c.mode + " " + std::to_string(c.bits) + " " +
                      std::to_string(c.gs) + " " + std::string(qmm::dtype_name(c.dt)) + " " +
                      c.model;
    if (!filter.empty() && tag.find(filter) == std::string::npos) continue;
    Measured m;
    try {
      m = c.op == "gather_qmm" ? run_moe(c, env, seed += 10) : run_dense(c, env, seed += 10);
    } catch (const std::exception& e) {
      std::printf("%s M=%lld N=%lld K=%lld failed: %s\n", tag.c_str(), (long long)c.M,
                  (long long)c.N, (long long)c.K, e.what());
      continue;
    }
    const bool moe = c.op == "gather_qmm";
    std::printf(
        "%-16s %-7s %2d/%-3d %-9s %6lld %6lld %6lld %-22s %9.2f %9.2f %9s %7.2f %7s %8.0f %8.1e\n",
        c.op.c_str(), c.mode.c_str(), c.bits, c.gs, std::string(qmm::dtype_name(c.dt)).c_str(),
        (long long)(moe ? c.T : c.M), (long long)c.N, (long long)c.K,
        (moe ? c.model + (c.sorted ? "/s" : "/u") : m.kernel).c_str(), m.qmm_us, m.floor_us,
        moe ? "-" : std::to_string(m.cublas_us).substr(0, 8).c_str(), m.floor_us / m.qmm_us,
        moe ? "-" : std::to_string(m.cublas_us / m.qmm_us).substr(0, 5).c_str(),
        m.bytes / (m.qmm_us * 1e3), m.err);
    std::fflush(stdout);
    json row = {{"op", c.op},
                {"backend", "cuda"},
                {"mode", c.mode},
                {"bits", c.bits},
                {"group_size", c.gs},
                {"dtype", std::string(qmm::dtype_name(c.dt))},
                {"transpose", true},
                {"M", moe ? json(nullptr) : json(c.M)},
                {"N", c.N},
                {"K", c.K},
                {"experts", moe ? json(c.E) : json(nullptr)},
                {"top_k", moe ? json(c.top_k) : json(nullptr)},
                {"tokens", moe ? json(c.T) : json(nullptr)},
                {"sorted", moe ? json(c.sorted) : json(nullptr)},
                {"model", moe ? json(c.model) : json(nullptr)},
                {"kernel", m.kernel},
                {"time_us", m.qmm_us},
                {"floor_us", m.floor_us},
                {"bytes", m.bytes},
                {"flops", m.flops},
                {"effective_GBps", m.bytes / (m.qmm_us * 1e3)},
                {"tflops", m.flops / (m.qmm_us * 1e6)},
                {"rel_err", m.err}};
    json base = json::object();
    // cuBLAS on the dequantized weight in the row's dtype (bf16 for the headline rows).
    if (!moe)
      base[c.dt == Dtype::bfloat16  ? "cublas_bf16"
           : c.dt == Dtype::float16 ? "cublas_fp16"
                                    : "cublas_fp32"] = m.cublas_us;
    row["baselines_us"] = base;
    rows.push_back(row);
  }
  json doc = {{"device", info.name},
              {"date", today()},
              {"sm_count", info.sm_count},
              {"l2_bytes", info.l2_bytes},
              {"method",
               "CUDA graph replays (median of 15) over weight copies > 4x L2; "
               "cuBLAS baseline on the dequantized weight in the row's dtype"},
              {"ceilings",
               {{"read_GBps", env.read_gbps},
                {"copy_GBps", env.copy_gbps},
                {"matmul_tflops", env.matmul_tflops}}},
              {"rows", rows}};
  if (out.empty()) out = "bench/results/gpu-" + today() + ".json";
  std::ofstream f(out);
  f << doc.dump(1) << "\n";
  std::printf("wrote %s (%zu rows)\n", out.c_str(), rows.size());
  return 0;
}

}  // namespace qmm_tools
