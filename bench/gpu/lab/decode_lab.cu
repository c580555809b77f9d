// Decode-kernel lab: times the decode kernel (qmv_mma.cuh) on random weights rotated beyond L2,
// next to the same weight stream read with no arithmetic (the load pattern's ceiling), and
// checks that two launches give the same bits (the kernel is deterministic). Built on the GPU
// machine (bench/gpu/lab/run.sh), not by CMake: it exists to try kernel variants quickly; the
// product benchmark is `qmm bench`.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/qmv_mma.cuh"
#include "lab_timing.cuh"

namespace qmm::cuda {
void check_launch(const char*) {}
void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", op, cudaGetErrorString(e));
    std::exit(1);
  }
}
}  // namespace qmm::cuda

using namespace qmm::cuda;

__global__ void fill_bytes(uint8_t* p, int64_t n, uint32_t seed, int lo, int span) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint8_t>(lo + mix(i, seed) % span);
}

// Load-pattern ceiling: the decode kernels' weight stream (lane (g, c) reads 16 bytes of rows
// g and g+8 per 128-element sub-chunk, warps interleaved along K, PF stages in registers)
// with the arithmetic replaced by one XOR per word.
template <int PF>
__global__ void __launch_bounds__(256, 2)
    read_pattern_kernel(const uint32_t* w, int64_t N, int64_t words, int tiles, uint32_t* sink) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int niter = int(words / 16 / 8);  // 16 words per 128 elements, 8 warps
  uint32_t accx = 0;
  for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
    const uint32_t* r0 = w + (int64_t(t) * 16 + g) * words + (warp * 4 + c) * 4;
    const uint32_t* r1 = r0 + 8 * words;
    uint4 st[PF][2];
#pragma unroll
    for (int i = 0; i < PF; ++i) {
      st[i][0] = __ldcs(reinterpret_cast<const uint4*>(r0 + i * 128));
      st[i][1] = __ldcs(reinterpret_cast<const uint4*>(r1 + i * 128));
    }
    for (int i0 = 0; i0 < niter; i0 += PF) {
#pragma unroll
      for (int j = 0; j < PF; ++j) {
        if (i0 + j < niter) {
          accx ^= st[j][0].x ^ st[j][0].y ^ st[j][0].z ^ st[j][0].w ^ st[j][1].x ^ st[j][1].y ^
                  st[j][1].z ^ st[j][1].w;
          const int nx = i0 + j + PF;
          if (nx < niter) {
            st[j][0] = __ldcs(reinterpret_cast<const uint4*>(r0 + nx * 128));
            st[j][1] = __ldcs(reinterpret_cast<const uint4*>(r1 + nx * 128));
          }
        }
      }
    }
  }
  if (accx == 0x12345678u) sink[0] = accx;
}

template <int PF>
double time_read(const std::vector<uint32_t*>& W, int64_t N, int64_t words, uint32_t* sink,
                 cudaStream_t s) {
  const int tiles = int(N / 16);
  const int grid = std::min(tiles, 264);
  return time_graph(s, [&](int i) {
    read_pattern_kernel<PF><<<grid, 256, 0, s>>>(W[i % W.size()], N, words, tiles, sink);
  });
}

enum class Mode { affine, mxfp4, nvfp4, mxfp8 };
struct Case {
  int M, N, K;
  Mode mode;
  int bits, gs;
};

template <class F>
void launch(bool, const MmaArgs& a, int64_t tiles, int rows, cudaStream_t s) {
  launch_mma_typed<__nv_bfloat16, F>(a, tiles, a.nchunks, rows, s);
}
void launch_case(const Case& c, bool sk, const MmaArgs& a, int64_t tiles, int rows,
                 cudaStream_t s) {
  switch (c.mode) {
    case Mode::mxfp4: launch<Fp4<32>>(sk, a, tiles, rows, s); return;
    case Mode::nvfp4: launch<Fp4<16>>(sk, a, tiles, rows, s); return;
    case Mode::mxfp8: launch<Fp8>(sk, a, tiles, rows, s); return;
    default: break;
  }
  switch (c.bits) {
    case 2: launch<AffinePow2<2>>(sk, a, tiles, rows, s); return;
    case 3: launch<AffineOdd<3>>(sk, a, tiles, rows, s); return;
    case 4: launch<AffinePow2<4>>(sk, a, tiles, rows, s); return;
    case 5: launch<AffineOdd<5>>(sk, a, tiles, rows, s); return;
    case 6: launch<AffineOdd<6>>(sk, a, tiles, rows, s); return;
    default: launch<Affine8>(sk, a, tiles, rows, s); return;
  }
}

float bf(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

int main(int argc, char** argv) {
  std::vector<Case> cases;
  const char* modes[] = {"affine", "mxfp4", "nvfp4", "mxfp8"};
  for (int i = 1; i < argc; ++i) {
    Case c{1, 8192, 8192, Mode::affine, 4, 64};
    char m[16] = "affine";
    int n = std::sscanf(argv[i], "%d,%d,%d,%15[a-z0-9],%d,%d", &c.M, &c.N, &c.K, m, &c.bits, &c.gs);
    if (n < 3) continue;
    std::string ms = m;
    c.mode = ms == "mxfp4"   ? Mode::mxfp4
             : ms == "nvfp4" ? Mode::nvfp4
             : ms == "mxfp8" ? Mode::mxfp8
                             : Mode::affine;
    if (c.mode == Mode::mxfp4) c.bits = 4, c.gs = 32;
    if (c.mode == Mode::nvfp4) c.bits = 4, c.gs = 16;
    if (c.mode == Mode::mxfp8) c.bits = 8, c.gs = 32;
    cases.push_back(c);
  }
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  std::printf("%-28s %9s %9s %9s %7s %8s %s\n", "case", "run1_us", "run2_us", "floor_us", "eff",
              "GB/s", "check");
  for (const Case& c : cases) {
    const bool affine = c.mode == Mode::affine;
    const int64_t words = int64_t(c.K) * c.bits / 32;
    const int64_t groups = c.K / c.gs;
    const size_t wbytes = size_t(c.N) * words * 4;
    const size_t sbytes = size_t(c.N) * groups * (affine ? 4 : 1);
    const size_t per = wbytes + sbytes;
    const int copies = std::max<int>(2, int(std::ceil(200e6 / per)));
    std::vector<uint32_t*> W(copies);
    std::vector<void*> S(copies), B(copies);
    for (int r = 0; r < copies; ++r) {
      CK(cudaMalloc(&W[r], wbytes));
      fill_words<<<1024, 256, 0, s>>>(W[r], int64_t(c.N) * words, 11 + r);
      if (affine) {
        CK(cudaMalloc(&S[r], size_t(c.N) * groups * 2));
        CK(cudaMalloc(&B[r], size_t(c.N) * groups * 2));
        fill_bf16<<<256, 256, 0, s>>>((uint16_t*)S[r], int64_t(c.N) * groups, 100 + r, 0.005f,
                                      0.02f);
        fill_bf16<<<256, 256, 0, s>>>((uint16_t*)B[r], int64_t(c.N) * groups, 200 + r, -0.1f, 0.1f);
      } else {
        CK(cudaMalloc(&S[r], size_t(c.N) * groups));
        B[r] = nullptr;
        if (c.mode == Mode::nvfp4)
          fill_bytes<<<256, 256, 0, s>>>((uint8_t*)S[r], int64_t(c.N) * groups, 300 + r, 0x28, 16);
        else
          fill_bytes<<<256, 256, 0, s>>>((uint8_t*)S[r], int64_t(c.N) * groups, 300 + r, 120, 8);
      }
    }
    uint16_t *x, *y0, *y1;
    CK(cudaMalloc(&x, size_t(c.M) * c.K * 2));
    CK(cudaMalloc(&y0, size_t(c.M) * c.N * 2));
    CK(cudaMalloc(&y1, size_t(c.M) * c.N * 2));
    fill_bf16<<<256, 256, 0, s>>>(x, int64_t(c.M) * c.K, 7, -1.0f, 1.0f);
    const int rows =
        c.M <= 8 || std::getenv("LAB_ROWS8") ? 8 : 16;  // LAB_ROWS8: 8-row chunks always
    MmaArgs a{};
    a.M = c.M;
    a.N = c.N;
    a.K = c.K;
    a.x = x;
    a.w_rows = c.N;
    a.w_words = words;
    a.s_cols = groups;
    a.gs_shift = 0;
    while ((1 << a.gs_shift) < c.gs) ++a.gs_shift;
    a.nchunks = (c.M + rows - 1) / rows;
    int dev = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&a.sm_count, cudaDevAttrMultiProcessorCount, dev));
    // The decode launch's L2 prefetch size (absent in older base revisions).
    [](auto& args) {
      if constexpr (requires { args.prefetch_row_bytes; }) {
        const char* v = std::getenv("QMM_CUDA_PDL_PREFETCH");
        args.prefetch_row_bytes = v ? std::atoi(v) / 16 * 16 : 1024;
      }
    }(a);
    const int64_t tiles = (c.N + 15) / 16;
    auto args_for = [&](int r, uint16_t* out) {
      MmaArgs b = a;
      b.w = W[r];
      b.scales = S[r];
      b.biases = B[r];
      b.out = out;
      return b;
    };
    launch_case(c, false, args_for(0, y0), tiles, rows, s);
    launch_case(c, true, args_for(0, y1), tiles, rows, s);
    CK(cudaStreamSynchronize(s));
    CK(cudaGetLastError());
    std::vector<uint16_t> h0(size_t(c.M) * c.N), h1(h0.size());
    CK(cudaMemcpy(h0.data(), y0, h0.size() * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h1.data(), y1, h1.size() * 2, cudaMemcpyDeviceToHost));
    size_t diff = 0;
    double maxrel = 0, maxref = 0;
    for (size_t i = 0; i < h0.size(); ++i) maxref = std::max(maxref, (double)std::fabs(bf(h0[i])));
    for (size_t i = 0; i < h0.size(); ++i) {
      float u = bf(h0[i]), v = bf(h1[i]);
      if (h0[i] != h1[i] && !(std::isnan(u) && std::isnan(v))) {
        ++diff;
        maxrel = std::max(maxrel, std::fabs(double(u) - v) / (maxref > 0 ? maxref : 1));
      }
    }
    // Timing: graphs of launches rotating over the weight copies (beyond L2).
    double t[2];
    for (int k = 0; k < 2; ++k)
      t[k] = time_graph(s, [&](int i) {
        launch_case(c, k == 1, args_for(i % copies, k ? y1 : y0), tiles, rows, s);
      });
    if (std::getenv("LAB_READ") && affine && c.bits == 4) {
      uint32_t* sink;
      CK(cudaMalloc(&sink, 4));
      std::printf(
          "  read pattern (weights only, %zu B): PF2 %.2f us, PF3 %.2f, PF4 %.2f, PF6 %.2f, PF8 "
          "%.2f\n",
          wbytes, time_read<2>(W, c.N, words, sink, s), time_read<3>(W, c.N, words, sink, s),
          time_read<4>(W, c.N, words, sink, s), time_read<6>(W, c.N, words, sink, s),
          time_read<8>(W, c.N, words, sink, s));
      cudaFree(sink);
    }
    const double floor_us = per / 3.0e12 * 1e6;
    char name[64];
    std::snprintf(name, sizeof name, "%d,%d,%d,%s,%d,%d", c.M, c.N, c.K, modes[int(c.mode)], c.bits,
                  c.gs);
    char chk[64];
    if (diff == 0)
      std::snprintf(chk, sizeof chk, "repeatable");
    else
      std::snprintf(chk, sizeof chk, "DIFF %zu (max rel %.2e)", diff, maxrel);
    std::printf("%-28s %9.2f %9.2f %9.2f %7.2f %8.0f %s\n", name, t[0], t[1], floor_us,
                floor_us / t[1], per / t[1] / 1e3, chk);
    for (int r = 0; r < copies; ++r) {
      cudaFree(W[r]);
      cudaFree(S[r]);
      if (B[r]) cudaFree(B[r]);
    }
    cudaFree(x);
    cudaFree(y0);
    cudaFree(y1);
  }
  return 0;
}
