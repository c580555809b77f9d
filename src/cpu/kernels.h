// CPU kernels. The codecs (quantize/dequantize) are exact ports of MLX 0.32.4's CPU arithmetic,
// written over row ranges so the backend can run them on several threads. The matmul has a
// scalar reference (double accumulation, the yardstick of every test) and a threaded kernel.
#pragma once

#include <cstdint>

#include "core/backend.h"

namespace qmm::cpu {

// Quantizes rows [r0, r1) of p.w into p.w_q / p.scales / p.biases.
void quantize_rows(const core::QuantizeProblem& p, int64_t r0, int64_t r1);
// Dequantizes rows [r0, r1) into p.out.
void dequantize_rows(const core::DequantizeProblem& p, int64_t r0, int64_t r1);

// The reference: every output element is a double-precision sum of x * dequantized w, rounded
// once to the output dtype. Single-threaded, simple, slow.
void reference_matmul(const core::MatmulProblem& p);
// The backend's kernel: the fast SIMD matmul (cpu/fast_matmul.h), float32 accumulation.
void threaded_matmul(const core::MatmulProblem& p);

// dst = src converted (strided gather with dtype conversion).
void convert_strided(const core::ConvertProblem& p);

// Checks that every entry of an index map lies in [0, limit); throws std::invalid_argument.
void check_indices(const core::BatchMap& map, int64_t batch, int64_t limit, const char* which);

}  // namespace qmm::cpu
