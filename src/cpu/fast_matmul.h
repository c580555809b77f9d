// The fast CPU matmul: a portable driver (fast_matmul.cpp) and per-ISA kernel sets
// (kernels_avx2.cpp, kernels_avx512.cpp, both compiled from kernels_isa.inc), chosen at run time
// from CPUID.
//
// The driver turns a MatmulProblem into buckets (one per weight matrix: all rows of x that meet
// that matrix, so each expert's weights are read once per call however many tokens use it) and
// work items (bucket, range of output columns). Items are split statically over the threads;
// every output element is computed by one item with the same instruction sequence whatever the
// split, so results are bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <string>

#include "core/backend.h"

namespace qmm::cpu {

// Numeric tier of the fast kernels.
enum class Precision {
  exact,  // float32 accumulation, exact products (default)
  fast,   // int8 activations per group (opt-in; about 1e-2 relative error)
};

// Everything a kernel needs about one call; pointers are host memory.
struct MatmulPlan {
  core::QuantMode mode = core::QuantMode::affine;
  int bits = 4, gs = 64;
  bool transpose = true;
  Precision precision = Precision::exact;
  int64_t M = 0, N = 0, K = 0;
  // Stored weight layout: w_batches matrices of `rows` rows of `row_bytes` bytes each, rows =
  // N (transpose) or K; a stored row holds `row_elems` elements in `groups` groups.
  int64_t rows = 0, row_elems = 0, row_bytes = 0, groups = 0;
  const uint8_t* w = nullptr;
  Dtype sdt = Dtype::float32;  // scale/bias dtype (uint8 for fp modes)
  const void* scales = nullptr;
  const void* biases = nullptr;
  // x as float32 rows of K elements (x_batches * M rows).
  const float* x = nullptr;
  // Per x row, per group of K: sum of x (transpose && affine; nullptr otherwise).
  const float* xsum = nullptr;
  // int8 activations for the fast tier: per x row Kp (K rounded up to the kernel set's fast
  // block) int8 values in the block layout, and Kp/8 float scales (the row's group scale for
  // each run of 8 elements).
  const int8_t* xq = nullptr;
  const float* xq_scale = nullptr;
  // Per x row and run of 8 elements: 8 * (sum of the int8 values), to center 4-bit codes.
  const int32_t* xq_sum8 = nullptr;
  // float32 result rows (batch * M rows of N), written by the kernels.
  float* acc = nullptr;
  // Final output (batch * M rows of N) of dtype out_dtype; when it is not float32, items
  // convert their part of `acc` into it.
  void* out = nullptr;
  Dtype out_dtype = Dtype::float32;
  // Unique per call (kernels key per-thread caches of prepared x rows on it).
  uint64_t call_id = 0;
};

// One weight matrix and the rows of x that meet it.
struct Bucket {
  int64_t wb = 0;     // weight batch
  int64_t begin = 0;  // range into the plan's row lists
  int64_t count = 0;  // number of rows (x row, output row pairs)
};

// Which kernel family ran (for benchmark rows and tests).
enum class KernelKind { gemv, gemm, gemm_nt, fast_gemv, fast_gemm };

// A kernel set compiled for one ISA level.
struct KernelSet {
  const char* name;  // "avx2", "avx512", ...
  // Computes output columns [n0, n1) for every row of bucket `b`; xrows/orows are the bucket's
  // x-row and output-row indices (count entries each).
  void (*run)(const MatmulPlan& plan, const Bucket& b, const int64_t* xrows, const int64_t* orows,
              int64_t n0, int64_t n1);
  // True when this set has an int8 fast tier GEMV kernel for the plan (else the exact one runs).
  bool (*has_fast)(const MatmulPlan& plan);
  // True when this set has an int8 fast tier GEMM kernel (>= 16 rows) for the plan.
  bool (*has_fast_gemm)(const MatmulPlan& plan);
  // Elements per block of the fast tier's int8 x layout (even elements, then odd ones).
  int (*fast_block)();
  // n elements of dtype t (float32/float16/bfloat16) -> float32, exactly.
  void (*to_f32)(const void* src, Dtype t, float* dst, int64_t n);
  // n float32 -> dtype t with round-to-nearest-even (bit-identical to qmm::float16/bfloat16).
  void (*from_f32)(const float* src, Dtype t, void* dst, int64_t n);
};

// Kernel sets available on this CPU (nullptr when not compiled or not supported).
const KernelSet* avx2_kernels();
const KernelSet* avx512_kernels();

// CPU features found at run time.
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, avx512vbmi = false;
};
const CpuFeatures& cpu_features();

// The kernel set in use: the best supported one, or the one named by QMM_CPU_KERNELS
// ("avx512", "avx2", "generic") when supported. nullptr means the generic kernel.
const KernelSet* active_kernels();
// Overrides the kernel set ("avx512", "avx2", "generic", or "" for the automatic choice);
// returns false when the named set is not available on this CPU. For tests and benchmarks.
bool select_kernels(const std::string& name);
// Name of the kernel set in use ("avx512", "avx2" or "generic").
std::string active_kernels_name();

// The precision tier in use (QMM_PRECISION or set_matmul_precision).
Precision matmul_precision();

// Description of the kernel a problem would run on ("avx2/gemv", "avx512/gemm", ...).
std::string describe_kernel(const core::MatmulProblem& p);

// The fast matmul (the CPU backend's quantized_matmul).
void fast_matmul(const core::MatmulProblem& p);
// The previous portable float kernel, kept for CPUs without AVX2.
void generic_matmul(const core::MatmulProblem& p);

}  // namespace qmm::cpu
