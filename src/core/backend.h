// The interface between the core (validation, shapes, dtypes) and the compute backends.
// The core turns every op into one of the plain problems below; backends receive only valid
// problems, run them on a stream and return a completion for the outputs.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/array_impl.h"
#include "core/quant_spec.h"
#include "qmm/array.h"

namespace qmm::core {

using detail::Buffer;
using detail::Completion;

// out = w quantized; w contiguous (rows, cols) floating; outputs contiguous.
struct QuantizeProblem {
  QuantSpec spec;
  int64_t rows = 0, cols = 0;
  Array w;
  std::optional<Array> global_scale;  // float32 scalar, nvfp4 only
  Array w_q, scales;
  std::optional<Array> biases;  // affine only
};

// out (rows, cols) = dequantize(w_q, scales, biases); inputs contiguous.
struct DequantizeProblem {
  QuantSpec spec;
  int64_t rows = 0, cols = 0;  // cols counts unpacked elements
  Array w_q, scales;
  std::optional<Array> biases;
  std::optional<Array> global_scale;
  Array out;
};

// How output batch b finds its operand matrix: indices[b] when `indices` is set (int64,
// contiguous, one per output batch, not yet range checked when on a GPU), otherwise the dot
// product of b's multi-index over `batch_shape` with `strides` (in matrices; 0 = broadcast).
struct BatchMap {
  std::optional<Array> indices;
  Strides strides;
};

// out[b] = x[xb] @ W[wb]^T (transpose) or x[xb] @ W[wb], for b in [0, batch).
// x: contiguous (x_batches, M, K) in the compute dtype; w/scales/biases: contiguous
// (w_batches, rows, ·); out: contiguous (batch, M, N). Affine: x, scales, biases and out share one
// dtype. fp modes: x and out share one dtype, scales are uint8.
struct MatmulProblem {
  QuantSpec spec;
  bool transpose = true;
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1, x_batches = 1, w_batches = 1;
  Shape batch_shape;  // the output's batch axes (product = batch)
  BatchMap x_map, w_map;
  bool sorted_indices = false;  // hint: w_map.indices is ascending
  Array x, w, scales;
  std::optional<Array> biases;
  Array out;
};

// Maps output batch b to an operand batch through `map` (host-side helper; indices on host).
int64_t map_batch(const BatchMap& map, const Shape& batch_shape, int64_t b, const int64_t* indices);

// A strided copy with dtype conversion: dst (contiguous) = src converted to dst's dtype.
struct ConvertProblem {
  Array src;  // any strides/offset
  Array dst;  // contiguous, same shape
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;
  virtual int device_count() = 0;
  virtual int new_stream(Device d) = 0;
  virtual void synchronize(Stream s) = 0;
  // Uninitialised memory usable on stream s.
  virtual std::shared_ptr<Buffer> allocate(size_t bytes, Stream s) = 0;
  // Synchronous copies between host memory and a buffer of this backend.
  virtual void copy_from_host(const void* src, void* dst, size_t bytes, Device d) = 0;
  virtual void copy_to_host(const void* src, void* dst, size_t bytes, Device d) = 0;
  // Asynchronous work: each returns the completion of its outputs. Inputs' own completions
  // must be honoured (work waits for them).
  virtual std::shared_ptr<Completion> convert(const ConvertProblem& p, Stream s) = 0;
  virtual std::shared_ptr<Completion> quantize(const QuantizeProblem& p, Stream s) = 0;
  virtual std::shared_ptr<Completion> dequantize(const DequantizeProblem& p, Stream s) = 0;
  virtual std::shared_ptr<Completion> quantized_matmul(const MatmulProblem& p, Stream s) = 0;
};

// The registry: backends register once at start-up (see src/register_backends.cpp).
void register_backend(DeviceType type, std::unique_ptr<Backend> backend);
// The backend for a device type, or nullptr when none was built.
Backend* find_backend(DeviceType type);
// The backend for a device; throws std::invalid_argument naming `op` if it is not available.
Backend& backend_for(Device d, const char* op);

}  // namespace qmm::core
