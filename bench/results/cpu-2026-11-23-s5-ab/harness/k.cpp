// Direct kernel microbenchmark (one thread): ks->run over all columns, weights L2-resident or big.
#include <sys/mman.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include "cpu/fast_matmul.h"
using namespace qmm;
using namespace qmm::cpu;
static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int main(int argc, char** argv) {
  int bits = atoi(argv[1]);
  int64_t N = atoll(argv[2]), K = atoll(argv[3]);
  int reps = atoi(argv[4]);
  int copies = argc > 5 ? atoi(argv[5]) : 1;
  int gs = 64;
  MatmulPlan P;
  P.mode = core::QuantMode::affine;
  P.bits = bits;
  P.gs = gs;
  P.M = 1;
  P.N = N;
  P.K = K;
  P.rows = N;
  P.row_bytes = K * bits / 8;
  P.groups = K / gs;
  P.row_elems = K;
  std::mt19937 rng(1);
  size_t wbytes = copies * N * P.row_bytes + 64;
  wbytes = (wbytes + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  uint8_t* wp = (uint8_t*)aligned_alloc(2 << 20, wbytes);
  if (getenv("HUGE")) madvise(wp, wbytes, MADV_HUGEPAGE);
  struct {
    uint8_t* p;
    uint8_t* data() { return p; }
  } w{wp};
  for (size_t i = 0; i < wbytes; ++i) wp[i] = rng();
  std::vector<float> sc(copies * N * P.groups), bi(copies * N * P.groups);
  for (auto& v : sc) v = 0.01f * (rng() % 100 + 1);
  for (auto& v : bi) v = -0.01f * (rng() % 100);
  std::vector<float> x(K), xs(P.groups), acc(N);
  for (auto& v : x) v = (int)(rng() % 2001 - 1000) / 500.0f;
  for (int64_t g = 0; g < P.groups; ++g) {
    float s = 0;
    for (int i = 0; i < gs; ++i) s += x[g * gs + i];
    xs[g] = s;
  }
  P.sdt = Dtype::float32;
  P.x = x.data();
  P.xsum = xs.data();
  P.acc = acc.data();
  P.out = acc.data();
  P.out_dtype = Dtype::float32;
  const KernelSet* ks = avx2_kernels();
  Bucket b;
  b.wb = 0;
  b.begin = 0;
  b.count = 1;
  int64_t xr = 0, orr = 0;
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    int c = r % copies;
    P.w = w.data() + c * N * P.row_bytes;
    P.scales = sc.data() + c * N * P.groups;
    P.biases = bi.data() + c * N * P.groups;
    P.call_id = getenv("SAMECALL") ? 1 : r + 1;
    double t0 = now();
    ks->run(P, b, &xr, &orr, 0, N);
    ts.push_back(now() - t0);
  }
  if (getenv("SHOWHUGE")) {
    FILE* f = fopen("/proc/self/smaps_rollup", "r");
    char l[256];
    while (fgets(l, 256, f))
      if (strstr(l, "AnonHuge")) fputs(l, stdout);
    fclose(f);
  }
  std::sort(ts.begin(), ts.end());
  double t = ts[ts.size() / 2];
  printf("kernel %db N=%ld K=%ld copies=%d: median %.1f us min %.1f  %.2f Gw/s (min-based %.2f)\n",
         bits, N, K, copies, t * 1e6, ts[0] * 1e6, N * K / t / 1e9, N * K / ts[0] / 1e9);
}
