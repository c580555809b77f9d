#include <chrono>
#include <cstdio>
// Throughput of vcvtdq2ps / vfmadd / vpand mixes on independent registers (inline asm loops).
#define T(name, body, per)                                                                       \
  {                                                                                              \
    const long N = 50000000;                                                                     \
    auto t0 = std::chrono::steady_clock::now();                                                  \
    for (long n = 0; n < N; ++n)                                                                 \
      asm volatile(body ::                                                                       \
                       : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
                         "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "eax");   \
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();     \
    printf("%-34s %.2f G/s\n", name, N*(double)per / s / 1e9);                                   \
  }
int main() {
  for (int r = 0; r < 2; ++r) {
    T("8 cvt (indep)",
      "vcvtdq2ps %%ymm15,%%ymm0\n vcvtdq2ps %%ymm15,%%ymm1\n vcvtdq2ps %%ymm15,%%ymm2\n vcvtdq2ps "
      "%%ymm15,%%ymm3\n vcvtdq2ps %%ymm15,%%ymm4\n vcvtdq2ps %%ymm15,%%ymm5\n vcvtdq2ps "
      "%%ymm15,%%ymm6\n vcvtdq2ps %%ymm15,%%ymm7\n",
      8);
    T("8 fma (indep, 8 chains)",
      "vfmadd231ps %%ymm15,%%ymm14,%%ymm0\n vfmadd231ps %%ymm15,%%ymm14,%%ymm1\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm2\n vfmadd231ps %%ymm15,%%ymm14,%%ymm3\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm4\n vfmadd231ps %%ymm15,%%ymm14,%%ymm5\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm6\n vfmadd231ps %%ymm15,%%ymm14,%%ymm7\n",
      8);
    T("8 pand",
      "vpand %%ymm15,%%ymm14,%%ymm0\n vpand %%ymm15,%%ymm14,%%ymm1\n vpand "
      "%%ymm15,%%ymm14,%%ymm2\n vpand %%ymm15,%%ymm14,%%ymm3\n vpand %%ymm15,%%ymm14,%%ymm4\n "
      "vpand %%ymm15,%%ymm14,%%ymm5\n vpand %%ymm15,%%ymm14,%%ymm6\n vpand "
      "%%ymm15,%%ymm14,%%ymm7\n",
      8);
    T("4 cvt + 4 fma",
      "vcvtdq2ps %%ymm15,%%ymm0\n vfmadd231ps %%ymm15,%%ymm14,%%ymm8\n vcvtdq2ps %%ymm15,%%ymm1\n "
      "vfmadd231ps %%ymm15,%%ymm14,%%ymm9\n vcvtdq2ps %%ymm15,%%ymm2\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm10\n vcvtdq2ps %%ymm15,%%ymm3\n vfmadd231ps %%ymm15,%%ymm14,%%ymm11\n",
      8);
    T("4 cvt + 4 pand",
      "vcvtdq2ps %%ymm15,%%ymm0\n vpand %%ymm15,%%ymm14,%%ymm8\n vcvtdq2ps %%ymm15,%%ymm1\n vpand "
      "%%ymm15,%%ymm14,%%ymm9\n vcvtdq2ps %%ymm15,%%ymm2\n vpand %%ymm15,%%ymm14,%%ymm10\n "
      "vcvtdq2ps %%ymm15,%%ymm3\n vpand %%ymm15,%%ymm14,%%ymm11\n",
      8);
    T("4 fma + 4 pand",
      "vfmadd231ps %%ymm15,%%ymm14,%%ymm0\n vpand %%ymm15,%%ymm14,%%ymm8\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm1\n vpand %%ymm15,%%ymm14,%%ymm9\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm2\n vpand %%ymm15,%%ymm14,%%ymm10\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm3\n vpand %%ymm15,%%ymm14,%%ymm11\n",
      8);
    T("2 cvt+2 fma+2 pand+ 2 psrld",
      "vcvtdq2ps %%ymm15,%%ymm0\n vfmadd231ps %%ymm15,%%ymm14,%%ymm8\n vpand "
      "%%ymm15,%%ymm14,%%ymm1\n vpsrld $4,%%ymm15,%%ymm2\n vcvtdq2ps %%ymm15,%%ymm3\n vfmadd231ps "
      "%%ymm15,%%ymm14,%%ymm9\n vpand %%ymm15,%%ymm14,%%ymm4\n vpsrld $4,%%ymm15,%%ymm5\n",
      8);
    T("1 addl (clock, dep chain)",
      "addl $1, %%eax\n addl $1, %%eax\n addl $1, %%eax\n addl $1, %%eax\n", 4);
  }
}
