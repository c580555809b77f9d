// Probe of which 2-D TMA box shapes the hardware accepts for the scale maps of the hand-written
// kernel (one configuration per process: a rejected one poisons the context).
//   tma_probe CASE   (0..5; see kCases)
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/wgmma/wgmma_qmm.cuh"

using namespace qmm::cuda::wgmma;

struct ProbeCase {
  const char* what;
  CUtensorMapDataType type;
  int elem, box_inner, box_rows, c0;
  CUtensorMapL2promotion l2;
};
const ProbeCase kCases[] = {
    {"u16 box 8x128 L2-256", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 8, 128, 0,
     CU_TENSOR_MAP_L2_PROMOTION_L2_256B},
    {"u16 box 8x128 L2-none", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 8, 128, 0,
     CU_TENSOR_MAP_L2_PROMOTION_NONE},
    {"u16 box 16x128 L2-256", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 16, 128, 0,
     CU_TENSOR_MAP_L2_PROMOTION_L2_256B},
    {"u8 box 16x128 L2-256", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, 16, 128, 0,
     CU_TENSOR_MAP_L2_PROMOTION_L2_256B},
    {"u16 box 8x128 c0=8", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 8, 128, 8,
     CU_TENSOR_MAP_L2_PROMOTION_L2_256B},
    {"u16 box 8x128 c0=4", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 8, 128, 4,
     CU_TENSOR_MAP_L2_PROMOTION_L2_256B},
    {"u16 box 8x64 L2-none", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 8, 64, 0,
     CU_TENSOR_MAP_L2_PROMOTION_NONE},
    {"u16 box 32x128 L2-none", CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, 32, 128, 0,
     CU_TENSOR_MAP_L2_PROMOTION_NONE},
};

__global__ void probe(const __grid_constant__ CUtensorMap map, int c0, int bytes, uint8_t* out) {
  __shared__ alignas(1024) uint8_t buf[16384];
  __shared__ alignas(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar), d = smem_addr(buf);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    mbar_expect_tx(b, bytes);
    tma_load_2d(d, &map, c0, 0, b);
    mbar_wait(b, 0);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < bytes; i += blockDim.x) out[i] = buf[i];
}

__global__ void probe4(const __grid_constant__ CUtensorMap m0,
                       const __grid_constant__ CUtensorMap m1,
                       const __grid_constant__ CUtensorMap m2,
                       const __grid_constant__ CUtensorMap m3, int k, int c0, int bytes,
                       uint8_t* out) {
  __shared__ alignas(1024) uint8_t buf[16384];
  __shared__ alignas(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar), d = smem_addr(buf);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    mbar_expect_tx(b, bytes);
    tma_load_2d(d, k == 0 ? &m0 : k == 1 ? &m1 : k == 2 ? &m2 : &m3, c0, 0, b);
    mbar_wait(b, 0);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < bytes; i += blockDim.x) out[i] = buf[i];
}

struct Maps4 {
  CUtensorMap m[4];
};
__global__ void probe_struct(const __grid_constant__ Maps4 maps, int k, int c0, int bytes,
                             uint8_t* out) {
  __shared__ alignas(1024) uint8_t buf[16384];
  __shared__ alignas(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar), d = smem_addr(buf);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    mbar_expect_tx(b, bytes);
    tma_load_2d(d, &maps.m[k], c0, 0, b);
    mbar_wait(b, 0);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < bytes; i += blockDim.x) out[i] = buf[i];
}

int main(int argc, char** argv) {
  const int which = argc > 1 ? std::atoi(argv[1]) : 0;
  const ProbeCase& c = kCases[which];
  const int rows = 1000, inner_bytes = 64;  // e.g. 32 groups of u16 scales per row
  std::vector<uint8_t> host(size_t(rows) * inner_bytes);
  for (size_t i = 0; i < host.size(); ++i) host[i] = uint8_t(i * 7 + 3);
  uint8_t *src, *out;
  cudaMalloc(&src, host.size());
  cudaMalloc(&out, 16384);
  cudaMemcpy(src, host.data(), host.size(), cudaMemcpyHostToDevice);
  CUtensorMap map;
  const cuuint64_t dims[2] = {cuuint64_t(inner_bytes / c.elem), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(inner_bytes)};
  const cuuint32_t box[2] = {cuuint32_t(c.box_inner), cuuint32_t(c.box_rows)};
  const cuuint32_t es[2] = {1, 1};
  const CUresult r =
      encode_tiled()(&map, c.type, 2, src, dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_NONE, c.l2, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  const int bytes = c.box_inner * c.elem * c.box_rows;
  probe<<<1, 128>>>(map, c.c0, bytes, out);
  const cudaError_t e = cudaDeviceSynchronize();
  int bad = -1;
  if (e == cudaSuccess) {
    std::vector<uint8_t> got(bytes);
    cudaMemcpy(got.data(), out, bytes, cudaMemcpyDeviceToHost);
    bad = 0;
    const int row_bytes = c.box_inner * c.elem;
    for (int i = 0; i < bytes; ++i)
      bad += got[i] != host[size_t(i / row_bytes) * inner_bytes + c.c0 * c.elem + i % row_bytes];
  }
  std::printf("%-26s encode %d  run %s  mismatches %d\n", c.what, int(r), cudaGetErrorString(e),
              bad);
  if (argc > 2) {  // the same map as the k-th of four tensor-map parameters
    const int k = std::atoi(argv[2]);
    probe4<<<1, 128>>>(map, map, map, map, k, c.c0, bytes, out);
    std::printf("  as parameter %d of 4: %s\n", k, cudaGetErrorString(cudaDeviceSynchronize()));
    Maps4 m4{{map, map, map, map}};
    probe_struct<<<1, 128>>>(m4, k, c.c0, bytes, out);
    std::printf("  as member %d of a struct: %s\n", k, cudaGetErrorString(cudaDeviceSynchronize()));
  }
  return 0;
}
