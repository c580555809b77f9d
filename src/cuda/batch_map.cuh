// Per-item batch resolution shared by the routing kernel and the decode kernel: which x / w
// batch output item b uses, from an index array (checked: an out-of-range entry is reported
// through the device error word, first claim wins, and 0 is used instead so nothing reads out of
// bounds) or from broadcast strides.
#pragma once

#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace qmm::cuda {

struct Map {
  const int64_t* indices;
  int ndim;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
  int64_t limit;
  int code;
};

__device__ __forceinline__ int resolve(const Map& m, int64_t b, ErrorSink sink) {
  if (m.indices) {
    int64_t v = m.indices[b];
    if (v < 0 || v >= m.limit) {
      if (atomicCAS(sink.claim, 0, 1) == 0) {
        volatile DeviceError* err = sink.error;
        err->value = v;
        err->position = b;
        err->limit = m.limit;
        __threadfence_system();
        err->code = m.code;
        __threadfence_system();
      }
      return 0;
    }
    return static_cast<int>(v);
  }
  int64_t off = 0;
  for (int k = m.ndim - 1; k >= 0; --k) {
    int64_t d = m.shape[k];
    off += (b % d) * m.strides[k];
    b /= d;
  }
  return static_cast<int>(off);
}

// resolve() kept out of line for kernels that are short of registers: the map is taken by value
// (a reference into the kernel's arguments would make the compiler move them all to local
// memory, which made the decode kernel 2x slower).
__device__ __noinline__ static int resolve_out_of_line(Map m, int64_t b, ErrorSink sink) {
  return resolve(m, b, sink);
}

inline Map to_map(const BatchMapView& v) {
  Map m{};
  m.indices = v.indices;
  m.ndim = v.ndim;
  for (int k = 0; k < v.ndim; ++k) {
    m.shape[k] = v.shape[k];
    m.strides[k] = v.strides[k];
  }
  m.limit = v.limit;
  m.code = v.code;
  return m;
}

}  // namespace qmm::cuda
