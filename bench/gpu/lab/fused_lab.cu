// Fused-kernel lab: times fused Hopper GEMM configurations (tile, stream-K, cluster; one
// translation unit each, fused_lab_cfg.cu) on random 4/8-bit weights rotated beyond L2, next to
// cuBLAS bf16 on a weight of the same shape, and checks every configuration's output against
// the first one's. The scales arrive already transposed ([K/g, N]): this times the GEMM alone.
// Built by fused_lab.sh, not by CMake: it exists to choose instances; the product benchmark is
// `qmm bench`.
//   fused_lab M,N,K[,bits] ...
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/fused/fused_gemm.h"
#include "lab_timing.cuh"

namespace lab {
std::vector<qmm::cuda::fused::Instance>& registry() {
  static std::vector<qmm::cuda::fused::Instance> r;
  return r;
}
}  // namespace lab

namespace qmm::cuda::fused {
void throw_fused_error(const char* what) {
  std::fprintf(stderr, "fused: %s failed\n", what);
  std::exit(1);
}
}  // namespace qmm::cuda::fused

namespace {

struct Case {
  int64_t M, N, K;
  int bits;
};

void run_case(const Case& c, cublasHandle_t blas, cudaStream_t s) {
  const int64_t gs = 64, groups = c.K / gs;
  const RotatedWeights rw(c.N, c.K, c.bits, groups, s);
  const int copies = rw.copies();
  __nv_bfloat16 *x, *y;
  CK(cudaMalloc(&x, c.M * c.K * 2));
  CK(cudaMalloc(&y, c.M * c.N * 2));
  fill_bf16<<<1024, 256, 0, s>>>(reinterpret_cast<uint16_t*>(x), c.M * c.K, 7, -1.f, 1.f);
  const double flop = 2.0 * c.M * c.N * c.K;

  // cuBLAS bf16 on weights of the same shape (Y^T[N, M] = W[N, K] X^T).
  const size_t dbytes = size_t(c.N) * c.K * 2;
  const int dcopies = int(std::max<size_t>(2, (160u << 20) / dbytes + 1));
  std::vector<__nv_bfloat16*> wd(dcopies);
  for (auto& p : wd) {
    CK(cudaMalloc(&p, dbytes));
    fill_bf16<<<1024, 256, 0, s>>>(reinterpret_cast<uint16_t*>(p), c.N * c.K, 5, -0.05f, 0.05f);
  }
  cublasSetStream(blas, s);
  const float one = 1.f, zero = 0.f;
  const double blas_us = time_graph(s, [&](int i) {
    cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(c.N), int(c.M), int(c.K), &one,
                 wd[i % dcopies], CUDA_R_16BF, int(c.K), x, CUDA_R_16BF, int(c.K), &zero, y,
                 CUDA_R_16BF, int(c.N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  });
  for (auto p : wd) CK(cudaFree(p));
  std::printf("M=%-5lld N=%-6lld K=%-6lld %db  %-26s %8.1f us %6.1f TFLOP/s\n", (long long)c.M,
              (long long)c.N, (long long)c.K, c.bits, "cublas-bf16", blas_us,
              flop / blas_us * 1e-6);

  std::vector<__nv_bfloat16> ref, got(c.M * c.N);
  for (const auto& inst : lab::registry()) {
    if ((inst.name[0] - '0') != c.bits) continue;
    qmm::cuda::fused::Problem p;
    p.M = c.M, p.N = c.N, p.K = c.K, p.group_size = int(gs), p.x = x, p.out = y;
    p.w = rw.w[0], p.scales_t = rw.scales[0], p.biases_t = rw.biases[0];
    if (!inst.can_run(p)) {
      std::printf("%50s  %-26s cannot run\n", "", inst.name);
      continue;
    }
    void* ws = nullptr;
    const size_t wsb = inst.workspace_bytes(p);
    if (wsb) CK(cudaMalloc(&ws, wsb));
    CK(cudaMemsetAsync(y, 0, c.M * c.N * 2, s));
    inst.run(p, ws, s);
    CK(cudaStreamSynchronize(s));
    CK(cudaMemcpy(got.data(), y, got.size() * 2, cudaMemcpyDeviceToHost));
    double diff = 0, mag = 0;
    if (ref.empty()) ref = got;
    for (size_t i = 0; i < got.size(); ++i) {
      diff = std::max(diff, std::fabs(double(__bfloat162float(got[i])) - __bfloat162float(ref[i])));
      mag = std::max(mag, std::fabs(double(__bfloat162float(ref[i]))));
    }
    const double us = time_graph(s, [&](int i) {
      qmm::cuda::fused::Problem q = p;
      q.w = rw.w[i % copies], q.scales_t = rw.scales[i % copies],
      q.biases_t = rw.biases[i % copies];
      inst.run(q, ws, s);
    });
    std::printf(
        "M=%-5lld N=%-6lld K=%-6lld %db  %-26s %8.1f us %6.1f TFLOP/s %5.2fx cublas"
        "  maxdiff %.1e of %.1e\n",
        (long long)c.M, (long long)c.N, (long long)c.K, c.bits, inst.name, us, flop / us * 1e-6,
        blas_us / us, diff, mag);
    if (ws) CK(cudaFree(ws));
  }
  CK(cudaFree(x));
  CK(cudaFree(y));
}

}  // namespace

int main(int argc, char** argv) {
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cublasHandle_t blas;
  cublasCreate(&blas);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty())
    args = {"64,8192,8192", "128,8192,8192", "256,8192,8192", "64,14336,4096", "256,28672,8192"};
  for (const auto& a : args) {
    Case c{};
    c.bits = 4;
    std::sscanf(a.c_str(), "%lld,%lld,%lld,%d", (long long*)&c.M, (long long*)&c.N,
                (long long*)&c.K, &c.bits);
    run_case(c, blas, s);
  }
  cublasDestroy(blas);
  return 0;
}
