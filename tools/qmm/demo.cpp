// `qmm demo`: the documented mlx_quantized_matmul example and a small MoE gather_qmm.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "commands.h"
#include "qmm/qmm.h"

namespace qmm_tools {

namespace {

using qmm::Array;
using qmm::Dtype;

// Median wall time of `reps` calls of fn (each waits for its result), in microseconds.
template <class F>
double time_us(F&& fn, int reps = 21) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  return t[reps / 2];
}

// y[m, n] = sum_k x[m, k] * w[n, k] in double.
std::vector<double> matmul_nt(const std::vector<double>& x, const std::vector<double>& w, int64_t M,
                              int64_t N, int64_t K, int64_t w_off = 0) {
  std::vector<double> y(static_cast<size_t>(M * N), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * w[w_off + n * K + k];
      y[m * N + n] = acc;
    }
  return y;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0.0;
  for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]));
  return e;
}

std::string shape_str(const Array& a) { return qmm::shape_to_string(a.shape()); }

}  // namespace

int run_demo(qmm::Device device) {
  std::printf("qmm %s demo on %s (%d CPU threads)\n\n", qmm::version(),
              qmm::to_string(device).c_str(), qmm::num_threads());

  // 1. The documented example: x 4x64, w 128x64 ~ N(0, 1), group size 32.
  const int64_t M = 4, N = 128, K = 64;
  Array x = Array::random_normal({M, K}, Dtype::float32, 1, 0, 1, device);
  Array w = Array::random_normal({N, K}, Dtype::float32, 2, 0, 1, device);
  Array y_auto = qmm::quantized_matmul(x, w, std::nullopt, std::nullopt, true, 32, std::nullopt,
                                       "affine", device);
  qmm::Quantized q = qmm::quantize(w, 32, 4, "affine", std::nullopt, device);
  Array y_pre = qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, true, 32, 4, "affine", device);
  Array w_hat = qmm::dequantize(q.w_q, q.scales, q.biases, 32, 4, "affine", std::nullopt,
                                Dtype::float32, device);
  auto xd = x.to_double_vector(), wd = w.to_double_vector(), whd = w_hat.to_double_vector();
  auto ref_q = matmul_nt(xd, whd, M, N, K);
  auto ref_f = matmul_nt(xd, wd, M, N, K);
  std::printf("quantized_matmul (affine, 4 bits, group 32)\n");
  std::printf("  x %s  w %s  ->  w_q %s uint32, scales %s, biases %s\n", shape_str(x).c_str(),
              shape_str(w).c_str(), shape_str(q.w_q).c_str(), shape_str(q.scales).c_str(),
              shape_str(*q.biases).c_str());
  std::printf("  automatic quantization: y %s, max |y - x @ dequantize(w_q).T| = %.3g\n",
              shape_str(y_auto).c_str(), max_abs_diff(y_auto.to_double_vector(), ref_q));
  std::printf("  pre-quantized weights:  y %s, max |y - x @ dequantize(w_q).T| = %.3g\n",
              shape_str(y_pre).c_str(), max_abs_diff(y_pre.to_double_vector(), ref_q));
  std::printf("  quantization error:     max |y - x @ w.T| = %.3g (4-bit weights)\n",
              max_abs_diff(y_pre.to_double_vector(), ref_f));
  double t_auto = time_us([&] {
    qmm::quantized_matmul(x, w, std::nullopt, std::nullopt, true, 32, std::nullopt, "affine",
                          device)
        .wait();
  });
  double t_pre = time_us([&] {
    qmm::quantized_matmul(x, q.w_q, q.scales, q.biases, true, 32, 4, "affine", device).wait();
  });
  std::printf("  time per call: %.1f us (with quantization), %.1f us (pre-quantized)\n\n", t_auto,
              t_pre);

  // 2. A small Mixture-of-Experts layer: 8 experts, top-2 routing, 16 tokens.
  const int64_t E = 8, top_k = 2, T = 16, EN = 96, EK = 128;
  Array xe = Array::random_normal({T, 1, 1, EK}, Dtype::float32, 3, 0, 1, device);
  Array we = Array::random_normal({E, EN, EK}, Dtype::float32, 4, 0, 1, device);
  qmm::Quantized qe = qmm::quantize(we, 64, 4, "affine", std::nullopt, device);
  std::vector<int32_t> route(T * top_k);
  for (int64_t t = 0; t < T; ++t) {  // two distinct experts per token, a fixed pseudo-random pick
    int32_t a = static_cast<int32_t>((t * 5 + 3) % E);
    int32_t b = static_cast<int32_t>((a + 1 + (t * 3) % (E - 1)) % E);
    route[t * top_k] = a;
    route[t * top_k + 1] = b;
  }
  Array rhs = Array::from_vector(route, {T, top_k}, device);
  Array y_moe = qmm::gather_qmm(xe, qe.w_q, qe.scales, qe.biases, std::nullopt, rhs, true, 64, 4,
                                "affine", false, device);
  // Sorted form (what mlx-lm does for large batches): order pairs by expert, gather x rows.
  std::vector<int32_t> order(T * top_k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return route[a] < route[b]; });
  std::vector<int32_t> sorted_idx(T * top_k), lhs_idx(T * top_k);
  for (size_t i = 0; i < order.size(); ++i) {
    sorted_idx[i] = route[order[i]];
    lhs_idx[i] = order[i] / static_cast<int32_t>(top_k);
  }
  Array rhs_sorted = Array::from_vector(sorted_idx, {T * top_k}, device);
  // x rows in sorted order as their own batch, so only rhs indices are given (the sorted hint).
  auto xed = xe.to_double_vector();
  std::vector<float> xs(static_cast<size_t>(T * top_k * EK));
  for (int64_t i = 0; i < T * top_k; ++i)
    for (int64_t k = 0; k < EK; ++k) xs[i * EK + k] = static_cast<float>(xed[lhs_idx[i] * EK + k]);
  Array x_sorted = Array::from_vector(xs, {T * top_k, 1, EK}, device);
  Array y_sorted = qmm::gather_qmm(x_sorted, qe.w_q, qe.scales, qe.biases, std::nullopt, rhs_sorted,
                                   true, 64, 4, "affine", true, device);
  // References in float64 from the dequantized experts.
  auto wed = qmm::dequantize(qe.w_q, qe.scales, qe.biases, 64, 4, "affine", std::nullopt,
                             Dtype::float32, device)
                 .to_double_vector();
  std::vector<double> ref(static_cast<size_t>(T * top_k * EN));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < top_k; ++j) {
      std::vector<double> xt(xed.begin() + t * EK, xed.begin() + (t + 1) * EK);
      auto r = matmul_nt(xt, wed, 1, EN, EK, route[t * top_k + j] * EN * EK);
      std::copy(r.begin(), r.end(), ref.begin() + (t * top_k + j) * EN);
    }
  auto ys = y_sorted.to_double_vector();
  std::vector<double> unsorted_back(ys.size());
  for (size_t i = 0; i < order.size(); ++i)
    std::copy(ys.begin() + i * EN, ys.begin() + (i + 1) * EN,
              unsorted_back.begin() + order[i] * EN);
  std::printf(
      "gather_qmm (MoE: %lld experts, top-%lld, %lld tokens, expert %lldx%lld, 4-bit g64)\n",
      (long long)E, (long long)top_k, (long long)T, (long long)EN, (long long)EK);
  std::printf("  x %s  w_q %s  rhs_indices %s  ->  y %s\n", shape_str(xe).c_str(),
              shape_str(qe.w_q).c_str(), shape_str(rhs).c_str(), shape_str(y_moe).c_str());
  std::printf("  unsorted: max error vs float64 reference = %.3g\n",
              max_abs_diff(y_moe.to_double_vector(), ref));
  std::printf("  sorted:   max error vs float64 reference = %.3g (y %s, un-permuted)\n",
              max_abs_diff(unsorted_back, ref), shape_str(y_sorted).c_str());
  double t_uns = time_us([&] {
    qmm::gather_qmm(xe, qe.w_q, qe.scales, qe.biases, std::nullopt, rhs, true, 64, 4, "affine",
                    false, device)
        .wait();
  });
  double t_sor = time_us([&] {
    qmm::gather_qmm(x_sorted, qe.w_q, qe.scales, qe.biases, std::nullopt, rhs_sorted, true, 64, 4,
                    "affine", true, device)
        .wait();
  });
  std::printf("  time per call: %.1f us (unsorted), %.1f us (sorted)\n", t_uns, t_sor);
  return 0;
}

}  // namespace qmm_tools
