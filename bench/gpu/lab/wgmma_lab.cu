// Lab of the hand-written Hopper fused kernel (src/cuda/wgmma/): checks the kernel against
// cuBLAS on the dequantized weight (same s * q + b rounding) and times both, weights rotated
// beyond L2. Built here by wgmma_lab.sh and carried to the GPU machine:
//   wgmma_lab [M,N,K[,group[,splits]] ...]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define QMM_WGMMA_TRACE 1
#include "cuda/wgmma/wgmma_ws.cuh"
#include "lab_timing.cuh"

using namespace qmm::cuda;

namespace {

// Reference dequantization: one rounding of s * q + b, as the kernel.
__global__ void dequant(const uint32_t* w, const uint16_t* s, const uint16_t* b, __nv_bfloat16* out,
                        int64_t N, int64_t K, int gs) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N * K;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / K, k = i % K;
    const float q = float((w[i / 8] >> (4 * (k % 8))) & 15u);
    const int64_t g = n * (K / gs) + k / gs;
    out[i] = __float2bfloat16_rn(fmaf(q, __bfloat162float(__ushort_as_bfloat16(s[g])),
                                      __bfloat162float(__ushort_as_bfloat16(b[g]))));
  }
}

struct Case {
  int M, N, K, gs, splits;
};

void run_kernel(const Case& c, const char* name, const RotatedWeights& rw, __nv_bfloat16* x,
                __nv_bfloat16* y, const std::vector<__nv_bfloat16>& ref, double blas_us, int sms,
                cudaStream_t s) {
  using T = wgmma::WsTile<4, __nv_bfloat16>;
  const int tiles = ((c.N + T::BN - 1) / T::BN) * ((c.M + T::TOK - 1) / T::TOK);
  const int ksteps = c.K / 64;
  const int splits = c.splits > 0 ? c.splits : wgmma::choose_splits(tiles, ksteps, sms);
  float* partials = nullptr;
  int* counters = nullptr;
  CK(cudaMalloc(&partials, size_t(splits) * tiles * T::kAcc * T::kMmaThreads * 4 + 16));
  CK(cudaMalloc(&counters, size_t(tiles) * 4));
  CK(cudaMemset(counters, 0, size_t(tiles) * 4));
  wgmma::Launch l;
  l.p.M = c.M, l.p.N = c.N, l.p.K = c.K, l.p.groups = c.K / c.gs, l.p.group_size = c.gs;
  l.p.group_shift = __builtin_ctz(unsigned(c.gs));
  l.p.ksteps = ksteps, l.p.out = y, l.p.partials = partials, l.p.counters = counters;
  l.splits = splits;
  l.x = x;
  long long* trace = nullptr;
  CK(cudaMalloc(&trace, 64 * 4 * 8));
  CK(cudaMemset(trace, 0, 64 * 4 * 8));
  l.p.trace = trace;
  auto set = [&](int i) {
    l.w = rw.w[i];
    l.p.scales = rw.scales[i];
    l.p.biases = rw.biases[i];
  };
  set(0);
  CK(cudaMemsetAsync(y, 0, size_t(c.M) * c.N * 2, s));
  auto go = [&] { return wgmma::launch_ws<4, __nv_bfloat16>(l, s); };
  cudaError_t e = go();
  if (e != cudaSuccess) {
    std::printf("  %-14s launch failed: %s\n", name, cudaGetErrorString(e));
    return;
  }
  CK(cudaStreamSynchronize(s));
  l.p.trace = nullptr;  // the timed launches run untraced (the trace's stores meet the fences)
  {
    std::vector<long long> t(64 * 4);
    CK(cudaMemcpy(t.data(), trace, t.size() * 8, cudaMemcpyDeviceToHost));
    double a = 0, b = 0, cc = 0, d = 0;
    int n = 0;
    for (int i = 4; i + 1 < std::min(64, ksteps / splits - 1); ++i, ++n) {
      a += t[i * 4 + 1] - t[i * 4];
      b += t[i * 4 + 2] - t[i * 4 + 1];
      cc += t[i * 4 + 3] - t[i * 4 + 2];
      d += t[(i + 1) * 4] - t[i * 4 + 3];
    }
    // MMA warpgroup, thread 0 of CTA 0: step start -> inputs ready -> wgmma issued -> previous
    // step's wgmma done -> next step start.
    if (n)
      std::printf("  %-14s cycles/step: wait inputs %.0f  issue %.0f  wgmma wait %.0f  rest %.0f\n",
                  name, a / n, b / n, cc / n, d / n);
  }
  std::vector<__nv_bfloat16> got(size_t(c.M) * c.N);
  CK(cudaMemcpy(got.data(), y, got.size() * 2, cudaMemcpyDeviceToHost));
  double diff = 0, mag = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = __bfloat162float(got[i]), r = __bfloat162float(ref[i]);
    diff = std::max(diff, std::isfinite(g) ? std::fabs(g - r) : 1e30);
    mag = std::max(mag, std::fabs(r));
  }
  const int copies = rw.copies();
  const double us = time_graph(s, [&](int i) {
    set(i % copies);
    go();
  });
  const double flop = 2.0 * c.M * c.N * c.K;
  std::printf("  %-14s splits %d  %8.1f us %6.1f TFLOP/s %5.2fx cublas  err %.1e of %.1e%s\n", name,
              splits, us, flop / us * 1e-6, blas_us / us, diff, mag,
              diff > 2e-2 * mag ? "  WRONG" : "");
  CK(cudaFree(partials));
  CK(cudaFree(counters));
  CK(cudaFree(trace));
}

void run_case(const Case& c, cublasHandle_t blas, int sms, cudaStream_t s) {
  const int64_t groups = c.K / c.gs;
  const RotatedWeights rw(c.N, c.K, 4, groups, s);
  const int copies = rw.copies();
  __nv_bfloat16 *x, *y, *wd;
  CK(cudaMalloc(&x, size_t(c.M) * c.K * 2));
  CK(cudaMalloc(&y, size_t(c.M) * c.N * 2));
  fill_bf16<<<1024, 256, 0, s>>>(reinterpret_cast<uint16_t*>(x), int64_t(c.M) * c.K, 7, -1.f, 1.f);
  const size_t dbytes = size_t(c.N) * c.K * 2;
  const int dcopies = int(std::max<size_t>(2, (160u << 20) / dbytes + 1));
  std::vector<__nv_bfloat16*> wds(dcopies);
  for (int i = 0; i < dcopies; ++i) {
    CK(cudaMalloc(&wds[i], dbytes));
    dequant<<<2048, 256, 0, s>>>(rw.w[i % copies], rw.scales[i % copies], rw.biases[i % copies],
                                 wds[i], c.N, c.K, c.gs);
  }
  wd = wds[0];
  cublasSetStream(blas, s);
  const float one = 1.f, zero = 0.f;
  auto gemm = [&](const __nv_bfloat16* W) {
    cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, c.N, c.M, c.K, &one, W, CUDA_R_16BF, c.K, x,
                 CUDA_R_16BF, c.K, &zero, y, CUDA_R_16BF, c.N, CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
  };
  gemm(wd);
  std::vector<__nv_bfloat16> ref(size_t(c.M) * c.N);
  CK(cudaStreamSynchronize(s));
  CK(cudaMemcpy(ref.data(), y, ref.size() * 2, cudaMemcpyDeviceToHost));
  const double blas_us = time_graph(s, [&](int i) { gemm(wds[i % dcopies]); });
  for (auto p : wds) CK(cudaFree(p));
  std::printf("M=%d N=%d K=%d g%d: cublas-bf16 %.1f us\n", c.M, c.N, c.K, c.gs, blas_us);
  run_kernel(c, "ws 128x64", rw, x, y, ref, blas_us, sms, s);
  CK(cudaFree(x));
  CK(cudaFree(y));
}

}  // namespace

int main(int argc, char** argv) {
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cublasHandle_t blas;
  cublasCreate(&blas);
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) args = {"64,8192,8192", "33,1000,512", "128,8192,8192", "256,8192,8192"};
  for (const auto& a : args) {
    Case c{0, 0, 0, 64, 0};
    std::sscanf(a.c_str(), "%d,%d,%d,%d,%d", &c.M, &c.N, &c.K, &c.gs, &c.splits);
    run_case(c, blas, sms, s);
  }
  cublasDestroy(blas);
  return 0;
}
