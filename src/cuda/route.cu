// Batch routing for batched and gathered matmuls, entirely on the device (no host sync, so
// graph capturable): resolves each output item's x and w batch, checks gathered indices
// (reporting the first bad one through the device error word and using 0 instead, so no kernel
// ever reads out of bounds), and optionally groups items by w batch ("expert"):
//  - sorted hint: segments are the runs of equal consecutive w batches (no reordering); if there
//    are more runs than experts the hint was wrong and the counting sort below is used instead;
//  - otherwise: a counting sort by w batch; segments are the active experts.
// One block does it all: batches are small (tokens x top-k), and one launch is cheaper than a
// multi-kernel sort at decode sizes.
#include "cuda/batch_map.cuh"

namespace qmm::cuda {

namespace {

constexpr int kThreads = 1024;

// Exclusive block-wide prefix sum of one value per thread; returns the block total in *total.
__device__ int block_exclusive_scan(int v, int* total) {
  __shared__ int warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) warp_sums[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int s = lane < (kThreads / 32) ? warp_sums[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      int y = __shfl_up_sync(0xffffffffu, s, o);
      if (lane >= o) s += y;
    }
    warp_sums[lane] = s;  // inclusive sums of warps
  }
  __syncthreads();
  int prefix = (warp ? warp_sums[warp - 1] : 0) + x - v;
  *total = warp_sums[kThreads / 32 - 1];
  __syncthreads();
  return prefix;
}

__global__ void __launch_bounds__(kThreads)
    route_kernel(Map xm, Map wm, int64_t batch, int64_t w_batches, int64_t M, bool group,
                 bool sorted, int rows_per_chunk, Routing r, ErrorSink err) {
  for (int64_t b = threadIdx.x; b < batch; b += kThreads) {
    r.xidx[b] = resolve(xm, b, err);
    r.widx[b] = resolve(wm, b, err);
  }
  if (!group) return;
  __syncthreads();
  int base = 0;
  if (sorted) {
    for (int64_t b0 = 0; b0 < batch; b0 += kThreads) {
      int64_t b = b0 + threadIdx.x;
      int flag = b < batch && (b == 0 || r.widx[b] != r.widx[b - 1]);
      int total;
      int pos = block_exclusive_scan(flag, &total);
      if (flag && base + pos < batch) r.seg_start[base + pos] = static_cast<int>(b);
      if (b < batch) r.order[b] = static_cast<int>(b);
      base += total;
    }
    // More runs than experts: the hint was wrong. Group by counting sort instead, so that the
    // number of segments stays within min(batch, experts), the bound the grid was sized for.
    if (base > w_batches) base = -1;
    __syncthreads();
  }
  if (!sorted || base < 0) {
    base = 0;
    int* counts = r.counts;
    for (int64_t e = threadIdx.x; e < w_batches; e += kThreads) counts[e] = 0;
    __syncthreads();
    for (int64_t b = threadIdx.x; b < batch; b += kThreads) atomicAdd(&counts[r.widx[b]], 1);
    __syncthreads();
    int offset = 0;  // items before this tile of experts
    for (int64_t e0 = 0; e0 < w_batches; e0 += kThreads) {
      int64_t e = e0 + threadIdx.x;
      int c = e < w_batches ? counts[e] : 0;
      int total, active_total;
      int start = block_exclusive_scan(c, &total);
      int apos = block_exclusive_scan(c > 0, &active_total);
      if (c > 0) r.seg_start[base + apos] = offset + start;
      if (e < w_batches) counts[e] = offset + start;  // becomes the fill cursor
      offset += total;
      base += active_total;
    }
    __syncthreads();
    for (int64_t b = threadIdx.x; b < batch; b += kThreads) {
      int pos = atomicAdd(&counts[r.widx[b]], 1);
      r.order[pos] = static_cast<int>(b);
    }
  }
  if (threadIdx.x == 0) {
    r.seg_start[base] = static_cast<int>(batch);
    *r.num_segments = base;
  }
  __syncthreads();
  // Work list of the decode kernel: ceil(rows / rows_per_chunk) chunks per segment.
  const int nseg = base;
  int wbase = 0;
  for (int s0 = 0; s0 < nseg; s0 += kThreads) {
    const int s = s0 + threadIdx.x;
    int chunks = 0;
    if (s < nseg) {
      const int64_t rows = int64_t(r.seg_start[s + 1] - r.seg_start[s]) * M;
      chunks = static_cast<int>((rows + rows_per_chunk - 1) / rows_per_chunk);
    }
    int total;
    const int off = block_exclusive_scan(chunks, &total);
    for (int ch = 0; ch < chunks; ++ch) r.work[wbase + off + ch] = make_int2(s, ch);
    wbase += total;
  }
  if (threadIdx.x == 0) *r.num_work = wbase;
}

}  // namespace

void launch_route(const BatchMapView& xmap, const BatchMapView& wmap, int64_t batch,
                  int64_t w_batches, int64_t M, bool group, bool sorted, int rows_per_chunk,
                  const Routing& r, ErrorSink err, cudaStream_t stream) {
  route_kernel<<<1, kThreads, 0, stream>>>(to_map(xmap), to_map(wmap), batch, w_batches, M, group,
                                           sorted, rows_per_chunk, r, err);
  check_launch("gather_qmm");
}

}  // namespace qmm::cuda
