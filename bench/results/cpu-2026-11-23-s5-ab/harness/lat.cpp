// Per-call latency of a tiny quantized_matmul + wait (the call overhead, no real work).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include "qmm/qmm.h"
using namespace qmm;
int main() {
  Array w = Array::random_normal({8, 64}, Dtype::float32, 1);
  Quantized q = quantize(w, 64, 4);
  Array x = Array::random_normal({1, 64}, Dtype::float32, 2);
  std::vector<double> ts;
  for (int i = 0; i < 3000; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Array y = quantized_matmul(x, q.w_q, q.scales, q.biases, true, 64, 4);
    y.wait();
    ts.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  printf("tiny call: median %.1f us  p10 %.1f  p90 %.1f\n", ts[ts.size() / 2], ts[ts.size() / 10],
         ts[ts.size() * 9 / 10]);
}
