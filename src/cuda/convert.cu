// Strided copy with dtype conversion, rounding exactly like the host (src/core/convert.cpp and
// src/cpu/codecs.cpp): float <-> float through float32 with round-to-nearest-even; anything
// involving integers through float64 with C-style truncation and wrap-around.
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace qmm::cuda {

namespace {

struct Dims {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

__device__ __forceinline__ int64_t src_offset(const Dims& d, int64_t i) {
  int64_t off = 0;
  for (int k = d.ndim - 1; k >= 0; --k) {
    int64_t s = d.shape[k];
    off += (i % s) * d.strides[k];
    i /= s;
  }
  return off;
}

__device__ double load_double(const void* p, Dtype t, int64_t i) {
  switch (t) {
    case Dtype::float32: return static_cast<const float*>(p)[i];
    case Dtype::float16: return f16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case Dtype::bfloat16: return bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case Dtype::uint8: return static_cast<const uint8_t*>(p)[i];
    case Dtype::uint32: return static_cast<const uint32_t*>(p)[i];
    case Dtype::int32: return static_cast<const int32_t*>(p)[i];
    case Dtype::int64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
  }
  return 0;
}

__device__ int64_t to_int64(double v) {
  if (isnan(v)) return 0;
  if (v >= 9.2e18) return INT64_MAX;
  if (v <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(v);
}

__device__ void store_double(void* p, Dtype t, int64_t i, double v) {
  switch (t) {
    case Dtype::float32: static_cast<float*>(p)[i] = __double2float_rn(v); break;
    case Dtype::float16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16_bits(__double2float_rn(v));
      break;
    case Dtype::bfloat16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16_bits(__double2float_rn(v));
      break;
    case Dtype::uint8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(to_int64(v)); break;
    case Dtype::uint32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(to_int64(v)); break;
    case Dtype::int32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(to_int64(v)); break;
    case Dtype::int64: static_cast<int64_t*>(p)[i] = to_int64(v); break;
  }
}

template <class U>
__global__ void copy_kernel(const U* src, Dims d, U* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[src_offset(d, i)];
}

__global__ void convert_float_kernel(const void* src, Dtype st, Dims d, void* dst, Dtype dt,
                                     int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    store_float(dst, dt, i, load_float(src, st, src_offset(d, i)));
}

__global__ void convert_any_kernel(const void* src, Dtype st, Dims d, void* dst, Dtype dt,
                                   int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    store_double(dst, dt, i, load_double(src, st, src_offset(d, i)));
}

}  // namespace

void launch_convert(const StridedView& v, Dtype st, void* dst, Dtype dt, int64_t n,
                    cudaStream_t stream) {
  if (n == 0) return;
  Dims d{};
  d.ndim = v.ndim;
  for (int k = 0; k < v.ndim; ++k) {
    d.shape[k] = v.shape[k];
    d.strides[k] = v.strides[k];
  }
  if (d.ndim == 0) {  // a scalar
    d.ndim = 1;
    d.shape[0] = 1;
    d.strides[0] = 0;
  }
  constexpr int kThreads = 256;
  unsigned grid = grid_for(n, kThreads);
  if (st == dt) {
    switch (itemsize(st)) {
      case 1:
        copy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const uint8_t*>(v.base), d,
                                                   static_cast<uint8_t*>(dst), n);
        break;
      case 2:
        copy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const uint16_t*>(v.base), d,
                                                   static_cast<uint16_t*>(dst), n);
        break;
      case 4:
        copy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const uint32_t*>(v.base), d,
                                                   static_cast<uint32_t*>(dst), n);
        break;
      default:
        copy_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const uint64_t*>(v.base), d,
                                                   static_cast<uint64_t*>(dst), n);
        break;
    }
  } else if (is_floating(st) && is_floating(dt)) {
    convert_float_kernel<<<grid, kThreads, 0, stream>>>(v.base, st, d, dst, dt, n);
  } else {
    convert_any_kernel<<<grid, kThreads, 0, stream>>>(v.base, st, d, dst, dt, n);
  }
  check_launch("astype");
}

}  // namespace qmm::cuda
