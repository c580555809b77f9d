// Timing harness: gemv / gather cold, prints median us per call and GB/s of active bytes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>
#include "qmm/qmm.h"
using namespace qmm;
static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int main(int argc, char** argv) {
  std::string what = argv[1];
  int bits = atoi(argv[2]);
  std::string dts = argv[3];
  int T = atoi(argv[4]);
  int reps = argc > 5 ? atoi(argv[5]) : 9;
  std::string mode = argc > 6 ? argv[6] : "affine";
  int gs = argc > 7 ? atoi(argv[7]) : 64;
  Dtype dt = parse_dtype(dts);
  std::vector<double> ts;
  if (what == "gemv") {
    int64_t N = getenv("GN") ? atoi(getenv("GN")) : 4096,
            K = getenv("GK") ? atoi(getenv("GK")) : 4096;
    Array w = Array::random_normal({N, K}, dt, 1234);
    Quantized q = quantize(w, gs, bits, mode);
    Array x = Array::random_normal({1, K}, dt, 99, 0.0f, 1.0f);
    double wb = q.w_q.nbytes() + q.scales.nbytes() + (q.biases ? q.biases->nbytes() : 0);
    int copies = getenv("HOT") ? 1 : std::min(64, (int)std::ceil(160e6 / wb));
    std::vector<Quantized> qs{q};
    for (int i = 1; i < copies; ++i)
      qs.push_back({q.w_q.to(Device::cpu()), q.scales.to(Device::cpu()),
                    q.biases ? std::optional<Array>(q.biases->to(Device::cpu())) : std::nullopt});
    auto call = [&](int i) {
      auto& qq = qs[i % copies];
      Array y = quantized_matmul(x, qq.w_q, qq.scales, qq.biases, true, gs, bits, mode);
      y.wait();
    };
    for (int i = 0; i < copies; ++i) call(i);
    for (int r = 0; r < reps; ++r) {
      double t0 = now();
      for (int i = 0; i < copies; ++i) call(i);
      ts.push_back((now() - t0) / copies);
    }
    std::sort(ts.begin(), ts.end());
    printf("gemv %s %db %s: median %.1f us  min %.1f  %.2f GB/s\n", mode.c_str(), bits, dts.c_str(),
           ts[ts.size() / 2] * 1e6, ts[0] * 1e6, wb / ts[ts.size() / 2] / 1e9);
  } else {
    int64_t E = 128, k = 8, N = 768, K = 2048;
    // Quantize 8 experts, replicate them to E (memory is what matters for cold reads).
    Array w8 = Array::random_normal({8, N, K}, dt, 4321);
    Quantized q8 = quantize(w8, gs, bits, mode);
    auto rep = [&](const Array& a) {
      Shape sh = a.shape();
      sh[0] = E;
      Array o = Array::empty(sh, a.dtype());
      size_t nb = a.nbytes();
      for (int e = 0; e < E / 8; ++e) memcpy((char*)o.raw_data() + e * nb, a.raw_data(), nb);
      return o;
    };
    Quantized q{rep(q8.w_q), rep(q8.scales),
                q8.biases ? std::optional<Array>(rep(*q8.biases)) : std::nullopt};
    Array xr = Array::random_normal({T, 1, K}, dt, 77);
    std::mt19937 rng(7);
    const int R = 16;
    std::vector<Array> li, ri;
    double act = 0;
    for (int r = 0; r < R; ++r) {
      std::vector<int32_t> idx;
      for (int t = 0; t < T; ++t) {
        std::vector<int32_t> all(E);
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), rng);
        for (int j = 0; j < k; ++j) idx.push_back(all[j]);
      }
      std::vector<int64_t> order(idx.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
      std::vector<int32_t> l, rr;
      for (auto o : order) {
        l.push_back(o / k);
        rr.push_back(idx[o]);
      }
      std::vector<int32_t> u = rr;
      std::sort(u.begin(), u.end());
      act += std::unique(u.begin(), u.end()) - u.begin();
      li.push_back(Array::from_vector(l, {(int64_t)l.size()}));
      ri.push_back(Array::from_vector(rr, {(int64_t)rr.size()}));
    }
    double wexp = (double)N * K * bits / 8 + (double)N * K / gs * 4;
    double bytes = wexp * act / R;
    double wb = q.w_q.nbytes() + q.scales.nbytes() + (q.biases ? q.biases->nbytes() : 0);
    int copies = std::max(1, std::min(4, (int)std::ceil(160e6 / wb)));
    std::vector<Quantized> qs{q};
    for (int i = 1; i < copies; ++i)
      qs.push_back({q.w_q.to(Device::cpu()), q.scales.to(Device::cpu()),
                    q.biases ? std::optional<Array>(q.biases->to(Device::cpu())) : std::nullopt});
    auto call = [&](int i) {
      auto& qq = qs[(i / R) % copies];
      Array y = gather_qmm(xr, qq.w_q, qq.scales, qq.biases, li[i % R], ri[i % R], true, gs, bits,
                           mode, true);
      y.wait();
    };
    int it = 0;
    for (int i = 0; i < R * copies; ++i) call(it++);
    for (int r = 0; r < reps; ++r) {
      double t0 = now();
      for (int i = 0; i < R * copies; ++i) call(it++);
      ts.push_back((now() - t0) / (R * copies));
    }
    std::sort(ts.begin(), ts.end());
    printf("gather T=%d %db %s: median %.1f us  min %.1f  %.2f GB/s (active %.1f MB)\n", T, bits,
           dts.c_str(), ts[ts.size() / 2] * 1e6, ts[0] * 1e6, bytes / ts[ts.size() / 2] / 1e9,
           bytes / 1e6);
  }
}
