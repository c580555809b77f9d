// Google Benchmark cases for qmm's CPU quantized_matmul and gather_qmm (affine 4-bit g64,
// bfloat16 x): GEMV / medium / GEMM over N=K=4096 with hot weights, GEMV with cold weights
// (rotating 16 copies, > last-level cache), and MoE decode (128 experts, top-8, 768 x 2048).
// Counters: bytes/s of packed weights and FLOP/s.
#include <benchmark/benchmark.h>

#include <numeric>
#include <random>
#include <vector>

#include "qmm/qmm.h"

namespace {

struct Weights {
  qmm::Array w, s, b;
};

std::vector<Weights> make(int64_t E, int64_t N, int64_t K, int copies) {
  qmm::Shape shape = E > 0 ? qmm::Shape{E, N, K} : qmm::Shape{N, K};
  auto q = qmm::quantize(qmm::Array::random_normal(shape, qmm::Dtype::bfloat16, 1), 64, 4);
  q.w_q.wait();  // ops are asynchronous: finish quantizing before anything is timed
  q.scales.wait();
  q.biases->wait();
  std::vector<Weights> out{{q.w_q, q.scales, *q.biases}};
  for (int i = 1; i < copies; ++i)
    out.push_back({q.w_q.to(qmm::Device::cpu()), q.scales.to(qmm::Device::cpu()),
                   q.biases->to(qmm::Device::cpu())});
  return out;
}

void BM_quantized_matmul(benchmark::State& st) {
  const int64_t M = st.range(0), N = 4096, K = 4096;
  const int copies = static_cast<int>(st.range(1));
  auto ws = make(0, N, K, copies);
  qmm::Array x = qmm::Array::random_normal({M, K}, qmm::Dtype::bfloat16, 2);
  x.wait();
  for (const Weights& w : ws) w.w.wait(), w.s.wait(), w.b.wait();
  int i = 0;
  for (auto _ : st) {
    const Weights& w = ws[static_cast<size_t>(i++ % copies)];
    qmm::Array y = qmm::quantized_matmul(x, w.w, w.s, w.b, true, 64, 4);
    y.wait();
  }
  const double bytes = N * K * 0.5 + N * K / 64.0 * 4;
  st.counters["weight_GBps"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["FLOPps"] =
      benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_quantized_matmul)
    ->ArgNames({"M", "copies"})
    ->Args({1, 1})
    ->Args({1, 16})
    ->Args({8, 1})
    ->Args({64, 1})
    ->Args({512, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_gather_qmm_decode(benchmark::State& st) {
  const int64_t T = st.range(0), E = 128, k = 8, N = 768, K = 2048;
  auto ws = make(E, N, K, 1);
  std::mt19937 rng(3);
  std::vector<int32_t> rhs, lhs;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int32_t> all(E);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < k; ++j) rhs.push_back(all[j]), lhs.push_back(static_cast<int32_t>(t));
  }
  qmm::Array x = qmm::Array::random_normal({T, 1, K}, qmm::Dtype::bfloat16, 4);
  x.wait();
  qmm::Array li = qmm::Array::from_vector(lhs, {T * k}), ri = qmm::Array::from_vector(rhs, {T * k});
  for (auto _ : st) {
    qmm::Array y = qmm::gather_qmm(x, ws[0].w, ws[0].s, ws[0].b, li, ri, true, 64, 4);
    y.wait();
  }
}
BENCHMARK(BM_gather_qmm_decode)
    ->ArgNames({"T"})
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
